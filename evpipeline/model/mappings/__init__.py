"""How each source maps into the canonical model: one SQL module per source, in a registry.

A mapping selects OCPI-shaped rows from its source tables (and the rule tables of
`evpipeline.model.rules`) for each mart table, plus the values it could not map. The builder runs
every mapping whose source tables exist, so a new source joins by adding a module here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SourceMapping:
    source: str
    requires: tuple[str, ...]  # source tables that must exist (the source has been migrated)
    inputs: tuple[str, ...]  # the source's asset keys ("evroam/sites"), for lineage in the UI
    locations: str
    evses: str
    connectors: str
    unmapped: str  # rows of (source, field, value, rows): what the rules could not map
    tariffs: str | None = None


def registry() -> list[SourceMapping]:
    from evpipeline.model.mappings import evroam, greenflux, zaptec

    return [evroam.MAPPING, greenflux.MAPPING, zaptec.MAPPING]
