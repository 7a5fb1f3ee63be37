"""EVRoam's test-control API: deletes and status changes on demand, hand-made push notifications,
expiring push files, and the `/_sim/push` admin endpoint."""

from __future__ import annotations

import time
from typing import Any

from evpipeline.simulators.evroam.handlers import EVRoamHandlers
from evpipeline.simulators.toolkit import Request, Response


class EVRoamControl(EVRoamHandlers):
    """What tests, the CLI and benchmarks call to steer the simulator (never the pipeline)."""

    def _add_control_routes(self) -> None:
        self.route("POST", r"/_sim/push", self._admin_push)

    def soft_delete_station(self, station_id: str) -> None:
        with self.lock:
            self._soft_delete(self.stations[station_id], self.clock.now())

    def soft_delete_site(self, site_id: str) -> None:
        with self.lock:
            record = self.sites[site_id]
            record.body["providerDeleted"] = True
            record.modified = record.soft_deleted_at = self.clock.now()

    def soft_delete_connector(self, station_id: str, connector_id: str) -> None:
        self._edit_connector(station_id, connector_id, "providerDeleted", True)

    def hard_delete_station(self, station_id: str) -> None:
        """Remove a record outright (NZTA only does this after a soft delete, but a consumer must cope)."""
        with self.lock:
            self.stations.pop(station_id, None)
            self.availabilities.pop(station_id, None)

    def set_connector_status(self, station_id: str, connector_id: str, status: str) -> None:
        self._edit_connector(station_id, connector_id, "operationStatus", status)

    def _edit_connector(self, station_id: str, connector_id: str, name: str, value: Any) -> None:
        """Set one field of a station's connector now; the station counts as modified."""
        with self.lock:
            record = self.stations[station_id]
            for connector in record.body["connectors"]:
                if connector["connectorId"] == connector_id:
                    connector[name] = value
            record.modified = self.clock.now()

    def wait_validated(self, timeout: float = 5.0) -> bool:
        """Wait until the webhook answered the validation handshake."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.subscription and self.subscription.validated:
                return True
            time.sleep(0.02)
        return False

    def push_records(self, kind: str, records: list[dict[str, Any]]) -> dict[str, Any]:
        """Deliver a hand-made notification (tests): stage the file and POST its event."""
        if self.subscription is None:
            raise RuntimeError("no webhook subscription")
        with self.lock:
            event = self._stage_file(kind, records, self.clock.now())
        status, _ = self._post(self.subscription.endpoint, [event])
        self.subscription.deliveries.append({"status": status, "events": [event]})
        return event

    def expire_files(self) -> None:
        """Delete every staged file (as storage does after their lifetime)."""
        with self.lock:
            self.files.clear()

    def _admin_push(self, request: Request) -> Response:
        return Response.json({"events": self.publish()})
