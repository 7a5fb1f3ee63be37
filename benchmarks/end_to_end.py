"""7. End to end: `evpipeline demo` (what `make demo` runs after installing), wall time."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time

from benchmarks.harness import Result, Scale, fmt_seconds


def run(scale: Scale) -> list[Result]:
    work = tempfile.mkdtemp(prefix="evp-demo-")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("EVPIPELINE_", "EVROAM_", "GREENFLUX_", "ZAPTEC_", "TOMTOM_", "NDW_", "OCPI_"))
    }
    demo_scale = scale.pick(1.0, 0.1)
    try:
        started = time.perf_counter()
        completed = subprocess.run(
            [sys.executable, "-m", "evpipeline.cli", "demo", "--data-dir", work, "--scale", str(demo_scale)],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
        seconds = time.perf_counter() - started
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if completed.returncode != 0:
        raise RuntimeError(f"demo failed: {completed.stderr[-500:]}")
    steps = [line.strip() for line in completed.stdout.splitlines() if line.strip().startswith("ok ")]
    return [
        Result(
            "7. end to end (`make demo` after install)",
            fmt_seconds(seconds),
            "-",
            "-",
            "< 60 s",
            seconds < 60,
            f"scale {demo_scale}; {len(steps)} Dagster runs (bootstrap, push, delta, export) incl. interpreter start-up",
        )
    ]
