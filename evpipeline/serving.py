"""The one way we run the HTTP servers we expose (webhook receiver, OCPI pull server): Starlette on uvicorn."""

from __future__ import annotations

import signal
import socket
import threading
import time
from typing import Any

import uvicorn


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def default_interrupts() -> None:
    """`preexec_fn` for a server process we stop by signal (`dagster dev`): started from a process that
    ignores SIGINT (a pytest-xdist worker, nohup), it would inherit that, and `dagster dev` then ignores
    SIGTERM too; the child gets the default disposition back."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def serve_forever(app: Any, host: str, port: int, *, workers: int = 1, log_level: str = "info") -> None:
    """Run in the foreground (CLI)."""
    uvicorn.run(app, host=host, port=port, log_level=log_level, workers=workers, access_log=False)


class BackgroundServer:
    """Run an ASGI app in a thread on loopback (tests, `make dev`, the demo)."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port or free_port(host)
        config = uvicorn.Config(
            app, host=self.host, port=self.port, log_level="warning", access_log=False, lifespan="on"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=f"asgi-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"server on {self.url} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
