"""EVRoam Consumer API simulator (NZ Transport Agency): see `simulator` for what it reproduces."""

from evpipeline.simulators.evroam.fleet import Record
from evpipeline.simulators.evroam.simulator import EVRoamSimulator

__all__ = [
    "EVRoamSimulator",
    "Record",
]
