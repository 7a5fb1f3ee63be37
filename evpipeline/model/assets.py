"""The canonical model assets (schema `mart`), the operator reference data, and the BI snapshot.

`mart` follows its sources through the real-time lane (`evpipeline.lane`), which runs the
incremental build every few seconds and records each build as a materialization of these assets;
materializing them from the UI runs the same build. A daily full rebuild reconciles and proves the
incremental builds right (the `matches_full_rebuild` checks).
"""

import hashlib
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
from pydantic import Field

from evpipeline import catalog, settings
from evpipeline.model import reference
from evpipeline.model.build import MartBuild, build_mart
from evpipeline.model.keys import MART_KEYS
from evpipeline.model.mappings import registry
from evpipeline.model.reference import KEYS as REFERENCE_KEYS
from evpipeline.model.reference import (
    OPERATORS,
    PARTIES,
    RULES,
    TARIFFS,
    ReferenceError,
    default_file,
    load_reference,
)
from evpipeline.model.snapshot import publish_snapshot, snapshot_dir
from evpipeline.model.tables import CONNECTORS, EVSES, LOCATIONS, UNMAPPED
from evpipeline.run_config import op_config
from evpipeline.sync import markdown_preview
from evpipeline.timeutil import utcnow
from evpipeline.warehouse import WRITER_POOL, WarehouseResource
from evpipeline.warehouse.resource import redo_on_conflict

DESCRIPTIONS = {
    LOCATIONS: "OCPI Locations from every source, with the owning CPO's country_code/party_id and lineage.",
    EVSES: (
        "OCPI EVSEs; removed ones stay with status REMOVED; status transitions in mart.evse_status_history."
    ),
    CONNECTORS: "OCPI Connectors (standard, format, power) mapped by rule; unmappable values are reported.",
    "mart.tariffs": (
        "OCPI Tariffs referenced by connectors (from the sources and the operator reference data)."
    ),
}
REFERENCE_KEY = dg.AssetKey(["reference", "operator_data"])
SOURCE_INPUTS = sorted(
    {dg.AssetKey(key.split("/")) for mapping in registry() for key in mapping.inputs}, key=str
)
MATCHES_FULL = "matches_full_rebuild"
BUILD = (
    "Maintained by the incremental mart build (the real-time lane, or `mart_model` from the UI): every "
    "source's changes since the last build, mapped into the canonical OCPI-shaped tables in one transaction."
)


class MartBuildConfig(dg.Config):
    """What a build covers."""

    full: bool = Field(
        default=False,
        description=(
            "Map every location and tariff and report what the incremental builds had wrong; "
            "default: only what changed"
        ),
    )


def mart_results(build: MartBuild) -> Iterator[tuple[dg.AssetKey, dict[str, Any], list[dg.AssetCheckResult]]]:
    """Per mart table: its metadata and (full builds) its incremental-vs-full check. Shared with the lane."""
    for table, key in MART_KEYS.items():
        counts = build.counts.get(table)
        metadata: dict[str, Any] = {
            "mode": build.mode,
            "sources": ", ".join(build.sources) or "none",
            "build_seconds": round(build.seconds, 3),
            **{f"scope_{k}": v for k, v in build.scope.items()},
        }
        if build.reason:
            metadata["full_build_reason"] = build.reason
        if counts is not None:
            metadata.update(
                rows_mapped=counts.fetched,
                inserted=counts.inserted,
                updated=counts.updated,
                removed=counts.deleted,
                unchanged=counts.unchanged,
                status_changes=counts.status_changes,
            )
        if table == CONNECTORS and build.unmapped is not None:
            metadata["unmapped_values"] = dg.MetadataValue.md(
                markdown_preview(build.unmapped, ["source", "field", "value", "rows"], rows=20)
            )
            metadata["unmapped_rows"] = int(build.unmapped["rows"].sum()) if len(build.unmapped) else 0
        yield key, metadata, [_matches_full(build, table, key)]


