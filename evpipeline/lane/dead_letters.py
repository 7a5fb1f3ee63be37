"""The operator's hands on the dead letters (`evpipeline dead-letters list|release|retry`).

A dead letter never blocks the lane (its records come by the delta pull that replaced it); these
let an operator see why each one died and decide: *release* it (let it go: the row leaves
`ops.dead_letters`, the inbox keeps it as `released`), or *retry* it (the inbox stores it again as a
new delivery past every cursor, so the lane tries it in its next cycle; the original becomes
`retried`). Both work the same on DuckDB and DuckLake (plain DELETEs, no key constraints needed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from evpipeline.inbox import Inbox
from evpipeline.sources.feeds import DEAD_LETTERS
from evpipeline.warehouse import WarehouseResource


@dataclass(frozen=True)
class DeadLetter:
    source: str
    message_id: int
    kind: str
    status: str
    reason: str
    dead_at: datetime


def listing(
    warehouse: WarehouseResource, *, source: str | None = None, status: str | None = None
) -> list[DeadLetter]:
    """The dead letters, oldest first (optionally of one source / one status)."""
    with warehouse.get_connection() as con:
        rows = con.execute(
            f"SELECT source, message_id, kind, status, reason, dead_at FROM {DEAD_LETTERS} "
            "WHERE ($source IS NULL OR source = $source) AND ($status IS NULL OR status = $status) "
            "ORDER BY message_id",
            {"source": source, "status": status},
        ).fetchall()
    return [DeadLetter(*row) for row in rows]


def _chosen(warehouse: WarehouseResource, ids: Sequence[int]) -> list[DeadLetter]:
    """The dead letters named by message id; KeyError naming any that is not one."""
    wanted = set(ids)
    found = [d for d in listing(warehouse) if d.message_id in wanted]
    missing = sorted(wanted - {d.message_id for d in found})
    if missing:
        raise KeyError(f"not dead letters: {', '.join(map(str, missing))} (`evpipeline dead-letters list`)")
    return found


def _forget(warehouse: WarehouseResource, ids: Sequence[int]) -> None:
    with warehouse.get_connection() as con:
        con.execute(f"DELETE FROM {DEAD_LETTERS} WHERE list_contains($ids, message_id)", {"ids": list(ids)})


def release(warehouse: WarehouseResource, inbox: Inbox, ids: Sequence[int]) -> list[DeadLetter]:
    """Let these dead letters go: out of `ops.dead_letters`, `released` in the inbox."""
    chosen = _chosen(warehouse, ids)
    _forget(warehouse, [d.message_id for d in chosen])
    inbox.mark_many([(d.message_id, "released", f"released by an operator; was {d.status}") for d in chosen])
    return chosen


def retry(warehouse: WarehouseResource, inbox: Inbox, ids: Sequence[int]) -> list[tuple[DeadLetter, int]]:
    """Store these deliveries again for the lane's next cycle; (dead letter, its new inbox id) each.
    Stored first, forgotten second: a failure in between leaves a listed dead letter, never a lost one."""
    chosen = _chosen(warehouse, ids)
    requeued = [(d, inbox.requeue(d.message_id)) for d in chosen]
    _forget(warehouse, [d.message_id for d in chosen])
    return requeued
