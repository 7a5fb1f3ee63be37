"""Cross-source identity, as an asset of the quality group: how many pairs the matching scored, how it
decided them (by rule), the score histogram (PNG) and a check on the pairs left near the threshold.
The matching itself runs inside every mart build (evpipeline/model/identity.py); this asset reports it.
"""

import dagster as dg
from pydantic import Field

from evpipeline import catalog
from evpipeline.model import identity as matching
from evpipeline.model.keys import MART
from evpipeline.quality import plots
from evpipeline.quality.assets import FRESHNESS, GROUP, IDENTITY_KEY, png_metadata, report_dir
from evpipeline.sync import markdown_preview
from evpipeline.timeutil import utcnow
from evpipeline.warehouse import WarehouseResource

CHECK = "near_threshold"


class IdentityConfig(dg.Config):
    max_near_threshold_ratio: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="The check fails when more than this share of the pairs that could be one place "
        "(same or near the threshold) are near the threshold: unresolved, worth an override",
    )


@dg.asset(
    key=IDENTITY_KEY,
    deps=MART,
    check_specs=[
        dg.AssetCheckSpec(
            CHECK,
            asset=IDENTITY_KEY,
            description="Few candidate pairs are left unresolved near the matching threshold",
        )
    ],
    group_name=GROUP,
    kinds={"duckdb", "python", "png"},
    freshness_policy=FRESHNESS,
)
def identity(
    context: dg.AssetExecutionContext, config: IdentityConfig, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Cross-source matches (mart.identity, mart.identity_candidates): pairs by decision and rule, the
    score histogram, and how many source locations are withheld as another's duplicate."""
    end = utcnow()
    with warehouse.get_connection() as con:
        pairs = con.execute(f"SELECT score, decision, rule FROM {matching.CANDIDATES}").df()
        clusters, duplicates = con.execute(
            "SELECT count(DISTINCT identity_id), count(*) FILTER (WHERE NOT canonical) "
            f"FROM {matching.IDENTITY}"
        ).fetchone()  # type: ignore[misc]
        sample = con.execute(
            f"SELECT * EXCLUDE (scored_at) FROM {matching.CANDIDATES} "
            "ORDER BY decision = 'review' DESC, abs(score - ?) LIMIT 30",
            [matching.POLICY.same_at],
        ).df()
        metadata = catalog.table_metadata(con, matching.CANDIDATES)
    path = plots.identity_scores(
        pairs,
        report_dir(end) / "identity_scores.png",
        plots.Window(end, end),
        matching.POLICY.same_at,
        matching.POLICY.review_from,
    )
    by_decision = pairs["decision"].value_counts().to_dict()
    by_rule = {f"rule_{k}": int(v) for k, v in pairs["rule"].value_counts().items()}
    same, review = int(by_decision.get("same", 0)), int(by_decision.get("review", 0))
    ratio = review / (same + review) if same + review else 0.0
    check = dg.AssetCheckResult(
        check_name=CHECK,
        passed=ratio <= config.max_near_threshold_ratio,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            CHECK: review,
            "same": same,
            "ratio": round(ratio, 4),
            "threshold": config.max_near_threshold_ratio,
        },
    )
    context.log.info(
        "identity: %d pairs, %d same, %d near the threshold, %d duplicates withheld",
        len(pairs),
        same,
        review,
        duplicates,
    )
    return dg.MaterializeResult(
        metadata={
            **metadata,
            "pairs": len(pairs),
            "same": same,
            CHECK: review,
            "not_same": int(by_decision.get("not_same", 0)),
            **by_rule,
            "physical_locations_merged": int(clusters),
            "duplicates_withheld": int(duplicates),
            "closest_calls": dg.MetadataValue.md(
                markdown_preview(
                    sample,
                    ["a_location_id", "b_location_id", "distance_m", "score", "decision", "rule"],
                    rows=30,
                )
            ),
            **png_metadata(path),
        },
        check_results=[check],
    )
