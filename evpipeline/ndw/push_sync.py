"""Keeping NDW in step with the export: what NDW holds (`ops.ndw_pushed`), the diff, the pushes, the log.

- **Static** (hourly full run): every exported Location and Tariff is hashed without its
  `last_updated` fields (and, for Locations, without EVSE `status`, which PATCHes carry) and
  compared with the hash of what NDW last accepted. New or changed objects are PUT in full;
  tariffs NDW holds that are no longer exported are DELETEd (204) once no Location NDW holds still
  references them. Locations are never DELETEd (OCPI has no such call): one that left the export
  because it was deleted, unpublished or lost every EVSE is PUT once more with every EVSE
  `REMOVED`; one that is merely invalid now is held back (NDW keeps its last valid version). An
  EVSE that drops out of an exported Location stays in the PUT (EVSEs are never deleted either):
  `REMOVED` if it is gone from the mart, else its last valid version with its current status.
- **Dynamic** (every status run): each EVSE NDW holds whose wire status (deleted -> REMOVED)
  differs from the status NDW last accepted gets one PATCH with `status` and `last_updated`, for
  public Dutch locations only. Several transitions between runs collapse into one PATCH of the
  latest status; EVSEs of locations NDW does not hold yet wait for their Location's PUT. Because
  this is a diff, not a queue, a push that failed is simply tried again by the next run, and a
  transition committed late is never skipped. `ops.status_history` (view
  `mart.evse_status_history`) gives each PATCH its lag: push time minus when the warehouse
  recorded the change.
- Content NDW rejected (OCPI 2xxx) is not sent again until it changes: the latest push of each
  object and its content hash are in `ops.ndw_pushes`.
- Pushes run outside any DuckDB connection; the outcomes and the new NDW state commit in one
  transaction afterwards, so `ops.ndw_pushed` always says exactly what NDW accepted.
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb
import pandas as pd

from evpipeline.ndw.export import (
    OCPI_TS,
    SCOPE_LOCATIONS,
    SCOPE_TARIFFS,
    build_export,
    candidate,
    nap_countries,
)
from evpipeline.ndw.push import TRANSIENT, NdwAuthError, NdwPushClient, PushOutcome
from evpipeline.ocpi.definition import validate_location, validate_tariff
from evpipeline.warehouse import Migration, Writer, describe_columns, register
from evpipeline.warehouse.rows import scalar

SOURCE, STATUS_STREAM = "ndw", "status"
LANE_STREAM = "lane"  # the real-time lane's cursor: mart changes up to here are at NDW
LocKey = tuple[str, str, str]

register(
    Migration(
        "ndw",
        1,
        "NDW push log and what NDW holds",
        """
        CREATE TABLE ops.ndw_pushes (
            pushed_at TIMESTAMPTZ NOT NULL,     -- when NDW answered
            run_id VARCHAR,
            kind VARCHAR NOT NULL,              -- location | evse | tariff
            method VARCHAR NOT NULL,            -- PUT | PATCH | DELETE
            path VARCHAR NOT NULL,              -- below NDW_PUSH_BASE_URL
            key VARCHAR NOT NULL,               -- country_code/party_id/id[/evse_uid]
            reason VARCHAR,                     -- why: new | changed | republished | status | withdrawn |
                                                -- removed
            outcome VARCHAR NOT NULL,           -- accepted | rejected | invalid_json | not_found |
                                                -- unauthorized | failed
            ok BOOLEAN NOT NULL,
            http_status INTEGER,
            ocpi_status INTEGER,
            message VARCHAR,                    -- NDW's status_message (never a secret)
            attempts INTEGER NOT NULL,
            elapsed_ms DOUBLE,
            lag_seconds DOUBLE,                 -- status PATCHes: pushed_at minus when the warehouse recorded
                                                -- the change
            content_hash VARCHAR,               -- what was sent, without last_updated
                                                -- (rejected content is not resent)
            request_id VARCHAR                  -- our X-Request-ID, for NDW's servicedesk
        );
        CREATE TABLE ops.ndw_pushed (
            kind VARCHAR NOT NULL,              -- location | evse | tariff
            country_code VARCHAR NOT NULL,
            party_id VARCHAR NOT NULL,
            object_id VARCHAR NOT NULL,         -- location id or tariff id
            evse_uid VARCHAR NOT NULL,          -- '' except for kind evse
            static_hash VARCHAR,                -- content without last_updated (and without EVSE status)
            status VARCHAR,                     -- EVSEs: the status NDW holds
            last_updated VARCHAR,               -- the wire last_updated NDW holds
            body VARCHAR,                       -- locations and tariffs: the JSON last PUT
            withdrawn BOOLEAN NOT NULL DEFAULT false,  -- location PUT with every EVSE REMOVED
            pushed_at TIMESTAMPTZ NOT NULL,
            run_id VARCHAR,
            PRIMARY KEY (kind, country_code, party_id, object_id, evse_uid)
        );
        """,
    )
)
# What each column means, for the Dagster catalog (`evpipeline.catalog`).
COLUMNS: dict[str, dict[str, str]] = {
    "ops.ndw_pushes": {
        "run_id": "The run that pushed (an NDW push job or the real-time lane).",
        "ok": "NDW accepted the push (outcome accepted).",
        "http_status": "HTTP status of NDW's last answer (NULL when none arrived).",
        "ocpi_status": "OCPI status_code in NDW's last answer (1xxx success, 2xxx client errors: content "
        "rejected, 3xxx server errors, 4xxx hub errors).",
        "attempts": "Tries the push took (transient failures are retried).",
        "elapsed_ms": "Wall time of the push including its retries, in ms.",
    },
    "ops.ndw_pushed": {
        "country_code": "ISO 3166 alpha-2 country code of the object's CPO.",
        "party_id": "Party id of the object's CPO.",
        "pushed_at": "When NDW accepted the push that gave it this state (UTC).",
        "run_id": "The run that made that push.",
    },
}
describe_columns(__name__, COLUMNS)


# --------------------------------------------------------------------------------------------
# Hashing


def _without_last_updated(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_last_updated(v) for k, v in node.items() if k != "last_updated"}
    if isinstance(node, list):
        return [_without_last_updated(v) for v in node]
    return node


def _digest(node: Any) -> str:
    text = json.dumps(node, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def content_hash(obj: Any) -> str:
    """Hash of what is sent, ignoring `last_updated` (a bump alone is no change)."""
    return _digest(_without_last_updated(obj))


def static_hash(obj: dict[str, Any]) -> str:
    """Hash of a Location's static content: no `last_updated`, no EVSE `status` (PATCHes carry it)."""
    stripped = _without_last_updated(obj)
    for evse in stripped.get("evses", []):
        evse.pop("status", None)
    return _digest(stripped)


