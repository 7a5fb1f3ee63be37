"""Keeping the access point's DATEX II receiver in step: what it holds, the diff, the pushes, the log.

- **Static** (`push_static`; the `datex2/static_push` asset, every 15 minutes and on demand): the
  static table is built (its versions recorded in the ledger) and POSTed when its digest (every
  object's id and version, the rates' content) differs from the last one the receiver accepted.
  Accepted: `ops.datex2_held` holds each published charging point with the table, site, station and
  point versions the receiver now has (statuses of points still there are kept; points gone are
  dropped, as the receiver drops them).
- **Status deltas** (`Datex2Lane`, a step of every real-time lane cycle, right after NDW's
  pushes): the charging points of the locations and tariffs the mart changed since the lane's
  DATEX II cursor whose status or ad hoc price differs from what the receiver holds become one
  `deltaPush`, each point under the site and station and with the versions the receiver holds.
  Points the receiver does not hold yet wait for the static push.
- **Status snapshot** (`push_statuses(snapshot=True)`; `datex2/status_snapshot`, daily and on
  demand): every held point's status and price (`snapshotPush`: the profile wants one at least every
  24 hours). After a static push that brought new points, the same diff over the whole fleet goes
  out as a `deltaPush` (`push_statuses(snapshot=False)`), so new points get their status at once.

Status pushes are serialized on this host (`status_lock`, a file lock in the data directory): a
snapshot read before a lane delta but arriving after it would carry an older `lastUpdated` than the
receiver then holds, and be refused (lastUpdated never goes backwards). The snapshot waits for the
lane's push in flight; the lane skips its step while a snapshot is in flight and diffs it next cycle.

Like NDW's pushes this is a diff, not a queue: every push is logged in `ops.datex2_pushes`, and what
the receiver holds changes only with an accepted push, in one transaction with the log (and the
lane's cursor). A push that failed (receiver down, 5xx) is diffed and sent again by the next run or
cycle, after a backoff; a document the receiver refused (400) is logged with its errors and not
resent until the content changes.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pyarrow as pa

from evpipeline.datex2 import versions
from evpipeline.datex2.client import Datex2Outcome, Datex2PushResource
from evpipeline.datex2.publication import PublicationStats, Publisher
from evpipeline.locks import exclusive
from evpipeline.ndw.push_sync import mart_newest
from evpipeline.warehouse import (
    Migration,
    WarehouseResource,
    Writer,
    describe_columns,
    read_sync_state,
    register,
)

log = logging.getLogger("evpipeline.datex2")
SOURCE = "datex2"
STATIC_STREAM, LANE_STREAM = "static", "lane"
REFUSED_STATIC_STREAM = "static_refused"  # the digest of the last table the receiver refused, and why
HELD = "ops.datex2_held"
PUSHES = "ops.datex2_pushes"
SCOPE = "_dx_scope"
OVERLAP = timedelta(seconds=1)  # re-diff this much before the cursor (harmless: a diff)
SNAPSHOT_LOCK_WAIT_SECONDS = (
    300.0  # a lane push holds the lock for one delta; a wait this long is a stuck holder
)


def status_lock(data_dir: str | Path) -> Path:
    """The file every status push of this data directory holds while it reads, sends and records."""
    return Path(data_dir) / "datex2" / "status.lock"


class StatusPushBusy(RuntimeError):
    """Another status push held the lock longer than a snapshot waits."""


register(
    Migration(
        "datex2",
        2,
        "DATEX II push log and what the receiver holds",
        f"""
        CREATE TABLE {PUSHES} (
            pushed_at TIMESTAMPTZ NOT NULL,
            run_id VARCHAR,
            document VARCHAR NOT NULL,
            protocol VARCHAR NOT NULL,
            outcome VARCHAR NOT NULL,
            ok BOOLEAN NOT NULL,
            http_status INTEGER,
            message VARCHAR,
            delivery VARCHAR,
            attempts INTEGER NOT NULL,
            elapsed_ms DOUBLE,
            bytes BIGINT,
            sites INTEGER,
            points INTEGER,
            table_version VARCHAR,
            digest VARCHAR,
            lag_seconds DOUBLE,
            request_id VARCHAR
        );
        CREATE TABLE {HELD} (
            point_id VARCHAR NOT NULL,
            country_code VARCHAR NOT NULL,
            party_id VARCHAR NOT NULL,
            location_id VARCHAR NOT NULL,
            site_id VARCHAR NOT NULL,
            site_version VARCHAR NOT NULL,
            station_id VARCHAR NOT NULL,
            station_version VARCHAR NOT NULL,
            point_version VARCHAR NOT NULL,
            table_version VARCHAR NOT NULL,
            rate_ids VARCHAR[],
            status VARCHAR,
            price_hash VARCHAR,
            status_time TIMESTAMPTZ,
            static_at TIMESTAMPTZ NOT NULL,
            status_at TIMESTAMPTZ,
            run_id VARCHAR,
            PRIMARY KEY (point_id)
        );
        """,
    )
)

COLUMNS: dict[str, dict[str, str]] = {
    PUSHES: {
        "pushed_at": "When the receiver answered (UTC).",
        "run_id": "The run that pushed (a DATEX II push job or the real-time lane).",
        "document": "static (the table publication) or status (a message container).",
        "protocol": "table (a static table), snapshotPush (every status) or deltaPush (changed points only).",
        "outcome": "accepted, refused (the receiver's 4xx: not resent until the content changes), "
        "failed (5xx, 429, connection after retries: diffed again) or unauthorized.",
        "ok": "The receiver accepted it.",
        "http_status": "HTTP status of the receiver's last answer (NULL when none arrived).",
        "message": "The receiver's errors (the first ones) or why the push failed.",
        "delivery": "The receiver's id of the delivery.",
        "attempts": "Tries the push took (transient failures are retried).",
        "elapsed_ms": "Wall time of the push including its retries, in ms.",
        "bytes": "Size of the document sent.",
        "sites": "Sites in the document.",
        "points": "Charging points in the document.",
        "table_version": "The static table's version the document is (static) or references (status).",
        "digest": "Static pushes: the table's digest (every object's id and version, the rates' content).",
        "lag_seconds": "Deltas: push time minus the newest status change the delta carries.",
        "request_id": "Our X-Request-ID, for the access point's support.",
    },
    HELD: {
        "point_id": "The charging point's DATEX II idG.",
        "country_code": "ISO 3166 alpha-2 country code of its location's CPO.",
        "party_id": "Party id of its location's CPO.",
        "location_id": "OCPI id of its location.",
        "site_id": "Its site's idG, as the receiver's static table nests it.",
        "site_version": "The site's versionG the receiver holds.",
        "station_id": "Its station's idG, as the receiver's static table nests it.",
        "station_version": "The station's versionG the receiver holds.",
        "point_version": "The point's versionG the receiver holds.",
        "table_version": "The static table's versionG the receiver holds.",
        "rate_ids": "Its ad hoc energy rates (their idG).",
        "status": "The status the receiver holds (DATEX II RefillPointStatusEnum; NULL: none sent yet).",
        "price_hash": "Hash of the ad hoc prices the receiver holds for it.",
        "status_time": "The lastUpdated of the status and prices it holds (UTC).",
        "static_at": "When the receiver accepted the static table holding this point (UTC).",
        "status_at": "When the receiver last accepted a status of this point (UTC).",
        "run_id": "The run whose push gave the receiver this state.",
    },
}
describe_columns(__name__, COLUMNS)


@dataclass
class Delivery:
    """One push: the outcome and what the document held."""

    outcome: Datex2Outcome
    stats: PublicationStats | None = None
    digest: str | None = None
    table_version: str | None = None
    lag_seconds: float | None = None
    seconds: float = 0.0
    pushed: bool = True  # False: the receiver refused this same table before; not sent again


def _log(writer: Writer, delivery: Delivery) -> None:
    o = delivery.outcome
    writer.con.execute(
        f"INSERT INTO {PUSHES} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            o.pushed_at,
            writer.run_id,
            o.document,
            o.protocol,
            o.outcome,
            o.ok,
            o.http_status,
            o.message or None,
            o.delivery,
            o.attempts,
            o.elapsed_ms,
            o.bytes,
            delivery.stats.sites if delivery.stats else None,
            delivery.stats.points if delivery.stats else None,
            delivery.table_version,
            delivery.digest,
            delivery.lag_seconds,
            o.request_id,
        ],
    )


def _last_static_digest(con: Any) -> str | None:
    _, cursor = read_sync_state(con, SOURCE, STATIC_STREAM)
    return cursor.get("digest")


# --------------------------------------------------------------------------------------------
# Static


def push_static(
    warehouse: WarehouseResource,
    resource: Datex2PushResource,
    countries: list[str],
    *,
    run_id: str | None,
    force: bool = False,
    published_at: datetime | None = None,
) -> Delivery | None:
    """Push the static table when it changed since the receiver last accepted one (`force`: anyway);
    None when there was nothing to push. A table the receiver refused is not sent again until its
    content changes (`force` sends it anyway): the delivery says so (`pushed` False, outcome refused)."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="evp-datex2-push-") as tmp:
        body = Path(tmp) / "static.json"
        with warehouse.get_connection() as con, Publisher(con, countries, resource.creator()) as publisher:
            digest = publisher.static_digest()
            changes = publisher.version_changes()
            _, refused = read_sync_state(con, SOURCE, REFUSED_STATIC_STREAM)
            unchanged = not publisher.sites or (digest == _last_static_digest(con) and not force)
            # The same document would be refused again (400/413/415 are verdicts, not outages): not rebuilt,
            # not sent.
            refused_before = not unchanged and refused.get("digest") == digest and not force
            stats, held = None, None
            if not unchanged and not refused_before:
                with body.open("wb") as out:
                    stats = publisher.write("static", "json", out, published_at=published_at)
                held = publisher.held_rows()
            table_version = publisher.table_version
        if stats is None:
            with warehouse.writer(
                SOURCE, run_id
            ) as writer:  # versions are recorded even when nothing is pushed
                versions.record(writer, changes)
            if not refused_before:
                return None
            outcome = Datex2Outcome(
                "static",
                "table",
                "refused",
                http_status=refused.get("http_status"),
                message=f"not resent: the receiver refused this same table at {refused.get('at')}: "
                f"{refused.get('message', '')}",
            )
            return Delivery(
                outcome, None, digest, table_version, seconds=time.perf_counter() - started, pushed=False
            )
        client = resource.client()
        try:  # a Datex2AuthError (refused token) fails the run
            outcome = client.push("static", "table", body)
        finally:
            client.close()
    delivery = Delivery(outcome, stats, digest, table_version, seconds=time.perf_counter() - started)
    with warehouse.writer(SOURCE, run_id) as writer:
        versions.record(writer, changes)
        _log(writer, delivery)
        if outcome.ok:
            _hold_static(writer, cast(pa.Table, held), table_version, outcome.pushed_at)
            writer.set_sync_state(
                STATIC_STREAM, outcome.pushed_at, {"digest": digest, "table_version": table_version}
            )
        elif outcome.outcome == "refused":
            writer.set_sync_state(
                REFUSED_STATIC_STREAM,
                outcome.pushed_at,
                {
                    "digest": digest,
                    "http_status": outcome.http_status,
                    "at": outcome.pushed_at.isoformat(timespec="seconds"),
                    "message": outcome.message[:1000],
                },
            )
    return delivery


