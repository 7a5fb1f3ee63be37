"""Asset checks shared by every source."""

from collections.abc import Sequence

import dagster as dg

from evpipeline.warehouse import WarehouseResource
from evpipeline.warehouse.rows import one_row


def quarantine_check(asset: dg.AssetKey, table: str, *, max_ratio: float = 0.05) -> dg.AssetChecksDefinition:
    """How many rows of the latest materialization went to quarantine; fails above `max_ratio`."""

    @dg.asset_check(
        asset=asset,
        name="quarantine_rate",
        description=f"Rows of {table} quarantined by the latest run; fails above {max_ratio:.0%}.",
        blocking=False,
    )
    def _check(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
        event = context.instance.get_latest_materialization_event(asset)
        if event is None or event.asset_materialization is None:
            return dg.AssetCheckResult(passed=True, metadata={"note": "not materialized yet"})
        meta = event.asset_materialization.metadata
        fetched = int(meta["fetched"].value) if "fetched" in meta else 0
        with warehouse.get_connection() as con:
            quarantined, open_total = one_row(
                con.execute(
                    "SELECT count(*) FILTER (WHERE last_run_id = ?), count(*) FROM ops.quarantine "
                    "WHERE table_name = ?",
                    [event.run_id, table],
                )
            )
        ratio = quarantined / fetched if fetched else 0.0
        return dg.AssetCheckResult(
            passed=ratio <= max_ratio,
            severity=dg.AssetCheckSeverity.ERROR if ratio > max_ratio else dg.AssetCheckSeverity.WARN,
            metadata={
                "quarantined": quarantined,
                "fetched": fetched,
                "ratio": round(ratio, 4),
                "quarantined_all_time": open_total,
            },
        )

    return _check


def quarantine_checks(
    tables: Sequence[tuple[dg.AssetKey, str]], *, max_ratio: float = 0.05
) -> list[dg.AssetChecksDefinition]:
    return [quarantine_check(asset, table, max_ratio=max_ratio) for asset, table in tables]
