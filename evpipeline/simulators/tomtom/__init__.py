"""TomTom Search and EV Charging Stations Availability simulator: see `simulator` for what it reproduces."""

from evpipeline.simulators.tomtom.fleet import CONNECTOR_TYPES, STATES, distance_m, offset
from evpipeline.simulators.tomtom.handlers import availability_xml
from evpipeline.simulators.tomtom.simulator import TomTomSimulator

__all__ = [
    "CONNECTOR_TYPES",
    "STATES",
    "TomTomSimulator",
    "availability_xml",
    "distance_m",
    "offset",
]
