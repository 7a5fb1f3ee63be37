"""The AFIR quality report as assets (group `quality`): each computes its table inside DuckDB
(schema `quality`), draws its PNG under `data/reports/<date>/` and links both from the
materialization. Definitions and formulas: docs/quality.md.
"""

import base64
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pandas as pd
from pydantic import Field

from evpipeline import catalog, settings
from evpipeline.model.keys import MART
from evpipeline.ndw.export import nap_countries
from evpipeline.ndw.push_assets import PUSH_KEY
from evpipeline.quality import annex_completeness, plots, report, tables
from evpipeline.sync import markdown_preview
from evpipeline.timeutil import utcnow
from evpipeline.warehouse import WRITER_POOL, WarehouseResource

GROUP = "quality"
CRON = "30 4 * * *"  # daily, after the mart's nightly reconcile (03:50 UTC)
COMPLETENESS_KEY = dg.AssetKey(["quality", "afir_completeness"])
TIMELINESS_KEY = dg.AssetKey(["quality", "timeliness"])
RELIABILITY_KEY = dg.AssetKey(["quality", "reliability"])
TIMELINE_KEY = dg.AssetKey(["quality", "status_timeline"])
COVERAGE_KEY = dg.AssetKey(["quality", "coverage"])
KEYS = [COMPLETENESS_KEY, TIMELINESS_KEY, RELIABILITY_KEY, TIMELINE_KEY, COVERAGE_KEY]
IDENTITY_KEY = dg.AssetKey(
    ["quality", "identity"]
)  # the cross-source matching's report (quality/identity.py)
# Daily: a day plus the run's time before the catalog calls it stale.
FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=catalog.DAILY_WINDOW)


class WindowConfig(dg.Config):
    """The report's time window: the `days` before `as_of`."""

    days: int = Field(
        default=30, ge=1, description="Length of the window in days (reliability, timeliness, plots)"
    )
    as_of: str | None = Field(
        default=None, description="End of the window, ISO 8601 (UTC if no offset); default: now"
    )

    def window(self) -> tuple[datetime, datetime]:
        end = utcnow() if self.as_of is None else pd.Timestamp(self.as_of).to_pydatetime()
        end = end.replace(tzinfo=UTC) if end.tzinfo is None else end.astimezone(UTC)
        return end - timedelta(days=self.days), end


class TimelineConfig(WindowConfig):
    location_id: str | None = Field(
        default=None, description="Location to draw; default: the one with most status transitions"
    )


class CoverageConfig(WindowConfig):
    step_minutes: int = Field(default=60, ge=1, description="Sample interval of the coverage series")


def report_dir(end: datetime) -> Path:
    """data/reports/<UTC date of the window's end>/."""
    return settings.data_dir() / "reports" / f"{end:%Y-%m-%d}"


EMBED_MAX_BYTES = (
    2_000_000  # a larger PNG is linked, not embedded (the event log keeps every materialization)
)


def png_metadata(path: Path) -> dict[str, Any]:
    """The PNG for the Dagster UI: embedded in the markdown as a `data:` URI (the UI runs in a browser,
    which shows no `file://` image of a page served over HTTP), plus its path on disk."""
    data = path.read_bytes()
    if len(data) <= EMBED_MAX_BYTES:
        image = f"![{path.stem}](data:image/png;base64,{base64.b64encode(data).decode()})"
    else:
        image = f"({len(data):,} bytes: too large to embed; open `{path}`)"
    return {
        catalog.URI: path.resolve().as_uri(),
        "plot": dg.MetadataValue.path(str(path)),
        "plot_image": dg.MetadataValue.md(f"{image}\n\n`{path}`"),
        "plot_bytes": len(data),
    }


def scope() -> str:
    """The scope of the charts of EVSEs: the access point's countries."""
    return f"public points in {', '.join(nap_countries())}"


def _frame(con: duckdb.DuckDBPyConnection, table: str) -> pd.DataFrame:
    return con.execute(f"SELECT * FROM {table}").df()


