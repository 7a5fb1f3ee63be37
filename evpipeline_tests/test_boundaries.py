"""The package's boundaries that `lint-imports` alone would not notice: every root module and package
sits in a declared layer (a new one left out would be free to import anything)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "evpipeline"


def root_modules() -> set[str]:
    """`evpipeline.<name>` of every root module and package (the simulators stand apart, in their own
    contracts)."""
    names = {p.stem for p in PACKAGE.glob("*.py") if p.name != "__init__.py"}
    names |= {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    return {f"evpipeline.{name}" for name in names} - {"evpipeline.simulators", "evpipeline.seed_data"}


def test_every_root_module_is_in_a_declared_layer() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c["layers"] for c in config["contracts"] if c["id"] == "layers"]
    declared = {name for layer in layers for name in re.split(r"\s*[|:]\s*", layer)}
    assert root_modules() - declared == set(), "add these to the layers in pyproject.toml"
    assert declared - root_modules() == set(), "the layers name modules that are gone"