def tariff_refs(obj: dict[str, Any]) -> frozenset[LocKey]:
    """(country_code, party_id, tariff_id) of every tariff a Location's connectors reference."""
    cc, pid = obj.get("country_code", ""), obj.get("party_id", "")
    return frozenset(
        (cc, pid, tid)
        for evse in obj.get("evses", [])
        for conn in evse.get("connectors", [])
        for tid in conn.get("tariff_ids", [])
    )


def _ts(when: datetime) -> str:
    return when.astimezone(UTC).strftime(OCPI_TS)


# --------------------------------------------------------------------------------------------
# Plan


@dataclass
class PlannedPush:
    """One push the diff asks for."""

    kind: str  # location | evse | tariff
    method: str  # PUT | PATCH | DELETE
    key: tuple[str, ...]
    reason: str  # new | changed | republished | status | withdrawn | removed
    body: str | None = None  # JSON text of a PUT
    static_hash: str | None = None
    content_hash: str | None = None
    status: str | None = None  # PATCH
    last_updated: str | None = None  # PATCH
    recorded_at: datetime | None = None  # PATCH: when the warehouse recorded the change
    refs: frozenset[LocKey] = frozenset()  # location PUT: tariffs its connectors reference

    @property
    def key_text(self) -> str:
        return "/".join(self.key)

    @property
    def object_key(self) -> LocKey:
        """(country_code, party_id, id) of the Location or Tariff; for an EVSE, of its Location."""
        country_code, party_id, object_id = self.key[:3]
        return country_code, party_id, object_id

    @property
    def evse_key(self) -> tuple[str, str, str, str]:
        """(country_code, party_id, location_id, evse_uid) of an EVSE status PATCH."""
        country_code, party_id, location_id, evse_uid = self.key
        return country_code, party_id, location_id, evse_uid


@dataclass
class PushPlan:
    static: bool
    tariff_puts: list[PlannedPush] = field(default_factory=list)
    status_patches: list[PlannedPush] = field(default_factory=list)
    location_puts: list[PlannedPush] = field(default_factory=list)
    withdrawals: list[PlannedPush] = field(default_factory=list)
    tariff_deletes: list[PlannedPush] = field(default_factory=list)
    held_back: list[dict[str, str]] = field(default_factory=list)  # kind, key, reason
    held_refs: dict[LocKey, frozenset[LocKey]] = field(
        default_factory=dict
    )  # locations NDW holds -> tariff refs
    newest_transition: datetime | None = None
    mart_as_of: datetime | None = (
        None  # newest mart change the diff saw (the lane's cursor after a full push)
    )

    def phases(self) -> list[tuple[str, list[PlannedPush]]]:
        """Tariffs before the Locations that reference them; DELETEs after Locations stopped referencing
        them."""
        return [
            ("tariff_puts", self.tariff_puts),
            ("status_patches", self.status_patches),
            ("location_puts", self.location_puts),
            ("withdrawals", self.withdrawals),
            ("tariff_deletes", self.tariff_deletes),
        ]

    @property
    def size(self) -> int:
        return sum(len(p) for _, p in self.phases())


