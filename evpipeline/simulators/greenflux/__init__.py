"""GreenFlux CLM API simulator: see `simulator` for what it reproduces."""

from evpipeline.simulators.greenflux.records import CPOS
from evpipeline.simulators.greenflux.simulator import GreenFluxSimulator

__all__ = [
    "CPOS",
    "GreenFluxSimulator",
]