def _hold_static(writer: Writer, held: pa.Table, table_version: str, accepted_at: datetime) -> None:
    """The receiver now holds this static table: its points and their versions (statuses of points
    still in it are kept; points gone are dropped)."""
    con = writer.con
    con.register("_dx_static", held)
    try:
        con.execute(f"DELETE FROM {HELD} WHERE point_id NOT IN (SELECT point_id FROM _dx_static)")
        con.execute(
            f"""
            MERGE INTO {HELD} h USING _dx_static s ON h.point_id = s.point_id
            WHEN MATCHED THEN UPDATE SET country_code = s.country_code, party_id = s.party_id,
                 location_id = s.location_id,
                 site_id = s.site_id, site_version = s.site_version, station_id = s.station_id,
                 station_version = s.station_version, point_version = s.point_version,
                     table_version = $table_version,
                 rate_ids = s.rate_ids, static_at = $at, run_id = $run_id
            WHEN NOT MATCHED THEN INSERT (point_id, country_code, party_id, location_id, site_id,
                 site_version, station_id,
                 station_version, point_version, table_version, rate_ids, static_at, run_id)
                 VALUES (s.point_id, s.country_code, s.party_id, s.location_id, s.site_id, s.site_version,
                         s.station_id,
                         s.station_version, s.point_version, $table_version, s.rate_ids, $at, $run_id)""",
            {"table_version": table_version, "at": accepted_at, "run_id": writer.run_id},
        )
    finally:
        con.unregister("_dx_static")


