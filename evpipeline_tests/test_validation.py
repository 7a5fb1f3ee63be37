"""Lazy validation splits rows into merge and quarantine; contract breaks raise."""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
import pytest

from evpipeline.timeutil import parse_utc
from evpipeline.validation import ContractError, flag_invalid, validate

SCHEMA = pa.DataFrameSchema(
    {
        "k": pa.Column(str, nullable=False),
        "kw": pa.Column(float, pa.Check.ge(0), coerce=True, nullable=True),
        "st": pa.Column(str, pa.Check.isin(["A", "B"])),
        "t": pa.Column(pd.DatetimeTZDtype("ns", "UTC"), nullable=True),
    },
    strict=True,
)


def test_bad_rows_quarantined_with_reasons_and_raw_payload() -> None:
    raw = [{"i": i} for i in range(5)]
    df = pd.DataFrame({"k": ["a", "b", None, "d", "e"], "kw": [1, "x", 3, 2, 1], "st": ["A", "B", "A", "Z", "B"]})
    df["t"], bad = parse_utc(["2026-01-01T00:00:00Z", None, None, None, "yesterday"])
    flag_invalid(df, bad, "t: unparseable")
    result = validate(df, SCHEMA, table="x", keys=["k"], raw=raw)
    assert list(result.valid["k"]) == ["a"]
    assert result.valid["kw"].dtype == float
    by_key = {q.entity_key: q for q in result.quarantined}
    assert set(by_key) == {"b", "", "d", "e"}
    assert "coerce_dtype" in by_key["b"].failed_checks and by_key["b"].raw == {"i": 1}
    assert "not_nullable" in by_key[""].failed_checks
    assert "isin" in by_key["d"].failed_checks
    assert by_key["e"].failed_checks == "t: unparseable"


def test_missing_column_is_a_contract_error() -> None:
    df = pd.DataFrame({"k": ["a"], "kw": [1.0], "st": ["A"]})
    with pytest.raises(ContractError, match="column_in_dataframe"):
        validate(df, SCHEMA, table="x", keys=["k"])


def test_zone_less_timestamps_are_utc() -> None:
    parsed, bad = parse_utc(["2023-06-09T13:35:24", "2023-06-09T13:35:24Z", "2023-06-09T15:35:24+02:00"])
    assert not bad.any()
    assert parsed.nunique() == 1 and str(parsed.dt.tz) == "UTC"
