"""`make mutation`: mutmut 3 over the modules whose rules matter most, each against its own tests.

Each group runs in its own copy of the repository (mutmut writes `mutants/` next to the code it
mutates), with only that group's files mutated and only its targeted tests selected, so a group takes
minutes, not the whole suite per mutant. Tests run on the DuckDB backend (`-k "not ducklake"`): the
mutated code is Python, the same on both backends; the DuckLake runs are the suite's business.

The score counts a mutant no selected test even reaches as a survivor (mutmut's "no tests"): a rule
nothing exercises is a rule nothing checks. Results go to the table in docs/testing.md between the
`mutation` markers; survivors are listed by `mutmut results` inside the group's copy (kept under
`--workdir`).

    python -m evpipeline_tests.mutation [--only GROUP ...] [--workdir DIR] [--max-children N]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "testing.md"
START, END = "<!-- mutation:start -->", "<!-- mutation:end -->"
GOAL = 0.85


@dataclass(frozen=True)
class Group:
    name: str
    mutate: tuple[str, ...]  # files mutmut mutates
    tests: tuple[str, ...]  # the tests that pin them


# Not here: the DATEX II rules (`datex2/rules.py`) are mapping tables, not functions; mutmut mutates only
# functions, so they are pinned by literal tests instead (datex2/test_meaning.py, test_publication.py).
GROUPS = [
    Group(
        "http (rate limiting, retry)",
        (
            "evpipeline/http/errors.py",
            "evpipeline/http/redaction.py",
            "evpipeline/http/retries.py",
            "evpipeline/http/rate_limits.py",
            "evpipeline/http/request_stats.py",
            "evpipeline/http/auth.py",
            "evpipeline/http/pagination.py",
            "evpipeline/http/client.py",
        ),
        ("evpipeline_tests/test_http.py", "evpipeline_tests/test_transient_errors.py"),
    ),
    Group(
        "watermarks",
        ("evpipeline/watermarks.py",),
        (
            "evpipeline_tests/test_watermarks.py",
            "evpipeline_tests/test_sync_batches.py",
            "evpipeline_tests/sources/greenflux/test_greenflux_sync.py",
        ),
    ),
    Group(
        "validation",
        ("evpipeline/validation.py",),
        ("evpipeline_tests/test_validation.py", "evpipeline_tests/test_sync_batches.py"),
    ),
    Group(
        "merge",
        ("evpipeline/warehouse/merge.py",),
        ("evpipeline_tests/warehouse/test_merge.py", "evpipeline_tests/test_sync_batches.py"),
    ),
    Group(
        "push-file URL rules",
        ("evpipeline/sources/evroam/push_urls.py",),
        ("evpipeline_tests/sources/evroam/test_push_security.py",),
    ),
    Group(
        "cross-source identity",
        ("evpipeline/model/identity.py",),
        ("evpipeline_tests/model/test_identity.py", "evpipeline_tests/ndw/test_identity_publishing.py"),
    ),
    Group(
        "pull auth and paging",
        ("evpipeline/ndw/pull_auth.py", "evpipeline/ndw/pull_paging.py"),
        ("evpipeline_tests/ndw/test_pull_auth.py", "evpipeline_tests/ndw/test_server.py"),
    ),
    Group(
        "sync (validate, spool, one transaction)",
        ("evpipeline/sync.py",),
        ("evpipeline_tests/test_sync.py", "evpipeline_tests/test_sync_batches.py"),
    ),
    Group(
        "NDW export and OCPI definition",
        ("evpipeline/ndw/export.py", "evpipeline/ocpi/definition.py"),
        (
            "evpipeline_tests/ndw/test_export.py",
            "evpipeline_tests/ndw/test_ocpi_rules.py",
            "evpipeline_tests/ndw/test_plausibility.py",
        ),
    ),
    Group(
        "push diff",
        ("evpipeline/ndw/push_sync.py",),
        ("evpipeline_tests/ndw/test_push.py",),
    ),
    Group(
        "reference data",
        ("evpipeline/model/reference.py",),
        ("evpipeline_tests/model/test_reference.py",),
    ),
]


@dataclass
class Score:
    group: str
    mutants: int
    killed: int  # killed, timed out or caught by the type checker
    survived: int
    no_tests: int
    seconds: float
    equivalent: int = 0  # survivors that only change a string's case, left out of the count

    @property
    def score(self) -> float:
        return self.killed / self.mutants if self.mutants else 0.0


def _copy_repository(target: Path) -> None:
    """The tracked files (what a clone holds), into `target`."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout.split(
        b"\0"
    )
    for name in filter(None, files):
        source = ROOT / name.decode()
        if source.is_file():
            (target / name.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name.decode())


def _config(group: Group) -> str:
    def toml_list(values: tuple[str, ...] | list[str]) -> str:
        return "[" + ", ".join(json.dumps(v) for v in values) + "]"

    return (
        "\n[tool.mutmut]\n"
        'source_paths = ["evpipeline/"]\n'
        f"only_mutate = {toml_list(group.mutate)}\n"
        'also_copy = ["evpipeline_tests/", "benchmarks/"]\n'
        f"pytest_add_cli_args = {toml_list(['-p', 'no:cacheprovider', '-q', '-k', 'not ducklake'])}\n"
        f"pytest_add_cli_args_test_selection = {toml_list(group.tests)}\n"
    )


