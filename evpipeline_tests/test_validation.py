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
    df = pd.DataFrame(
        {"k": ["a", "b", None, "d", "e"], "kw": [1, "x", 3, 2, 1], "st": ["A", "B", "A", "Z", "B"]}
    )
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


def test_two_versions_of_one_key_in_one_response_are_never_collapsed_silently() -> None:
    t = pd.Timestamp("2026-11-01T12:00:00Z")
    df = pd.DataFrame(
        {
            "k": ["a", "b", "a", "c", "c"],
            "kw": [1.0, 2.0, 7.0, 3.0, 3.0],
            "st": ["A", "A", "B", "A", "A"],
            "t": [t, t, t, t, t],
        }
    )
    result = validate(df, SCHEMA, table="x", keys=["k"], raw=[{"row": i} for i in range(5)])
    # Same key, different content, same stamps: the later version is kept, the other quarantined with why.
    assert sorted(zip(result.valid["k"], result.valid["kw"], strict=True)) == [
        ("a", 7.0),
        ("b", 2.0),
        ("c", 3.0),
    ]
    [loser] = result.quarantined
    assert loser.entity_key == "a" and loser.raw == {"row": 0}
    assert "duplicate key in one batch" in loser.failed_checks and "row 2" in loser.failed_checks
    # An exact repeat (c) is one row, not a quarantine case.


def test_versions_with_different_last_updated_are_a_history_not_a_conflict() -> None:
    schema = pa.DataFrameSchema(
        {"k": pa.Column(str), "v": pa.Column(str), "last_updated": pa.Column(pd.DatetimeTZDtype("ns", "UTC"))}
    )
    older, newer = pd.Timestamp("2026-11-01T12:00:00Z"), pd.Timestamp("2026-11-01T12:05:00Z")
    df = pd.DataFrame({"k": ["a", "a"], "v": ["new", "old"], "last_updated": [newer, older]})
    result = validate(df, schema, table="x", keys=["k"])
    assert (
        result.quarantined == [] and len(result.valid) == 2
    )  # the merge keeps the newest (tested in warehouse)


def test_every_reason_of_a_row_is_kept_sorted_with_the_value_it_got() -> None:
    df = pd.DataFrame({"k": ["a", "b"], "kw": [-1.0, 1.0], "st": ["Z", "A"], "t": [None, None]})
    flag_invalid(df, pd.Series([False, True]), "t: unparseable")
    flag_invalid(df, pd.Series([False, True]), "kw: out of range")  # a second problem adds to the first
    assert list(df["_invalid"]) == [None, "t: unparseable; kw: out of range"]
    result = validate(df, SCHEMA, table="x", keys=["k"], raw=[{"row": 0}, {"row": 1}])
    assert len(result.valid) == 0
    assert [(q.entity_key, q.failed_checks, q.raw) for q in result.quarantined] == [
        ("a", "kw: greater_than_or_equal_to(0) (got -1.0); st: isin(['A', 'B']) (got 'Z')", {"row": 0}),
        ("b", "t: unparseable; kw: out of range", {"row": 1}),  # the normalizer's reasons, in their order
    ]


def test_a_quarantined_row_without_a_payload_keeps_its_own_values() -> None:
    df = pd.DataFrame({"k": ["a"], "kw": [1.0], "st": ["Z"], "t": [None]})
    [record] = validate(df, SCHEMA, table="x", keys=["k"]).quarantined
    assert record.raw == {"k": "a", "kw": 1.0, "st": "Z", "t": None}
    assert record.table_name == "x"


def test_an_empty_frame_is_valid_and_has_no_invalid_column() -> None:
    df = pd.DataFrame({"k": pd.Series([], dtype=str), "_invalid": pd.Series([], dtype=object)})
    result = validate(df, SCHEMA, table="x", keys=["k"])
    assert list(result.valid.columns) == ["k"] and result.quarantined == []


def test_a_frame_level_break_names_the_table_and_each_problem() -> None:
    df = pd.DataFrame(
        {
            "k": ["a"],
            "kw": [1.0],
            "st": ["A"],
            "t": pd.Series([pd.NaT], dtype="datetime64[ns, UTC]"),
            "extra": [1],
        }
    )
    with pytest.raises(ContractError) as broken:
        validate(df, SCHEMA, table="evroam.sites", keys=["k"])
    assert str(broken.value) == "evroam.sites: frame violates its schema: column_in_schema (extra)"


def test_each_key_with_two_versions_at_one_stamp_is_judged_on_its_own_and_a_composite_key_names_both_parts() -> (  # noqa: E501 (the test's name)
    None
):
    t = pd.Timestamp("2026-11-01T12:00:00Z")
    schema = pa.DataFrameSchema(
        {
            "k": pa.Column(str),
            "n": pa.Column(str),
            "v": pa.Column(str),
            "last_updated": pa.Column(pd.DatetimeTZDtype("ns", "UTC"), nullable=True),
        }
    )
    later = pd.Timestamp("2026-11-01T12:05:00Z")
    df = pd.DataFrame(
        {
            "k": ["h", "h", "same", "same", "x", "x", "y", "y"],
            "n": ["0", "0", "1", "1", "2", "2", "3", "3"],
            "v": ["v1", "v2", "one", "one", "old", "new", "p", "q"],
            "last_updated": [
                t,
                later,
                t,
                t,
                t,
                t,
                None,
                None,
            ],  # h: a history; y: no stamp at all is one stamp too
        }
    )
    result = validate(df, schema, table="x", keys=["k", "n"])
    assert sorted(zip(result.valid["k"], result.valid["v"], strict=True)) == [
        ("h", "v1"),
        ("h", "v2"),
        ("same", "one"),
        ("x", "new"),
        ("y", "q"),
    ]
    assert [(q.entity_key, q.failed_checks) for q in result.quarantined] == [
        (
            "x|2",
            "duplicate key in one batch with the same last_updated: a different version (row 5) was kept",
        ),
        (
            "y|3",
            "duplicate key in one batch with the same last_updated: a different version (row 7) was kept",
        ),
    ]