@dataclass
class _Held:
    static_hash: str | None
    body: str | None
    withdrawn: bool


def _in_scope(alias: str, kind: str, scoped: bool) -> str:
    """SQL condition: the row (country_code, party_id, object id) is in the lane's scope
    (always true unscoped)."""
    if not scoped:
        return "true"
    table, column = (SCOPE_TARIFFS, "tariff_id") if kind == "tariff" else (SCOPE_LOCATIONS, "location_id")
    return (
        f"EXISTS (SELECT 1 FROM {table} s WHERE s.country_code = {alias}.country_code "
        f"AND s.party_id = {alias}.party_id AND s.{column} = {alias}.object_id)"
    )


def _held(con: duckdb.DuckDBPyConnection, kind: str, scoped: bool = False) -> dict[LocKey, _Held]:
    rows = con.execute(
        "SELECT country_code, party_id, object_id, static_hash, body, withdrawn FROM ops.ndw_pushed p "
        f"WHERE kind = ? AND {_in_scope('p', kind, scoped)}",
        [kind],
    ).fetchall()
    return {(cc, pid, oid): _Held(h, body, bool(w)) for cc, pid, oid, h, body, w in rows}


def _last_rejected(con: duckdb.DuckDBPyConnection, scoped: bool = False) -> dict[tuple[str, str], str]:
    """(kind, key) -> content hash, for objects whose latest push NDW rejected (OCPI 2xxx)."""
    parts = (
        "split_part(key, '/', 1) AS country_code, split_part(key, '/', 2) AS party_id, split_part(key, '/', "
        "3) AS object_id"
    )
    rows = con.execute(f"""
        WITH pushes AS (SELECT *, {parts} FROM ops.ndw_pushes)
        SELECT kind, key, content_hash, outcome FROM pushes p
        WHERE (kind = 'tariff' AND {_in_scope("p", "tariff", scoped)})
            OR (kind <> 'tariff' AND {_in_scope("p", "location", scoped)})
        QUALIFY row_number() OVER (PARTITION BY kind, key ORDER BY pushed_at DESC) = 1
    """).fetchall()
    return {(kind, key): h for kind, key, h, outcome in rows if outcome == "rejected" and h}


def _held_evses(
    con: duckdb.DuckDBPyConnection, scoped: bool = False
) -> dict[tuple[str, str, str, str], tuple[bool, str, str]]:
    """EVSEs NDW holds -> (gone from the mart, wire status, last_updated) as the mart has them now."""
    rows = con.execute(f"""
        SELECT e.country_code, e.party_id, e.location_id, e.evse_uid,
               e.is_deleted OR e.status = 'REMOVED',
               CASE WHEN e.is_deleted THEN 'REMOVED' ELSE e.status END,
               strftime(e.last_updated, '{OCPI_TS}')
        FROM mart.evses e
        JOIN ops.ndw_pushed p ON p.kind = 'evse' AND p.country_code = e.country_code
                             AND p.party_id = e.party_id
                             AND p.object_id = e.location_id AND p.evse_uid = e.evse_uid
        WHERE {_in_scope("p", "location", scoped)}
    """).fetchall()
    return {(cc, pid, lid, uid): (bool(gone), status, lu) for cc, pid, lid, uid, gone, status, lu in rows}


def _carry_evses(
    obj: dict[str, Any],
    held_body: str | None,
    live: dict[tuple[str, str, str, str], tuple[bool, str, str]],
    now: str,
) -> bool:
    """Keep EVSEs NDW holds that left the export in the PUT (never delete an EVSE); True if any was."""
    if not held_body:
        return False
    exported = {str(e.get("uid", "")).casefold() for e in obj.get("evses", [])}
    carried = False
    loc = (obj["country_code"], obj["party_id"], obj["id"])
    for old in json.loads(held_body).get("evses", []):
        if str(old.get("uid", "")).casefold() in exported:
            continue
        evse = copy.deepcopy(old)
        gone, status, updated = live.get((*loc, evse["uid"]), (True, "REMOVED", now))
        if gone:
            if evse.get("status") != "REMOVED":
                evse["status"], evse["last_updated"] = "REMOVED", now
        else:  # still live but no longer exportable: NDW keeps its last valid version, with today's status
            evse["status"], evse["last_updated"] = status, max(str(evse.get("last_updated", "")), updated)
        obj.setdefault("evses", []).append(evse)
        carried = True
    if carried:
        obj["evses"].sort(key=lambda e: str(e.get("uid", "")))
        newest = max(str(e.get("last_updated", "")) for e in obj["evses"])
        obj["last_updated"] = max(str(obj.get("last_updated", "")), newest)
    return carried


