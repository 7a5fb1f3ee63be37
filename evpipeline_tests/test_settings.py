"""Settings: real defaults for a deployment, simulator values only where asked, missing secrets named."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from evpipeline import settings

PREFIXES = ("EVPIPELINE_", "EVROAM_", "GREENFLUX_", "ZAPTEC_", "TOMTOM_", "NDW_", "DATEX2_", "OCPI_")


def clean_env(tmp_path: Path, **values: str) -> dict[str, str]:
    """The environment of a fresh deployment: none of our variables, a throwaway data directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIXES)}
    return {**env, "EVPIPELINE_DATA_DIR": str(tmp_path), **values}


def test_defaults_are_the_real_apis_and_secrets_have_none() -> None:
    env: dict[str, str] = {}
    settings.apply_defaults(env)
    assert env["GREENFLUX_BASE_URL"] == "https://platform.greenflux.com"
    assert env["ZAPTEC_BASE_URL"] == "https://api.zaptec.com"
    assert env["TOMTOM_BASE_URL"] == "https://api.tomtom.com"
    assert not any(env.get(name) for name in settings.secret_names())
    assert not any("127.0.0.1" in value for value in env.values())


def test_dev_defaults_point_at_the_simulators_without_overriding_what_is_set() -> None:
    env = {"GREENFLUX_TOKEN": "mine"}
    settings.apply_dev_defaults(env)
    assert env["GREENFLUX_TOKEN"] == "mine"
    assert env["GREENFLUX_BASE_URL"] == f"http://127.0.0.1:{settings.SIMULATOR_PORTS['greenflux']}"
    assert all(env.get(name) for name in settings.secret_names() if name != "OCPI_JWT_SECRET")


def test_require_names_every_missing_setting_with_its_meaning() -> None:
    with pytest.raises(settings.MissingSettings) as raised:
        settings.require(
            ["TOMTOM_API_KEY", "GREENFLUX_TOKEN", "EVPIPELINE_DATA_DIR"], {"EVPIPELINE_DATA_DIR": "x"}
        )
    assert raised.value.names == ["GREENFLUX_TOKEN", "TOMTOM_API_KEY"]
    assert "GreenFlux API token" in str(raised.value) and "TomTom API key" in str(raised.value)


@pytest.mark.slow
def test_a_deployment_missing_a_secret_stops_loading_and_names_it(tmp_path: Path) -> None:
    """The code location refuses to load, naming every secret, instead of failing in a later run."""
    env = clean_env(tmp_path, GREENFLUX_TOKEN="set-by-the-operator")
    load = subprocess.run(
        [sys.executable, "-c", "import evpipeline.definitions"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert load.returncode != 0
    assert "MissingSettings" in load.stderr
    for name in (
        "EVROAM_SUBSCRIPTION_KEY",
        "ZAPTEC_USERNAME",
        "ZAPTEC_PASSWORD",
        "TOMTOM_API_KEY",
        "NDW_CLIENT_SECRET",
        "DATEX2_PUSH_TOKEN",
        "DATEX2_PUBLICATION_CREATOR",
    ):
        assert name in load.stderr
    assert "GREENFLUX_TOKEN:" not in load.stderr  # set: not named

    every_secret = {name: f"value-of-{name.lower()}" for name in settings.DEV if not name.endswith("_URL")}
    loads = subprocess.run(
        [sys.executable, "-c", "import evpipeline.definitions"],
        env=clean_env(
            tmp_path,
            **every_secret,
            NDW_PUSH_BASE_URL="https://ndw.example/ocpi/2.2.1",
            NDW_TOKEN_URL="https://ndw.example/token",
            DATEX2_PUSH_URL="https://nap.example/datex2",
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert loads.returncode == 0, loads.stderr
    assert "value-of-" not in loads.stdout + loads.stderr  # secrets are never echoed


@pytest.mark.parametrize(
    ("command", "names"),
    [
        ("webhook", ["EVROAM_WEBHOOK_KEY"]),
        ("serve-ocpi", ["OCPI_TOKEN", "OCPI_CLIENT_ID", "OCPI_CLIENT_SECRET"]),
    ],
)
@pytest.mark.slow
def test_a_server_without_its_credentials_says_what_to_set(
    tmp_path: Path, command: str, names: list[str]
) -> None:
    """Servers we expose require auth: without credentials they do not start (and never start open)."""
    run = subprocess.run(
        [sys.executable, "-m", "evpipeline.cli", command, "--port", "0"],
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    assert all(name in run.stderr for name in names) and "Traceback" not in run.stderr
