"""Operator reference data -> OCPI: the tariffs a CPO states itself (rules are applied by the builder)."""

from evpipeline.model.mappings import Scope, SourceMapping


def tariffs(scope: Scope) -> str:
    return f"""
    SELECT t.country_code, t.party_id, t.tariff_id, t.currency, t.type,
           t.tariff_alt_text, t.tariff_alt_url, t.min_price, t.max_price, t.elements,
           t.start_date_time, t.end_date_time, t.energy_mix,
           'reference' AS source, t.tariff_id AS source_id, t.last_updated AS source_last_updated,
           t.last_updated, t.is_deleted
    FROM reference.tariffs t
    WHERE {scope.tariffs("t.tariff_id")}
"""


MAPPING = SourceMapping(
    source="reference",
    requires=("reference.tariffs",),
    inputs=("reference/operator_data",),
    tariffs=tariffs,
    changed_tariffs="SELECT tariff_id FROM reference.tariffs WHERE _ingested_at > $since",
)
