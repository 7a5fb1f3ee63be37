"""README's "Layout" names every module and package of `evpipeline/`, so it cannot drift from the tree."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def layout_block() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Layout", 1)[1]
    return section.split("```", 2)[1]


def test_the_readme_layout_names_every_root_module_and_package() -> None:
    package = ROOT / "evpipeline"
    present = {p.name for p in package.glob("*.py") if p.name != "__init__.py"}
    present |= {f"{p.name}/" for p in package.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    named = set(re.findall(r"^  (\S+)", layout_block(), flags=re.MULTILINE))
    assert present - named == set(), "README's Layout misses these (add a line saying what each holds)"
    assert {n for n in named if n.endswith((".py", "/"))} - present == set(), (
        "README's Layout names what is gone"
    )