def _matches_full(build: MartBuild, table: str, key: dg.AssetKey) -> dg.AssetCheckResult:
    """A full build compares before it writes; an incremental build repeats the latest full build's
    verdict."""
    if build.mismatches is not None:
        wrong = build.mismatches.get(table, 0)
        sample = [s for s in build.mismatch_sample if s["table"] == table]
        return dg.AssetCheckResult(
            asset_key=key,
            check_name=MATCHES_FULL,
            passed=wrong == 0,
            metadata={
                "rows_wrong_before_rebuild": wrong,
                "evaluated": "by this full build",
                "sample": dg.MetadataValue.md(
                    markdown_preview(pd.DataFrame(sample), ["problem", "key"], rows=20)
                ),
            },
        )
    if build.last_full is None:
        return dg.AssetCheckResult(
            asset_key=key,
            check_name=MATCHES_FULL,
            passed=True,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"evaluated": "no full build yet"},
        )
    when, mismatches = build.last_full
    wrong = mismatches.get(table, 0)
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=MATCHES_FULL,
        passed=wrong == 0,
        metadata={
            "rows_wrong_before_rebuild": wrong,
            "evaluated": f"by the full build of {when:%Y-%m-%d %H:%M} UTC",
        },
    )


@dg.multi_asset(
    name="mart_model",
    group_name="mart",
    pool=WRITER_POOL,
    specs=[
        dg.AssetSpec(
            key,
            description=f"{DESCRIPTIONS[table]}\n\n{BUILD}",
            deps=[*SOURCE_INPUTS, REFERENCE_KEY],
            kinds={"duckdb", "ocpi"},
        )
        for table, key in MART_KEYS.items()
    ],
    check_specs=[
        dg.AssetCheckSpec(
            MATCHES_FULL,
            asset=key,
            description="The incremental builds left exactly what a full rebuild writes "
            "(evaluated by every full build, before it rewrites anything)",
        )
        for key in MART_KEYS.values()
    ],
)
def mart_model(
    context: dg.AssetExecutionContext, config: MartBuildConfig, warehouse: WarehouseResource
) -> Iterator[dg.MaterializeResult]:
    # No docstring: each table's spec carries the one description (BUILD says what this does).
    with warehouse.get_connection() as con:
        # On a DuckLake a source sync may commit in between: a build that lost that race is redone.
        build = redo_on_conflict(
            lambda: build_mart(con, run_id=context.run.run_id, full=config.full), what="mart"
        )
        tables = {key: catalog.table_metadata(con, table) for table, key in MART_KEYS.items()}
    context.log.info(
        "mart %s build (%s): scope %s, %d rows changed in %.2fs",
        build.mode,
        build.reason or "changes",
        build.scope,
        build.changed,
        build.seconds,
    )
    for key, metadata, checks in mart_results(build):
        yield dg.MaterializeResult(asset_key=key, metadata={**metadata, **tables[key]}, check_results=checks)


@dg.asset_check(
    asset=MART_KEYS[CONNECTORS],
    name="unmapped_values",
    description="Source values the mapping rules could not translate into OCPI (reported, never guessed).",
    blocking=False,
)
def unmapped_values_check(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.get_connection() as con:
        frame = con.execute(f"SELECT source, field, value, rows FROM {UNMAPPED} ORDER BY rows DESC").df()
    return dg.AssetCheckResult(
        passed=frame.empty,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "unmapped_rows": int(frame["rows"].sum()) if len(frame) else 0,
            "values": dg.MetadataValue.md(markdown_preview(frame, list(frame.columns), rows=20)),
        },
    )


