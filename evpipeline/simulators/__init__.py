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


def _zaptec_env(sim: SimServer) -> dict[str, str]:
    from evpipeline.simulators.zaptec import ZaptecSimulator  # imported lazily, like every simulator here

    assert isinstance(sim, ZaptecSimulator), f"{sim!r} is not a ZaptecSimulator"
    return {"ZAPTEC_BASE_URL": sim.url, "ZAPTEC_USER_GROUP_ID": sim.user_group_id}


SIMULATORS: dict[str, SimSpec] = {
    "evroam": SimSpec(
        "evpipeline.simulators.evroam",
        "EVRoamSimulator",
        # The simulator serves its own push files: its origin (exactly) is the allow-list.
        lambda s: {"EVROAM_BASE_URL": f"{s.url}/consumer/api", "EVROAM_PUSH_ALLOWED_HOSTS": s.url},
        lambda: {"subscription_key": settings.get("EVROAM_SUBSCRIPTION_KEY")},
    ),
    "greenflux": SimSpec(
        "evpipeline.simulators.greenflux",
        "GreenFluxSimulator",
        lambda s: {"GREENFLUX_BASE_URL": s.url},
        lambda: {"token": settings.get("GREENFLUX_TOKEN"), "requests_per_second": 20.0},
    ),
    "ndw": SimSpec(
        "evpipeline.simulators.ndw",
        "NdwSimulator",
        lambda s: {
            "NDW_PUSH_BASE_URL": f"{s.url}/ocpi/2.2.1",
            "NDW_TOKEN_URL": f"{s.url}/auth/realms/ndw/protocol/openid-connect/token",
        },
        lambda: {
            "client_id": settings.get("NDW_CLIENT_ID"),
            "client_secret": settings.get("NDW_CLIENT_SECRET"),
        },
    ),
    "datex2": SimSpec(
        "evpipeline.simulators.datex2",
        "Datex2Simulator",
        lambda s: {"DATEX2_PUSH_URL": f"{s.url}/datex2"},
        lambda: {"token": settings.get("DATEX2_PUSH_TOKEN")},
    ),
    "zaptec": SimSpec(
        "evpipeline.simulators.zaptec",
        "ZaptecSimulator",
        _zaptec_env,
        lambda: {
            "username": settings.get("ZAPTEC_USERNAME"),
            "password": settings.get("ZAPTEC_PASSWORD"),
            "user_group_id": settings.get("ZAPTEC_USER_GROUP_ID") or "3c1f7a52-8d4e-4b6a-9f21-6e0d5b7c9a84",
        },
    ),
    "tomtom": SimSpec(
        "evpipeline.simulators.tomtom",
        "TomTomSimulator",
        lambda s: {"TOMTOM_BASE_URL": s.url},
        lambda: {"api_key": settings.get("TOMTOM_API_KEY"), "qps": float(settings.get("TOMTOM_QPS"))},
    ),
}


def build(
    name: str,
    *,
    scale: float = 1.0,
    port: int = 0,
    clock: SimClock | None = None,
    seed: int = 7,
    **options: Any,
) -> SimServer:
    spec = SIMULATORS[name]
    cls = getattr(importlib.import_module(spec.module), spec.cls)
    return cls(scale=scale, port=port, clock=clock, seed=seed, **{**spec.options(), **options})


def start_all(
    *,
    scale: float = 1.0,
    fixed_ports: bool = False,
    live: bool = False,
    seed: int = 7,
    ports: dict[str, int] | None = None,
) -> dict[str, SimServer]:
    """Start every simulator: on `ports` (name -> port), else the fixed development ports for
    `simulate`/`dev` (`fixed_ports`), else free ports."""
    started: dict[str, SimServer] = {}
    chosen = ports if ports is not None else settings.SIMULATOR_PORTS if fixed_ports else {}
    # TomTom last: its POIs are the places every other simulator describes.
    for name in sorted(SIMULATORS, key=lambda n: n == "tomtom"):
        port = chosen.get(name, 0)
        extra = (
            {"parks": [p for sim in started.values() for p in sim.charging_parks()]}
            if name == "tomtom"
            else {}
        )
        started[name] = build(
            name, scale=scale, port=port, clock=SimClock(live=live), seed=seed, **extra
        ).start()
    return started


def env_for(sims: dict[str, SimServer]) -> dict[str, str]:
    """Environment variables pointing the pipeline at running simulators."""
    env: dict[str, str] = {}
    for name, sim in sims.items():
        env.update(SIMULATORS[name].env(sim))
    return env
