"""docs/afir.md, generated from the annex map: a table per Annex group with the mapping columns,
then the notes and the sources. `python -m evpipeline.afir.render` prints it; `--write` writes
docs/afir.md (a test asserts the committed file equals `render_markdown()`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from evpipeline.afir.annex import Annex, Row, load

DOC = Path(__file__).resolve().parents[2] / "docs" / "afir.md"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _code(values: tuple[str, ...]) -> str:
    return "<br>".join(f"`{v}`" for v in values) or "-"


def _carried(row: Row) -> str:
    if row.mapped:
        return "yes, in part (see notes)" if row.note and row.note.startswith("Only in part") else "yes"
    return f"**no**: {_cell(row.not_carried or '')}"


def _table(rows: list[Row]) -> list[str]:
    lines = [
        "| No. | id | Data type (Annex) | Annex level | our level | model | OCPI 2.2.1 | NDW | DATEX II "
        "(AFIR profile) | carried |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.number} | `{r.id}` | {_cell(r.element)} | {r.data_level} | {r.level} | {_code(r.model)} "
            f"| {_code(r.ocpi)} | {r.ndw or '-'} | "
            f"{_code(r.datex2)}{' (not written yet)' if r.datex2_gap else ''} | {_carried(r)} |"
        )
    return lines


def _notes(rows: list[Row]) -> list[str]:
    lines = []
    for r in rows:
        said = [
            f"*{r.category}*." if r.category else "",
            _cell(r.description or ""),
            _cell(r.note or ""),
            f"DATEX II not written yet: {_cell(r.datex2_gap)}" if r.datex2_gap else "",
            f"Wording: {', '.join(r.wording)}.",
        ]
        lines.append(f"- **{r.number}** `{r.id}`: " + " ".join(s for s in said if s))
    return lines


def render_markdown(annex: Annex | None = None) -> str:
    """The whole of docs/afir.md."""
    annex = annex or load()
    mapped = [r for r in annex.rows if r.mapped]
    out = [
        "# AFIR data elements: the Annex map",
        "",
        "<!-- Generated from evpipeline/afir/annex.yaml by `python -m evpipeline.afir.render --write`; "
        "do not edit. -->",
        "",
        f"Every data element of the Annex to {annex.regulation}, for recharging infrastructure, "
        "and where we carry it:",
        "our model (`mart`), our OCPI 2.2.1 definition (`evpipeline/ocpi/definition.py`) and NDW's rule for "
        "that field,",
        "and the AFIR DATEX II profile (`evpipeline/simulators/datex2/profile/`). The machine-readable map "
        "is",
        "`evpipeline/afir/annex.yaml` (loader `evpipeline.afir.annex`); "
        "`evpipeline_tests/afir/test_annex.py` checks that",
        "every row is mapped or explained and that every column, field and profile element it names exists.",
        "",
        f"{len(annex.rows)} data elements: {len(mapped)} carried, {len(annex.rows) - len(mapped)} "
        "not carried.",
        "Every one is mandatory: Article 3(1)(a) requires all data types of the Annex, "
        "which has no optional column.",
        "",
        "**Where the rows come from.** The stored full text of the regulation gives its Articles but not "
        "the Annex",
        "tables, so the rows are reconstructed from the sources listed at the end: numbering, "
        "grouping and levels from",
        "the IRVE correspondence table, wording from the sources each note names. Check the wording against "
        "the",
        "Official Journal before quoting it.",
        "",
        "Columns: *Annex level* is the regulation's (recharging station or point); "
        "*our level* is where the model",
        "holds the value and what the completeness report counts (a station is the EVSEs sharing "
        "`station_id`,",
        "`operator` the CPO); *NDW* is what NDW's OCPI profile makes of the field (`afir-mandatory`: "
        "one of NDW's five",
        "AFIR fields, `required`: required by OCPI, `optional`); a DATEX II path is `Type/property/...` in "
        "the",
        "profile's names, and for an element not carried it names the element that would carry it. "
        "Completeness per",
        "CPO and row: docs/quality.md (`quality.afir_annex_completeness`).",
    ]
    for group in annex.groups:
        rows = annex.in_group(group.key)
        out += [
            "",
            f"## Table {group.table}: {group.title} (`{group.key}`)",
            "",
            *_table(rows),
            "",
            "Notes:",
            "",
            *_notes(rows),
        ]
    out += ["", "## Sources", ""]
    out += [
        f"- `{s.key}`: {_cell(s.title)}. Where: {_cell(s.where)}. Gives: {_cell(s.gives)}"
        for s in annex.sources.values()
    ]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--write",
        nargs="?",
        const=str(DOC),
        default=None,
        metavar="PATH",
        help=f"write the page (default {DOC}) instead of printing it",
    )
    args = parser.parse_args(argv)
    text = render_markdown()
    if args.write:
        Path(args.write).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
