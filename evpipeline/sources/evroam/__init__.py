"""EVRoam (NZ Transport Agency) Consumer API source."""

from evpipeline.sources.evroam import tables as tables  # registers the evroam migrations
