"""Every source package is declared in the registry, which is what the rest of the pipeline reads."""

from __future__ import annotations

from evpipeline.sources import registry, source_names


def test_every_source_package_is_listed_in_the_registry() -> None:
    assert registry.names() == source_names(), "add the source's SOURCE to evpipeline/sources/registry.py"


def test_the_live_sources_declare_their_feed_and_its_resources() -> None:
    assert [s.name for s in registry.live()] == ["evroam", "greenflux", "zaptec"]
    assert all("warehouse" in s.feed_resources for s in registry.live())
    assert registry.source("tomtom").feed is None and registry.source("tomtom").runs
