"""TomTom responses -> typed frames: availability snapshots, latest state, poll log, mapping rows.

JSON and XML responses arrive as the same dict (`wire.parse_availability_xml`), so both formats
go through one normalizer and produce identical frames. Each frame comes with the raw payload of
every row (same positions) for quarantine.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from evpipeline.normalize import Rows, object_or_empty
from evpipeline.sources.tomtom.wire import STATES, Poll
from evpipeline.validation import flag_invalid

if TYPE_CHECKING:
    from evpipeline.sources.tomtom.matching import Match

COLUMNS = {
    "available": "available",
    "occupied": "occupied",
    "reserved": "reserved",
    "unknown": "unknown",
    "outOfService": "out_of_service",
}
COUNT_COLUMNS = ["total", *COLUMNS.values()]


# -- availability ----------------------------------------------------------------------------

SNAPSHOT_COLUMNS = [
    "availability_id",
    "connector_type",
    "power_kw",
    "polled_at",
    "tracking_id",
    *COUNT_COLUMNS,
]


def _int(value: Any) -> int | None:
    try:
        return None if value is None or isinstance(value, bool) else int(value)
    except (TypeError, ValueError):
        return None


def snapshots(polls: Sequence[Poll]) -> Rows:
    """One row per id x connector type x power level x poll, with the counts at that level.

    A connector whose per-level counts do not add up to its `current` counts (or to its `total`)
    is inconsistent: its rows are flagged so they go to quarantine with that reason.
    """
    rows: list[dict[str, Any]] = []
    raw: list[Any] = []
    reasons: list[str | None] = []
    for poll in polls:
        for connector in (poll.body or {}).get("connectors") or []:
            if not isinstance(connector, dict):
                continue
            availability = object_or_empty(connector.get("availability"))
            current = object_or_empty(availability.get("current"))
            levels = [lv for lv in availability.get("perPowerLevel") or [] if isinstance(lv, dict)]
            problem = _inconsistency(connector, current, levels)
            payload = {
                "chargingAvailability": poll.availability_id,
                "trackingId": poll.tracking_id,
                **connector,
            }
            for level in levels or [{}]:
                counts = {COLUMNS[s]: _int(level.get(s)) for s in STATES}
                known = [v for v in counts.values() if v is not None]
                rows.append(
                    {
                        "availability_id": poll.availability_id,
                        "connector_type": connector.get("type"),
                        "power_kw": level.get("powerKW"),
                        "polled_at": pd.Timestamp(poll.polled_at),
                        "tracking_id": poll.tracking_id,
                        "total": sum(known) if len(known) == len(counts) else None,
                        **counts,
                    }
                )
                raw.append(payload)
                reasons.append(
                    "perPowerLevel missing: no power level to key the row on" if not levels else problem
                )
    frame = pd.DataFrame(rows, columns=SNAPSHOT_COLUMNS)
    frame["power_kw"] = pd.to_numeric(frame["power_kw"], errors="coerce")
    frame["polled_at"] = pd.to_datetime(frame["polled_at"], utc=True)
    for column in COUNT_COLUMNS:
        frame[column] = frame[column].astype("Int64")
    frame["last_updated"] = frame["polled_at"]
    for reason in sorted({r for r in reasons if r is not None}):
        flag_invalid(frame, pd.Series([r == reason for r in reasons], index=frame.index, dtype=bool), reason)
    return Rows(frame, raw)


def _inconsistency(
    connector: dict[str, Any], current: dict[str, Any], levels: list[dict[str, Any]]
) -> str | None:
    if not levels:
        return None
    for state in STATES:
        level_sum = sum(_int(lv.get(state)) or 0 for lv in levels)
        if _int(current.get(state)) != level_sum:
            return f"perPowerLevel {state} adds up to {level_sum}, current says {current.get(state)!r}"
    total = _int(connector.get("total"))
    counted = sum(_int(current.get(s)) or 0 for s in STATES)
    if total is not None and total != counted:
        return f"total {total} differs from the {counted} charging points counted in current"
    return None


def level_status(available: int, occupied: int, reserved: int, out_of_service: int) -> str:
    """One status for a connector type at a power level: the most useful state any of its points is in."""
    if available > 0:
        return "AVAILABLE"
    if occupied > 0:
        return "OCCUPIED"
    if reserved > 0:
        return "RESERVED"
    if out_of_service > 0:
        return "OUT_OF_SERVICE"
    return "UNKNOWN"


def latest(snapshot_rows: Rows) -> Rows:
    """The latest-state rows: the snapshot without poll-specific columns, plus a status.

    `last_updated` is the poll time: the merge keeps it when the counts did not change (so it
    says when they last changed) and moves `_observed_at` to the newest poll.
    """
    frame = snapshot_rows.frame.drop(columns=["polled_at", "tracking_id"]).copy()
    filled = frame[["available", "occupied", "reserved", "out_of_service"]].fillna(0).astype(int)
    frame.insert(3, "status", [level_status(*values) for values in filled.itertuples(index=False)])
    return Rows(frame, list(snapshot_rows.raw))


def poll_log(polls: Sequence[Poll]) -> Rows:
    """One row per request: id, poll time, Tracking-ID, outcome (data, no_data, error)."""
    frame = pd.DataFrame(
        {
            "availability_id": [p.availability_id for p in polls],
            "polled_at": pd.to_datetime([pd.Timestamp(p.polled_at) for p in polls], utc=True),
            "tracking_id": [p.tracking_id for p in polls],
            "wire_format": [p.wire_format for p in polls],
            "http_status": pd.array([p.http_status for p in polls], dtype="Int64"),
            "outcome": [p.outcome for p in polls],
            "connector_types": pd.array(
                [len((p.body or {}).get("connectors") or []) if p.body is not None else None for p in polls],
                dtype="Int64",
            ),
            "error": [p.error for p in polls],
        }
    )
    frame["last_updated"] = frame["polled_at"]
    raw = [
        {
            "chargingAvailability": p.availability_id,
            "trackingId": p.tracking_id,
            "outcome": p.outcome,
            "error": p.error,
        }
        for p in polls
    ]
    return Rows(frame, raw)


# -- mapping ---------------------------------------------------------------------------------


def mapping(matches: Sequence[Match], searched_at: Any) -> Rows:
    """Mapping rows (one per searched location) from the matcher's decisions."""
    stamp = pd.Timestamp(searched_at)
    rows = []
    for m in matches:
        loc, best, runner = m.location, m.best, m.runner_up
        rows.append(
            {
                "country_code": loc.country_code,
                "party_id": loc.party_id,
                "location_id": loc.location_id,
                "source": loc.source,
                "location_name": loc.name,
                "latitude": loc.latitude,
                "longitude": loc.longitude,
                "connector_types": json.dumps(sorted(loc.connector_types)),
                "match_status": m.status,
                "availability_id": best.availability_id
                if best is not None and m.status == "matched"
                else None,
                "poi_id": best.poi_id if best is not None else None,
                "poi_name": best.name if best is not None else None,
                "poi_latitude": best.latitude if best is not None else None,
                "poi_longitude": best.longitude if best is not None else None,
                "distance_m": round(best.distance_m, 2) if best is not None else None,
                "connector_overlap": round(best.overlap, 4) if best is not None else None,
                "candidates": m.candidates,
                "runner_up_poi_id": runner.poi_id if runner is not None else None,
                "runner_up_distance_m": round(runner.distance_m, 2) if runner is not None else None,
                "reason": m.reason,
                "searched_at": stamp,
            }
        )
    frame = pd.DataFrame(
        rows,
        columns=[
            "country_code",
            "party_id",
            "location_id",
            "source",
            "location_name",
            "latitude",
            "longitude",
            "connector_types",
            "match_status",
            "availability_id",
            "poi_id",
            "poi_name",
            "poi_latitude",
            "poi_longitude",
            "distance_m",
            "connector_overlap",
            "candidates",
            "runner_up_poi_id",
            "runner_up_distance_m",
            "reason",
            "searched_at",
        ],
    )
    frame["candidates"] = frame["candidates"].astype("Int64")
    frame["searched_at"] = pd.to_datetime(frame["searched_at"], utc=True)
    frame["last_updated"] = frame["searched_at"]
    return Rows(frame, [dict(r) for r in rows])
