"""Zaptec API simulator with its Service Bus topic: see `simulator` for what it reproduces."""

from evpipeline.simulators.zaptec.bus import BusMessage, BusSubscription, ZaptecBus
from evpipeline.simulators.zaptec.control import ZaptecControl
from evpipeline.simulators.zaptec.fleet import (
    BUSINESSES,
    CHARGER_LABEL,
    CHARGING,
    COUNTRIES,
    COUNTRY_IDS,
    DEFAULT_USER_GROUP_ID,
    DISCONNECTED,
    EMPTY_CHARGER_ID,
    ENUMS,
    FINAL_STOP_ACTIVE,
    FINISHED,
    HOME_CHARGERS,
    HOME_NAMES,
    IS_OCPP_CONNECTED,
    IS_ONLINE,
    LARGE_STATE,
    OBSERVATION_IDS,
    OPERATION_MODE,
    PULSE,
    REQUESTING,
    SESSION_ENERGY,
    TIME_ZONES,
    TOTAL_CHARGE_POWER,
    ZONE_NAMES,
    Charger,
    Installation,
    ZaptecFleet,
    dotnet,
    num,
)
from evpipeline.simulators.zaptec.handlers import (
    LIST_ENDPOINTS,
    PAGE_SIZE_DEFAULT,
    PAGE_SIZE_MAX,
    Token,
    ZaptecHandlers,
)
from evpipeline.simulators.zaptec.simulator import ZaptecSimulator

__all__ = [
    "BUSINESSES", "CHARGER_LABEL", "CHARGING", "COUNTRIES", "COUNTRY_IDS", "DEFAULT_USER_GROUP_ID", "DISCONNECTED",
    "EMPTY_CHARGER_ID", "ENUMS", "FINAL_STOP_ACTIVE", "FINISHED", "HOME_CHARGERS", "HOME_NAMES", "IS_OCPP_CONNECTED",
    "IS_ONLINE", "LARGE_STATE", "LIST_ENDPOINTS", "OBSERVATION_IDS", "OPERATION_MODE", "PAGE_SIZE_DEFAULT",
    "PAGE_SIZE_MAX", "PULSE", "REQUESTING", "SESSION_ENERGY", "TIME_ZONES", "TOTAL_CHARGE_POWER", "ZONE_NAMES",
    "BusMessage", "BusSubscription", "Charger", "Installation", "Token", "ZaptecBus", "ZaptecControl", "ZaptecFleet",
    "ZaptecHandlers", "ZaptecSimulator", "dotnet", "num",
]
