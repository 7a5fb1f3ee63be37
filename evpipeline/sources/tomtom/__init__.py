"""TomTom source: live EV charging availability per charging park (Search + Availability v2)."""

from evpipeline.sources.tomtom import tables as tables  # registers the tomtom migrations