def run_group(group: Group, workdir: Path, max_children: int = 2) -> Score:
    copy = workdir / re.sub(r"[^a-z0-9]+", "-", group.name.lower()).strip("-")
    shutil.rmtree(copy, ignore_errors=True)
    copy.mkdir(parents=True)
    _copy_repository(copy)
    with (copy / "pyproject.toml").open("a") as config:
        config.write(_config(group))
    mutmut = str(Path(sys.executable).with_name("mutmut"))
    started = time.monotonic()
    subprocess.run(
        [mutmut, "run", "--max-children", str(max_children)],
        cwd=copy,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    subprocess.run([mutmut, "export-cicd-stats"], cwd=copy, check=True, capture_output=True)
    stats = json.loads((copy / "mutants" / "mutmut-cicd-stats.json").read_text())
    killed = stats["killed"] + stats["timeout"] + stats.get("caught_by_type_check", 0)
    equivalent = sum(_case_only(mutmut, copy, name) for name in _survivors(mutmut, copy))
    return Score(
        group.name,
        stats["total"] - stats.get("skipped", 0) - equivalent,
        killed,
        stats["survived"] - equivalent,
        stats["no_tests"],
        time.monotonic() - started,
        equivalent,
    )


def _survivors(mutmut: str, copy: Path) -> list[str]:
    listed = subprocess.run([mutmut, "results"], cwd=copy, check=True, capture_output=True, text=True).stdout
    return [line.split(":")[0].strip() for line in listed.splitlines() if line.strip().endswith(": survived")]


def _case_only(mutmut: str, copy: Path, name: str) -> bool:
    """An equivalent mutant by construction: it only changes the case of SQL text (DuckDB reads keywords
    and identifiers case-insensitively). SQL text, conservatively: the changed part holds a space, a
    bracket, a dot or `=`; a bare name (`"_observed_at" in frame`) may be a Python key and is not counted."""
    diff = subprocess.run([mutmut, "show", name], cwd=copy, check=True, capture_output=True, text=True).stdout
    removed = [line[1:] for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")]
    added = [line[1:] for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]
    if len(removed) != 1 or len(added) != 1 or removed == added or removed[0].lower() != added[0].lower():
        return False
    old, new = removed[0], added[0]
    start = next(i for i, (a, b) in enumerate(zip(old, new, strict=True)) if a != b)
    end = len(old) - next(i for i, (a, b) in enumerate(zip(old[::-1], new[::-1], strict=True)) if a != b)
    changed = old[old.rfind('"', 0, start) + 1 : old.find('"', end)]
    return any(mark in changed for mark in " (.=")


def table(scores: list[Score]) -> str:
    lines = [
        "| group | mutants | killed | survived | no test reaches it | case-only SQL (equivalent, "
        "not counted) | score | goal | run |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for s in scores:
        lines.append(
            f"| {s.group} | {s.mutants} | {s.killed} | {s.survived} | {s.no_tests} | {s.equivalent} "
            f"| {s.score:.0%} | {'met' if s.score >= GOAL else '**missed**'} "
            f"(>= {GOAL:.0%}) | {s.seconds / 60:.0f} min |"
        )
    return "\n".join(lines)


def write_doc(scores: list[Score]) -> None:
    """Replace this run's groups in the table between the markers (other groups' rows are kept)."""
    text = DOC.read_text()
    head, rest = text.split(START, 1)
    old, tail = rest.split(END, 1)
    rows = {
        line.split("|")[1].strip(): line
        for line in old.splitlines()
        if line.startswith("| ") and "---" not in line
    }
    rows.pop("group", None)
    for line in table(scores).splitlines()[2:]:
        rows[line.split("|")[1].strip()] = line
    order = [g.name for g in GROUPS]
    body = "\n".join(table([]).splitlines() + [rows[name] for name in order if name in rows])
    DOC.write_text(f"{head}{START}\n{body}\n{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make mutation", description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--only", action="append", default=[], help="groups whose name contains this (repeatable)"
    )
    parser.add_argument(
        "--workdir", default="/tmp/evpipeline-mutation", help="where the copies go (default: %(default)s)"
    )
    parser.add_argument(
        "--max-children",
        type=int,
        default=2,
        help="mutants tested at once (default: %(default)s; 1 on a machine shared with others)",
    )
    args = parser.parse_args(argv)
    groups = [g for g in GROUPS if not args.only or any(o in g.name for o in args.only)]
    scores = []
    for group in groups:
        print(f"-- {group.name}: {', '.join(group.mutate)} against {', '.join(group.tests)}", flush=True)
        score = run_group(group, Path(args.workdir), args.max_children)
        print(
            f"   {score.killed}/{score.mutants} killed ({score.score:.0%}), {score.survived} survived, "
            f"{score.no_tests} reached by no test, {score.seconds / 60:.1f} min",
            flush=True,
        )
        scores.append(score)
        write_doc(scores)  # after each group: a long run stopped halfway keeps what it measured
    print(f"wrote {DOC}")
    return 0 if all(s.score >= GOAL for s in scores) else 1


if __name__ == "__main__":
    sys.exit(main())
