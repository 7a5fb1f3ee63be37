"""GreenFlux CLM API simulator: see `simulator` for what it reproduces."""

from evpipeline.simulators.greenflux.control import GreenFluxControl
from evpipeline.simulators.greenflux.fleet import GreenFluxFleet
from evpipeline.simulators.greenflux.handlers import API, TARIFFS_PATH, GreenFluxHandlers
from evpipeline.simulators.greenflux.records import (
    AC_RATINGS,
    AC_VENDORS,
    CPOS,
    DC_RATINGS,
    DC_VENDORS,
    EVSE_NUMBER_BASE,
    FACILITIES,
    LOCATION_TYPES,
    STATUSES,
    TARIFFS_PER_CPO,
    TOMTOM_TYPES,
    Cpo,
    GreenFluxRecords,
    etag,
    iso,
    parse_time,
)
from evpipeline.simulators.greenflux.simulator import GreenFluxSimulator

__all__ = [
    "AC_RATINGS", "AC_VENDORS", "API", "CPOS", "DC_RATINGS", "DC_VENDORS", "EVSE_NUMBER_BASE", "FACILITIES",
    "LOCATION_TYPES", "STATUSES", "TARIFFS_PATH", "TARIFFS_PER_CPO", "TOMTOM_TYPES", "Cpo", "GreenFluxControl",
    "GreenFluxFleet", "GreenFluxHandlers", "GreenFluxRecords", "GreenFluxSimulator", "etag", "iso", "parse_time",
]
