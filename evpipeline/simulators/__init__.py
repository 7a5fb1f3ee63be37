"""Simulators of every API the pipeline talks to, and how to start them together.

Only the CLI, the tests and the benchmarks start simulators; production code never imports
this package. Each entry says how to build a simulator and which environment variables point
the pipeline at it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from evpipeline import settings
from evpipeline.simulators.toolkit import SimClock, SimServer


@dataclass(frozen=True)
class SimSpec:
    module: str
    cls: str
    env: Callable[[SimServer], dict[str, str]]
    options: Callable[[], dict[str, Any]] = dict


SIMULATORS: dict[str, SimSpec] = {
    "evroam": SimSpec(
        "evpipeline.simulators.evroam",
        "EVRoamSimulator",
        lambda s: {"EVROAM_BASE_URL": f"{s.url}/consumer/api"},
        lambda: {"subscription_key": settings.get("EVROAM_SUBSCRIPTION_KEY")},
    ),
}


def build(name: str, *, scale: float = 1.0, port: int = 0, clock: SimClock | None = None, seed: int = 7, **options: Any) -> SimServer:
    spec = SIMULATORS[name]
    cls = getattr(importlib.import_module(spec.module), spec.cls)
    return cls(scale=scale, port=port, clock=clock, seed=seed, **{**spec.options(), **options})


def start_all(*, scale: float = 1.0, fixed_ports: bool = False, live: bool = False, seed: int = 7) -> dict[str, SimServer]:
    """Start every simulator (fixed development ports for `simulate`/`dev`, free ports otherwise)."""
    started: dict[str, SimServer] = {}
    for name in SIMULATORS:
        port = settings.SIMULATOR_PORTS[name] if fixed_ports else 0
        started[name] = build(name, scale=scale, port=port, clock=SimClock(live=live), seed=seed).start()
    return started


def env_for(sims: dict[str, SimServer]) -> dict[str, str]:
    """Environment variables pointing the pipeline at running simulators."""
    env: dict[str, str] = {}
    for name, sim in sims.items():
        env.update(SIMULATORS[name].env(sim))
    return env
