"""9. Deployment latency: a status change at Zaptec, EVRoam (push) and GreenFlux -> PATCH accepted by NDW,
with the Dagster daemon as `make dev` runs it, at scale 1 and at a ~214k-EVSE fleet.
12. DATEX II delta latency: the same changes -> a `deltaPush` status publication accepted by the DATEX II
receiver that carries the charging point with its new status (the lane's DATEX II step, `Datex2Lane`,
right after NDW's pushes in the same cycle; issue goal: p95 <= 10 s).

Nothing here calls the pipeline directly once it runs: `dagster dev` (webserver + daemon) loads the
code location; its `realtime_lane` sensor starts the lane run through the run launcher, the
schedules and automation run as configured; the webhook receiver and the simulators are what
`evpipeline dev` starts. The harness flips statuses at the simulators and waits for the matching
PATCH at the NDW simulator (row 9) and for the matching DATEX II delta at the DATEX II receiver
simulator (row 12). Latency is measured from the moment the change is visible to us:
the Service Bus message (Zaptec), the push notification (EVRoam), the first minute poll after the
flip (GreenFlux); GreenFlux is also reported from the flip itself (poll interval included).

Set up, not measured: each source's bootstrap, the operator reference data, a full model build and
one full push (capped at 1,000 locations: at the large fleet NDW holds only those, and a change at
another exported location reaches NDW as the lane's PUT of that location, with the new status), and the
DATEX II static table push with its catch-up delta (the receiver holds every published charging point
and its status: the lane sends only deltas of points the receiver holds). A charging point's DATEX II id
is `<country_code>:<party_id>:<location_id>:<evse_uid>` (evpipeline/datex2/inputs.py). EVRoam's fleet is in
New Zealand, so the simulated access point takes NZ locations too (EVPIPELINE_NAP_COUNTRIES), and the operator
reference data names one NZ CPO (ChargeNet, CNZ) as a CPO delivering there would: its eMI3 operator id (EVRoam
carries no EVSE id) next to its tariff; without them NDW's rules withhold every EVRoam EVSE. The DATEX II
publication still withholds them (New Zealand has no NUTS-1 region: it is outside AFIR's area), so row 12 has
no EVRoam figures: a change of a point the receiver cannot hold is reported with the reason, not as lost. The
TomTom poll is left out: it is not on the lane, and its first mapping of a 75,000-location fleet is
a long, unrelated job.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.harness import ROOT, Result, Scale

SAMPLES = 12  # per source
TIMEOUT = 180.0  # seconds a change may take before it counts as lost
# OCPI status -> the profile's RefillPointStatusEnum value a delta carries (the flips' statuses only),
# written out here rather than taken from the pipeline's own mapping.
DATEX_STATUS = {
    "AVAILABLE": "available",
    "CHARGING": "charging",
    "INOPERATIVE": "inoperative",
    "OUTOFORDER": "outOfOrder",
}
# The static table of the large fleet is far above the receiver's default 64 MiB limit (a benchmark,
# not a test of it).
DATEX2_MAX_BODY = 1024 * 1024 * 1024


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _summary(values: list[float]) -> str:
    if not values:
        return "no samples"
    return (
        f"p50 {statistics.median(values):.1f} s, p95 {_percentile(values, 0.95):.1f} s, "
        f"max {max(values):.1f} s"
    )


class Deployment:
    """Simulators, receiver, a bootstrapped warehouse, then `dagster dev` on top."""

    def __init__(self, greenflux_scale: float, workdir: Path) -> None:
        self.workdir = workdir
        self.greenflux_scale = greenflux_scale
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        from evpipeline import settings, simulators
        from evpipeline.simulators.toolkit import SimClock

        data, home = self.workdir / "data", self.workdir / "dagster_home"
        home.mkdir(parents=True)
        env = {
            "EVPIPELINE_DATA_DIR": str(data),
            "EVPIPELINE_WAREHOUSE": str(data / "warehouse.duckdb"),
            "EVPIPELINE_NAP_COUNTRIES": "NLD,NZL",
            "TOMTOM_CRON": "0 0 1 1 *",
            "TOMTOM_BASE_URL": "http://127.0.0.1:9",  # not started: TomTom is not on the lane
        }
        os.environ.update(env)
        os.environ["EVPIPELINE_REFERENCE_FILE"] = str(_reference_with_an_nz_operator(self.workdir))
        # Before the simulators are built: they take their credentials from the same settings as the client.
        settings.apply_dev_defaults()
        clock = SimClock(live=True)
        self.sims = {
            "zaptec": simulators.build("zaptec", clock=clock, rate=1000.0, burst=100.0).start(),
            "evroam": simulators.build("evroam", clock=clock).start(),
            "greenflux": simulators.build(
                "greenflux", scale=self.greenflux_scale, clock=clock, requests_per_second=None
            ).start(),
            "ndw": simulators.build("ndw", clock=clock).start(),
            "datex2": simulators.build("datex2", clock=clock, max_body_bytes=DATEX2_MAX_BODY).start(),
        }
        for name, sim in self.sims.items():
            os.environ.update(simulators.SIMULATORS[name].env(sim))
        from evpipeline.inbox import Inbox
        from evpipeline.serving import BackgroundServer
        from evpipeline.sources.evroam.push import create_webhook_app

        self.receiver = BackgroundServer(
            create_webhook_app(Inbox(data / "inbox" / "push.sqlite"), settings.get("EVROAM_WEBHOOK_KEY"))
        ).start()
        self._bootstrap()
        shutil.copy(ROOT / "evpipeline" / "dagster.yaml", home / "dagster.yaml")
        from evpipeline.serving import default_interrupts, free_port

        dagster = Path(sys.executable).with_name("dagster")
        self.process = subprocess.Popen(
            [str(dagster), "dev", "-w", "workspace.yaml", "-p", str(free_port())],
            cwd=ROOT,
            env={**os.environ, "DAGSTER_HOME": str(home)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=default_interrupts,  # else stopping it waits out the SIGKILL timeout
        )
        self._wait_for_lane(data)

    def _bootstrap(self) -> None:
        import dagster as dg

        from evpipeline.definitions import defs
        from evpipeline.settings import get

        quiet = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
        instance = dg.DagsterInstance.ephemeral()
        for job in (
            "evroam_sync",
            "greenflux_sync",
            "zaptec_static",
            "zaptec_states",
            "reference_data",
            "mart_reconcile",
            "ndw_push_full",
            "datex2_static_push",
        ):
            assert (
                defs.resolve_job_def(job).execute_in_process(instance=instance, run_config=quiet).success
            ), job
        with dg.build_resources(
            {"evroam": defs.get_repository_def().get_top_level_resources()["evroam"]}
        ) as res:
            res.evroam.client().subscribe(
                f"{self.receiver.url}/api/evroam_listener?code={get('EVROAM_WEBHOOK_KEY')}"
            )
        assert self.sims["evroam"].wait_validated()  # type: ignore[attr-defined]  # start_all() types its values as SimServer; this key is that simulator
        self.point_ids: dict[str, str] = {}  # EVSE uid -> its DATEX II charging point id
        self.keys: dict[str, tuple[str, str, str]] = {}  # EVSE uid -> (country_code, party_id, location_id)
        self.candidates = self._exported_evses()
        self.datex2_held = set(self.sims["datex2"].point_statuses())  # type: ignore[attr-defined]  # start_all() types its values as SimServer; this key is that simulator
        self.datex2_withheld = self._datex2_withheld()
        self._datex2_seen: dict[
            str, dict[str, Any]
        ] = {}  # delivery id -> {point id: status value} of accepted deltas

    def _exported_evses(self) -> dict[str, list[tuple[str, str, str]]]:
        """(location_id, evse_uid, status) per source of EVSEs in the export (NDW holds them, or the lane
        PUTs their location when they change: either way NDW gets the new status)."""
        import json

        from evpipeline.ndw.export import build_export
        from evpipeline.warehouse import connect

        with connect(os.environ["EVPIPELINE_WAREHOUSE"]) as con:
            export = build_export(con)
        found: dict[str, list[tuple[str, str, str]]] = {"zaptec": [], "evroam": [], "greenflux": []}
        for body in export.locations:
            location = json.loads(body)
            for evse in location.get("evses", []):
                if evse["status"] in ("AVAILABLE", "CHARGING"):
                    found[_source_of(location["party_id"], location)].append(
                        (location["id"], evse["uid"], evse["status"])
                    )
                    self.keys[evse["uid"]] = (location["country_code"], location["party_id"], location["id"])
                    self.point_ids[evse["uid"]] = ":".join((*self.keys[evse["uid"]], evse["uid"]))
        return {source: sorted(rows) for source, rows in found.items()}

    def _datex2_withheld(self) -> dict[str, str]:
        """EVSE uid -> why the DATEX II publication leaves it out, for the candidates the receiver does not
        hold after the static push (no delta can carry them: they are not measured in row 12)."""
        unheld = [
            uid
            for rows in self.candidates.values()
            for _, uid, _ in rows
            if self.point_ids[uid] not in self.datex2_held
        ]
        if not unheld:
            return {}
        from evpipeline.datex2 import Creator, rejections
        from evpipeline.ndw.export import nap_countries
        from evpipeline.settings import get
        from evpipeline.warehouse import connect

        with connect(os.environ["EVPIPELINE_WAREHOUSE"], read_only=True) as con:
            rejected = rejections(con, nap_countries(), Creator.parse(get("DATEX2_PUBLICATION_CREATOR")))
        why = {
            (r.country_code, r.party_id, r.location_id, r.evse_uid): r.reason
            for r in rejected
            if r.object in ("Location", "EVSE")
        }
        return {
            uid: why.get((*self.keys[uid], uid))
            or why.get((*self.keys[uid], None))
            or "not in the static table"
            for uid in unheld
        }

    def _wait_for_lane(self, data: Path, seconds: float = 240.0) -> None:
        from evpipeline.warehouse.resource import read_heartbeat

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            beat = read_heartbeat(data / "lane" / "heartbeat.json")
            if beat and beat.get("state") == "running" and time.time() - float(beat["beat_at"]) < 5:
                return
            time.sleep(0.5)
        raise RuntimeError("the realtime_lane sensor never started a lane")

    def stop(self) -> None:
        if getattr(self, "_stopped", False):
            return
        self._stopped = True
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        self.receiver.stop()
        for sim in self.sims.values():
            sim.stop()

    # -- changes ---------------------------------------------------------------------------

    def delivered(self, uid: str, status: str, after: float) -> float | None:
        """Monotonic arrival of the first accepted push after `after` that gives `uid` the `status`:
        its PATCH, or a PUT of its location (the lane PUTs a location NDW did not hold yet)."""
        for push in self.sims["ndw"].accepted_pushes():  # type: ignore[attr-defined]  # start_all() types its values as SimServer; this key is that simulator
            if push.mono < after or not isinstance(push.body, dict):
                continue
            if (
                push.method == "PATCH"
                and push.path.rstrip("/").endswith(f"/{uid}")
                and push.body.get("status") == status
            ):
                return push.mono
            if (
                push.method == "PUT"
                and push.kind == "location"
                and any(e.get("uid") == uid and e.get("status") == status for e in push.body.get("evses", []))
            ):
                return push.mono
        return None

    def datex2_delivered(self, uid: str, status: str, after: float) -> float | None:
        """Monotonic arrival of the first `deltaPush` the DATEX II receiver accepted after `after` that
        carries `uid`'s charging point with `status` (as the profile's enum value)."""
        point, value = self.point_ids.get(uid), DATEX_STATUS[status]
        for delivery in self.sims["datex2"].deliveries():  # type: ignore[attr-defined]  # start_all() types its values as SimServer; this key is that simulator
            if (
                delivery.mono < after
                or not delivery.accepted
                or delivery.kind != "status"
                or delivery.protocol != "deltaPush"
            ):
                continue
            if delivery.id not in self._datex2_seen:
                self._datex2_seen[delivery.id] = _point_statuses(delivery.document)
            if point is not None and self._datex2_seen[delivery.id].get(point) == value:
                return delivery.mono
        return None


def _point_statuses(document: Any) -> dict[str, Any]:
    """Charging point id -> status value in a status delivery (`{"messageContainer": {"payload": [...]}}`)."""
    found: dict[str, Any] = {}
    for item in document["messageContainer"]["payload"]:
        publication = item.get("aegiEnergyInfrastructureStatusPublication") or {}
        for site in publication.get("energyInfrastructureSiteStatus", []):
            for station in site.get("energyInfrastructureStationStatus", []):
                for refill in station.get("refillPointStatus", []):
                    for member in ("aegiElectricChargingPointStatus", "aegiRefillPointStatus"):
                        point = refill.get(member)
                        if isinstance(point, dict):
                            found[point["reference"]["idG"]] = (point.get("status") or {}).get("value")
    return found


def _reference_with_an_nz_operator(workdir: Path) -> Path:
    """The package's operator reference data plus ChargeNet's operator entry (the demo's file has a tariff for
    its connectors but no operator: its EVSEs have no EVSE id and NDW's rules would withhold them)."""
    import yaml

    from evpipeline.model.reference import default_file

    reference = yaml.safe_load(Path(default_file()).read_text())
    reference["operators"].append(
        {
            "country_code": "NZ",
            "party_id": "CNZ",
            "operator_id": "NZ*CNZ",
            "name": "ChargeNet NZ",
            "legal_name": "ChargeNet NZ Limited",
            "helpdesk": {"phone": "+64 800 000 000"},
            "staffed": False,
            "payment_means": ["paymentCreditCard", "mobileAccount"],
        }
    )
    path = workdir / "reference.yaml"
    path.write_text(yaml.safe_dump(reference, sort_keys=False))
    return path


def _source_of(party: str, location: dict[str, Any]) -> str:
    if party == "ZPT":
        return "zaptec"
    return "evroam" if location.get("country") == "NZL" else "greenflux"


def measure(greenflux_scale: float, samples: int = SAMPLES) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="evp-lane-"))
    deployment = Deployment(greenflux_scale, workdir)
    rng = random.Random(11)
    try:
        deployment.start()
        flips: list[dict[str, Any]] = []
        pools = deployment.candidates
        sims = deployment.sims
        actions: dict[str, Callable[[str, str], str]] = {
            "zaptec": lambda uid, status: (
                sims["zaptec"].set_state(uid, 710, "3" if status == "AVAILABLE" else "1"),  # type: ignore[attr-defined]  # start_all() types its values as SimServer; this key is that simulator
                "CHARGING" if status == "AVAILABLE" else "AVAILABLE",
            )[1],
            "greenflux": lambda uid, status: (
                sims["greenflux"].set_evse_status(uid, "OUTOFORDER"),  # type: ignore[attr-defined]  # start_all() types its values as SimServer; this key is that simulator
                "OUTOFORDER",
            )[1],
            "evroam": lambda uid, status: _evroam_flip(sims["evroam"], uid),
        }
        for n in range(samples):
            for source in ("zaptec", "evroam", "greenflux"):
                if n >= len(pools[source]):
                    continue
                _, uid, status = pools[source][n]
                flipped_at = time.monotonic()
                expected = actions[source](uid, status)
                flips.append(
                    {
                        "source": source,
                        "uid": uid,
                        "expected": expected,
                        "flipped": flipped_at,
                        "visible": time.monotonic() if source != "greenflux" else None,
                    }
                )
            if n < samples - 1:  # spaced apart; after the last ones, straight to waiting for their pushes
                time.sleep(rng.uniform(2.0, 6.0))
        for flip in flips:
            flip["datex2_held"] = flip["uid"] not in deployment.datex2_withheld
        deadline = time.monotonic() + TIMEOUT
        pending = list(flips)  # NDW's PATCH (row 9)
        pending_datex2 = [
            f for f in flips if f["datex2_held"]
        ]  # the DATEX II delta (row 12) of points the receiver holds
        while (pending or pending_datex2) and time.monotonic() < deadline:
            for flip in list(pending):
                arrived = deployment.delivered(flip["uid"], flip["expected"], flip["flipped"])
                if arrived is not None:
                    flip["patched"] = arrived
                    pending.remove(flip)
            for flip in list(pending_datex2):
                arrived = deployment.datex2_delivered(flip["uid"], flip["expected"], flip["flipped"])
                if arrived is not None:
                    flip["datex2"] = arrived
                    pending_datex2.remove(flip)
            time.sleep(0.2)
        for flip in flips:
            if not flip["datex2_held"]:
                flip["datex2_withheld"] = deployment.datex2_withheld[flip["uid"]]
        polls = [
            r.at for r in sims["greenflux"].requests if "/Locations" in r.path and "date_from" in r.query
        ]
        for flip in flips:
            if flip["source"] == "greenflux":
                flip["visible"] = next((t for t in sorted(polls) if t >= flip["flipped"]), None)
        from evpipeline.warehouse import connect
        from evpipeline.warehouse.resource import read_heartbeat
        from evpipeline.warehouse.rows import scalar

        slow = (
            read_heartbeat(Path(os.environ["EVPIPELINE_DATA_DIR"]) / "lane" / "heartbeat.json") or {}
        ).get("slow_cycles", [])
        deployment.stop()
        with connect(os.environ["EVPIPELINE_WAREHOUSE"], read_only=True) as con:
            evses = scalar(con.execute("SELECT count(*) FROM mart.evses"))
        return {
            "evses": evses,
            "flips": flips,
            "slow_cycles": slow,
            "datex2_held": len(deployment.datex2_held),
        }
    finally:
        deployment.stop()  # idempotent: also after a failure
        shutil.rmtree(workdir, ignore_errors=True)