# --------------------------------------------------------------------------------------------
# Status


def _hold_statuses(writer: Writer, sent: pa.Table, accepted_at: datetime) -> None:
    """The receiver now holds these statuses and prices."""
    con = writer.con
    con.register("_dx_sent", sent)
    try:
        con.execute(
            f"""
            UPDATE {HELD} h SET status = s.status, price_hash = s.price_hash, status_time = s.status_time,
                                status_at = $at, run_id = $run_id
            FROM _dx_sent s WHERE s.point_id = h.point_id""",
            {"at": accepted_at, "run_id": writer.run_id},
        )
    finally:
        con.unregister("_dx_sent")


@dataclass
class _Prepared:
    """A status document written to a file, and what it carries."""

    protocol: str
    body: Path
    stats: PublicationStats
    sent: pa.Table
    table_version: str
    newest: datetime | None


def _prepare_status(
    publisher: Publisher, protocol: str, body: Path, published_at: datetime | None
) -> _Prepared:
    """Write the status publication of the points `publisher.select_held` chose (inside the read)."""
    with body.open("wb") as out:
        stats = publisher.write_held("json", out, protocol=protocol, published_at=published_at)  # type: ignore[arg-type]
    table_version, newest = publisher.con.execute(
        "SELECT min(table_version), max(status_time) FROM _dx_send"
    ).fetchone()  # type: ignore[misc]
    return _Prepared(protocol, body, stats, publisher.sent(), str(table_version), newest)