def _materialize(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    table: str,
    compute: Callable[[duckdb.DuckDBPyConnection], dict[str, Any]],
    draw: Callable[[pd.DataFrame], Path],
    columns: list[str],
) -> dg.MaterializeResult:
    """Compute the table in one transaction, then draw the PNG from it; metadata links both."""
    with warehouse.writer("quality", context.run.run_id) as writer:
        extra = compute(writer.con)
        frame = _frame(writer.con, table)
        metadata = catalog.table_metadata(writer.con, table)
    path = draw(frame)
    context.log.info("%s: %d rows, plot %s", table, len(frame), path)
    return dg.MaterializeResult(
        metadata={
            **metadata,
            "preview": dg.MetadataValue.md(markdown_preview(frame, columns, rows=30)),
            **png_metadata(path),
            **extra,
        }
    )


def _spec(**kwargs: Any) -> dict[str, Any]:
    return {
        "group_name": GROUP,
        "pool": WRITER_POOL,
        "kinds": {"duckdb", "python", "png"},
        "freshness_policy": FRESHNESS,
        **kwargs,
    }


@dg.asset(key=COMPLETENESS_KEY, deps=MART, **_spec())
def afir_completeness(
    context: dg.AssetExecutionContext, config: WindowConfig, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Per CPO (party_id) and source: share of published locations/EVSEs/connectors carrying each AFIR data
    element (NDW-mandatory fields from our NDW definition, plus AFIR static data OCPI can carry); per CPO and
    row of the AFIR Annex map in quality.afir_annex_completeness; the NDW export's rejection reasons counted
    in quality.afir_rejections (the current mart; `as_of` names the report's day)."""
    start, end = config.window()
    now = utcnow()

    def compute(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
        report.write_completeness(con, now)
        annex_completeness.write_annex_completeness(con, now)
        report.write_rejections(con, now)
        rejections = _frame(con, tables.REJECTIONS)
        annex = _frame(con, tables.ANNEX_COMPLETENESS)
        return {
            "rejections_table": tables.REJECTIONS,
            "rejected_objects": int(rejections["objects"].sum()) if len(rejections) else 0,
            "rejections": dg.MetadataValue.md(
                markdown_preview(
                    rejections, ["country_code", "party_id", "source", "object", "reason", "objects"], rows=30
                )
            ),
            "annex_table": tables.ANNEX_COMPLETENESS,
            "annex_rows_not_measured": int(annex.loc[annex["objects"].isna(), "annex_id"].nunique())
            if len(annex)
            else 0,
            "annex": dg.MetadataValue.md(
                markdown_preview(
                    annex,
                    [
                        "country_code",
                        "party_id",
                        "annex_number",
                        "element",
                        "level",
                        "objects",
                        "present",
                        "share",
                        "reason",
                    ],
                    rows=60,
                )
            ),
        }

    return _materialize(
        context,
        warehouse,
        tables.COMPLETENESS,
        compute,
        lambda frame: plots.completeness(
            frame, report_dir(end) / "afir_completeness.png", plots.Window(start, end)
        ),
        [
            "country_code",
            "party_id",
            "source",
            "object",
            "element",
            "requirement",
            "objects",
            "present",
            "share",
        ],
    )


@dg.asset(key=TIMELINESS_KEY, deps=[*MART, PUSH_KEY], **_spec())
def timeliness(
    context: dg.AssetExecutionContext, config: WindowConfig, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Per CPO, source, data class and publication (first | change): delay from when a change became
    observable to us (its source time with the provider's measured clock skew taken off; a first publication
    from when we recorded the object) to NDW accepting it, p50/p95/max and the share within 1 min (dynamic:
    status PATCHes) / 24 h (static:
    PUTs); per push in quality.ndw_delays."""
    start, end = config.window()
    now = utcnow()
    delays: list[pd.DataFrame] = []

    def compute(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
        report.write_timeliness(con, start, end, now)
        delays.append(_frame(con, tables.DELAYS))
        return {
            "delays_table": tables.DELAYS,
            "accepted_pushes": len(delays[0]),
            "window": f"{start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC",
        }

    return _materialize(
        context,
        warehouse,
        tables.TIMELINESS,
        compute,
        lambda _: plots.timeliness(delays[0], report_dir(end) / "timeliness.png", plots.Window(start, end)),
        [
            "country_code",
            "party_id",
            "source",
            "data_class",
            "publication",
            "pushes",
            "p50_seconds",
            "p95_seconds",
            "max_seconds",
            "within_target_share",
            "clock_skew_seconds",
            "measured_from_recording",
        ],
    )


@dg.asset(key=RELIABILITY_KEY, deps=MART, **_spec())
def reliability(
    context: dg.AssetExecutionContext, config: WindowConfig, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Per EVSE of the access point's countries (EVPIPELINE_NAP_COUNTRIES) over the window (default 30 days):
    time-weighted share of in-service time in AVAILABLE/CHARGING/RESERVED from the status history; rapid
    chargers (>= 50 kW) under 99 % flagged."""
    start, end = config.window()
    now = utcnow()

    def compute(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
        report.write_reliability(con, start, end, now)
        summary = con.execute(f"""
            SELECT country_code, party_id, source, count(*) AS evses,
                   round(avg(working_share), 4) AS mean_working_share,
                   count(*) FILTER (WHERE rapid) AS rapid, count(*) FILTER (WHERE below_target)
                   AS rapid_below_99
            FROM {tables.RELIABILITY} GROUP BY ALL ORDER BY ALL""").df()
        return {
            "rapid_below_target": int(summary["rapid_below_99"].sum()) if len(summary) else 0,
            "per_cpo": dg.MetadataValue.md(markdown_preview(summary, list(summary.columns), rows=30)),
            "scope": scope(),
            "window": f"{start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC",
        }

    return _materialize(
        context,
        warehouse,
        tables.RELIABILITY,
        compute,
        lambda frame: plots.reliability(
            frame, report_dir(end) / "reliability.png", plots.Window(start, end, scope())
        ),
        [
            "country_code",
            "party_id",
            "source",
            "location_id",
            "evse_uid",
            "working_share",
            "max_power_w",
            "rapid",
            "below_target",
        ],
    )


@dg.asset(key=TIMELINE_KEY, deps=MART, **_spec())
def status_timeline(
    context: dg.AssetExecutionContext, config: TimelineConfig, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Status periods of one location's EVSEs over the window (config `location_id`; default the location of
    the access point's countries with the most status transitions), drawn as a timeline named by EVSE id."""
    start, end = config.window()
    now = utcnow()
    chosen: list[str | None] = [config.location_id]

    def compute(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
        if chosen[0] is None:
            chosen[0] = report.busiest_location(con, start, end)
        report.write_timeline(con, chosen[0] or "", start, end, now)
        return {
            "location_id": chosen[0] or "none",
            "window": f"{start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC",
        }

    return _materialize(
        context,
        warehouse,
        tables.TIMELINE,
        compute,
        lambda frame: plots.timeline(
            frame,
            chosen[0],
            report_dir(end) / f"status_timeline_{chosen[0] or 'none'}.png",
            plots.Window(start, end),
        ),
        ["location_name", "evse_id", "evse_uid", "status", "period_start", "period_end"],
    )


@dg.asset(key=COVERAGE_KEY, deps=MART, **_spec())
def coverage(
    context: dg.AssetExecutionContext, config: CoverageConfig, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """EVSEs of the access point's countries by status over the window, sampled every `step_minutes` (map-free
    coverage), as a stacked area; EVSEs the pipeline first saw later are drawn as a hatched band until
    then."""
    start, end = config.window()
    now = utcnow()

    def compute(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
        report.write_coverage(con, start, end, config.step_minutes, now)
        return {
            "step_minutes": config.step_minutes,
            "scope": scope(),
            "window": f"{start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC",
        }

    return _materialize(
        context,
        warehouse,
        tables.COVERAGE,
        compute,
        lambda frame: plots.coverage(
            frame, report_dir(end) / "coverage.png", plots.Window(start, end, scope())
        ),
        ["sampled_at", "status", "evses"],
    )


ASSETS = [afir_completeness, timeliness, reliability, status_timeline, coverage]

quality_report_job = dg.define_asset_job(
    "quality_report",
    selection=dg.AssetSelection.assets(*KEYS, IDENTITY_KEY),
    description="The AFIR quality report: completeness, timeliness, reliability, "
    "status timeline and coverage, and the cross-source matching.",
)
quality_report_schedule = dg.ScheduleDefinition(
    name="quality_daily_report",
    job=quality_report_job,
    cron_schedule=CRON,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily AFIR quality report, after the mart's nightly reconcile.",
)
