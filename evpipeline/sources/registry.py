"""Every source, declared once: each source's `definitions.py` declares its `SOURCE` (tables' keys, runs,
definitions, live feed); this module lists them. The code location, the real-time lane, the BI snapshot
and the CLI read `SOURCES`, so nothing finds a source by its module name. Adding a source is one line
here (evpipeline_tests/sources/test_registry.py fails while a source package is not listed).
"""

from __future__ import annotations

from evpipeline.sources.evroam.definitions import SOURCE as EVROAM
from evpipeline.sources.greenflux.definitions import SOURCE as GREENFLUX
from evpipeline.sources.kit import Source
from evpipeline.sources.tomtom.definitions import SOURCE as TOMTOM
from evpipeline.sources.zaptec.definitions import SOURCE as ZAPTEC

SOURCES: tuple[Source, ...] = tuple(sorted((EVROAM, GREENFLUX, TOMTOM, ZAPTEC), key=lambda s: s.name))


def names() -> list[str]:
    """Every source's name, in name order."""
    return [s.name for s in SOURCES]


def source(name: str) -> Source:
    """The source called `name` (KeyError naming the known ones otherwise)."""
    for declared in SOURCES:
        if declared.name == name:
            return declared
    raise KeyError(f"no source {name!r}; the sources: {', '.join(names())}")


def live() -> list[Source]:
    """The sources with a feed on the real-time lane, in name order (TomTom's availability is not the
    CPO's status: it has none)."""
    return [s for s in SOURCES if s.feed is not None]
