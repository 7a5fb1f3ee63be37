"""Helpers every source's normalizer shares: rows with their raw payloads, JSON columns, as-of stamps."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd


@dataclass
class Rows:
    """A frame and the raw payload each of its rows came from (same positions), for quarantine."""

    frame: pd.DataFrame
    raw: list[Any] = field(default_factory=list)


def object_or_empty(value: Any) -> dict[str, Any]:
    """A nested JSON object, or {} when the field is missing or not an object."""
    return value if isinstance(value, dict) else {}


def list_or_empty(value: Any) -> list[Any]:
    """A nested JSON array, or [] when the field is missing or not an array."""
    return value if isinstance(value, list) else []


def json_text(value: Any) -> str | None:
    """A nested value as JSON text for a JSON column (stable key order, so equal content hashes equal)."""
    return None if value is None else json.dumps(value, sort_keys=True, ensure_ascii=False)


def extra_json(record: dict[str, Any], known: set[str]) -> str | None:
    """Keys nobody modelled, kept as JSON in an `extra` column instead of being dropped."""
    rest = {k: v for k, v in record.items() if k not in known}
    return json_text(rest) if rest else None


def stamp(frame: pd.DataFrame, as_of: datetime) -> pd.DataFrame:
    """Records without a change time of their own: the server's time of the pull is their as-of."""
    frame["last_updated"] = pd.Timestamp(as_of)
    return frame
