"""Zaptec's test-control API: awkward installations, observations and removed chargers on demand,
and tokens that expire after a number of calls."""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

from evpipeline.simulators.zaptec.fleet import OPERATION_MODE
from evpipeline.simulators.zaptec.handlers import ZaptecHandlers


class ZaptecControl(ZaptecHandlers):
    """What tests, the CLI and benchmarks call to steer the simulator (never the pipeline)."""

    def add_installation(
        self,
        country: str = "NLD",
        *,
        public: bool = True,
        chargers: int = 1,
        time_zone: str | None = None,
        country_id: str | None = None,
    ) -> str:
        """Add an installation in `country` (NOR or NLD) now and return its id (tests).

        `time_zone` (IANA) may disagree with the country, as a Dutch site configured with Brussels
        time does; `country_id` replaces the country's GUID, e.g. with one /api/constants does not list.
        """
        with self.lock:
            # Its own random stream: adding one installation leaves the rest of the fleet as it was.
            rng = random.Random(f"zaptec:{self.seed}:added:{len(self.installations)}")
            installation = self._add_installation(rng, country, public, max(1, chargers), time_zone=time_zone)
            if country_id is not None:
                installation.body["CountryId"] = country_id
            return str(installation.body["Id"])

    def set_state(
        self,
        charger_id: str,
        state_id: int,
        value: str | None,
        when: datetime | None = None,
        *,
        publish: bool = True,
    ) -> None:
        """Change one observation now (tests)."""
        with self.lock:
            charger = self.chargers[charger_id]
            when = when or self.clock.now()
            if state_id == OPERATION_MODE and value is not None and value.isdigit():
                self._apply_mode(charger, int(value), when, publish=publish)
            else:
                self._set(charger, state_id, value, when, publish=publish)

    def inject_observation(self, charger_id: str, observation: dict[str, Any]) -> None:
        """Add a raw (possibly malformed) observation to a charger's /state answer (tests)."""
        with self.lock:
            self.chargers[charger_id].extra.append(observation)

    def remove_charger(self, charger_id: str) -> None:
        """The charger was removed from its installation: gone from lists, /state answers 404."""
        with self.lock:
            charger = self.chargers.pop(charger_id)
            installation = self.installations[charger.installation_id]
            installation.charger_ids.remove(charger_id)
            installation.body["ActiveChargerCount"] = len(installation.charger_ids)

    def expire_tokens(self, after_requests: int = 0) -> None:
        """Every token issued so far stops working after `after_requests` more API calls (tests)."""
        with self.lock:
            self._expire_countdown = after_requests
