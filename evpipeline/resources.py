"""Resources shared by several sources."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from evpipeline.inbox import Inbox


class PushInboxResource(dg.ConfigurableResource):
    """Where push receivers leave deliveries and sensors pick them up (SQLite + downloaded files)."""

    directory: str = Field(description="Inbox directory, normally $EVPIPELINE_DATA_DIR/inbox")

    def open(self) -> Inbox:
        return Inbox(Path(self.directory) / "push.sqlite")

    def files(self, source: str) -> Path:
        path = Path(self.directory) / source
        path.mkdir(parents=True, exist_ok=True)
        return path
