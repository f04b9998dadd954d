"""PSTN gateway simulator (an FXO/E1 gateway seen from the hub): a SIP UA on UDP/TCP built
on our own stack that answers the numbers called through it, each as told through the lab
control API (answer, ring N s then answer, reject with a status, busy, never answer), with
optional digest challenges, and sends a G.711 tone over RTP while a call is up.

``RtpTone`` (an RTP sender of a tone, or an echo of what it receives) is shared with the
SIP phone simulator.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import struct
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from lab.registry import register
from lab.simulator import SimState, Simulator
from sip.dialog import Dialog
from sip.offer_answer import PCMA, PCMU, TELEPHONE_EVENT, MediaCapabilities, answer
from sip.registrar import Registrar, SipUser
from sip.sdp import SessionDescription
from sip.stack import SipStack, StackConfig
from sip.transport import TransportConfig
from sip.uas import IncomingRequest

Action = Literal["answer", "ring", "reject", "busy", "no-answer"]
FRAME = 160  # 20 ms of 8 kHz G.711


# -- RTP ------------------------------------------------------------------------------------


def _ulaw(sample: int) -> int:
    """One 16-bit linear sample to G.711 mu-law (ITU-T G.711, bias 0x84)."""
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), 32635) + 0x84
    exponent = max(0, magnitude.bit_length() - 8)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def _alaw(sample: int) -> int:
    """One 16-bit linear sample to G.711 A-law."""
    sign = 0x80 if sample >= 0 else 0
    magnitude = min(abs(sample), 32767) >> 3
    if magnitude < 32:
        code = magnitude >> 1
    else:
        exponent = magnitude.bit_length() - 5
        code = (exponent << 4) | ((magnitude >> exponent) & 0x0F)
    return (sign | code) ^ 0x55


def tone_frames(frequency: float, payload_type: int, level: float = 0.3) -> list[bytes]:
    """One second of a sine tone as 50 G.711 frames (PCMU for 0, PCMA for 8)."""
    encode = _ulaw if payload_type == 0 else _alaw
    samples = [
        encode(int(level * 32767 * math.sin(2 * math.pi * frequency * n / 8000)))
        for n in range(8000)
    ]
    data = bytes(samples)
    return [data[i : i + FRAME] for i in range(0, 8000, FRAME)]


class _RtpProtocol(asyncio.DatagramProtocol):
    def __init__(self, owner: RtpTone) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.owner.received += 1
        if self.owner.echo and self.owner.transport is not None and len(data) >= 12:
            self.owner.transport.sendto(data, addr)


class RtpTone:
    """A UDP RTP port: sends a tone every 20 ms to the peer (or echoes what it gets)."""

    def __init__(self, host: str, *, frequency: float = 440.0, echo: bool = False) -> None:
        self.host = host
        self.frequency = frequency
        self.echo = echo
        self.port = 0
        self.sent = 0
        self.received = 0
        self.transport: asyncio.DatagramTransport | None = None
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> int:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _RtpProtocol(self), local_addr=(self.host, 0)
        )
        self.transport = transport
        self.port = int(transport.get_extra_info("sockname")[1])
        return self.port

    def start(self, remote: tuple[str, int], payload_type: int) -> None:
        if not self.echo and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._send(remote, payload_type))

    async def _send(self, remote: tuple[str, int], payload_type: int) -> None:
        frames = tone_frames(self.frequency, payload_type)
        ssrc = secrets.randbits(32)
        seq, timestamp = secrets.randbits(16), secrets.randbits(32)
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while self.transport is not None:
            header = struct.pack("!BBHII", 0x80, payload_type & 0x7F, seq, timestamp, ssrc)
            self.transport.sendto(header + frames[self.sent % len(frames)], remote)
            self.sent += 1
            seq, timestamp = (seq + 1) & 0xFFFF, (timestamp + FRAME) & 0xFFFFFFFF
            next_at += 0.02  # drift-corrected 20 ms clock
            await asyncio.sleep(max(0.0, next_at - loop.time()))

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self.transport is not None:
            self.transport.close()
            self.transport = None


def media_target(offer: SessionDescription, our_answer: SessionDescription) -> tuple[str, int, int]:
    """(remote RTP host, port, payload type) from an offer and our answer to it."""
    media = offer.media[0]
    connection = offer.media_connection(0)
    host = connection.address if connection is not None else "127.0.0.1"
    payload_type = our_answer.media[0].payload_types[0] if our_answer.media[0].formats else 0
    return host, media.port, payload_type


# -- the gateway ----------------------------------------------------------------------------


class NumberBehaviour(BaseModel):
    """What the gateway does with a call to one number."""

    model_config = ConfigDict(extra="forbid")
    action: Action = "answer"
    ring_seconds: float = Field(0.0, ge=0, le=600, description="ring before answering")
    status: int = Field(480, ge=300, le=699, description="reject: the final status")
    reason: str = Field("", max_length=64)
    tone_hz: float | None = Field(
        None, gt=0, lt=4000, description="the tone this number sends (default: the gateway's)"
    )


class PstnGatewayState(SimState):
    numbers: dict[str, NumberBehaviour] = Field({}, description="per dialled number")
    default: NumberBehaviour = NumberBehaviour()
    username: str | None = Field(None, description="challenge INVITEs (digest) when set")
    password: str | None = None
    tone_hz: float = Field(440.0, gt=0, lt=4000)
    answered: int = 0
    rejected: int = 0
    active_calls: int = 0
    last_number: str = ""


@register("sip-pstn-gateway")
class PstnGatewaySimulator(Simulator):
    """The PSTN gateway on a UDP (and TCP) port; the hub reaches it as a trunk."""

    resource_kinds: ClassVar[tuple[str, ...]] = ("udp",)
    state_model = PstnGatewayState
    state: PstnGatewayState
    site_trunk_type: ClassVar[str] = "pstn-gateway"

    _stack: SipStack | None = None
    _auth: Registrar | None = None

    async def _open(self) -> None:
        self.host = getattr(self.device.resource, "host", "127.0.0.1")
        config = StackConfig(
            transport=TransportConfig(
                hosts=(self.host,), port=getattr(self.device.resource, "port", 0)
            ),
            rate_limit=None,
            domain="gateway.sim",
        )
        self._stack = SipStack(config)
        self._stack.set_handler("INVITE", self._on_invite)
        await self._stack.start()
        self.port = self._stack.address("UDP").port
        self._calls: dict[str, RtpTone] = {}

    async def _close(self) -> None:
        for rtp in self._calls.values():
            rtp.close()
        self._calls.clear()
        if self._stack is not None:
            await self._stack.close()
            self._stack = None

    def site_transport(self) -> dict[str, Any]:
        return {"kind": "udp", "host": self.host, "port": self.port}

    def site_trunk(self, name: str) -> dict[str, Any]:
        """The hub's ``trunks:`` entry for this gateway."""
        entry: dict[str, Any] = {
            "id": name,
            "type": self.site_trunk_type,
            "host": self.host,
            "port": self.port,
            "options_interval": 30,
        }
        if self.state.username:
            entry["username"] = self.state.username
            entry["password"] = self.state.password or ""
        return entry

    def _behaviour(self, number: str) -> NumberBehaviour:
        return self.state.numbers.get(number, self.state.default)

    def _challenge(self, incoming: IncomingRequest) -> bool:
        """Answer 401 unless the INVITE carries good credentials (True: go on)."""
        if not self.state.username:
            return True
        user = SipUser(self.state.username, self.state.password or "")
        registrar = self._auth
        if registrar is None or registrar.users != [user]:
            # kept between requests: its nonces are only valid for the same instance
            registrar = self._auth = Registrar([user], realm="gateway.sim")
        result = registrar.authenticate(incoming.request)
        if result.ok:
            return True
        incoming.send(registrar.challenge(incoming.request, result, to_tag=incoming.to_tag))
        return False

    async def _on_invite(self, incoming: IncomingRequest) -> None:
        if self.link_down or not self._challenge(incoming):
            return
        uri = incoming.request.uri
        number = getattr(uri, "user", None) or getattr(uri, "number", "") or ""
        self.state.last_number = number
        behaviour = self._behaviour(number)
        self.log.info("INVITE for %s: %s", number, behaviour.action)
        if behaviour.action in ("reject", "busy"):
            status = 486 if behaviour.action == "busy" else behaviour.status
            incoming.respond(status, behaviour.reason or None)
            self.state.rejected += 1
            return
        incoming.respond(180)
        if behaviour.action == "no-answer":
            return  # rings until the caller cancels (the stack answers 487)
        if behaviour.action == "ring" and behaviour.ring_seconds:
            await asyncio.sleep(behaviour.ring_seconds)
        if incoming.cancelled or incoming.answered:
            return
        await self._answer(incoming, behaviour.tone_hz or self.state.tone_hz)

    async def _answer(self, incoming: IncomingRequest, tone_hz: float) -> None:
        try:
            offer = SessionDescription.parse(incoming.request.body)
        except ValueError as err:
            incoming.respond(488, f"Not Acceptable Here ({err})")
            return
        rtp = RtpTone(self.host, frequency=tone_hz)
        port = await rtp.open()
        caps = MediaCapabilities(self.host, port, (PCMA, PCMU, TELEPHONE_EVENT))
        sdp = answer(offer, caps)
        if not sdp.media or sdp.media[0].rejected:
            rtp.close()
            incoming.respond(488, "Not Acceptable Here (no common codec)")
            return
        incoming.respond(200, body=bytes(sdp), content_type="application/sdp")
        dialog = incoming.dialog
        assert dialog is not None and self._stack is not None
        self._calls[dialog.id.call_id] = rtp
        self.state.answered += 1
        self.state.active_calls = len(self._calls)
        host, remote_port, payload_type = media_target(offer, sdp)
        rtp.start((host, remote_port), payload_type)
        self._stack.bind_dialog(dialog, lambda request: self._in_dialog(dialog, request))

    def _in_dialog(self, dialog: Dialog, incoming: IncomingRequest) -> None:
        if incoming.method == "BYE":
            rtp = self._calls.pop(dialog.id.call_id, None)
            if rtp is not None:
                rtp.close()
            self.state.active_calls = len(self._calls)
            incoming.respond(200)
        elif incoming.method == "INVITE":  # hold/resume: answer with the same port
            rtp = self._calls.get(dialog.id.call_id)
            try:
                offer = SessionDescription.parse(incoming.request.body)
            except ValueError:
                dialog.end_remote_invite()
                incoming.respond(488)
                return
            caps = MediaCapabilities(
                self.host, rtp.port if rtp else 0, (PCMA, PCMU, TELEPHONE_EVENT)
            )
            incoming.respond(200, body=bytes(answer(offer, caps)), content_type="application/sdp")
        else:
            incoming.respond(200)
