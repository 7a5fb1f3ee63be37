"""The command line as a user meets it: subprocesses, a clean environment, simulators on free ports."""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from evpipeline import progress
from evpipeline.cli import build_parser
from evpipeline.simulators.greenflux import GreenFluxSimulator
from evpipeline.sources import source_names
from evpipeline_tests.test_settings import clean_env
from evpipeline_tests.typed import running

TOKEN = "cli-test-token"


def cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "evpipeline.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def greenflux_url() -> Iterator[str]:
    # Pages of 15 (the server caps `limit`, as OCPI's X-Limit allows): a bootstrap is a multi-page pull.
    with running(GreenFluxSimulator(scale=0.1, token=TOKEN, max_limit=15, seed=3)) as sim:
        yield sim.url


def sync_env(tmp_path: Path, url: str, token: str = TOKEN) -> dict[str, str]:
    return clean_env(tmp_path, GREENFLUX_BASE_URL=url, GREENFLUX_TOKEN=token, EVPIPELINE_PROGRESS_SECONDS="0")


@pytest.mark.slow
def test_sync_prints_one_line_and_progress(tmp_path: Path, greenflux_url: str) -> None:
    run = cli("sync", "greenflux", "--data-dir", str(tmp_path), env=sync_env(tmp_path, greenflux_url))
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("greenflux_sync: ok in "), run.stdout
    assert "greenflux/locations +" in lines[0] and lines[0].endswith(" quarantined")
    # Progress of the multi-page pull on the terminal: pages, rows (of the announced total), rate, ETA.
    pull = [
        line for line in run.stderr.splitlines() if "GET api/2.0/Locations: " in line and ": done" not in line
    ]
    assert len(pull) >= 2 and all("rows/s" in line and "ETA" in line for line in pull), run.stderr
    assert any("merging" in line for line in run.stderr.splitlines())
    assert (tmp_path / "warehouse.duckdb").is_file()

    full = cli(
        "sync", "greenflux", "--full", "--data-dir", str(tmp_path), env=sync_env(tmp_path, greenflux_url)
    )
    assert full.returncode == 0 and full.stdout.startswith("greenflux_full: ok in "), full.stderr[-3000:]


@pytest.mark.slow
def test_sync_failure_is_one_line_and_verbose_shows_the_trace(tmp_path: Path, greenflux_url: str) -> None:
    env = sync_env(tmp_path, greenflux_url, token="wrong-token")
    run = cli("sync", "greenflux", "--data-dir", str(tmp_path), env=env)
    assert run.returncode == 1
    assert run.stdout == ""
    errors = [
        line for line in run.stderr.splitlines() if not line.startswith(" ")
    ]  # indented progress lines aside
    assert len(errors) == 1, run.stderr
    assert (
        errors[0].startswith("greenflux_sync failed")
        and "AuthError" in errors[0]
        and "GREENFLUX_TOKEN" in errors[0]
    )
    assert "Traceback" not in run.stderr and 'File "' not in run.stderr and "wrong-token" not in run.stderr

    verbose = cli("sync", "greenflux", "--verbose", "--data-dir", str(tmp_path), env=env)
    assert verbose.returncode == 1 and "AuthError" in verbose.stderr
    assert 'evpipeline/http/client.py", line' in verbose.stderr  # the trace, down to where it was raised


@pytest.mark.slow
def test_sync_without_settings_names_them(tmp_path: Path) -> None:
    run = cli("sync", "greenflux", "--data-dir", str(tmp_path), env=clean_env(tmp_path))
    assert run.returncode == 2 and "GREENFLUX_TOKEN" in run.stderr and "Traceback" not in run.stderr
    assert "TOMTOM_API_KEY" not in run.stderr  # a sync needs its own source's settings only


@pytest.mark.slow
def test_sync_usage_errors(tmp_path: Path) -> None:
    unknown = cli("sync", "nosuchsource", env=clean_env(tmp_path))
    assert unknown.returncode == 2 and "usage:" in unknown.stderr
    assert all(name in unknown.stderr for name in source_names())
    no_full = cli("sync", "tomtom", "--full", "--data-dir", str(tmp_path), env=clean_env(tmp_path))
    assert no_full.returncode == 2 and "no full pull" in no_full.stderr and "Traceback" not in no_full.stderr


