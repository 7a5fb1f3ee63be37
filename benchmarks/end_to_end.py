"""7. End to end: `evpipeline demo` (what `make demo` runs after installing), wall time.

`demo` and `row` are also what `evpipeline_tests/test_demo.py` runs and checks: the suite runs the demo
once, through this measurement, and asserts both what the demo left behind and the row it makes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import Result, Scale, fmt_seconds

# Provider settings of the calling environment are left out: the demo starts and configures its own
# simulators.
PROVIDER_SETTINGS = ("EVPIPELINE_", "EVROAM_", "GREENFLUX_", "ZAPTEC_", "TOMTOM_", "NDW_", "OCPI_")


def demo_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(PROVIDER_SETTINGS)}


def demo(
    data_dir: str | Path, demo_scale: float, *, dagster_home: Path | None = None, timeout: float = 600
) -> tuple[subprocess.CompletedProcess[str], float]:
    """`evpipeline demo` in a subprocess, as a user runs it: (the completed process, its wall seconds)."""
    command = [sys.executable, "-m", "evpipeline.cli", "demo", "--data-dir", str(data_dir)]
    command += ["--scale", str(demo_scale)]
    if dagster_home is not None:
        command += ["--dagster-home", str(dagster_home)]
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, env=demo_env(), timeout=timeout)
    return completed, time.perf_counter() - started


def steps(completed: subprocess.CompletedProcess[str]) -> list[str]:
    """The Dagster runs the demo reported as successful (`ok <job> (<seconds>)`)."""
    return [line.strip() for line in completed.stdout.splitlines() if line.strip().startswith("ok ")]


def row(completed: subprocess.CompletedProcess[str], seconds: float, demo_scale: float) -> Result:
    if completed.returncode != 0:
        raise RuntimeError(f"demo failed: {completed.stderr[-500:]}")
    return Result(
        "7. end to end (`make demo` after install)",
        fmt_seconds(seconds),
        "-",
        "-",
        "< 60 s",
        seconds < 60,
        f"scale {demo_scale}; {len(steps(completed))} Dagster runs (bootstrap, push, delta, "
        "export) incl. interpreter start-up",
    )


def run(scale: Scale) -> list[Result]:
    work = tempfile.mkdtemp(prefix="evp-demo-")
    demo_scale = scale.pick(1.0, 0.1)
    try:
        completed, seconds = demo(work, demo_scale)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return [row(completed, seconds, demo_scale)]
