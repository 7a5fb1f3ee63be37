"""GreenFlux Charge-Location Management (CLM) API source: Locations v2, Charge Stations, tariffs."""

from evpipeline.sources.greenflux import tables as tables  # registers the greenflux migrations
