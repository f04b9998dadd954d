"""SIP OPTIONS pings of trunks and gateways. The hub hands in the SIP user agent (its
``sip.stack``) as an :class:`OptionsClient`; monitoring does not import ``sip`` (layers).

A final answer in the target's ``alive`` list (default: any below 500) means the peer's
SIP stack is up; a local 408 (no answer) or 503 (transport error) or a 5xx/6xx fails the
poll. Samples: ``sip.options_rtt_ms`` and ``sip.options_status``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from monitoring.coordinator import Coordinator, Feed, PollFailed
from monitoring.samples import Sample
from monitoring.targets import SipOptionsTarget


@dataclass(frozen=True)
class OptionsAnswer:
    """The final response: ``local`` when the stack made it up (timeout, transport)."""

    status: int
    reason: str
    local: bool = False


class OptionsClient(Protocol):
    async def options(self, uri: str, within: float) -> OptionsAnswer:
        """Send OPTIONS to ``uri`` and return its final answer within ``within`` seconds."""


class SipOptionsProbe(Coordinator):
    """Pings one SIP URI with OPTIONS."""

    kind = "sip-options"
    target: SipOptionsTarget

    def __init__(
        self, target: SipOptionsTarget, feed: Feed, client: OptionsClient, **kwargs: Any
    ) -> None:
        super().__init__(target, feed, **kwargs)
        self.client = client

    def alive(self, status: int) -> bool:
        if self.target.alive is not None:
            return status in self.target.alive
        return 200 <= status < 500

    async def _fetch(self) -> Sequence[Sample]:
        started = time.perf_counter()
        answer = await self.client.options(self.target.uri, self.target.deadline - 0.5)
        rtt_ms = (time.perf_counter() - started) * 1000.0
        if answer.local:
            code = "timeout" if answer.status == 408 else "refused"
            raise PollFailed(code, f"OPTIONS {self.target.uri}: {answer.status} {answer.reason}")
        if not self.alive(answer.status):
            self.count(f"status_{answer.status}")
            raise PollFailed(
                "device", f"OPTIONS {self.target.uri} answered {answer.status} {answer.reason}"
            )
        now = self._clock()
        return [
            self.make_sample("sip.options_rtt_ms", rtt_ms, now, "ms"),
            self.make_sample("sip.options_status", float(answer.status), now),
        ]
