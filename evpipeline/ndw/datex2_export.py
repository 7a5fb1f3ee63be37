"""The AFIR DATEX II publications as a set of files with a manifest.

The same objects the OCPI export sends NDW (public locations in the access point's countries, built
from `mart` by `evpipeline.datex2`), as four documents: the static publication (`static.json`: the
profile's `payload`; `static.xml`: DATEX II 3.7) and the status publication (`status.json`: the
`messageContainer` of a snapshotPush; `status.xml`), plus `rejections.json` (what could not be
published and why) and `manifest.json` (sha256 and size per file, counts, when it was created).
Written by the daily asset (`ndw/datex2_export`, under `exports/datex2/YYYY-MM-DD/`) and by the pull
server, which builds one set per snapshot version and serves it from disk.

`publicationTime` is when the publication was created (the manifest's `generated_at`); everything
else is a function of the warehouse state read (versions included, `evpipeline.datex2.versions`),
so a rebuild from the same snapshot with the recorded time gives the same bytes. The directory is
assembled in a staging directory and renamed into place: a reader sees a complete set or none.
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Literal, cast

import duckdb
import pyarrow as pa

from evpipeline.datex2 import Creator, EmptyPublicationError, PublicationStats, Publisher
from evpipeline.model.identity import not_a_duplicate
from evpipeline.ndw.export import OCPI_TS, candidate
from evpipeline.ndw.files import (
    ChecksumSink,
    canonical_json,
    replace_directory,
    staging_directory,
    write_file,
    write_manifest,
)

DATEX_VERSION = "3.7"
PROFILE = "AFIR Energy Infrastructure 01-00-00 (JSON), DATEX II 3.7 (XML, CEN/TS 16157-10:2022)"
Kind = Literal["static", "status"]
Fmt = Literal["xml", "json"]
DOCUMENTS: tuple[tuple[Kind, Fmt], ...] = (
    ("static", "xml"),
    ("static", "json"),
    ("status", "xml"),
    ("status", "json"),
)
CONTENT_TYPES: dict[str, str] = {
    "xml": "application/xml; charset=utf-8",
    "json": "application/json; charset=utf-8",
}
REJECTIONS = "rejections.json"


def document_name(kind: str, fmt: str) -> str:
    return f"{kind}.{fmt}"


@dataclass
class Datex2Files:
    """One complete set of publications on disk and its manifest body."""

    directory: Path
    body: dict[str, Any]
    rejections: list[dict[str, Any]]
    candidates: int
    version_changes: (
        pa.Table
    )  # versions first given by this set (`versions.record` them where the warehouse is writable)

    def path(self, kind: str, fmt: str) -> Path:
        return self.directory / document_name(kind, fmt)


def candidate_locations(con: duckdb.DuckDBPyConnection, countries: list[str]) -> int:
    row = con.execute(
        f"SELECT count(*) FROM mart.locations l WHERE {candidate(countries)} AND {not_a_duplicate(con)}"
    ).fetchone()
    return int(row[0]) if row else 0


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in dataclasses.asdict(value).items() if v is not None}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def stats_counts(stats: PublicationStats) -> dict[str, Any]:
    """A document's counts for the manifest, with the model values DATEX II could not carry."""
    return {
        "sites": stats.sites,
        "stations": stats.stations,
        "refill_points": stats.points,
        "connectors": stats.connectors,
        "unmapped": [{"field": f, "value": v, "rows": n} for (f, v), n in sorted(stats.unmapped.items())],
    }


def write_publications(
    con: duckdb.DuckDBPyConnection,
    final: Path,
    *,
    countries: list[str],
    creator: Creator,
    partition: str | None = None,
    warehouse_snapshot: int | None = None,
    published_at: datetime | None = None,
) -> Datex2Files:
    """Every DATEX II document, rejections.json and manifest.json into `final` (replaced whole).

    With nothing publishable (DATEX II requires at least one site) the documents are left out and
    the manifest says so; rejections.json still says why. `published_at` (default now) is the
    publicationTime of all four documents."""
    published_at = (published_at or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    staging = staging_directory(final)
    try:
        files: dict[str, Any] = {}
        documents: dict[str, Any] = {}
        with Publisher(con, countries, creator) as publisher:  # one selection for the four documents
            for kind, fmt in DOCUMENTS:
                name = document_name(kind, fmt)
                try:
                    with ChecksumSink(staging / name) as out:
                        stats = publisher.write(kind, fmt, cast(BinaryIO, out), published_at=published_at)
                except EmptyPublicationError:
                    break
                files[name] = out.entry
                documents[name] = stats_counts(stats)
            rejections = [_plain(r) for r in publisher.rejections]
            changes = publisher.version_changes()
            table = {"id": publisher.table_id, "version": publisher.table_version}
        files[REJECTIONS] = write_file(staging / REJECTIONS, canonical_json(rejections))
        candidates = candidate_locations(con, countries)
        static = documents.get("static.json", {})
        body = {
            "partition": partition,
            "datex2_version": DATEX_VERSION,
            "profile": PROFILE,
            "countries": countries,
            "publication_creator": f"{creator.country}:{creator.national_identifier}",
            "generated_at": published_at.strftime(OCPI_TS),
            "table": table,
            "counts": {
                **{k: static.get(k, 0) for k in ("sites", "stations", "refill_points", "connectors")},
                "rejected": len(rejections),
                "candidate_locations": candidates,
            },
            "documents": documents,
            "files": files,
            **({"warehouse_snapshot": warehouse_snapshot} if warehouse_snapshot is not None else {}),
        }
        write_manifest(staging, body)
        replace_directory(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Datex2Files(final, body, rejections, candidates, changes)
