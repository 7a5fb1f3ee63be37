"""No environment reads or writes below the edge: the process environment is read in `settings` and
touched only by the modules that start a process's work (issue 27).

The edge, and why each module is in it:
- `settings.py`: the one place that reads variables (`get`, `require`) and fills in defaults;
- `cli.py`: the command line points the process at its data directory and simulators, and hands the
  environment to `dagster dev`;
- `demo.py`: the demo sets aside configured endpoints and points everything at its own simulators.
`definitions.py` is not: its resources read variables through Dagster (`dg.EnvVar`) and the rest
through `settings`.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "evpipeline"
EDGE = {"evpipeline/settings.py", "evpipeline/cli.py", "evpipeline/demo.py"}
# What the `os` module offers to read or change the process environment.
ENVIRONMENT_API = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}


def environment_uses(source: str) -> list[tuple[int, str]]:
    """(line, what) of every use of the process environment in `source`: `os.environ[...]`,
    `os.getenv(...)`, an alias of `os`, and names imported from `os` (`from os import environ`)."""
    tree = ast.parse(source)
    modules: set[str] = set()  # names bound to the os module
    imported: dict[str, str] = {}  # local name -> the os attribute it is
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {alias.asname or alias.name for alias in node.names if alias.name == "os"}
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            imported |= {a.asname or a.name: a.name for a in node.names if a.name in ENVIRONMENT_API}
    uses = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in ENVIRONMENT_API
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
        ):
            uses.append((node.lineno, f"{node.value.id}.{node.attr}"))
        elif isinstance(node, ast.Name) and node.id in imported:
            uses.append((node.lineno, f"{node.id} (os.{imported[node.id]})"))
    return sorted(uses)


def offenders() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative not in EDGE:
            found += [f"{relative}:{line}: {what}" for line, what in environment_uses(path.read_text())]
    return found


def test_the_scan_sees_every_spelling() -> None:
    source = (
        "import os\nimport os as system\nfrom os import environ, getenv as ge\n"
        "a = os.environ.get('A')\nb = system.environ['B']\nc = environ['C']\nd = ge('D')\n"
        "os.environ['E'] = '1'\nos.putenv('F', '1')\nx = os.path.join('a')\n"
    )
    assert [line for line, _ in environment_uses(source)] == [4, 5, 6, 7, 8, 9]


def test_no_environment_reads_below_the_edge() -> None:
    found = offenders()
    assert not found, (
        "read settings through evpipeline.settings (or take the value from the edge: cli, demo, a resource's "
        "dg.EnvVar) instead of the environment:\n" + "\n".join(found)
    )