def _evroam_flip(sim: Any, station: str) -> str:
    """Every connector of a station Inoperative (its EVSE turns INOPERATIVE), then NZTA's push."""
    for connector in sim.stations[station].body["connectors"]:
        sim.set_connector_status(station, connector["connectorId"], "Inoperative")
    sim.publish()
    return "INOPERATIVE"


def run(scale: Scale) -> list[Result]:
    # Quick: one small deployment, two changes per source (proves the daemon path end to end).
    sizes, samples = scale.pick(([1, 250], SAMPLES), ([0.3], 2))
    results = []
    for greenflux_scale in sizes:
        row = measure(greenflux_scale, samples)
        for source in ("zaptec", "evroam", "greenflux"):
            flips = [f for f in row["flips"] if f["source"] == source]
            done = [f for f in flips if "patched" in f and f["visible"] is not None]
            visible = [f["patched"] - f["visible"] for f in done]
            lost = len(flips) - len([f for f in flips if "patched" in f])
            extra = ""
            if source == "greenflux":
                extra = (
                    "; from the flip (30 s poll interval included): "
                    f"{_summary([f['patched'] - f['flipped'] for f in done])}"
                )
            results.append(
                Result(
                    f"9. deployment latency, {source}, {row['evses']:,} EVSEs",
                    f"{_summary(visible)} ({len(done)} samples, {lost} lost){extra}",
                    "NDW's rule: 60 s",
                    f"p95 {(_percentile(visible, 0.95) if visible else float('nan')):.1f} s",
                    "p95 <= 30 s, 0 lost",
                    bool(visible) and _percentile(visible, 0.95) <= 30 and lost == 0,
                    "daemon + run launcher (`dagster dev`), visible -> PATCH accepted; slowest lane cycles: "
                    + (
                        "; ".join(f"{c['seconds']} s {c['steps']}" for c in row["slow_cycles"][-3:])
                        or "none over 5 s"
                    ),
                    raw={"flips": flips},
                )
            )
        results += _datex2_rows(row)
    return results


