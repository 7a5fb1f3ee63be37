"""5. Export: 100,000 locations to NDW OCPI JSON vs DuckDB's own nested `COPY ... (FORMAT json)`.

Ours does more than the reference: AFIR/length validation with a rejection report, null-field
stripping, last_updated bumping, exact DateTime/coordinate formatting, files with checksums.
The reference nests the same rows (connectors in EVSEs in locations) and lets COPY write them.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from benchmarks.harness import Result, Scale, fmt_seconds, median_time
from benchmarks.mart_data import populate_mart
from evpipeline.ndw.export import build_export, write_export
from evpipeline.warehouse import connect

REFERENCE = """
COPY (
    WITH c AS (
        SELECT country_code, party_id, location_id, evse_uid,
               list({{'id': connector_id, 'standard': standard, 'format': format, 'power_type': power_type,
                      'max_voltage': max_voltage, 'max_amperage': max_amperage,
                      'max_electric_power': max_electric_power,
                      'tariff_ids': tariff_ids, 'last_updated': last_updated}}
                          ORDER BY connector_id) AS connectors
        FROM mart.connectors GROUP BY ALL),
    e AS (
        SELECT e.country_code, e.party_id, e.location_id,
               list({{'uid': e.evse_uid, 'evse_id': e.evse_id, 'status': e.status,
                      'capabilities': e.capabilities, 'connectors': c.connectors,
                      'floor_level': e.floor_level, 'parking_restrictions': e.parking_restrictions,
                      'last_updated': e.last_updated}} ORDER BY e.evse_uid) AS evses
        FROM mart.evses e JOIN c USING (country_code, party_id, location_id, evse_uid) GROUP BY ALL)
    SELECT l.country_code, l.party_id, l.location_id AS id, l.publish, l.name, l.address, l.city,
           l.postal_code, l.country, {{'latitude': l.latitude, 'longitude': l.longitude}} AS coordinates,
           l.parking_type, e.evses,
           l.operator, l.facilities, l.time_zone, l.opening_times, l.energy_mix, l.last_updated
    FROM mart.locations l JOIN e USING (country_code, party_id, location_id)
    ORDER BY l.country_code, l.party_id, l.location_id
) TO '{path}' (FORMAT json, ARRAY true)
"""


def run(scale: Scale) -> list[Result]:
    locations = scale.pick(100_000, 5_000)
    work = Path(tempfile.mkdtemp(prefix="evp-export-"))
    try:
        con = connect(str(work / "warehouse.duckdb"))
        populate_mart(con, locations)
        out: dict[str, int] = {}

        def ours() -> None:
            export = build_export(con)
            manifest = write_export(export, work / "ours", "2026-11-22")
            out["locations"] = manifest.body["counts"]["locations"]
            out["bytes"] = manifest.body["files"]["locations.json"]["bytes"]

        def reference() -> None:
            con.execute(REFERENCE.format(path=work / "reference.json"))

        ours_t, ref_t = [], []
        for _ in range(scale.repeats):
            ours_t.append(median_time(ours, 1))
            ref_t.append(median_time(reference, 1))
        o, r = sorted(ours_t)[len(ours_t) // 2], sorted(ref_t)[len(ref_t) // 2]
        assert out["locations"] == locations, out
        con.close()
        return [
            Result(
                "5. export vs DuckDB nested COPY json",
                fmt_seconds(o),
                fmt_seconds(r),
                f"{o / r:.2f}x",
                "<= 1.5x",
                o / r <= 1.5,
                f"{locations:,} locations x 3 EVSEs x 2 connectors; ours {out['bytes'] / 1e6:.0f} MB, "
                f"reference {(work / 'reference.json').stat().st_size / 1e6:.0f} MB",
            )
        ]
    finally:
        shutil.rmtree(work, ignore_errors=True)
