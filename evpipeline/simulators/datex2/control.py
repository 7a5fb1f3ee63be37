"""The test-control surface, in Python and over HTTP (no auth: a loopback test surface, like the
NDW simulator's `/_sim/ndw`):

- `GET  /control/deliveries` -> `{"deliveries": [<delivery>, ...]}` (oldest first, no bodies)
- `GET  /control/state`      -> what the receiver holds (`Datex2State.state`)
- `POST /control/reset`      -> forget everything (and every scripted fault)
- `POST /control/faults`     -> `{"fail": N, "status": 503|429|500|502|504, "endpoint": "static"|"status",
  "disconnect": N, "latency": seconds, "retry_after": seconds, "clear": true}` (each optional)

Faults use the toolkit's script, limited to the delivery paths so the control surface keeps
answering: `fail_next` answers the next N deliveries with 503/429 (+ Retry-After) before anything is
read or stored; `drop_connections` lets the next N deliveries be processed (and recorded) and then
hangs up halfway through the answer, as a proxy dropping the line after the receiver committed.
`hold_next` (Python only) holds the next delivery to an endpoint before it is judged until the test
releases it, so a test can put a second delivery ahead of one already in flight.
"""

from __future__ import annotations

from typing import Any

from evpipeline.simulators.datex2.state import BASE, Datex2State, Gate
from evpipeline.simulators.toolkit import Request, Response

FAIL_STATUSES = (429, 500, 502, 503, 504)


class Datex2Control(Datex2State):
    """Knobs a test turns to make the access point misbehave the way a real one can."""

    def _fault_path(self, endpoint: str | None) -> str:
        if endpoint not in (None, "static", "status"):
            raise ValueError(f"endpoint is 'static', 'status' or None, not {endpoint!r}")
        return f"{BASE}/{endpoint}" if endpoint else f"{BASE}/"

    def fail_next(self, count: int = 1, status: int = 503, endpoint: str | None = None) -> None:
        """Answer the next `count` deliveries (to `endpoint`, or either) with `status` and Retry-After."""
        if status not in FAIL_STATUSES:
            raise ValueError(f"status is one of {FAIL_STATUSES}")
        self.faults.inject(str(status), count, self._fault_path(endpoint))

    def drop_connections(self, count: int = 1, endpoint: str | None = None) -> None:
        """Process the next `count` deliveries, then close the connection halfway through the answer."""
        self.faults.inject("disconnect", count, self._fault_path(endpoint))

    def add_latency(self, seconds: float) -> None:
        """Delay every delivery by `seconds` (0 turns it off); the control surface is not delayed."""
        with self.lock:
            self.delivery_latency = max(0.0, float(seconds))

    def hold_next(self, endpoint: str) -> Gate:
        """Hold the next delivery to `endpoint` ('static' or 'status') before it is judged, until the
        returned gate's `release` is set: a test orders two deliveries in flight without sleeping."""
        if endpoint not in ("static", "status"):
            raise ValueError(f"endpoint is 'static' or 'status', not {endpoint!r}")
        gate = Gate()
        with self.lock:
            self.gates[endpoint] = gate
        return gate

    def set_retry_after(self, seconds: float) -> None:
        """The Retry-After (seconds) sent with injected 429/503 answers."""
        self.faults.retry_after = float(seconds)

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()
            self.delivery_latency = 0.0

    # -- over HTTP -----------------------------------------------------------------------------
    def _control_deliveries(self, request: Request) -> Response:
        return Response.json({"deliveries": [d.to_json() for d in self.deliveries()]})

    def _control_state(self, request: Request) -> Response:
        return Response.json(self.state())

    def _control_reset(self, request: Request) -> Response:
        self.reset()
        return Response.json({"reset": True})

    def _control_faults(self, request: Request) -> Response:
        try:
            spec: Any = request.json() or {}
            if not isinstance(spec, dict):
                raise ValueError("the body is a JSON object")
            if spec.get("clear"):
                self.clear_faults()
            endpoint = spec.get("endpoint")
            if spec.get("fail"):
                self.fail_next(int(spec["fail"]), int(spec.get("status", 503)), endpoint)
            if spec.get("disconnect"):
                self.drop_connections(int(spec["disconnect"]), endpoint)
            if "latency" in spec:
                self.add_latency(float(spec["latency"]))
            if "retry_after" in spec:
                self.set_retry_after(float(spec["retry_after"]))
        except (TypeError, ValueError) as exc:
            return Response.json({"errors": [str(exc)]}, 400)
        return Response.json(
            {
                "pending_faults": self.faults.pending,
                "latency": self.delivery_latency,
                "retry_after": self.faults.retry_after,
            }
        )
