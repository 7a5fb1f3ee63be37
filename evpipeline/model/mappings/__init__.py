"""How each source maps into the canonical model: one SQL module per source, in a registry.

A mapping selects OCPI-shaped rows from its source tables (and the rule tables of
`evpipeline.model.rules`) for each mart table, plus the values it could not map. The builder runs
every mapping whose source tables exist, so a new source joins by adding a module here.

Every mapping is written against a `Scope`: a full build maps everything; an incremental build
maps only the locations (and tariffs) whose source rows changed since the model's watermark, with
the filter placed on the source tables themselves so the cost follows the changes, not the fleet.
Each mapping therefore also says which of its locations and tariffs a change touched
(`changed_locations`, `changed_tariffs`: SQL over rows with `_ingested_at > $since`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# Temp tables the incremental builder fills with what changed (source, id).
LOCATION_SCOPE = "_mart_scope_locations"
TARIFF_SCOPE = "_mart_scope_tariffs"


@dataclass(frozen=True)
class Scope:
    """Which of a source's locations and tariffs a build covers: all, or those that changed."""

    source: str
    incremental: bool = False

    def locations(self, column: str) -> str:
        """SQL condition: `column` (a source location id = the mart location_id) is in scope."""
        if not self.incremental:
            return "true"
        return f"{column} IN (SELECT location_id FROM {LOCATION_SCOPE} WHERE source = '{self.source}')"

    def tariffs(self, column: str) -> str:
        if not self.incremental:
            return "true"
        return f"{column} IN (SELECT tariff_id FROM {TARIFF_SCOPE} WHERE source = '{self.source}')"


Sql = Callable[[Scope], str]


@dataclass(frozen=True)
class SourceMapping:
    source: str
    requires: tuple[str, ...]  # source tables that must exist (the source has been migrated)
    inputs: tuple[str, ...]  # the source's asset keys ("evroam/sites"), for lineage in the UI
    locations: Sql | None = None
    evses: Sql | None = None
    connectors: Sql | None = None
    tariffs: Sql | None = None
    unmapped: str | None = None  # rows of (source, field, value, rows): what the rules could not map
    # DISTINCT location_id of every location a source row ingested after $since touches, including
    # the location a moved EVSE left (found through mart.evses), so it can be swept too.
    changed_locations: str | None = None
    changed_tariffs: str | None = None  # DISTINCT tariff_id changed after $since

    def sql(self, kind: str, scope: Scope) -> str | None:
        make: Sql | None = getattr(self, kind)
        return make(scope) if make is not None else None


def registry() -> list[SourceMapping]:
    from evpipeline.model.mappings import evroam, greenflux, reference, zaptec

    return [evroam.MAPPING, greenflux.MAPPING, zaptec.MAPPING, reference.MAPPING]


def moved_from(source: str, evse_uids: str) -> str:
    """Locations in the mart that hold one of `evse_uids` (SQL) for `source`: where a moved EVSE was."""
    return f"SELECT location_id FROM mart.evses WHERE source = '{source}' AND evse_uid IN ({evse_uids})"
