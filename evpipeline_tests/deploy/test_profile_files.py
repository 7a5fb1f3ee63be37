"""deploy/'s files agree with the code: the workspace's module, the variables the env example lists."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import yaml

from evpipeline import settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def load(name: str) -> Any:
    return yaml.safe_load((DEPLOY / name).read_text())


def env_example_names() -> list[str]:
    text = (DEPLOY / "evpipeline.env.example").read_text()
    return re.findall(r"^([A-Z][A-Z0-9_]*)=", text, re.M)


def env_references(node: Any) -> set[str]:
    """Every variable an `env:` entry in a Dagster YAML reads."""
    if isinstance(node, dict):
        found = {node["env"]} if set(node) == {"env"} else set()
        return found.union(*(env_references(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(env_references(value) for value in node))
    return set()


def test_workspace_names_the_code_location_module() -> None:
    # Without importing it: evpipeline.definitions loads the whole code location.
    [entry] = load("workspace.yaml")["load_from"]
    module = entry["python_module"]
    assert module == {"module_name": "evpipeline.definitions", "location_name": "evpipeline"}
    assert importlib.util.find_spec(module["module_name"]) is not None


def test_env_example_sets_every_secret_and_every_variable_the_instance_reads() -> None:
    names = env_example_names()
    assert len(names) == len(set(names))
    read_by_instance = env_references(load("dagster.yaml"))
    assert read_by_instance == {f"DAGSTER_PG_{part}" for part in ("HOST", "PORT", "USER", "PASSWORD", "DB")}
    wanted = {
        *settings.secret_names(),
        *read_by_instance,
        "DAGSTER_HOME",
        "EVPIPELINE_WAREHOUSE",
        "EVPIPELINE_LAKE_DATA",
        "EVPIPELINE_DATA_DIR",
    }
    assert wanted - set(names) == set()


def test_pools_default_limit_stays_one() -> None:
    # `ndw_push` follows the default limit and must stay serialized (evpipeline/ndw/push_assets.py);
    # on DuckLake the source syncs leave the pool instead (evpipeline.warehouse.sync_pool).
    assert load("dagster.yaml")["concurrency"]["pools"]["default_limit"] == 1
