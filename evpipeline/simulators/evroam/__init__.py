"""EVRoam Consumer API simulator (NZ Transport Agency): see `simulator` for what it reproduces."""

from evpipeline.simulators.evroam.control import EVRoamControl
from evpipeline.simulators.evroam.fleet import (
    AC_CONNECTORS,
    AVAILABILITY,
    DC_CONNECTORS,
    KW_BY_CURRENT,
    OPERATORS,
    STREAMS,
    EVRoamFleet,
    Record,
    load_seed,
)
from evpipeline.simulators.evroam.handlers import API, EVRoamHandlers
from evpipeline.simulators.evroam.push import EVENT_TYPES, TOPIC, EVRoamPush, Subscription
from evpipeline.simulators.evroam.simulator import EVRoamSimulator

__all__ = [
    "AC_CONNECTORS", "API", "AVAILABILITY", "DC_CONNECTORS", "EVENT_TYPES", "KW_BY_CURRENT", "OPERATORS", "STREAMS",
    "TOPIC", "EVRoamControl", "EVRoamFleet", "EVRoamHandlers", "EVRoamPush", "EVRoamSimulator", "Record",
    "Subscription", "load_seed",
]
