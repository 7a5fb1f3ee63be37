"""TomTom Search and EV Charging Stations Availability simulator: see `simulator` for what it reproduces."""

from evpipeline.simulators.tomtom.control import TomTomControl
from evpipeline.simulators.tomtom.fleet import (
    BRANDS,
    CONNECTOR_TYPES,
    DC_TYPES,
    EARTH_M,
    EV_CATEGORY,
    INITIAL_STATES,
    OTHER_CATEGORIES,
    RATINGS,
    STATES,
    SYNTHETIC_TYPES,
    TRANSITIONS,
    Poi,
    PowerLevel,
    TomTomFleet,
    distance_m,
    offset,
)
from evpipeline.simulators.tomtom.handlers import (
    ALPHA2,
    COUNTRY_NAMES,
    TRACKING_ID,
    TomTomHandlers,
    availability_xml,
    connector_details,
)
from evpipeline.simulators.tomtom.simulator import TomTomSimulator

__all__ = [
    "ALPHA2", "BRANDS", "CONNECTOR_TYPES", "COUNTRY_NAMES", "DC_TYPES", "EARTH_M", "EV_CATEGORY", "INITIAL_STATES",
    "OTHER_CATEGORIES", "RATINGS", "STATES", "SYNTHETIC_TYPES", "TRACKING_ID", "TRANSITIONS", "Poi", "PowerLevel",
    "TomTomControl", "TomTomFleet", "TomTomHandlers", "TomTomSimulator", "availability_xml", "connector_details",
    "distance_m", "offset",
]
