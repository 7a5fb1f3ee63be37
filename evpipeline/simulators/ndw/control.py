"""The test-control API: scripted refusals, revoked tokens and a state dump, in Python and over
HTTP (`POST /_sim/ndw`, `GET /_sim/ndw/state`)."""

from __future__ import annotations

from evpipeline.simulators.ndw.state import NdwState
from evpipeline.simulators.toolkit import Request, Response


class NdwControl(NdwState):
    """Knobs a test turns to make NDW misbehave the way the real one can."""

    def reject_content(
        self, count: int = 1, code: int = 2000, message: str = "rejected by simulator knob"
    ) -> None:
        """Answer the next `count` pushes with HTTP 200 + OCPI `code` (2xxx) and store nothing."""
        if not 2000 <= code <= 2999:
            raise ValueError("content rejections are OCPI 2xxx codes")
        with self.lock:
            self._reject.extend([(code, message)] * count)

    def force_unauthorized(self, count: int = 1) -> None:
        """Answer the next `count` pushes with 401, as if the token had been revoked."""
        with self.lock:
            self._unauthorized += count

    def revoke_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    def _admin_knobs(self, request: Request) -> Response:
        spec = request.json() or {}
        if spec.get("reject_content"):
            self.reject_content(int(spec["reject_content"]), int(spec.get("reject_code", 2000)))
        if spec.get("force_401"):
            self.force_unauthorized(int(spec["force_401"]))
        if spec.get("revoke_tokens"):
            self.revoke_tokens()
        if "token_lifetime" in spec:
            self.token_lifetime = float(spec["token_lifetime"])
        return Response.json({"pending_rejections": len(self._reject), "pending_401": self._unauthorized})

    def _admin_state(self, request: Request) -> Response:
        with self.lock:
            return Response.json(
                {
                    "locations": list(self.locations.values()),
                    "tariffs": list(self.tariffs.values()),
                    "pushes": len(self.pushes),
                    "accepted": sum(p.accepted for p in self.pushes),
                }
            )
