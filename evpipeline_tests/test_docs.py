"""The README stays true: its two commands, every setting documented, CI runs the test command."""

from __future__ import annotations

import re
from pathlib import Path

from evpipeline import settings

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_readme_gives_exactly_the_two_commands() -> None:
    block = re.search(r"## Two commands.*?```sh\n(.*?)```", README, re.S)
    assert block is not None
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]


def test_every_setting_is_documented() -> None:
    missing = [name for name in settings.ENVIRONMENT if f"`{name}`" not in README]
    assert missing == []


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test: ", makefile, re.M) and re.search(r"^demo: ", makefile, re.M)