def _push(resource: Datex2PushResource, prepared: _Prepared) -> Delivery:
    """POST a prepared status document (outside any warehouse connection)."""
    client = resource.client()
    try:
        outcome = client.push("status", prepared.protocol, prepared.body)
    finally:
        client.close()
    lag = (outcome.pushed_at - prepared.newest).total_seconds() if prepared.newest is not None else None
    return Delivery(outcome, prepared.stats, None, prepared.table_version, lag)


def push_statuses(
    warehouse: WarehouseResource,
    resource: Datex2PushResource,
    countries: list[str],
    *,
    run_id: str | None,
    snapshot: bool,
    lock: Path,
    lock_wait_seconds: float = SNAPSHOT_LOCK_WAIT_SECONDS,
    published_at: datetime | None = None,
) -> Delivery | None:
    """Push the held charging points' statuses and prices: every one (`snapshot`: a `snapshotPush`)
    or those that differ from what the receiver holds (a `deltaPush` of the whole fleet's diff: the
    catch-up after a static push brought new points). None when there is nothing to send. An
    accepted push moves the lane's cursor to the mart state it covered (never back), so the lane
    goes on from there. Holds `lock` (see `status_lock`) from the read to the record."""
    with exclusive(lock, lock_wait_seconds) as acquired:
        if not acquired:
            raise StatusPushBusy(
                f"another DATEX II status push held {lock.name} for {lock_wait_seconds:.0f} s"
            )
        return _push_statuses(
            warehouse, resource, countries, run_id=run_id, snapshot=snapshot, published_at=published_at
        )


def _push_statuses(
    warehouse: WarehouseResource,
    resource: Datex2PushResource,
    countries: list[str],
    *,
    run_id: str | None,
    snapshot: bool,
    published_at: datetime | None,
) -> Delivery | None:
    started = time.perf_counter()
    protocol = "snapshotPush" if snapshot else "deltaPush"
    with tempfile.TemporaryDirectory(prefix="evp-datex2-push-") as tmp:
        with (
            warehouse.get_connection() as con,
            Publisher(con, countries, resource.creator(), pushed_status_only=True) as publisher,
        ):
            covered = mart_newest(con)
            if not publisher.sites or not publisher.select_held(HELD, changed_only=not snapshot):
                return None
            prepared = _prepare_status(publisher, protocol, Path(tmp) / "status.json", published_at)
        delivery = _push(resource, prepared)
    delivery.seconds = time.perf_counter() - started
    with warehouse.writer(SOURCE, run_id) as writer:
        _log(writer, delivery)
        if delivery.outcome.ok:
            _hold_statuses(writer, prepared.sent, delivery.outcome.pushed_at)
            if covered is not None:
                writer.set_sync_state(LANE_STREAM, covered)
    return delivery


@dataclass
class LaneDelta:
    """What one lane cycle's DATEX II step did."""

    scope: int  # locations looked at
    delivery: Delivery | None = None
    busy: bool = False  # a snapshot held the status lock: nothing diffed, the next cycle does it
    advanced: bool = False
    seconds: float = 0.0
    steps: dict[str, float] = field(default_factory=dict)


