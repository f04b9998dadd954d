"""SIP phone simulator (an IP phone or dispatch console) built on our own stack: registers
with digest to the hub's registrar and keeps the registration fresh, rings or answers
incoming calls, dials when ``dial`` is set through the lab control API (``""`` hangs up),
keys ``dtmf`` digits by SIP INFO (a conference PIN), and sends a tone over RTP (or echoes
the RTP it gets) while a call is up."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, ClassVar

from pydantic import Field

from lab.registry import register
from lab.sims.pstn_gateway import RtpTone, media_target
from lab.simulator import SimState, Simulator
from sip.calls import CallAnswered, CallDirection, CallLeg, CallManager, LegState
from sip.dialplan import Candidate, parse_address
from sip.digest import Credentials
from sip.errors import SipError
from sip.hops import Address
from sip.message import Header
from sip.offer_answer import PCMA, PCMU, TELEPHONE_EVENT, MediaCapabilities
from sip.stack import SipStack, StackConfig
from sip.transport import TransportConfig
from sip.uri import SipUri


class SipPhoneState(SimState):
    user: str = Field("phone1", min_length=1, max_length=64)
    password: str = Field("phone1-pw", max_length=64)
    domain: str = "cchub.local"
    registrar_host: str = "127.0.0.1"
    registrar_port: int = Field(0, ge=0, le=65535, description="0: do not register")
    expires: int = Field(300, ge=60, le=3600)
    auto_answer: bool = True
    ring_seconds: float = Field(0.0, ge=0, le=120)
    echo: bool = Field(False, description="echo received RTP instead of sending a tone")
    tone_hz: float = Field(1000.0, gt=0, lt=4000)
    dial: str = Field("", description="a SIP URI to call now; '' hangs up")
    dtmf: str = Field(
        "",
        pattern=r"^[0-9*#A-D]*$",
        max_length=64,
        description="digits to key now by SIP INFO on the call in progress (cleared once sent)",
    )
    dtmf_sent: int = 0
    registered: bool = False
    call_state: str = "idle"


@register("sip-phone")
class SipPhoneSimulator(Simulator):
    """The phone on a UDP (and TCP) port."""

    resource_kinds: ClassVar[tuple[str, ...]] = ("udp",)
    state_model = SipPhoneState
    state: SipPhoneState

    _stack: SipStack | None = None
    _calls: CallManager | None = None

    async def _open(self) -> None:
        self.host = getattr(self.device.resource, "host", "127.0.0.1")
        port = getattr(self.device.resource, "port", 0)
        config = StackConfig(
            transport=TransportConfig(hosts=(self.host,), port=port), rate_limit=None
        )
        self._stack = SipStack(config)
        self._calls = CallManager(self._stack, on_incoming=self._on_incoming, trust_all=True)
        self._calls.attach()
        await self._stack.start()
        self.port = self._stack.address("UDP").port
        self._leg: CallLeg | None = None
        self._rtp: RtpTone | None = None
        self._cseq = 0
        self.spawn(self._register_loop(), "registration")

    async def _close(self) -> None:
        self._stop_rtp()
        if self._calls is not None:
            await self._calls.close()
        if self._stack is not None:
            await self._stack.close()
            self._stack = None

    def site_transport(self) -> dict[str, Any]:
        return {"kind": "udp", "host": self.host, "port": self.port}

    @property
    def aor(self) -> str:
        return f"sip:{self.state.user}@{self.state.domain}"

    @property
    def credentials(self) -> Credentials:
        return Credentials(self.state.user, self.state.password)

    # -- registration ---------------------------------------------------------------------

    async def register(self, expires: int | None = None) -> int:
        """One REGISTER to the configured registrar; returns the final status."""
        assert self._stack is not None
        s = self.state
        self._cseq += 1
        response = await self._stack.request(
            "REGISTER",
            f"sip:{s.domain}",
            from_=self.aor,
            to=self.aor,
            call_id=f"reg-{self.name}@{self.host}",
            cseq=self._cseq,
            headers=[
                Header("Contact", str(self._stack.contact(s.user))),
                Header("Expires", str(s.expires if expires is None else expires)),
            ],
            credentials=self.credentials,
            destination=Address("UDP", s.registrar_host, s.registrar_port),
        )
        self._cseq = max(self._cseq, response.cseq.seq)
        ok = 200 <= response.status < 300
        if self.state.registered != ok:
            self.log.info("registration %s: %d", "ok" if ok else "failed", response.status)
        self.state.registered = ok and (expires if expires is not None else s.expires) > 0
        return response.status

    async def _register_loop(self) -> None:
        while True:
            if self.state.registrar_port and not self.link_down:
                status = await self.register()
                wait = self.state.expires / 2 if 200 <= status < 300 else 5.0
            else:
                wait = 1.0
            await asyncio.sleep(wait)

    # -- calls ----------------------------------------------------------------------------

    def _caps(self, port: int) -> MediaCapabilities:
        return MediaCapabilities(self.host, port, (PCMU, PCMA, TELEPHONE_EVENT))

    async def _media_up(self, leg: CallLeg) -> None:
        if self._rtp is None or leg.remote_sdp is None or leg.local_sdp is None:
            return
        if leg.direction is CallDirection.INBOUND:
            host, port, payload_type = media_target(leg.remote_sdp, leg.local_sdp)
        else:
            assert leg.media is not None
            host, port, payload_type = leg.media.remote_host, leg.media.remote_port, 0
            payload_type = leg.media.payload_type
        self._rtp.start((host, port), payload_type)
        self.state.call_state = "established"
        self.spawn(self._watch(leg), "call")

    async def _watch(self, leg: CallLeg) -> None:
        await leg.wait_ended()
        if self._leg is leg:
            self._leg = None
            self._stop_rtp()
            self.state.call_state = "idle"

    def _stop_rtp(self) -> None:
        if self._rtp is not None:
            self._rtp.close()
            self._rtp = None

    async def _on_incoming(self, leg: CallLeg) -> None:
        if self._leg is not None or self.link_down:
            leg.reject(486)
            return
        self._leg = leg
        leg.ring()
        self.state.call_state = "ringing"
        if not self.state.auto_answer:
            return  # rings until the caller gives up
        if self.state.ring_seconds:
            await asyncio.sleep(self.state.ring_seconds)
        if leg.state is LegState.ENDED:
            return
        self._rtp = RtpTone(self.host, frequency=self.state.tone_hz, echo=self.state.echo)
        leg.answer(self._caps(await self._rtp.open()))
        await self._media_up(leg)

    async def call(self, uri: str) -> CallLeg:
        """Dial ``uri`` through the registrar (digest as this user)."""
        assert self._calls is not None
        s = self.state
        target = SipUri.parse(uri)
        candidate = Candidate(
            parse_address(uri), None, target, (s.registrar_host, s.registrar_port), "udp"
        )
        self._rtp = RtpTone(self.host, frequency=s.tone_hz, echo=s.echo)
        caps = self._caps(await self._rtp.open())
        leg = await self._calls.originate(
            [candidate], caps, from_=self.aor, credentials=self.credentials
        )
        self._leg = leg
        self.state.call_state = "calling"
        self.spawn(self._progress(leg), "dial")
        return leg

    async def _progress(self, leg: CallLeg) -> None:
        with contextlib.suppress(SipError, TimeoutError):
            await leg.wait_for(CallAnswered, within=120.0)
            await self._media_up(leg)
            return
        if self._leg is leg:
            self._leg = None
            self._stop_rtp()
            self.state.call_state = "idle"

    async def _key(self, digits: str) -> None:
        leg = self._leg
        try:
            if leg is None or leg.state is not LegState.ESTABLISHED:
                self.log.warning("DTMF %d digits not sent: no call in progress", len(digits))
                return
            await leg.send_dtmf(digits)
            self.state.dtmf_sent += len(digits)
        except SipError as err:
            self.log.warning("DTMF not sent: %s", err)
        finally:
            self.state.dtmf = ""

    def _state_changed(self, changed: set[str], old: SimState) -> None:
        if "dtmf" in changed and self.state.dtmf:
            self.spawn(self._key(self.state.dtmf), "dtmf")
        if "dial" not in changed:
            return
        if self.state.dial:
            self.spawn(self.call(self.state.dial), "dial")
        elif self._leg is not None:
            self.spawn(self._leg.hangup(), "hangup")