def _withdrawn_body(held_body: str, now: str) -> dict[str, Any]:
    obj = json.loads(held_body)
    for evse in obj.get("evses", []):
        if evse.get("status") != "REMOVED":
            evse["status"], evse["last_updated"] = "REMOVED", now
    obj["last_updated"] = max(str(obj.get("last_updated", "")), now)
    return obj


def held_copy(con: duckdb.DuckDBPyConnection) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """What NDW holds by our mirror (`ops.ndw_pushed`): every location as last PUT, with each EVSE's status
    and `last_updated` as last PATCHed, and every tariff as last PUT. `evpipeline dev` seeds its NDW
    simulator with it, so the NDW the lane talks to holds what the warehouse believes it does."""
    evses = {
        (cc, pid, lid, uid): (status, updated)
        for cc, pid, lid, uid, status, updated in con.execute(
            "SELECT country_code, party_id, object_id, evse_uid, status, last_updated FROM ops.ndw_pushed "
            "WHERE kind = 'evse' AND status IS NOT NULL"
        ).fetchall()
    }
    locations = []
    for (body,) in con.execute(
        "SELECT body FROM ops.ndw_pushed WHERE kind = 'location' AND body IS NOT NULL "
        "ORDER BY country_code, party_id, object_id"
    ).fetchall():
        obj = json.loads(body)
        for evse in obj.get("evses", []):
            held = evses.get((obj["country_code"], obj["party_id"], obj["id"], evse.get("uid")))
            if held is not None:
                evse["status"] = held[0]
                evse["last_updated"] = max(str(evse.get("last_updated", "")), held[1] or "")
        locations.append(obj)
    tariffs = [
        json.loads(body)
        for (body,) in con.execute(
            "SELECT body FROM ops.ndw_pushed WHERE kind = 'tariff' AND body IS NOT NULL "
            "ORDER BY country_code, party_id, object_id"
        ).fetchall()
    ]
    return locations, tariffs


def plan_pushes(
    con: duckdb.DuckDBPyConnection,
    *,
    static: bool,
    now: datetime,
    max_static_pushes: int = 1000,
    scoped: bool = False,
) -> PushPlan:
    """Diff the mart (and, for static runs, the export) against what NDW holds.

    `scoped`: only the locations and tariffs in the scope temp tables (the real-time lane's changes);
    the diff is the same, its cost follows the scope. Tariff DELETEs need every held location's
    references, so they are left to the unscoped (hourly) run.
    """
    plan = PushPlan(static=static, mart_as_of=mart_newest(con))
    held_locations = _held(con, "location", scoped)
    if not scoped:
        plan.held_refs = {
            k: tariff_refs(json.loads(h.body))
            for k, h in held_locations.items()
            if h.body and not h.withdrawn
        }
        row = con.execute(
            "SELECT max(recorded_at) FROM ops.status_history WHERE table_name = 'mart.evses'"
        ).fetchone()
        plan.newest_transition = row[0] if row else None
    if static:
        _plan_static(con, plan, held_locations, _ts(now), max_static_pushes, scoped)
    skip = {p.key for p in (*plan.location_puts, *plan.withdrawals)}  # their PUT carries the status
    rejected = _last_rejected(con, scoped)
    for push in _status_diff(con, scoped):
        if push.key[:3] in skip:
            continue
        if rejected.get(("evse", push.key_text)) == push.content_hash:
            plan.held_back.append(
                {"kind": "evse", "key": push.key_text, "reason": "NDW rejected this status before"}
            )
            continue
        plan.status_patches.append(push)
    return plan


def mart_newest(con: duckdb.DuckDBPyConnection) -> datetime | None:
    """The newest `_ingested_at` in the mart tables: how far a diff of the mart reaches."""
    tables = ("mart.locations", "mart.evses", "mart.connectors", "mart.tariffs")
    union = " UNION ALL ".join(f"SELECT max(_ingested_at) AS t FROM {t}" for t in tables)
    return scalar(con.execute(f"SELECT max(t) FROM ({union})"))


