"""Rebuild a past day's deliveries (OCPI export and DATEX II publications) exactly as they were sent.

Each delivery's manifest names the DuckLake snapshot it read; reading that snapshot again gives the
same rows and so the same bytes. The rebuilt files go to a directory of their own and are compared
file by file with the originals (a rebuild never overwrites what was delivered).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from evpipeline.datex2.publication import Creator
from evpipeline.ndw.datex2_export import write_publications
from evpipeline.ndw.export import build_export, nap_countries, write_export
from evpipeline.warehouse import WarehouseResource
from evpipeline.warehouse.timetravel import SnapshotUnavailable, reading

MANIFEST = "manifest.json"


@dataclass
class Rebuilt:
    """One delivery rebuilt: where, from which snapshot, and which files differ from the original."""

    name: str
    original: Path
    rebuilt: Path
    snapshot: int
    identical: list[str] = field(default_factory=list)
    different: list[str] = field(default_factory=list)

    @property
    def same(self) -> bool:
        return not self.different


def delivered_snapshot(directory: Path) -> int:
    """The snapshot a delivered partition read, from its manifest."""
    path = directory / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"no delivery at {directory} (no {MANIFEST})")
    snapshot = json.loads(path.read_text()).get("warehouse_snapshot")
    if snapshot is None:
        raise SnapshotUnavailable(
            f"{path} records no warehouse snapshot: it was made on a DuckDB file, which keeps "
            "no history (time travel needs EVPIPELINE_WAREHOUSE=ducklake:...)"
        )
    return int(snapshot)


def rebuild_partition(
    warehouse: WarehouseResource, partition: str, *, ocpi_root: Path, datex2_root: Path, output: Path
) -> list[Rebuilt]:
    """Both deliveries of `partition` from the snapshots their manifests name, into `output/{ndw,datex2}/`."""
    results = []
    for name, root in (("ndw", ocpi_root), ("datex2", datex2_root)):
        original = root / partition
        snapshot = delivered_snapshot(original)
        target = output / name / partition
        with reading(warehouse, snapshot=snapshot) as read:
            if name == "ndw":
                write_export(build_export(read.con), target, partition, warehouse_snapshot=snapshot)
            else:  # as published: same creator, same publicationTime (the manifest's)
                manifest = json.loads((original / MANIFEST).read_text())
                write_publications(
                    read.con,
                    target,
                    countries=manifest.get("countries") or nap_countries(),
                    creator=Creator.parse(manifest["publication_creator"]),
                    partition=partition,
                    warehouse_snapshot=snapshot,
                    published_at=datetime.fromisoformat(manifest["generated_at"].replace("Z", "+00:00")),
                )
        result = Rebuilt(name, original, target, snapshot)
        for path in sorted(p for p in original.iterdir() if p.is_file()):
            copy = target / path.name
            (
                result.identical
                if copy.exists() and copy.read_bytes() == path.read_bytes()
                else result.different
            ).append(path.name)
        results.append(result)
    return results