class Datex2Lane:
    """The real-time lane's DATEX II step: status and ad hoc price changes as `deltaPush`es."""

    def __init__(
        self,
        warehouse: WarehouseResource,
        resource: Datex2PushResource,
        countries: list[str],
        *,
        lock: Path,
        overlap: timedelta = OVERLAP,
    ) -> None:
        self.warehouse, self.resource, self.countries, self.overlap = warehouse, resource, countries, overlap
        self.lock = lock
        self._failures = 0
        self._retry_at = 0.0

    def cycle(self, run_id: str | None, newest: datetime | None) -> LaneDelta | None:
        """Diff the changes since the cursor and push them; `newest`: the mart's newest change
        (the lane knows it). None when there was nothing to look at (or a retry is not due). A
        snapshot holding the status lock is not waited for: the cycle reports `busy`."""
        if newest is None or time.time() < self._retry_at:
            return None
        with exclusive(self.lock, 0.0) as acquired:
            if not acquired:
                return LaneDelta(scope=0, busy=True)
            return self._cycle(run_id, newest)

    def _cycle(self, run_id: str | None, newest: datetime) -> LaneDelta | None:
        started = time.perf_counter()
        prepared: _Prepared | None = None
        with tempfile.TemporaryDirectory(prefix="evp-datex2-lane-") as tmp:
            with self.warehouse.get_connection() as con:
                cursor, _ = read_sync_state(con, SOURCE, LANE_STREAM)
                if cursor is not None and newest <= cursor:
                    return None
                held = int(con.execute(f"SELECT count(*) FROM {HELD}").fetchone()[0])  # type: ignore[index]
                # A new lane starts from now; before the first static push there is nothing to diff.
                scope = _fill_scope(con, cursor - self.overlap) if cursor is not None and held else 0
                report = LaneDelta(scope=scope)
                if scope:
                    with Publisher(
                        con, self.countries, self.resource.creator(), scope=SCOPE, pushed_status_only=True
                    ) as publisher:
                        if publisher.sites and publisher.select_held(HELD, changed_only=True):
                            prepared = _prepare_status(publisher, "deltaPush", Path(tmp) / "delta.json", None)
                report.steps["diff"] = time.perf_counter() - started
            if prepared is not None:
                report.delivery = _push(self.resource, prepared)
                report.steps["push"] = time.perf_counter() - started - report.steps["diff"]
        settled = report.delivery is None or report.delivery.outcome.answered
        with self.warehouse.writer(SOURCE, run_id) as writer:
            if report.delivery is not None and prepared is not None:
                _log(writer, report.delivery)
                if report.delivery.outcome.ok:
                    _hold_statuses(writer, prepared.sent, report.delivery.outcome.pushed_at)
            if settled:
                writer.set_sync_state(LANE_STREAM, newest)
        report.advanced = settled
        if settled:
            self._failures, self._retry_at = 0, 0.0
        else:
            self._failures += 1
            self._retry_at = time.time() + min(60.0, 2.0**self._failures)
            message = report.delivery.outcome.message if report.delivery else ""
            log.warning(
                "lane: DATEX II delta not delivered (%s); retrying in %.0f s",
                message,
                self._retry_at - time.time(),
            )
        report.seconds = time.perf_counter() - started
        return report


def _fill_scope(con: Any, since: datetime) -> int:
    """The locations the mart changed since `since`, and those holding a charging point whose ad hoc
    rate's tariff changed (found through what the receiver holds: no scan of every connector)."""
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {SCOPE} AS
        SELECT DISTINCT country_code, party_id, location_id FROM (
            SELECT country_code, party_id, location_id FROM mart.locations WHERE _ingested_at > $since
            UNION ALL SELECT country_code, party_id, location_id FROM mart.evses WHERE _ingested_at > $since
            UNION ALL SELECT country_code, party_id, location_id FROM mart.connectors
                WHERE _ingested_at > $since
            UNION ALL SELECT h.country_code, h.party_id, h.location_id FROM {HELD} h
                WHERE list_has_any(h.rate_ids, (
                SELECT list(t.country_code || ':' || t.party_id || ':rate:' || t.tariff_id)
                FROM mart.tariffs t
                WHERE t._ingested_at > $since)))""",
        {"since": since},
    )
    return int(con.execute(f"SELECT count(*) FROM {SCOPE}").fetchone()[0])