def settled(plan: PushPlan, run: PushRun, *, capped_ok: bool = False) -> bool:
    """Every planned push was answered (accepted, or refused for good): nothing waits for a retry.
    `capped_ok`: PUTs left out by `max_static_pushes` do not count (a later full run sends them)."""
    capped = any("max_static_pushes" in h["reason"] for h in plan.held_back)
    return (
        run.auth_error is None
        and not run.deferred
        and all(o.outcome != "failed" for _, o in run.results)
        and (capped_ok or not capped)
    )


def _plan_static(
    con: duckdb.DuckDBPyConnection,
    plan: PushPlan,
    held_locations: dict[LocKey, _Held],
    now: str,
    max_static_pushes: int,
    scoped: bool = False,
) -> None:
    export = build_export(con, scoped=scoped)
    rejected = _last_rejected(con, scoped)
    live = _held_evses(con, scoped)

    def refused_by_definition(kind: str, key: tuple[str, ...], obj: Any) -> bool:
        # The export's SQL selection and our definition agree by construction; where they do not,
        # the object is held back with the definition's reasons instead of being sent to NDW.
        errors = (validate_location if kind == "location" else validate_tariff)(obj)
        if errors:
            plan.held_back.append(
                {
                    "kind": kind,
                    "key": "/".join(key),
                    "reason": "fails our OCPI 2.2.1/NDW definition: " + "; ".join(errors[:3]),
                }
            )
        return bool(errors)

    def rejected_before(kind: str, key: tuple[str, ...], digest: str) -> bool:
        if rejected.get((kind, "/".join(key))) != digest:
            return False
        plan.held_back.append(
            {
                "kind": kind,
                "key": "/".join(key),
                "reason": "NDW rejected this content before; waiting for a change",
            }
        )
        return True

    # Every held tariff (a few hundred at most): a scoped export also carries the tariffs its
    # locations reference, which must be compared with what NDW holds, in scope or not.
    held_tariffs = _held(con, "tariff")
    exported_tariffs = set()
    for key, text in zip(export.tariff_keys, export.tariffs, strict=True):
        exported_tariffs.add(key)
        obj = json.loads(text)
        digest = content_hash(obj)
        held = held_tariffs.get(key)
        if (held and held.static_hash == digest) or rejected_before("tariff", key, digest):
            continue
        if refused_by_definition("tariff", key, obj):
            continue
        plan.tariff_puts.append(
            PlannedPush(
                "tariff",
                "PUT",
                key,
                "new" if held is None else "changed",
                body=text,
                static_hash=digest,
                content_hash=digest,
            )
        )
    for key in sorted(set(held_tariffs) - exported_tariffs) if not scoped else ():
        plan.tariff_deletes.append(PlannedPush("tariff", "DELETE", key, "removed"))

    exported_locations = set()
    for key, text in zip(export.location_keys, export.locations, strict=True):
        exported_locations.add(key)
        obj = json.loads(text)
        digest = static_hash(obj)
        held = held_locations.get(key)
        if held and not held.withdrawn and held.static_hash == digest:
            continue
        body = text
        if held and _carry_evses(obj, held.body, live, now):
            body = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
        sent = content_hash(obj)
        if rejected_before("location", key, sent) or refused_by_definition("location", key, obj):
            continue
        reason = "new" if held is None else "republished" if held.withdrawn else "changed"
        plan.location_puts.append(
            PlannedPush(
                "location",
                "PUT",
                key,
                reason,
                body=body,
                static_hash=digest,
                content_hash=sent,
                refs=tariff_refs(obj),
            )
        )

    gone = [k for k, h in held_locations.items() if k not in exported_locations and not h.withdrawn]
    why_not = _why_not_exported(con, gone, export.rejections, live, held_locations)
    for key in sorted(gone):
        verdict, reason = why_not[key]
        held = held_locations[key]
        if verdict != "withdraw" or not held.body:
            plan.held_back.append({"kind": "location", "key": "/".join(key), "reason": reason})
            continue
        obj = _withdrawn_body(held.body, now)
        sent = content_hash(obj)
        if rejected_before("location", key, sent) or refused_by_definition("location", key, obj):
            continue
        plan.withdrawals.append(
            PlannedPush(
                "location",
                "PUT",
                key,
                "withdrawn",
                body=json.dumps(obj, separators=(",", ":")),
                static_hash=static_hash(obj),
                content_hash=sent,
            )
        )
    _cap(plan, max_static_pushes)


