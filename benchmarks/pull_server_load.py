"""Load test of the OCPI pull server: a large mart, the server in its own process, closed-loop clients.

`python -m benchmarks.pull_server_load --locations 100000 --duration 20 --clients 2` (from the
repository root) fills a mart with `benchmarks.mart_data` (every location exportable), publishes
the snapshot, starts `evpipeline serve-ocpi` as a subprocess and GETs
`/ocpi/2.2.1/locations?limit=100&offset=<random page>` from `clients` worker processes over keep-alive
loopback connections, printing requests/s and latency percentiles as JSON.
The benchmark harness calls `measure()` (or `start_server_process`
+ `load_test` on data of its own).
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import multiprocessing
import multiprocessing.queues
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from evpipeline.serving import free_port


def publish_bench_snapshot(data_dir: Path, locations: int) -> Path:
    """A warehouse of `locations` exportable locations (benchmarks.mart_data, shared with the export
    benchmark: 3 EVSEs x 2 connectors each) and its published snapshot under `data_dir`."""
    from benchmarks.mart_data import populate_mart  # repository checkout only (not packaged)
    from evpipeline.model.snapshot import publish_snapshot
    from evpipeline.warehouse import connect

    con = connect(str(data_dir / "warehouse.duckdb"))
    try:
        populate_mart(con, locations)
        return publish_snapshot(con, data_dir / "snapshots", "bench").database
    finally:
        con.close()


def start_server_process(
    data_dir: Path, port: int, token: str, *, page_cap: int = 1000, timeout: float = 300.0
) -> subprocess.Popen[bytes]:
    """`evpipeline serve-ocpi` in its own process; returns once /health answers 200."""
    env = {**os.environ, "OCPI_TOKEN": token}
    log = data_dir / "serve-ocpi.log"  # why it exited, if it does
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "evpipeline.cli",
                "serve-ocpi",
                "--data-dir",
                str(data_dir),
                "--port",
                str(port),
                "--page-cap",
                str(page_cap),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            last = log.read_text(errors="replace").strip().splitlines()[-3:]
            raise RuntimeError(f"serve-ocpi exited with {process.returncode}: {' / '.join(last)}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return process
        except OSError:
            pass
        time.sleep(0.2)
    process.terminate()
    raise RuntimeError("serve-ocpi did not become healthy")


@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    requests_per_second: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_bytes: float
    clients: int
    path: str


def _host_port(url: str) -> tuple[str, int | None]:
    parts = urlsplit(url)
    if parts.hostname is None:
        raise ValueError(f"no host in {url!r}")
    return parts.hostname, parts.port


def _client(
    url: str,
    headers: dict[str, str],
    paths: list[str],
    warmup: float,
    duration: float,
    seed: int,
    out: multiprocessing.queues.Queue[tuple[list[float], int, int]],
) -> None:
    """One closed-loop client on one keep-alive connection: latencies of requests after warm-up."""
    host, port = _host_port(url)
    conn = http.client.HTTPConnection(host, port, timeout=30)
    rng = random.Random(seed)
    latencies: list[float] = []
    errors = received = 0
    start = time.perf_counter()
    measure_from, stop = start + warmup, start + warmup + duration
    while True:
        began = time.perf_counter()
        if began >= stop:
            break
        try:
            conn.request("GET", rng.choice(paths), headers=headers)
            response = conn.getresponse()
            body = response.read()
            ok = response.status == 200
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection(host, port, timeout=30)
            ok, body = False, b""
        ended = time.perf_counter()
        if began >= measure_from:
            if ok:
                latencies.append(ended - began)
                received += len(body)
            else:
                errors += 1
    conn.close()
    out.put((latencies, errors, received))


def load_test(
    url: str,
    token: str,
    *,
    path: str = "/ocpi/2.2.1/locations",
    limit: int = 100,
    clients: int = 2,
    duration: float = 10.0,
    warmup: float = 2.0,
) -> LoadResult:
    """GET random `limit`-pages of `path` from `clients` processes for `duration` s;
    throughput and latency."""
    headers = {
        "Authorization": "Token " + base64.b64encode(token.encode()).decode(),
        "Accept": "application/json",
    }
    probe = http.client.HTTPConnection(*_host_port(url), timeout=30)
    probe.request("GET", f"{path}?limit=1", headers=headers)
    first = probe.getresponse()
    first.read()
    if first.status != 200:
        raise RuntimeError(f"{path} answered {first.status}")
    total = int(first.getheader("X-Total-Count") or 0)
    probe.close()
    pages = max(1, -(-total // limit))
    paths = [f"{path}?offset={p * limit}&limit={limit}" for p in range(pages)]
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    workers = [
        ctx.Process(target=_client, args=(url, headers, paths, warmup, duration, seed, out))
        for seed in range(clients)
    ]
    for w in workers:
        w.start()
    results = [out.get(timeout=duration + warmup + 120) for _ in workers]
    for w in workers:
        w.join()
    latencies = sorted(x for lat, _e, _b in results for x in lat)
    errors = sum(e for _l, e, _b in results)
    received = sum(b for _l, _e, b in results)

    def pct(q: float) -> float:
        return (
            round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 2)
            if latencies
            else float("nan")
        )

    return LoadResult(
        requests=len(latencies),
        errors=errors,
        seconds=duration,
        requests_per_second=round(len(latencies) / duration, 1),
        p50_ms=pct(0.50),
        p90_ms=pct(0.90),
        p99_ms=pct(0.99),
        max_ms=round(latencies[-1] * 1000, 2) if latencies else float("nan"),
        mean_bytes=round(received / len(latencies)) if latencies else 0.0,
        clients=clients,
        path=f"{path}?limit={limit}",
    )


def measure(
    locations: int = 100_000,
    *,
    duration: float = 20.0,
    warmup: float = 3.0,
    clients: int = 2,
    limit: int = 100,
    data_dir: Path | None = None,
) -> dict[str, Any]:
    """Build (or reuse) the data, start `serve-ocpi` in its own process, run `load_test`, stop it."""
    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="ocpi-bench-"))
    timings: dict[str, float] = {}
    if not (data_dir / "snapshots" / "warehouse.duckdb").exists():
        started = time.monotonic()
        publish_bench_snapshot(data_dir, locations)
        timings["fill_and_publish_s"] = round(time.monotonic() - started, 1)
    token, port = "bench-token", free_port()
    started = time.monotonic()
    server = start_server_process(data_dir, port, token)
    timings["server_start_and_load_s"] = round(time.monotonic() - started, 1)
    try:
        result = load_test(
            f"http://127.0.0.1:{port}", token, limit=limit, clients=clients, duration=duration, warmup=warmup
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {"locations": locations, **timings, **asdict(result)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--locations", type=int, default=100_000)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument(
        "--data-dir", default=None, help="reuse/keep the bench data here (default: a temp dir)"
    )
    args = parser.parse_args(argv)
    figures = measure(
        args.locations,
        duration=args.duration,
        warmup=args.warmup,
        clients=args.clients,
        limit=args.limit,
        data_dir=Path(args.data_dir) if args.data_dir else None,
    )
    print(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
