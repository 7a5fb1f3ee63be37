"""Host-wide exclusion between processes (the lane's run, the daemon's runs): `flock` on a file in the
data directory. flock locks belong to the open file, so two holders in one process exclude each other too."""

from __future__ import annotations

import contextlib
import fcntl
import time
from collections.abc import Callable, Iterator
from pathlib import Path


@contextlib.contextmanager
def exclusive(path: Path, wait_seconds: float, give_up: Callable[[], bool] = lambda: False) -> Iterator[bool]:
    """Hold an exclusive lock on `path` (waiting up to `wait_seconds`, or until `give_up()`); yields False
    when it was not free."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a+")
    deadline = time.monotonic() + wait_seconds
    try:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline or give_up():
                    yield False
                    return
                time.sleep(0.2)
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        handle.close()