def _why_not_exported(
    con: duckdb.DuckDBPyConnection,
    keys: list[LocKey],
    rejections: list[dict[str, Any]],
    live: dict[tuple[str, str, str, str], tuple[bool, str, str]],
    held: dict[LocKey, _Held],
) -> dict[LocKey, tuple[str, str]]:
    """For each held Location that left the export: ("withdraw" | "hold", reason)."""
    if not keys:
        return {}
    frame = pd.DataFrame(keys, columns=["country_code", "party_id", "location_id"])
    con.register("_ndw_gone", frame)
    try:
        rows = con.execute("""
            SELECT g.country_code, g.party_id, g.location_id, l.location_id IS NOT NULL, l.is_deleted,
                l.publish, l.country
            FROM _ndw_gone g LEFT JOIN mart.locations l USING (country_code, party_id, location_id)
        """).fetchall()
    finally:
        con.unregister("_ndw_gone")
    reasons: dict[LocKey, list[str]] = {}
    for r in rejections:
        if r["object"] == "Location":
            reasons.setdefault((r["country_code"], r["party_id"], r["location_id"]), []).extend(r["reasons"])
    out: dict[LocKey, tuple[str, str]] = {}
    for cc, pid, lid, exists, deleted, publish, country in rows:
        key = (cc, pid, lid)
        body = json.loads(held[key].body or "{}")
        evses_gone = all(live.get((*key, e["uid"]), (True,))[0] for e in body.get("evses", []))
        if not exists or deleted:
            out[key] = ("withdraw", "deleted in the mart")
        elif not publish:
            out[key] = ("withdraw", "no longer public (private locations are never published)")
        elif country not in nap_countries():
            out[key] = ("withdraw", f"country is now {country}")
        elif evses_gone:
            out[key] = ("withdraw", "every EVSE removed")
        else:
            detail = "; ".join(reasons.get(key, [])) or "left the export"
            out[key] = ("hold", f"not exportable now ({detail}); NDW keeps its last valid version")
    return out


def _cap(plan: PushPlan, limit: int) -> None:
    """At most `limit` static PUTs per run (tariffs first); the rest wait for the next run."""
    budget = max(0, limit)
    for name in ("tariff_puts", "withdrawals", "location_puts"):
        pushes: list[PlannedPush] = getattr(plan, name)
        kept, rest = pushes[:budget], pushes[budget:]
        budget -= len(kept)
        setattr(plan, name, kept)
        plan.held_back.extend(
            {"kind": p.kind, "key": p.key_text, "reason": "deferred to the next run (max_static_pushes)"}
            for p in rest
        )


def _status_diff(con: duckdb.DuckDBPyConnection, scoped: bool = False) -> Iterator[PlannedPush]:
    """One PATCH per EVSE NDW holds whose wire status differs from NDW's,
    for public locations in the NAP's countries."""
    scope = f"SEMI JOIN {SCOPE_LOCATIONS} s USING (country_code, party_id, location_id)" if scoped else ""
    rows = con.execute(f"""
        WITH changed AS (
            SELECT e.country_code, e.party_id, e.location_id, e.evse_uid,
                   CASE WHEN e.is_deleted THEN 'REMOVED' ELSE e.status END AS status,
                   e.last_updated, h.last_updated AS held_last_updated
            FROM mart.evses e {scope}
            JOIN ops.ndw_pushed h ON h.kind = 'evse' AND h.country_code = e.country_code
                                 AND h.party_id = e.party_id
                                 AND h.object_id = e.location_id AND h.evse_uid = e.evse_uid
            JOIN ops.ndw_pushed p ON p.kind = 'location' AND NOT p.withdrawn
                                 AND p.country_code = e.country_code
                                 AND p.party_id = e.party_id AND p.object_id = e.location_id
            JOIN mart.locations l ON l.country_code = e.country_code AND l.party_id = e.party_id
                AND l.location_id = e.location_id
            WHERE {candidate(nap_countries())}
              AND (CASE WHEN e.is_deleted THEN 'REMOVED' ELSE e.status END) IS DISTINCT FROM h.status
        ), keyed AS (
            SELECT *, concat_ws('|', country_code, party_id, location_id, evse_uid) AS entity_key FROM changed
        ), newest_connector AS (
            SELECT c.country_code, c.party_id, c.location_id, c.evse_uid, max(c.last_updated) AS newest
            FROM mart.connectors c SEMI JOIN changed USING (country_code, party_id, location_id, evse_uid)
            WHERE NOT c.is_deleted GROUP BY ALL
        ), transition AS (
            SELECT entity_key, max(recorded_at) AS recorded_at FROM ops.status_history
            WHERE table_name = 'mart.evses' AND entity_key IN (SELECT entity_key FROM keyed) GROUP BY 1
        )
        SELECT k.country_code, k.party_id, k.location_id, k.evse_uid, k.status,
               strftime(greatest(k.last_updated, coalesce(n.newest, k.last_updated)), '{OCPI_TS}'),
               k.held_last_updated, t.recorded_at
        FROM keyed k
        LEFT JOIN newest_connector n USING (country_code, party_id, location_id, evse_uid)
        LEFT JOIN transition t USING (entity_key)
        ORDER BY ALL
    """).fetchall()
    for cc, pid, lid, uid, status, updated, held_updated, recorded_at in rows:
        # NDW must never see last_updated go backwards for an object it holds.
        last_updated = max(updated, held_updated or "")
        yield PlannedPush(
            "evse",
            "PATCH",
            (cc, pid, lid, uid),
            "status",
            status=status,
            last_updated=last_updated,
            recorded_at=recorded_at,
            content_hash=content_hash({"status": status}),
        )


