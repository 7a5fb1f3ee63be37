"""The real-time lane's feeds: every source that declares one (`evpipeline.sources.registry`; the
contract in `evpipeline.sources.feeds`), so a new source reaches NDW by declaration alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from evpipeline.sources import registry
from evpipeline.sources.feeds import Feed


def discover(resources: Mapping[str, Any]) -> list[Feed]:
    """Every source's feed (its `live.feed(resources)`), in name order."""
    return [source.feed(resources) for source in registry.live() if source.feed is not None]


def required_resources() -> set[str]:
    """Resource keys the feeds need (each live module declares `RESOURCES`)."""
    return {key for source in registry.live() for key in source.feed_resources}