def _datex2_rows(row: dict[str, Any]) -> list[Result]:
    """Row 12 per source: the same flips, visible -> the DATEX II receiver accepted a delta carrying the
    point.
    A flip of a point the DATEX II publication withholds (EVRoam's New Zealand fleet: outside AFIR's area, no
    NUTS-1 region) can reach no receiver: it is counted apart, not as lost; a source with only such flips is
    not measured."""
    results = []
    for source in ("zaptec", "evroam", "greenflux"):
        flips = [f for f in row["flips"] if f["source"] == source]
        measured = [f for f in flips if f["datex2_held"]]
        withheld = sorted({f["datex2_withheld"] for f in flips if not f["datex2_held"]})
        done = [f for f in measured if "datex2" in f and f["visible"] is not None]
        visible = [f["datex2"] - f["visible"] for f in done]
        lost = len(measured) - len([f for f in measured if "datex2" in f])
        ndw = [f["patched"] - f["visible"] for f in flips if "patched" in f and f["visible"] is not None]
        name = f"12. DATEX II delta latency, {source}, {row['evses']:,} EVSEs"
        why = (
            f"{len(flips) - len(measured)} changed points withheld by the DATEX II publication: "
            f"{'; '.join(withheld)[:200]}"
            if withheld
            else ""
        )
        if not measured:
            results.append(
                Result(
                    name,
                    f"not measured: the DATEX II publication carries none of {source}'s changed points",
                    "-",
                    "-",
                    "p95 <= 10 s, 0 lost",
                    None,
                    why,
                    raw={"flips": flips},
                )
            )
            continue
        extra = ""
        if source == "greenflux":
            extra = (
                "; from the flip (30 s poll interval included): "
                f"{_summary([f['datex2'] - f['flipped'] for f in done])}"
            )
        p95 = _percentile(visible, 0.95) if visible else float("nan")
        results.append(
            Result(
                name,
                f"{_summary(visible)} ({len(done)} samples, {lost} lost){extra}",
                f"NDW PATCH (row 9): p95 {(_percentile(ndw, 0.95) if ndw else float('nan')):.1f} s",
                f"p95 {p95:.1f} s",
                "p95 <= 10 s, 0 lost",
                bool(visible) and p95 <= 10 and lost == 0,
                "daemon + run launcher (`dagster dev`), visible -> deltaPush accepted by the DATEX II "
                "receiver carrying the point with its new status (the lane's DATEX II step follows NDW's "
                f"pushes in the same cycle); the receiver holds {row['datex2_held']:,} points"
                + (f"; {why}" if why else ""),
                raw={"flips": flips},
            )
        )
    return results