# --------------------------------------------------------------------------------------------
# Execute


@dataclass
class PushRun:
    """What a run sent and NDW answered; `deferred` were not sent (breaker open or auth failed)."""

    results: list[tuple[PlannedPush, PushOutcome]] = field(default_factory=list)
    deferred: list[PlannedPush] = field(default_factory=list)
    held_back: list[dict[str, str]] = field(default_factory=list)
    auth_error: NdwAuthError | None = None


class _Breaker:
    """Stops a run after `limit` transient failures in a row: NDW is down, the next run tries again."""

    def __init__(self, limit: int) -> None:
        self.limit, self.streak, self.open = max(1, limit), 0, False
        self.auth_error: NdwAuthError | None = None
        self._lock = threading.Lock()

    def record(self, outcome: PushOutcome) -> None:
        with self._lock:
            self.streak = self.streak + 1 if outcome.outcome in TRANSIENT else 0
            if self.streak >= self.limit:
                self.open = True


def _send(client: NdwPushClient, push: PlannedPush) -> PushOutcome:
    if push.kind == "evse":
        assert push.status is not None and push.last_updated is not None
        return client.patch_evse_status(*push.evse_key, push.status, push.last_updated)
    if push.kind == "location":
        assert push.body is not None
        return client.put_location(push.body, push.object_key)
    if push.method == "DELETE":
        return client.delete_tariff(*push.key)
    assert push.body is not None
    return client.put_tariff(push.body, push.object_key)


def execute(
    plan: PushPlan, client: NdwPushClient, *, concurrency: int = 4, max_consecutive_failures: int = 5
) -> PushRun:
    """Send the plan phase by phase (each phase concurrently); stop on auth failure or an open breaker."""
    run = PushRun(held_back=list(plan.held_back))
    breaker = _Breaker(max_consecutive_failures)

    def one(push: PlannedPush) -> tuple[PlannedPush, PushOutcome | None]:
        if breaker.open or breaker.auth_error is not None:
            return push, None
        try:
            outcome = _send(client, push)
        except NdwAuthError as exc:
            breaker.auth_error = exc
            return push, exc.outcome
        breaker.record(outcome)
        return push, outcome

    refs = dict(plan.held_refs)
    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="ndw-push") as pool:
        for name, pushes in plan.phases():
            if name == "tariff_deletes":
                pushes = _unreferenced(pushes, refs, run)
            for push, outcome in pool.map(one, pushes):
                if outcome is None:
                    run.deferred.append(push)
                    continue
                run.results.append((push, outcome))
                if push.kind == "location" and outcome.ok:
                    refs[push.object_key] = push.refs  # withdrawals carry no refs
    run.auth_error = breaker.auth_error
    return run


def _unreferenced(
    deletes: list[PlannedPush], refs: dict[LocKey, frozenset[LocKey]], run: PushRun
) -> list[PlannedPush]:
    """OCPI recommends deleting only tariffs no Connector references; keep the others for later."""
    referenced: dict[LocKey, LocKey] = {}
    for location, tariffs in refs.items():
        for tariff in tariffs:
            referenced.setdefault(tariff, location)
    kept: list[PlannedPush] = []
    for push in deletes:
        holder = referenced.get(push.object_key)
        if holder is None:
            kept.append(push)
        else:
            run.held_back.append(
                {
                    "kind": "tariff",
                    "key": push.key_text,
                    "reason": f"not deleted yet: location {'/'.join(holder)} at NDW still references it",
                }
            )
    return kept


# --------------------------------------------------------------------------------------------
# Record


