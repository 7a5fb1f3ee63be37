"""Zaptec cloud API source (installations, circuits, chargers, charger states, Service Bus messages)."""

from evpipeline.sources.zaptec import tables as tables  # registers the zaptec migrations
