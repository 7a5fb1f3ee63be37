"""Lazy pandera validation that splits a frame into rows to merge and rows to quarantine.

`dagster-pandera`'s type check fails a whole step on one bad row and loses the good ones; here the
failing rows are set aside with their reasons and raw payload (for `ops.quarantine`) and the rest
continue. A frame-level failure (a column missing, a whole column of the wrong type) is not a bad
row but a broken contract, and raises.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaError, SchemaErrors

from evpipeline.warehouse import QuarantineRecord

# Reserved column a normalizer fills with a reason when it could not parse a row's value.
INVALID = "_invalid"


def flag_invalid(frame: pd.DataFrame, mask: pd.Series, reason: str) -> None:
    """Mark rows (by boolean mask) invalid with `reason`, keeping earlier reasons."""
    if not mask.any():
        return
    if INVALID not in frame.columns:
        frame[INVALID] = None
    current = frame.loc[mask.to_numpy(), INVALID]
    frame.loc[mask.to_numpy(), INVALID] = [
        reason if c is None or c != c else f"{c}; {reason}" for c in current
    ]


class ContractError(Exception):
    """The frame as a whole does not match its schema (not a row problem)."""


@dataclass
class Validated:
    valid: pd.DataFrame
    quarantined: list[QuarantineRecord] = field(default_factory=list)


def _entity_key(frame: pd.DataFrame, position: int, keys: Sequence[str]) -> str:
    return "|".join("" if pd.isna(v := frame.iloc[position][k]) else str(v) for k in keys)


def validate(
    frame: pd.DataFrame,
    schema: pa.DataFrameSchema,
    *,
    table: str,
    keys: Sequence[str],
    raw: Sequence[Any] | None = None,
) -> Validated:
    """Validate `frame`; `raw[i]` is the payload row i (by position) came from.

    Failing rows are removed and the survivors validated again, because one bad value can make a
    column-wide check fail without a row index (a failed coercion breaks the range check after it).
    Only a failure that remains once every bad row is gone is a contract error.
    """
    if len(frame) == 0:
        return Validated(frame.drop(columns=[INVALID], errors="ignore"))
    current = frame.reset_index(drop=True)  # labels = original positions, kept through drops
    reasons: dict[int, list[str]] = {}
    if INVALID in current.columns:
        # Problems the normalizer found while parsing (e.g. an unparseable timestamp).
        flagged = current[INVALID].notna()
        for position, reason in current.loc[flagged, INVALID].items():
            reasons.setdefault(int(position), []).append(str(reason))
        current = current.drop(columns=[INVALID])
        original = current
        current = current[~flagged.to_numpy()]
    else:
        original = current
    for _ in range(4):
        if current.empty:
            valid = current
            break
        try:
            valid = schema.validate(current, lazy=True)
            break
        except SchemaError as error:  # some frame-level problems are raised eagerly
            raise ContractError(f"{table}: {error}") from None
        except SchemaErrors as errors:
            cases = errors.failure_cases
        row_cases = cases[cases["index"].notna()]
        if row_cases.empty:
            frame_level = sorted(
                {
                    f"{chk} ({case})" if c is None else f"{c}: {chk}"
                    for c, chk, case in zip(
                        cases["column"], cases["check"], cases["failure_case"], strict=False
                    )
                }
            )
            raise ContractError(f"{table}: frame violates its schema: {'; '.join(frame_level)}")
        for position, column, check, case in zip(
            row_cases["index"],
            row_cases["column"],
            row_cases["check"],
            row_cases["failure_case"],
            strict=False,
        ):
            reasons.setdefault(int(position), []).append(f"{column}: {check} (got {case!r})")
        current = current.drop(index=[p for p in {int(i) for i in row_cases["index"]} if p in current.index])
        if current.empty:
            valid = current
            break
    else:
        raise ContractError(f"{table}: validation did not converge")

    if len(valid) > 1 and set(keys) <= set(valid.columns):
        valid = _one_version_per_key(valid, keys, reasons)

    records = [
        QuarantineRecord(
            table_name=table,
            entity_key=_entity_key(original, position, keys),
            failed_checks="; ".join(sorted(set(reasons[position]))),
            raw=raw[position] if raw is not None else original.iloc[position].to_dict(),
        )
        for position in sorted(reasons)
    ]
    return Validated(valid.reset_index(drop=True), records)


def _one_version_per_key(
    valid: pd.DataFrame, keys: Sequence[str], reasons: dict[int, list[str]]
) -> pd.DataFrame:
    """Two different versions of one object with the same `last_updated` in one batch cannot be
    ordered: keep the later position and quarantine the others with a reason (the merge would keep
    one of them silently). Versions with different `last_updated` are a history, not a conflict:
    the merge keeps the newest. Exact repeats are one row."""
    repeated = valid.duplicated(list(keys), keep=False)
    if not repeated.any():
        return valid
    stamp = ["last_updated"] if "last_updated" in valid.columns else []
    drop: list[int] = []
    for _, group in valid[repeated].groupby([*keys, *stamp], dropna=False, sort=False):
        if len(group) < 2:
            continue
        winner = int(group.index.max())
        kept = group.loc[winner].astype(str)
        for position in group.index:
            if position == winner:
                continue
            drop.append(int(position))
            if not group.loc[position].astype(str).equals(kept):
                reasons.setdefault(int(position), []).append(
                    "duplicate key in one batch with the same last_updated: "
                    f"a different version (row {winner}) was kept"
                )
    return valid.drop(index=drop)
