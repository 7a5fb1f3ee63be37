"""What a source declares, and the factories that turn the declaration into Dagster definitions.

A source folder says *what* it has: its tables (`Table`), one sync function per endpoint that
returns a `SyncReport`, and its runs (`Run`: a job and its schedule). `sync_asset` makes the
asset (writer pool, group, one spec per table, per-table metadata, subsetting), and
`source_definitions` adds the jobs, schedules, quarantine checks and the source's resource. How
rows are fetched, validated and merged stays in the sync function and the shared `sync` module.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from evpipeline import catalog, settings
from evpipeline.checks import quarantine_checks
from evpipeline.run_config import op_config
from evpipeline.sources.feeds import Feed
from evpipeline.sync import SyncOutcome, table_metadata
from evpipeline.warehouse import WarehouseResource, sync_pool


def key(table: str) -> dg.AssetKey:
    """The asset key of a warehouse table: `greenflux.locations` -> `greenflux/locations`."""
    return dg.AssetKey(table.split("."))


@dataclass(frozen=True)
class Table:
    """One warehouse table a source writes, as the UI shows it."""

    name: str
    description: str
    preview: Sequence[str] = ()

    @property
    def key(self) -> dg.AssetKey:
        return key(self.name)


@dataclass
class SyncReport:
    """What one sync wrote, for the materializations: the outcome, requests made and extra figures.

    `failure` makes the run fail *after* reporting what was committed (partial answers, e.g. some
    TomTom ids failing while the others were written)."""

    outcome: SyncOutcome
    requests: int
    extra: dict[str, Any] = field(default_factory=dict)
    per_table: dict[str, dict[str, Any]] = field(default_factory=dict)
    failure: str | None = None

    def metadata(self, table: Table) -> dict[str, Any]:
        extra = {**self.extra, **self.per_table.get(table.name, {})}
        if table.name not in self.outcome.tables:  # nothing fetched for it this time
            return {"fetched": 0, "requests": self.requests, **extra}
        return table_metadata(
            self.outcome[table.name],
            requests=self.requests,
            watermark=self.outcome.watermark,
            preview_columns=table.preview,
            extra=extra,
        )


def sync_asset(
    name: str,
    tables: Sequence[Table],
    resource: tuple[str, type[dg.ConfigurableResource]],
    sync: Callable[..., SyncReport],
    *,
    config: type[dg.Config] | None = None,
    deps: Sequence[dg.AssetKey] = (),
    description: str | None = None,
) -> dg.AssetsDefinition:
    """An asset (one spec per table) that calls `sync(context, <resource>, warehouse[, config])`.

    Tables fed by one endpoint share a watermark, so a run always writes them all; selecting a
    subset only limits what is reported. Each table's one UI description is its own text followed by
    how it is written (`description`, else the docstring of `sync`); the op carries none of its own.
    Every materialization carries the table's name, live row count and column schema (`catalog`).
    """
    resource_key, resource_type = resource
    group = tables[0].name.split(".")[0]
    how = description or inspect.getdoc(sync) or ""
    code = _code_reference(sync)
    specs = [
        dg.AssetSpec(
            t.key,
            description=f"{t.description}\n\n{how}".strip(),
            kinds={"duckdb", "python"},
            deps=deps,
            skippable=len(tables) > 1,
            metadata=code,
        )
        for t in tables
    ]

    def body(context: dg.AssetExecutionContext, **kwargs: Any) -> Iterator[dg.MaterializeResult]:
        args = [kwargs[resource_key], kwargs["warehouse"]] + (
            [kwargs["config"]] if config is not None else []
        )
        report = sync(context, *args)
        selected = [table for table in tables if table.key in context.selected_asset_keys]
        with kwargs["warehouse"].get_connection() as con:  # right after the write: live rows and columns now
            catalog_metadata = {table.name: catalog.table_metadata(con, table.name) for table in selected}
        for table in selected:
            yield dg.MaterializeResult(
                asset_key=table.key, metadata={**report.metadata(table), **catalog_metadata[table.name]}
            )
        if report.failure:
            raise dg.Failure(description=report.failure)

    # Dagster reads resources and config from the function's annotated parameters: declare them.
    params = [
        inspect.Parameter(
            "context", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=dg.AssetExecutionContext
        )
    ]
    if config is not None:
        params.append(inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, annotation=config))
    params += [
        inspect.Parameter(resource_key, inspect.Parameter.KEYWORD_ONLY, annotation=resource_type),
        inspect.Parameter("warehouse", inspect.Parameter.KEYWORD_ONLY, annotation=WarehouseResource),
    ]
    body.__signature__ = inspect.Signature(params, return_annotation=Iterator[dg.MaterializeResult])  # type: ignore[attr-defined]  # a function has no declared __signature__; inspect reads it
    body.__name__ = name
    return dg.multi_asset(
        name=name,
        specs=specs,
        group_name=group,
        pool=sync_pool(),
        can_subset=len(tables) > 1,
    )(body)


def _code_reference(fn: Callable[..., Any]) -> dict[str, Any]:
    """Source code reference to the sync function (the asset body itself is the kit's generic one)."""
    try:
        path, line = inspect.getsourcefile(fn), inspect.getsourcelines(fn)[1]
    except (OSError, TypeError):
        return {}
    if path is None:
        return {}
    return {
        "dagster/code_references": dg.CodeReferencesMetadataValue(
            code_references=[dg.LocalFileCodeReference(file_path=path, line_number=line, label=fn.__name__)]
        )
    }


@dataclass(frozen=True)
class Source:
    """One source as it declares itself (in its `definitions.py`, listed in `evpipeline.sources.registry`):
    what the definitions, the real-time lane, the BI snapshot and the CLI read of it."""

    name: str
    keys: Mapping[str, Sequence[str]]  # its merge targets' natural keys (`tables.KEYS`)
    runs: Sequence[Run]  # its jobs and schedules; `sync NAME [--full]` picks from them
    definitions: dg.Definitions
    feed: Callable[[Mapping[str, Any]], Feed] | None = None  # its live feed, from the resources (`live.feed`)
    feed_resources: Sequence[str] = ()  # the resource keys that feed needs (`live.RESOURCES`)


def asset_tables(assets: Sequence[dg.AssetsDefinition]) -> list[tuple[dg.AssetKey, str]]:
    """(asset key, warehouse table) of every table the assets write."""
    return [(k, ".".join(k.path)) for asset in assets for k in asset.keys]


@dataclass(frozen=True)
class Run:
    """A job over (some of) a source's assets and the schedule that starts it, on by default."""

    job: str
    schedule: str
    cron_setting: str
    description: str
    assets: Sequence[dg.AssetsDefinition] | None = None
    config: Mapping[str, Any] | None = None
    full: bool = (
        False  # a full pull: what `evpipeline sync SOURCE --full` runs (the other runs are the plain sync)
    )

    def definitions(
        self, source_assets: Sequence[dg.AssetsDefinition]
    ) -> tuple[dg.UnresolvedAssetJobDefinition, dg.ScheduleDefinition]:
        assets = list(self.assets or source_assets)
        job = dg.define_asset_job(
            self.job,
            selection=dg.AssetSelection.assets(*assets),
            description=self.description,
            config=op_config(assets, **self.config) if self.config else None,
        )
        cron = settings.get(self.cron_setting)
        schedule = dg.ScheduleDefinition(
            name=self.schedule,
            job=job,
            cron_schedule=cron,
            execution_timezone="UTC",
            default_status=dg.DefaultScheduleStatus.RUNNING,
            description=f"{self.description} `{cron}` UTC by default ({self.cron_setting}).",
        )
        return job, schedule


def source_definitions(
    resource_key: str,
    resource: dg.ConfigurableResource,
    *,
    assets: Sequence[dg.AssetsDefinition],
    runs: Sequence[Run],
) -> dg.Definitions:
    """A source's whole contribution: assets, a quarantine check per table, jobs, schedules, resource."""
    jobs, schedules = zip(*(run.definitions(assets) for run in runs), strict=True) if runs else ((), ())
    return dg.Definitions(
        assets=list(assets),
        asset_checks=quarantine_checks(asset_tables(assets)),
        jobs=list(jobs),
        schedules=list(schedules),
        resources={resource_key: resource},
    )