def record(writer: Writer, run: PushRun, newest_transition: datetime | None) -> None:
    """Log every push and update what NDW holds; call inside the caller's transaction."""
    run_id = writer.run_id
    results = run.results
    if results:
        rows = []
        for push, out in results:
            lag = (
                (out.pushed_at - push.recorded_at).total_seconds()
                if push.recorded_at is not None and out.ok
                else None
            )
            rows.append(
                {
                    "pushed_at": out.pushed_at,
                    "run_id": run_id,
                    "kind": out.kind,
                    "method": out.method,
                    "path": out.path,
                    "key": out.key,
                    "reason": push.reason,
                    "outcome": out.outcome,
                    "ok": out.ok,
                    "http_status": out.http_status,
                    "ocpi_status": out.ocpi_status,
                    "message": out.message,
                    "attempts": out.attempts,
                    "elapsed_ms": out.elapsed_ms,
                    "lag_seconds": lag,
                    "content_hash": push.content_hash,
                    "request_id": out.request_id,
                }
            )
        frame = pd.DataFrame(rows).astype(
            {
                "http_status": "Int64",
                "ocpi_status": "Int64",
                "attempts": "int64",
                "elapsed_ms": "float64",
                "lag_seconds": "float64",
            }
        )
        writer.append("ops.ndw_pushes", frame)
    _update_held(writer, results)
    status_pending = any(p.kind == "evse" for p in run.deferred) or any(
        p.kind == "evse" and not o.ok for p, o in results
    )
    if newest_transition is not None and run.auth_error is None and not status_pending:
        # Observability only (the diff needs no cursor): NDW has every transition up to here.
        writer.set_sync_state(STATUS_STREAM, newest_transition)


def record_full(writer: Writer, plan: PushPlan, run: PushRun) -> None:
    """A full (unscoped) push: log it, and when it settled, move the real-time lane's cursor up to
    what it covered (the lane need not diff those changes again)."""
    record(writer, run, plan.newest_transition)
    if not plan.static or plan.mart_as_of is None or not settled(plan, run):
        return
    writer.set_sync_state(LANE_STREAM, plan.mart_as_of)


def _update_held(writer: Writer, results: list[tuple[PlannedPush, PushOutcome]]) -> None:
    run_id = writer.run_id
    forget: list[tuple[str, str, str, str]] = []  # (kind, cc, pid, object_id) rows to drop (with their EVSEs)
    held: list[dict[str, Any]] = []
    patched: list[dict[str, Any]] = []
    for push, out in results:
        if push.kind == "evse":
            if out.ok:
                patched.append(
                    {
                        "country_code": push.key[0],
                        "party_id": push.key[1],
                        "object_id": push.key[2],
                        "evse_uid": push.key[3],
                        "status": push.status,
                        "last_updated": push.last_updated,
                        "pushed_at": out.pushed_at,
                    }
                )
            elif out.outcome == "not_found":  # NDW lost the Location or EVSE: the next full run PUTs it again
                forget.append(("location", *push.object_key))
            continue
        if push.method == "DELETE":
            if out.ok or out.outcome == "not_found":
                forget.append(("tariff", *push.object_key))
            continue
        if not out.ok:
            continue
        forget.append((push.kind, *push.object_key))
        obj = json.loads(push.body or "{}")
        base = {
            "country_code": push.key[0],
            "party_id": push.key[1],
            "object_id": push.key[2],
            "pushed_at": out.pushed_at,
            "run_id": run_id,
        }
        held.append(
            {
                **base,
                "kind": push.kind,
                "evse_uid": "",
                "static_hash": push.static_hash,
                "status": None,
                "last_updated": obj.get("last_updated"),
                "body": push.body,
                "withdrawn": push.reason == "withdrawn",
            }
        )
        for evse in obj.get("evses", []) if push.kind == "location" else []:
            held.append(
                {
                    **base,
                    "kind": "evse",
                    "evse_uid": evse["uid"],
                    "static_hash": None,
                    "status": evse.get("status"),
                    "last_updated": evse.get("last_updated"),
                    "body": None,
                    "withdrawn": False,
                }
            )
    if forget:
        frame = pd.DataFrame(forget, columns=["kind", "country_code", "party_id", "object_id"])
        # Forgetting a Location forgets its EVSEs too (their rows share the location's key).
        evses = frame[frame["kind"] == "location"].assign(kind="evse")
        writer.delete_matching("ops.ndw_pushed", pd.concat([frame, evses], ignore_index=True))
    if held:
        writer.append("ops.ndw_pushed", pd.DataFrame(held))
    if patched:
        writer.update_matching(
            "ops.ndw_pushed",
            ["kind", "country_code", "party_id", "object_id", "evse_uid"],
            pd.DataFrame(patched).assign(kind="evse"),
            constants={"run_id": run_id},
        )