@pytest.mark.slow
def test_bad_data_dir_is_one_line(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    cases = [(afile, "not a directory"), (afile / "sub", "cannot create")]
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        cases.append((locked, "not writable"))
    for path, says in cases:
        run = cli("sync", "greenflux", "--data-dir", str(path), env=clean_env(tmp_path))
        assert run.returncode != 0 and says in run.stderr, run.stderr
        assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr
    demo = cli("demo", "--data-dir", str(afile), env=clean_env(tmp_path))
    assert (
        demo.returncode != 0
        and "not a directory" in demo.stderr
        and len(demo.stderr.strip().splitlines()) == 1
    )


@pytest.mark.slow
def test_serve_ocpi_without_a_snapshot_and_a_busy_port(tmp_path: Path) -> None:
    env = clean_env(tmp_path, OCPI_TOKEN="a-token-for-the-test", EVROAM_WEBHOOK_KEY="a-key-for-the-test")
    no_snapshot = cli("serve-ocpi", "--port", "0", "--data-dir", str(tmp_path), env=env)
    assert no_snapshot.returncode != 0 and "no warehouse snapshot" in no_snapshot.stderr
    assert "Traceback" not in no_snapshot.stderr

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        taken = cli("webhook", "--port", port, env=env)
        assert taken.returncode != 0 and f"port {port}" in taken.stderr and "in use" in taken.stderr
        assert len(taken.stderr.strip().splitlines()) == 1 and "Traceback" not in taken.stderr
        verbose = cli("webhook", "--port", port, "--verbose", env=env)
        assert verbose.returncode != 0 and "Traceback" in verbose.stderr


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(
        a for a in parser._actions if isinstance(a, argparse._SubParsersAction)
    )  # argparse has no public accessor
    return dict(action.choices)


@pytest.mark.slow
def test_help_lists_every_command_and_every_option_says_its_default(tmp_path: Path) -> None:
    parser = build_parser()
    commands = _subcommands(parser)
    assert {"demo", "sync", "simulate", "webhook", "serve-ocpi", "dev", "bench"} <= set(commands)
    top = cli("--help", env=clean_env(tmp_path))
    listed = set(
        re.findall(r"^    (\S+)", top.stdout, re.MULTILINE)
    )  # a long name has its help on the next line
    assert top.returncode == 0 and set(commands) <= listed, top.stdout
    for name, sub in commands.items():
        if name == "bench":  # its options are the harness's own (`evpipeline bench --help`)
            continue
        for action in sub._actions:  # argparse has no public accessor
            if isinstance(action, argparse._HelpAction) or not action.option_strings:
                assert action.help, (name, action.dest)
                continue
            assert action.help, (name, action.option_strings)
            flag = isinstance(action, argparse._StoreTrueAction)  # off unless given
            assert flag or "default" in action.help, (name, action.option_strings, action.help)
    bench = cli("bench", "--help", env=clean_env(tmp_path))
    assert bench.returncode == 0 and "--quick" in bench.stdout


def test_progress_is_throttled_and_reaches_the_dagster_run_log() -> None:
    now = [0.0]
    lines: list[str] = []

    class Capture:
        def info(self, line: str) -> None:
            lines.append(line)

    work = progress.Progress("pull", total=100, every=5.0, log=Capture(), clock=lambda: now[0])  # type: ignore[arg-type]  # duck-typed logger
    for _ in range(10):
        now[0] += 1.0
        work.advance(10, pages=1)
    work.finish()
    assert len(lines) == 3  # at 5 s, at 10 s, and the closing line
    assert lines[0] == "pull: 5 pages, 50/100 rows (50%), 10 rows/s, ETA 5 s"
    assert lines[-1].startswith("pull: done, 10 pages, 100 rows in 10 s")

    @dg.asset
    def long_pull() -> None:
        work = progress.Progress("a long pull", total=3, every=0)
        for _ in range(3):
            work.advance(1, pages=1)
        work.finish()

    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([long_pull], instance=instance)
    logged = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any(m.startswith("a long pull: 3 pages, 3/3 rows") for m in logged), logged


@pytest.mark.parametrize("command", ["demo", "simulate", "dev"])
@pytest.mark.parametrize("scale", ["0", "-1", "nan", "inf", "lots"])
def test_scale_must_be_a_positive_number(
    command: str, scale: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as usage:
        build_parser().parse_args([command, "--scale", scale])
    assert usage.value.code == 2
    assert (
        f"argument --scale: must be a positive number, e.g. 0.5 or 2 (got '{scale}')"
        in capsys.readouterr().err
    )
    assert build_parser().parse_args([command, "--scale", "0.25"]).scale == 0.25


@pytest.mark.slow
def test_rebuild_export_checks_its_date(tmp_path: Path) -> None:
    for day, says in (
        ("2026-13-01", "2026-13-01 is no calendar day (month must be in 1..12)"),
        ("yesterday", "expected a day as YYYY-MM-DD, e.g. 2026-12-01 (got 'yesterday')"),
    ):
        run = cli("rebuild-export", day, "--data-dir", str(tmp_path), env=clean_env(tmp_path))
        assert run.returncode == 2 and says in run.stderr and "Traceback" not in run.stderr, run.stderr


@pytest.mark.slow
def test_missing_settings_are_one_line_and_verbose_says_what_each_is(tmp_path: Path) -> None:
    run = cli("sync", "greenflux", "--data-dir", str(tmp_path), env=clean_env(tmp_path))
    assert run.returncode == 2
    assert run.stderr.splitlines() == [
        "evpipeline sync: missing settings: set GREENFLUX_TOKEN (environment variables; "
        'README "Configuration" says what each is, --verbose lists them here)'
    ]
    verbose = cli("sync", "greenflux", "--data-dir", str(tmp_path), "--verbose", env=clean_env(tmp_path))
    assert (
        verbose.returncode == 2
        and "  GREENFLUX_TOKEN: GreenFlux API token (Authorization: Token ...)." in verbose.stderr
    )


@pytest.mark.slow
def test_serve_ocpi_data_dir_is_the_data_directory_as_everywhere(tmp_path: Path) -> None:
    """`--data-dir` (default $EVPIPELINE_DATA_DIR) names the data directory; the snapshot served is its
    warehouse's, where `mart/bi_snapshot` publishes it; messages name the directory used."""
    from evpipeline.model.snapshot import publish_snapshot
    from evpipeline.warehouse import WarehouseResource
    from evpipeline_tests.mart_fixture import standard_mart

    env = clean_env(tmp_path / "default", OCPI_TOKEN="a-token-for-the-test")
    (tmp_path / "default").mkdir()
    missing = cli("serve-ocpi", "--port", "0", env=env)  # no --data-dir: $EVPIPELINE_DATA_DIR
    assert missing.returncode == 1 and missing.stderr.startswith(
        "evpipeline serve-ocpi: no warehouse snapshot at "
        f"{tmp_path / 'default' / 'snapshots' / 'warehouse.duckdb'} (--data-dir {tmp_path / 'default'}): "
        "publish one first"
    ), missing.stderr
    nowhere = cli("serve-ocpi", "--port", "0", "--data-dir", str(tmp_path / "nowhere"), env=env)
    assert (
        nowhere.stderr.strip()
        == f"evpipeline serve-ocpi: --data-dir {tmp_path / 'nowhere'}: no such directory"
    )
    # A warehouse file configured elsewhere (EVPIPELINE_WAREHOUSE, as a code server sets it) does not
    # override the directory named on the command line.
    (tmp_path / "other").mkdir()
    elsewhere = cli(
        "serve-ocpi",
        "--port",
        "0",
        "--data-dir",
        str(tmp_path / "other"),
        env={**env, "EVPIPELINE_WAREHOUSE": str(tmp_path / "default" / "warehouse.duckdb")},
    )
    assert (
        f"no warehouse snapshot at {tmp_path / 'other' / 'snapshots' / 'warehouse.duckdb'} "
        in elsewhere.stderr
    ), elsewhere.stderr

    data = tmp_path / "data"
    warehouse = WarehouseResource(database=str(data / "warehouse.duckdb"))
    standard_mart().write(warehouse)
    with warehouse.get_connection() as con:
        publish_snapshot(con, data / "snapshots", "t")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "evpipeline.cli", "serve-ocpi", "--port", str(port), "--data-dir", str(data)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        assert (
            server.stdout.readline()
            == f"serving {data / 'snapshots' / 'warehouse.duckdb'} (--data-dir {data})\n"
        )
        import base64
        import time
        import urllib.request

        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/ocpi/2.2.1/locations",
            headers={"Authorization": "Token " + base64.b64encode(b"a-token-for-the-test").decode()},
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    assert response.status == 200 and int(response.headers["X-Total-Count"]) > 0
                    break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, (
                    server.stderr.read() if server.stderr else ""
                )
                time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(timeout=30)
