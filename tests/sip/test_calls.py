"""Call legs through the stack against real peers: SIPp as a PSTN gateway trunk (answer,
reject, no answer, route fallback, digest, max_calls) and baresip as a registered phone
(the hub calls it, it calls the hub, hold/resume, DTMF over SIP INFO)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest

from sip.calls import (
    CallAnswered,
    CallAttemptFailed,
    CallEnded,
    CallEvent,
    CallFailed,
    CallLeg,
    CallManager,
    CallRecord,
    CallRinging,
    CallTrying,
    DtmfReceived,
    LegState,
    MediaChanged,
    parse_dtmf_relay,
)
from sip.dialplan import Candidate, Dialplan, parse_address
from sip.digest import Algorithm
from sip.errors import SipParseError
from sip.offer_answer import MediaCapabilities
from sip.registrar import Registrar, SipUser
from sip.sdp import Direction
from sip.stack import SipStack, StackConfig
from sip.transaction import Timers
from sip.transport import TransportConfig
from sip.trunk import TrunkSet
from sip.trunks import Trunk
from sip.uri import SipUri
from tests.sip.peers import Baresip, Sipp

pytestmark = pytest.mark.slow

NUMBER = "pstn:+8613800138000"
CAPS = MediaCapabilities("127.0.0.1", 40000)


class Hub:
    """The parts of the hub under test: stack, registrar, trunks, call manager."""

    def __init__(self, stack: SipStack, trunks: Sequence[Trunk], **dialplan: Any) -> None:
        self.stack = stack
        self.records: list[CallRecord] = []
        self.events: list[CallEvent] = []
        self.incoming: asyncio.Queue[CallLeg] = asyncio.Queue()
        # baresip 1.0 gives up (ENOSYS) on a SHA-256 challenge next to the MD5 one
        self.registrar = Registrar(
            [SipUser("alice", "alice-pw")], realm="cchub.local", algorithms=(Algorithm.MD5,)
        )
        self.registrar.attach(stack)
        self.trunks = TrunkSet(trunks, stack)
        self.calls = CallManager(
            stack,
            dialplan=Dialplan(trunks, domain="cchub.local", **dialplan),
            trunks=self.trunks,
            registrar=self.registrar,
            on_record=self.records.append,
            on_event=lambda _leg, event: self.events.append(event),
            on_incoming=self.incoming.put_nowait,
        )
        self.calls.attach()

    @property
    def address(self) -> tuple[str, int]:
        udp = self.stack.address("UDP")
        return udp.host, udp.port


@asynccontextmanager
async def running_hub(
    trunks: Sequence[Trunk] = (), invite_answer_timeout: float = 180.0, **dialplan: Any
) -> AsyncIterator[Hub]:
    config = StackConfig(
        transport=TransportConfig(hosts=("127.0.0.1",), port=0),
        timers=Timers(t1=0.1, t2=0.8),
        invite_answer_timeout=invite_answer_timeout,
    )
    async with SipStack(config) as stack:
        hub = Hub(stack, trunks, **dialplan)
        async with hub.trunks:
            try:
                yield hub
            finally:
                await hub.calls.close()


def gateway_trunk(gateway: Sipp, trunk_id: str = "gw", **extra: Any) -> Trunk:
    return Trunk.model_validate(
        {
            "id": trunk_id,
            "type": "pstn-gateway",
            "host": "127.0.0.1",
            "port": gateway.port,
            "options_interval": None,
            **extra,
        }
    )


async def collect(leg: CallLeg, within: float = 15.0) -> list[CallEvent]:
    async def run() -> list[CallEvent]:
        return [event async for event in leg.events()]

    return await asyncio.wait_for(run(), within)


async def test_trunk_call_answered_then_hung_up() -> None:
    gateway = Sipp.uas("uas_answer", calls=1, rtp_echo=True, duration_ms=50)
    async with gateway, running_hub([gateway_trunk(gateway)]) as hub:
        leg = await hub.calls.originate(NUMBER, CAPS)
        answered = await leg.wait_for(CallAnswered)
        assert isinstance(answered, CallAnswered) and answered.trunk == "gw"
        media = leg.media
        assert media is not None
        assert (media.remote_host, media.remote_port) == ("127.0.0.1", gateway.media_port)
        assert media.codec in ("PCMA", "PCMU") and media.payload_type in (0, 8)
        assert media.ptime == 20 and media.direction is Direction.SENDRECV
        assert media.local_port == CAPS.audio_port
        assert hub.trunks.trunks["gw"].active_calls == 1
        assert hub.calls.legs == {leg.id: leg}
        await leg.hangup()
        result = await gateway.wait()
        assert result.ok, result
        assert hub.trunks.trunks["gw"].active_calls == 0
    # the request URI the dial plan built for the trunk, with the offer's codecs
    assert f"INVITE sip:+8613800138000@127.0.0.1:{gateway.port};user=phone" in result.messages
    kinds = [type(e) for e in hub.events]
    assert kinds[:3] == [CallTrying, CallRinging, CallAnswered] and kinds[-1] is CallEnded
    (record,) = hub.records
    assert (record.direction, record.remote, record.trunk, record.reason) == (
        "outbound",
        NUMBER,
        "gw",
        "local-bye",
    )
    assert record.answer_ts is not None and record.end_ts >= record.answer_ts


async def test_trunk_rejects_with_486() -> None:
    gateway = Sipp.uas("uas_reject", calls=1, reject=(486, "Busy Here"), duration_ms=50)
    async with gateway, running_hub([gateway_trunk(gateway)]) as hub:
        leg = await hub.calls.originate(NUMBER, CAPS)
        events = await collect(leg)
        assert (await gateway.wait()).ok  # our ACK for the 486 came
    failed = events[-1]
    assert isinstance(failed, CallFailed)
    assert (failed.status, failed.reason, failed.attempts) == (486, "Busy Here", 1)
    assert leg.state is LegState.ENDED
    assert hub.records[0].status == 486


async def test_no_answer_is_cancelled_after_the_ring_timeout() -> None:
    gateway = Sipp.uas("uas_no_answer", calls=1)
    async with gateway, running_hub([gateway_trunk(gateway)]) as hub:
        leg = await hub.calls.originate(NUMBER, CAPS, ring_timeout=0.5)
        events = await collect(leg)
        result = await gateway.wait()
    assert result.ok, result  # it got CANCEL, answered 487 and had it ACKed
    assert "CANCEL sip:+8613800138000" in result.messages
    assert any(isinstance(e, CallRinging) for e in events)
    failed = events[-1]
    assert isinstance(failed, CallFailed) and (failed.status, failed.reason) == (408, "no-answer")


async def test_fallback_to_the_next_route_reports_which_answered() -> None:
    busy = Sipp.uas("uas_reject", calls=1, reject=(503, "Service Unavailable"), duration_ms=50)
    sat = Sipp.uas("uas_answer", calls=1, duration_ms=50)
    async with busy, sat:
        trunks = [
            gateway_trunk(busy, "pstn-gw"),
            gateway_trunk(sat, "sat-gw", type="satellite-gateway"),
        ]
        routes = {"county-chief": [NUMBER, "sat:17400000001"]}
        async with running_hub(trunks, endpoints=routes) as hub:
            leg = await hub.calls.originate("county-chief", CAPS)
            answered = await leg.wait_for(CallAnswered)
            await leg.hangup()
            assert (await busy.wait()).ok and (await sat.wait()).ok
    assert isinstance(answered, CallAnswered)
    assert (answered.route, answered.trunk) == (1, "sat-gw")
    failed = [e for e in hub.events if isinstance(e, CallAttemptFailed)]
    assert [(e.route, e.trunk, e.status) for e in failed] == [(0, "pstn-gw", 503)]


async def test_trunk_with_digest_challenge() -> None:
    async with Sipp.uas("uas_auth_answer", calls=1, duration_ms=50) as gateway:
        trunk = gateway_trunk(gateway, username="hub", password="gw-secret")
        async with running_hub([trunk]) as hub:
            leg = await hub.calls.originate(NUMBER, CAPS)
            await leg.wait_for(CallAnswered)
            assert leg.media is not None and leg.media.codec == "PCMA"
            await leg.hangup()
            result = await gateway.wait()
    assert result.ok, result
    assert 'Authorization: Digest username="hub", realm="gw.test"' in result.messages


async def test_trunk_max_calls_skips_a_full_trunk() -> None:
    gateway = Sipp.uas("uas_answer", calls=1, duration_ms=50)
    async with gateway, running_hub([gateway_trunk(gateway, max_calls=1)]) as hub:
        first = await hub.calls.originate(NUMBER, CAPS)
        await first.wait_for(CallAnswered)
        second = await hub.calls.originate(NUMBER, CAPS)
        events = await collect(second)
        skipped = [e for e in events if isinstance(e, CallAttemptFailed)]
        assert [(e.trunk, e.reason) for e in skipped] == [("gw", "trunk-full")]
        failed = events[-1]
        assert isinstance(failed, CallFailed) and failed.reason == "trunk-full"
        assert not any(isinstance(e, CallTrying) for e in events)
        await first.hangup()
        assert (await gateway.wait()).ok


def test_dtmf_relay_bodies() -> None:
    assert parse_dtmf_relay(b"Signal=5\r\nDuration=160\r\n") == ("5", 160)
    assert parse_dtmf_relay(b"signal= 11\r\n") == ("#", 250)
    with pytest.raises(SipParseError, match="without Signal"):
        parse_dtmf_relay(b"Duration=100")
    with pytest.raises(SipParseError, match="bad signal"):
        parse_dtmf_relay(b"Signal=Z")


# -- baresip: a registered phone ---------------------------------------------------------------


async def test_hub_calls_registered_baresip_hold_resume_dtmf() -> None:
    async with running_hub() as hub:
        phone = Baresip("alice", "alice-pw", registrar=hub.address)
        async with phone:
            await phone.registered(within=10.0)
            (binding,) = hub.registrar.lookup("alice")
            leg = await hub.calls.originate("user:alice", CAPS)
            await leg.wait_for(CallAnswered)
            assert leg.media is not None and leg.media.remote_port > 0
            assert leg.media.codec in ("PCMU", "PCMA")
            held = await leg.hold()
            assert held is not None and held.direction is Direction.SENDONLY and leg.held
            resumed = await leg.resume()
            assert resumed is not None and resumed.direction is Direction.SENDRECV
            await leg.send_dtmf("12#")
            await leg.hangup()
            await phone.event("CALL_CLOSED", within=5.0)
    changes = [e for e in hub.events if isinstance(e, MediaChanged)]
    assert [c.held for c in changes] == [True, False]
    assert hub.records[0].remote == "user:alice"
    assert (binding.uri.host, binding.uri.port) == ("127.0.0.1", phone.port)


async def test_registered_baresip_calls_the_hub() -> None:
    async with running_hub() as hub:
        phone = Baresip("alice", "alice-pw", registrar=hub.address)
        async with phone:
            await phone.registered(within=10.0)
            await phone.dial(f"sip:110@{hub.address[0]}:{hub.address[1]}")
            leg = await asyncio.wait_for(hub.incoming.get(), 10.0)
            assert leg.caller == "alice" and leg.state is LegState.INCOMING
            leg.ring()
            media = leg.answer(CAPS)
            assert media is not None and media.remote_port > 0
            await phone.event("CALL_ESTABLISHED", within=5.0)
            await phone.hangup()
            await leg.wait_ended(within=5.0)
    ended = [e for e in hub.events if isinstance(e, CallEnded)]
    assert [e.cause for e in ended] == ["remote-bye"]
    assert hub.records[0].direction == "inbound"


async def test_unauthenticated_invite_is_challenged_and_unknown_user_refused() -> None:
    async with running_hub() as hub:
        phone = Baresip("mallory", "guess", registrar=hub.address)
        async with phone:
            await phone.dial(f"sip:110@{hub.address[0]}:{hub.address[1]}")
            await phone.event("CALL_CLOSED", within=10.0)
        assert hub.incoming.empty()
        assert hub.registrar.counters.auth_failed >= 1


async def test_peer_leg_dtmf_info_and_hold_from_the_hub() -> None:
    """A second stack on 127.0.0.1 plays a trusted SIP peer (a trunk by source address):
    its INFO digits surface as ``DtmfReceived``, and the hub's hold reaches it."""
    async with running_hub() as hub:
        peer_trunk = Trunk.model_validate(
            {"id": "peer", "type": "sip-peer", "host": "127.0.0.1", "options_interval": None}
        )
        hub.calls.trunks = TrunkSet([peer_trunk], hub.stack)
        config = StackConfig(transport=TransportConfig(hosts=("127.0.0.1",), port=0))
        async with SipStack(config) as peer_stack:
            peer = CallManager(peer_stack)
            host, port = hub.address
            uri = f"sip:110@{host}:{port}"
            target = Candidate(parse_address(uri), None, SipUri.parse(uri), (host, port), "udp")
            leg = await peer.originate([target], CAPS)
            incoming = await asyncio.wait_for(hub.incoming.get(), 5.0)
            assert (incoming.trunk, incoming.caller) == ("peer", None)
            incoming.answer(MediaCapabilities("127.0.0.1", 41000))
            await leg.wait_for(CallAnswered)
            assert leg.media is not None and leg.media.remote_port == 41000
            await leg.send_dtmf("5*")
            digits = [
                e.digit for e in [await incoming.wait_for(DtmfReceived) for _ in range(2)]
                if isinstance(e, DtmfReceived)
            ]  # fmt: skip
            assert digits == ["5", "*"]
            held = await incoming.hold()
            assert held is not None and held.direction is Direction.SENDONLY
            change = await leg.wait_for(MediaChanged)
            assert isinstance(change, MediaChanged) and change.held
            assert change.media is not None and change.media.direction is Direction.RECVONLY
            await leg.hangup()
            await incoming.wait_ended(within=5.0)
            await peer.close()


async def test_inbound_call_left_unanswered_ends_with_408() -> None:
    async with running_hub(invite_answer_timeout=0.3) as hub:
        trunk = Trunk.model_validate(
            {"id": "peer", "type": "sip-peer", "host": "127.0.0.1", "options_interval": None}
        )
        hub.calls.trunks = TrunkSet([trunk], hub.stack)
        config = StackConfig(transport=TransportConfig(hosts=("127.0.0.1",), port=0))
        async with SipStack(config) as peer_stack:
            peer = CallManager(peer_stack)
            host, port = hub.address
            uri = f"sip:110@{host}:{port}"
            target = Candidate(parse_address(uri), None, SipUri.parse(uri), (host, port), "udp")
            leg = await peer.originate([target], CAPS)
            incoming = await asyncio.wait_for(hub.incoming.get(), 5.0)
            incoming.ring()
            failed = await leg.wait_for(CallFailed)
            assert isinstance(failed, CallFailed) and failed.status == 408
            await incoming.wait_ended(within=5.0)
            assert (incoming.status, incoming.reason) == (408, "no-answer")
            await peer.close()
