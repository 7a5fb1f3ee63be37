"""The real-time lane's feeds: every source's `live` module (`feed(resources) -> Feed`, the contract in
`evpipeline.sources.feeds`), so a new source reaches NDW by declaration alone.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from evpipeline.sources import source_names
from evpipeline.sources.feeds import Feed


def live_modules() -> list[ModuleType]:
    """Every source's `live` module, in name order (a source without dynamic data has none:
    TomTom's availability is not the CPO's status)."""
    modules = []
    for name in source_names():
        try:
            modules.append(importlib.import_module(f"evpipeline.sources.{name}.live"))
        except ModuleNotFoundError as exc:
            if exc.name != f"evpipeline.sources.{name}.live":
                raise
    return modules


def discover(resources: Mapping[str, Any]) -> list[Feed]:
    """Every source's feed: `evpipeline.sources.<name>.live.feed(resources)`, in name order."""
    return [module.feed(resources) for module in live_modules()]


def required_resources() -> set[str]:
    """Resource keys the feeds need (each live module declares `RESOURCES`)."""
    return {key for module in live_modules() for key in module.RESOURCES}