mart_update_job = dg.define_asset_job(
    "mart_update",
    selection=dg.AssetSelection.assets(*MART_KEYS.values()),
    description="Incremental build of the canonical model (what the real-time lane does every few seconds).",
)
mart_reconcile_job = dg.define_asset_job(
    "mart_reconcile",
    selection=dg.AssetSelection.assets(*MART_KEYS.values()),
    config=op_config([mart_model], full=True),
    description=(
        "Full rebuild of the canonical model: checks the incremental builds and refreshes the "
        "unmapped-values report."
    ),
)
mart_reconcile_schedule = dg.ScheduleDefinition(
    name="mart_daily_reconcile",
    job=mart_reconcile_job,
    cron_schedule="50 3 * * *",  # after the nightly full source pulls (GreenFlux 02:45, EVRoam 03:30)
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily full rebuild of mart after the nightly full source pulls.",
)


# -- operator reference data -----------------------------------------------------------------


def reference_file() -> str:
    return settings.get("EVPIPELINE_REFERENCE_FILE") or default_file()


def _comparable(value: Any) -> Any:
    if value is None or (not isinstance(value, str | list | dict) and pd.isna(value)):
        return None
    return pd.Timestamp(value).isoformat() if isinstance(value, datetime | pd.Timestamp) else str(value)


def _bump_changed_tariffs(current: pd.DataFrame, stored: pd.DataFrame, now: datetime) -> pd.DataFrame:
    """OCPI: last_updated moves whenever content changes; a file edited without bumping it gets `now`."""
    if stored.empty or current.empty:
        return current
    keys = list(REFERENCE_KEYS[TARIFFS])
    content = [c for c in current.columns if c not in (*keys, "last_updated", "reference_file")]
    before = {tuple(r[k] for k in keys): r for r in stored.to_dict("records")}
    current = current.copy()
    for i, row in enumerate(current.to_dict("records")):
        old = before.get(tuple(row[k] for k in keys))
        if old is None or all(_comparable(row[c]) == _comparable(old[c]) for c in content):
            continue
        if pd.Timestamp(row["last_updated"]) <= pd.Timestamp(old["last_updated"]):
            current.iloc[i, current.columns.get_loc("last_updated")] = now
    return current


@dg.asset(
    key=REFERENCE_KEY,
    group_name="reference",
    pool=WRITER_POOL,
    kinds={"duckdb", "yaml"},
)
def reference_operator_data(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """The CPO's reference data (tariffs, opening times, energy mix, parking restrictions, operator
    entries), validated and loaded."""
    path = reference_file()
    try:
        data = load_reference(path)
    except ReferenceError as exc:
        # One line naming the entry; the warehouse keeps the last valid reference, so nothing from this
        # file is published.
        raise dg.Failure(description=str(exc)) from None
    now = utcnow()
    with warehouse.writer("reference", context.run.run_id) as writer:
        stored = writer.con.execute(
            f"SELECT * EXCLUDE (is_deleted, deleted_at, _observed_at, _observed_seq, _row_hash, "
            f"_ingested_at, _run_id, _lineage, _change, _prev_status) FROM {TARIFFS}"
        ).df()
        tariffs = _bump_changed_tariffs(data.tariffs, stored, now)
        for table, frame in (
            (RULES, data.rules),
            (TARIFFS, tariffs),
            (PARTIES, data.parties),
            (OPERATORS, data.operators),
        ):
            # The file is the truth as of now, whatever its stamps say.
            frame = frame.assign(_observed_at=now, _observed_seq=time.time_ns())
            writer.merge(
                frame, table, reference.KEYS[table], lineage=f"file:{Path(path).name} sha256:{data.digest}"
            )
            writer.flag_missing(table, reference.KEYS[table], frame, now)
        # The matching's overrides: a small table the file replaces whole (the next mart build applies it).
        writer.con.execute(f"DELETE FROM {reference.IDENTITY_OVERRIDES}")
        if len(data.identity):
            writer.con.register("_evp_identity", data.identity)
            try:
                writer.con.execute(f"INSERT INTO {reference.IDENTITY_OVERRIDES} SELECT * FROM _evp_identity")
            finally:
                writer.con.unregister("_evp_identity")
        writer.set_sync_state("file", now, {"path": path, "sha256": data.digest})
        writer.log_run("file", details={"path": path, "sha256": data.digest, **data.counts})
    counts = writer.counts
    context.log.info("reference data %s: %s", path, data.counts)
    return dg.MaterializeResult(
        metadata={
            "file": dg.MetadataValue.path(path),
            "sha256": data.digest,
            **data.counts,
            "rules_changed": counts[RULES].changed,
            "tariffs_changed": counts[TARIFFS].changed,
            "operators_changed": counts[OPERATORS].changed,
            "rules": dg.MetadataValue.md(
                markdown_preview(
                    data.rules,
                    ["rule_id", "field", "source", "country_code", "party_id", "location_id", "override"],
                    rows=30,
                )
            ),
        }
    )


def file_digest(path: str) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    except OSError:
        return None


reference_data_job = dg.define_asset_job(
    "reference_data",
    selection=dg.AssetSelection.assets(REFERENCE_KEY),
    description=(
        "Validate and load the operator reference file (requested by its sensor when the file changes)."
    ),
)


@dg.sensor(
    name="reference_data_changed",
    minimum_interval_seconds=30,
    job=reference_data_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Loads the operator reference file whenever its content changes (and once at first start).",
)
def reference_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """A run of reference/operator_data per new version of the reference file."""
    path = reference_file()
    digest = file_digest(path)
    if digest is None:
        return dg.SensorResult(skip_reason=f"reference file {path} is not readable")
    if digest == context.cursor:
        return dg.SensorResult(skip_reason="reference file unchanged")
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=f"reference-{digest}")], cursor=digest)


