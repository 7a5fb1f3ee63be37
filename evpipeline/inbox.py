"""A durable local queue for push deliveries (EVRoam webhooks, Zaptec messages).

Receivers run in their own process and must answer the provider fast, while DuckDB allows a
single writer; so receivers only append here (SQLite, WAL, one row per delivery, de-duplicated
on the provider's id) and Dagster sensors read on from their cursor and start runs that merge.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    kind TEXT NOT NULL,
    dedupe_key TEXT NOT NULL,
    payload TEXT NOT NULL,
    received_at TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'new',
    note TEXT,
    UNIQUE (source, dedupe_key)
);
CREATE INDEX IF NOT EXISTS messages_by_source ON messages (source, id);
"""
_COLUMNS = "id, source, kind, dedupe_key, payload, received_at, status, note, attempts"


@dataclass(frozen=True)
class Message:
    id: int
    source: str
    kind: str
    dedupe_key: str
    payload: Any
    received_at: str
    status: str
    note: str | None
    attempts: int = 0  # lane cycles that tried this message and failed (it is dead-lettered after a few)
    raw: str | None = None  # the stored text, kept only when it could not be read (`payload` is None)
    error: str | None = None  # why it could not be read: a poison row, judged alone, never the batch


def _message(row: tuple[Any, ...]) -> Message:
    """One stored row, parsed alone: a row that cannot be read becomes a Message saying why."""
    id_, source, kind, dedupe_key, text, received_at, status, note, attempts = row
    try:
        payload, raw, error = json.loads(text), None, None
    except (ValueError, RecursionError) as exc:
        reason = "nests too deeply" if isinstance(exc, RecursionError) else f"is not JSON ({exc})"
        payload, raw, error = None, text, f"stored payload {reason}"
    return Message(id_, source, kind, dedupe_key, payload, received_at, status, note, attempts, raw, error)


class Inbox:
    """Append-only message store shared by a receiver process and the Dagster daemon."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._connect() as con:
            con.execute("PRAGMA journal_mode=WAL")
            con.executescript(_SCHEMA)
            # Added after the first release: an inbox from before has no `attempts` column yet.
            if "attempts" not in {r[1] for r in con.execute("PRAGMA table_info(messages)")}:
                con.execute("ALTER TABLE messages ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            yield con
        finally:
            con.close()

    def put(self, source: str, kind: str, payload: Any, dedupe_key: str) -> bool:
        """Store a delivery; False when the same one (same provider id) was already stored."""
        with self._lock, self._connect() as con:
            cursor = con.execute(
                "INSERT OR IGNORE INTO messages (source, kind, dedupe_key, payload, received_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (source, kind, dedupe_key, json.dumps(payload), datetime.now(UTC).isoformat()),
            )
            return cursor.rowcount == 1

    def put_many(self, source: str, items: list[tuple[str, str, Any]]) -> int:
        """Store many deliveries (kind, dedupe_key, payload) in one transaction; returns how many were new."""
        now = datetime.now(UTC).isoformat()
        with self._lock, self._connect() as con:
            con.execute("BEGIN")
            before = con.total_changes
            con.executemany(
                "INSERT OR IGNORE INTO messages (source, kind, dedupe_key, payload, received_at) "
                "VALUES (?, ?, ?, ?, ?)",
                [(source, kind, key, json.dumps(payload), now) for kind, key, payload in items],
            )
            con.execute("COMMIT")
            return con.total_changes - before

    def after(self, source: str, last_id: int, limit: int = 500) -> list[Message]:
        with self._connect() as con:
            rows = con.execute(
                f"SELECT {_COLUMNS} FROM messages WHERE source = ? AND id > ? ORDER BY id LIMIT ?",
                (source, last_id, limit),
            ).fetchall()
        return [_message(r) for r in rows]

    def newest_id(self, source: str) -> int:
        """The id of the newest stored message of `source` (0 when none): a cheap "anything new?" probe."""
        with self._connect() as con:
            return int(
                con.execute(
                    "SELECT coalesce(max(id), 0) FROM messages WHERE source = ?", (source,)
                ).fetchone()[0]
            )

    def mark(self, message_id: int, status: str, note: str | None = None) -> None:
        with self._lock, self._connect() as con:
            con.execute("UPDATE messages SET status = ?, note = ? WHERE id = ?", (status, note, message_id))

    def mark_many(self, marks: list[tuple[int, str, str | None]]) -> None:
        """(message_id, status, note) for many messages in one transaction."""
        if not marks:
            return
        with self._lock, self._connect() as con:
            con.execute("BEGIN")
            con.executemany(
                "UPDATE messages SET status = ?, note = ? WHERE id = ?", [(s, n, i) for i, s, n in marks]
            )
            con.execute("COMMIT")

    def attempt(self, message_id: int, note: str) -> int:
        """Count one failed try of a message (kept across lane restarts); returns the tries so far."""
        with self._lock, self._connect() as con:
            row = con.execute(
                "UPDATE messages SET attempts = attempts + 1, note = ? WHERE id = ? RETURNING attempts",
                (note, message_id),
            ).fetchone()
        return int(row[0]) if row else 0

    def get(self, message_ids: list[int]) -> list[Message]:
        """The messages with these ids (any source), in id order."""
        if not message_ids:
            return []
        marks = ",".join("?" * len(message_ids))
        with self._connect() as con:
            rows = con.execute(
                f"SELECT {_COLUMNS} FROM messages WHERE id IN ({marks}) ORDER BY id", message_ids
            ).fetchall()
        return [_message(r) for r in rows]

    def requeue(self, message_id: int) -> int:
        """Store a message again as a new delivery (a new id, past every cursor) so the lane tries it
        once more; the original keeps its id and becomes `retried`. Returns the new id."""
        now = datetime.now(UTC).isoformat()
        with self._lock, self._connect() as con:
            con.execute("BEGIN")
            row = con.execute(
                "INSERT INTO messages (source, kind, dedupe_key, payload, received_at) "
                "SELECT source, kind, dedupe_key || '#retry-' || ?, payload, ? FROM messages WHERE id = ? "
                "RETURNING id",
                (now, now, message_id),
            ).fetchone()
            if row is None:
                con.execute("ROLLBACK")
                raise KeyError(f"no inbox message {message_id}")
            con.execute(
                "UPDATE messages SET status = 'retried', note = ? WHERE id = ?", (f"as {row[0]}", message_id)
            )
            con.execute("COMMIT")
        return int(row[0])

    def count(self, source: str, status: str | None = None) -> int:
        with self._connect() as con:
            if status is None:
                return int(
                    con.execute("SELECT count(*) FROM messages WHERE source = ?", (source,)).fetchone()[0]
                )
            return int(
                con.execute(
                    "SELECT count(*) FROM messages WHERE source = ? AND status = ?", (source, status)
                ).fetchone()[0]
            )
