"""The one way we run the HTTP servers we expose (webhook receiver, OCPI pull server):
Starlette on uvicorn."""

from __future__ import annotations

import signal
import socket
import threading
import time
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# A connection must have sent its request's headers this long after it opened (or after the first
# byte of its next request): uvicorn has no such limit, and 1,100 idle or slow-header connections
# (slowloris) stayed open on the receiver after 30 s. Idle keep-alive connections between requests
# are closed by uvicorn's own `timeout_keep_alive` (5 s).
HEADER_TIMEOUT_SECONDS = 10.0


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, plus a deadline for a request's headers (the config's
    `header_timeout`, else HEADER_TIMEOUT_SECONDS): a connection that misses it is closed."""

    _header_timer: Any = None

    def _arm(self) -> None:
        self._disarm()
        seconds = float(getattr(self.config, "header_timeout", HEADER_TIMEOUT_SECONDS))
        self._header_timer = self.loop.call_later(seconds, self._too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_timer is None:
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def _config(app: Any, header_timeout: float, **kwargs: Any) -> uvicorn.Config:
    config = uvicorn.Config(app, http=HeaderDeadlineProtocol, **kwargs)
    setattr(config, "header_timeout", header_timeout)  # noqa: B010  # read by HeaderDeadlineProtocol
    return config


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
    """Run in the foreground (CLI); request headers within HEADER_TIMEOUT_SECONDS."""
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        workers=workers,
        access_log=False,
        http=HeaderDeadlineProtocol,
    )


class BackgroundServer:
    """Run an ASGI app in a thread on loopback (tests, `make dev`, the demo)."""

    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        header_timeout: float = HEADER_TIMEOUT_SECONDS,
    ) -> None:
        self.host, self.port = host, port or free_port(host)
        config = _config(
            app,
            header_timeout,
            host=self.host,
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="on",
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