# -- BI snapshot -----------------------------------------------------------------------------


def after_changes_every(cron: str) -> dg.AutomationCondition:
    """At most once per cron tick, and only when some upstream asset changed since the tick."""
    tick = dg.AutomationCondition.cron_tick_passed(cron, "UTC")
    return (
        dg.AutomationCondition.in_latest_time_window()
        & tick.since(dg.AutomationCondition.newly_requested() | dg.AutomationCondition.newly_updated())
        & dg.AutomationCondition.any_deps_match(dg.AutomationCondition.newly_updated().since(tick))
    ).with_label(f"after changes, at most every {cron}")


@dg.asset(
    key=dg.AssetKey(["mart", "bi_snapshot"]),
    group_name="mart",
    pool=WRITER_POOL,
    deps=list(MART_KEYS.values()),
    kinds={"duckdb", "parquet"},
    automation_condition=after_changes_every(settings.get("EVPIPELINE_BI_PUBLISH_CRON")),
)
def bi_snapshot(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Consistent read-only DuckDB catalog (views over Parquet) for BI tools and the pull server,
    published incrementally."""
    directory = snapshot_dir(warehouse.database)
    with warehouse.get_connection() as con:
        snapshot = publish_snapshot(con, directory, context.run.run_id[:8])
    return dg.MaterializeResult(
        metadata={
            "snapshot": dg.MetadataValue.path(str(snapshot.database)),
            "dagster/uri": Path(snapshot.database).resolve().as_uri(),
            "parquet": dg.MetadataValue.path(str(snapshot.parquet)),
            "mart_tables": snapshot.tables,
            "publication": snapshot.publication,
            "tables_written": snapshot.tables_written,
            "rows_written": snapshot.rows_written,
            "rows_written_per_table": dg.MetadataValue.json(snapshot.written),
            "bytes_written": snapshot.bytes_written,
            "files_deleted": snapshot.files_deleted,
            "compacted": ", ".join(snapshot.compacted) or "none",
            "unkeyed_tables": ", ".join(snapshot.unkeyed) or "none",
            "seconds": snapshot.seconds,
        }
    )


bi_publish_job = dg.define_asset_job(
    "bi_publish",
    selection=dg.AssetSelection.assets(["mart", "bi_snapshot"]),
    description=(
        "Publish the BI snapshot now (automation publishes it after changes, every "
        "EVPIPELINE_BI_PUBLISH_CRON)."
    ),
)
