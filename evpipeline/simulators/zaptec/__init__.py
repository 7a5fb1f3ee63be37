"""Zaptec API simulator with its Service Bus topic: see `simulator` for what it reproduces."""

from evpipeline.simulators.zaptec.fleet import COUNTRY_IDS, EMPTY_CHARGER_ID, LARGE_STATE, PULSE, dotnet
from evpipeline.simulators.zaptec.simulator import ZaptecSimulator

__all__ = [
    "COUNTRY_IDS",
    "EMPTY_CHARGER_ID",
    "LARGE_STATE",
    "PULSE",
    "ZaptecSimulator",
    "dotnet",
]
