"""The Dagster home `evpipeline dev` and `evpipeline demo` share, so the UI shows the demo's runs.

One directory (`.dagster_home` in the working directory unless `--dagster-home` says otherwise)
with the project's instance settings (`evpipeline/dagster.yaml`, copied on every start so an edit
to the packaged file takes effect): run history, event logs and schedule/sensor state in SQLite.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

DEFAULT_HOME = ".dagster_home"
SETTINGS = Path(__file__).with_name("dagster.yaml")


def prepare(path: str | os.PathLike[str] = DEFAULT_HOME) -> Path:
    """The Dagster home at `path` (created if missing) holding the project's dagster.yaml."""
    home = Path(path).expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(SETTINGS, home / "dagster.yaml")
    return home


def instance(path: str | os.PathLike[str] = DEFAULT_HOME) -> Any:
    """The persistent instance at `path`, the one `dagster dev -h`'s DAGSTER_HOME names (what
    `DagsterInstance.get()` builds from it). Setting DAGSTER_HOME for a process is the edge's business."""
    import dagster as dg

    return dg.DagsterInstance.from_config(str(prepare(path)))
