"""Dial-in to standing rooms through a running hub, real SIP and RTP on 127.0.0.1: PINs keyed
by SIP INFO and by RFC 4733 (our own phone and SIPp playing its DTMF captures), the lobby,
the moderator PIN, wrong PINs and the per-source lockout, unknown numbers, locked and full
rooms, and a caller that never keys anything."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hub.bus import Subscription
from hub.conferences import ParticipantRole, ParticipantState
from hub.config import SiteConfig
from hub.events import ConferenceDialIn
from hub.runtime import Hub
from sip.calls import CallAnswered, CallFailed, CallLeg, CallManager
from sip.digest import Credentials
from sip.stack import SipStack, StackConfig
from sip.transport import TransportConfig
from tests.hub.confkit import (
    DOMAIN,
    HOST,
    TE_101,
    hub_candidate,
    phone_media,
    sim_bench,
    sim_device,
    sip_port,
    sip_site_dict,
)
from tests.media.rtp_phone import RtpPhone, eventually, listen
from tests.sip.peers import Sipp, free_port

pytestmark = pytest.mark.slow

USER, PASSWORD = "dispatcher-user", "disp-sip-pw"
PIN, MODERATOR_PIN = "1357", "2468"
SIPP_PCAPS = Path("/usr/share/sip-tester")


def dialin_site(tmp_path: Path, **conferences: Any) -> SiteConfig:
    data = sip_site_dict(tmp_path, dispatcher_password=PASSWORD)  # calls in with digest
    data["conferences"] = {
        "rtp_host": HOST,
        "pin_attempts": 3,
        "pin_lockout": 300,
        "pin_timeout": 5,
        "pin_digit_timeout": 3,
        "profiles": {"tiny": {"max_participants": 1}},
        "rooms": [
            {"id": "ops", "name": "Operations bridge", "number": "8000", "pin": PIN,
             "moderator_pin": MODERATOR_PIN},
            {"id": "desk", "name": "Duty desk", "number": "8002", "profile": "tiny"},
        ],
        **conferences,
    }  # fmt: skip
    return SiteConfig.model_validate(data)


@dataclass
class Call:
    leg: CallLeg
    phone: RtpPhone
    status: int = 0  # the final status when refused
    reason: str = ""


class Caller:
    """A SIP phone of our own stack calling the hub as a digest user, one RtpPhone per call."""

    def __init__(self, hub: Hub) -> None:
        self.port = sip_port(hub)
        config = StackConfig(transport=TransportConfig(hosts=(HOST,), port=0), rate_limit=None)
        self.stack = SipStack(config)
        self.calls = CallManager(self.stack)
        self.phones: list[RtpPhone] = []

    async def __aenter__(self) -> Caller:
        await self.stack.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.calls.close()
        for phone in self.phones:
            await phone.stop()
            phone.close()
        await self.stack.close()

    async def dial(self, number: str, tone: float | None = None) -> Call:
        """Call ``number`` at the hub: answered (the phone sends ``tone``) or refused."""
        phone = await RtpPhone.create()
        self.phones.append(phone)
        leg = await self.calls.originate(
            [hub_candidate(number, self.port)],
            phone_media(phone, TE_101),
            from_=f"sip:{USER}@centre.test",
            credentials=Credentials(USER, PASSWORD),
        )
        async for event in leg.events():
            if isinstance(event, CallAnswered):
                assert event.media is not None and event.media.dtmf_payload_type == 101
                phone.start((event.media.remote_host, event.media.remote_port), tone)
                return Call(leg, phone)
            if isinstance(event, CallFailed):
                return Call(leg, phone, event.status, event.reason)
        raise AssertionError(f"{leg} ended without an answer or a failure")


@contextlib.asynccontextmanager
async def dialin_events(hub: Hub) -> AsyncIterator[Subscription]:
    sub = hub.bus.subscribe("test-dialin", accept=lambda e: isinstance(e, ConferenceDialIn))
    try:
        yield sub
    finally:
        sub.close()


@contextlib.asynccontextmanager
async def dialin_hub(
    tmp_path: Path, **conferences: Any
) -> AsyncIterator[tuple[Hub, Caller, Subscription]]:
    """A hub on ``dialin_site``, a ``Caller`` and the hub's dial-in outcomes."""
    async with (
        Hub(dialin_site(tmp_path, **conferences)) as hub,
        Caller(hub) as caller,
        dialin_events(hub) as events,
    ):
        yield hub, caller, events


async def next_outcome(sub: Subscription, within: float = 10.0) -> ConferenceDialIn:
    event = await asyncio.wait_for(sub.get(), within)
    assert isinstance(event, ConferenceDialIn)
    return event


async def until(predicate: Callable[[], bool], within: float = 10.0) -> None:
    await eventually(predicate, within)


async def test_pin_by_sip_info_and_by_rfc4733_joins_and_hears_the_room(tmp_path: Path) -> None:
    async with dialin_hub(tmp_path) as (hub, caller, events):
        alice = await caller.dial("8000", tone=700.0)
        assert alice.status == 0, alice.reason
        room = hub.conferences.get("ops")
        (pa,) = room.participants.values()
        await until(lambda: pa.state is ParticipantState.LOBBY)
        await alice.leg.send_dtmf(PIN + "#")  # SIP INFO
        admitted = await next_outcome(events)
        assert (admitted.outcome, admitted.participant, admitted.role) == (
            "admitted",
            pa.id,
            "participant",
        )
        assert (admitted.conference, admitted.number, admitted.source) == ("ops", "8000", HOST)
        assert pa.state is ParticipantState.JOINED

        bob = await caller.dial("8000", tone=1100.0)
        pb = next(p for p in room.participants.values() if p.id != pa.id)
        await until(lambda: pb.state is ParticipantState.LOBBY)
        # in the lobby bob hears the PIN prompt, not the room
        await listen([bob.phone], 0.4)
        assert 700.0 not in bob.phone.tones([700.0, 1100.0, 1400.0])
        bob.phone.dtmf.queue(PIN + "#")  # RFC 4733 events on bob's RTP stream
        admitted = await next_outcome(events)
        assert (admitted.outcome, admitted.participant) == ("admitted", pb.id)
        assert pb.state is ParticipantState.JOINED and pb.role is ParticipantRole.PARTICIPANT

        # each hears the other's tone (Goertzel), not its own
        candidates = [700.0, 1100.0]
        await until(lambda: alice.phone.tones(candidates) == {1100.0})
        await until(lambda: bob.phone.tones(candidates) == {700.0})
        assert room.counted() == 2


async def test_moderator_pin_by_sipp_rfc4733_gives_moderator(tmp_path: Path) -> None:
    """SIPp calls in with digest and plays its RFC 4733 captures of 2, 4, 6, 8 and #."""
    digits = ["2", "4", "6", "8", "pound"]
    assert all((SIPP_PCAPS / f"dtmf_2833_{d}.pcap").exists() for d in digits)
    # one capture at a time: a new play_pcap_audio cuts the one still playing short
    play = '<pause milliseconds="300"/>'.join(
        f'<nop><action><exec play_pcap_audio="{SIPP_PCAPS}/dtmf_2833_{d}.pcap"/></action></nop>'
        for d in digits
    )
    scenario = tmp_path / "uac_dialin_pin.xml"
    scenario.write_text(DIALIN_SCENARIO.replace("<!-- DTMF -->", play))
    async with Hub(dialin_site(tmp_path)) as hub, dialin_events(hub) as events:
        port = sip_port(hub)
        sipp = Sipp.uac(
            scenario,
            (HOST, port),
            service="8000",
            auth=(USER, PASSWORD),
            auth_uri=f"8000@{HOST}:{port}",
            keys={"caller": USER, "domain": "centre.test"},
            media_port=free_port(span=4),
            timeout=30.0,
        )
        async with sipp:
            admitted = await next_outcome(events, within=20.0)
            assert (admitted.outcome, admitted.role) == ("admitted", "moderator"), admitted
            room = hub.conferences.get("ops")
            assert admitted.participant is not None
            p = room.participants[admitted.participant]
            assert p.state is ParticipantState.JOINED and p.role is ParticipantRole.MODERATOR
            # the hub hangs up (kick): SIPp answers the BYE and its call succeeds
            await hub.conferences.remove("ops", p.id, actor="test")
            result = await sipp.wait(within=20.0)
            assert result.ok, str(result)


async def test_the_lab_sip_phone_keys_its_pin_by_sip_info(tmp_path: Path) -> None:
    async with Hub(dialin_site(tmp_path)) as hub, dialin_events(hub) as events:
        port = sip_port(hub)
        state = {"user": USER, "password": PASSWORD, "domain": DOMAIN, "registrar_port": port}
        async with sim_bench("dialin", {"phone": sim_device("sip-phone", state)}) as bench:
            phone = bench.sims["phone"]
            await bench.set_state("phone", {"dial": f"sip:8000@{HOST}:{port}"})
            await until(lambda: phone.snapshot()["call_state"] == "established")
            await bench.set_state("phone", {"dtmf": MODERATOR_PIN + "#"})
            admitted = await next_outcome(events)
            assert (admitted.outcome, admitted.role) == ("admitted", "moderator")
            assert phone.snapshot()["dtmf_sent"] == 5
            await bench.set_state("phone", {"dial": ""})
            assert admitted.participant is not None
            p = hub.conferences.get("ops").participants[admitted.participant]
            await until(lambda: p.state is ParticipantState.LEFT)


async def test_wrong_pins_hang_up_and_lock_the_source_out_until_it_expires(
    tmp_path: Path,
) -> None:
    lockout = 4.0
    async with dialin_hub(tmp_path, pin_lockout=lockout) as (hub, caller, events):
        mallory = await caller.dial("8000", tone=700.0)
        (p,) = hub.conferences.get("ops").participants.values()
        for attempt, guess in enumerate(["1111", "9999", "2461"], start=1):
            await mallory.leg.send_dtmf(guess + "#")
            wrong = await next_outcome(events)
            assert (wrong.outcome, wrong.failures) == ("wrong-pin", attempt)
        locked = await next_outcome(events)
        assert (locked.outcome, locked.source, locked.failures) == ("locked-out", HOST, 3)
        await mallory.leg.wait_ended(10.0)
        assert mallory.leg.reason == "remote-bye"
        assert (p.state, p.reason) == (ParticipantState.LEFT, "pin-wrong")
        assert hub.dialin.lockouts().keys() == {HOST}

        # the next INVITE from 127.0.0.1 is refused at once, never answered
        again = await caller.dial("8000")
        assert (again.status, again.reason) == (403, "Forbidden (locked out)")
        blocked = await next_outcome(events)
        assert (blocked.outcome, blocked.status, blocked.conference) == ("blocked", 403, None)

        # after the lockout the same source gets in with the right PIN
        while (retry := await caller.dial("8000")).status == 403:
            assert (await next_outcome(events)).outcome == "blocked"
            await asyncio.sleep(0.3)
        assert retry.status == 0, retry.reason
        await retry.leg.send_dtmf(PIN + "#")
        assert (await next_outcome(events)).outcome == "admitted"
        assert hub.dialin.counters["locked-out"] == 1
        assert hub.dialin.counters["wrong-pin"] == 3


async def test_unknown_number_locked_and_full_rooms_are_refused(tmp_path: Path) -> None:
    async with dialin_hub(tmp_path) as (hub, caller, events):
        unknown = await caller.dial("8999")
        assert unknown.status == 404 and "8999" in unknown.reason
        refused = await next_outcome(events)
        assert (refused.outcome, refused.status, refused.number) == ("refused", 404, "8999")

        # a room without a PIN: straight in, no lobby
        first = await caller.dial("8002", tone=700.0)
        assert first.status == 0, first.reason
        admitted = await next_outcome(events)
        assert (admitted.outcome, admitted.conference) == ("admitted", "desk")
        (p,) = hub.conferences.get("desk").participants.values()
        assert p.state is ParticipantState.JOINED
        # its profile allows one participant
        full = await caller.dial("8002")
        assert (full.status, full.reason) == (486, "Busy Here (conference full)")
        assert (await next_outcome(events)).status == 486

        # a locked room without a moderator PIN refuses at the INVITE
        hub.conferences.lock("desk", True, actor="test")
        locked = await caller.dial("8002")
        assert (locked.status, locked.reason) == (403, "Forbidden (conference locked)")
        refused = await next_outcome(events)
        assert (refused.outcome, refused.conference, refused.status) == ("refused", "desk", 403)
        assert len(hub.conferences.get("desk").participants) == 1


async def test_a_locked_room_admits_the_moderator_pin_only(tmp_path: Path) -> None:
    """ConfBridge's rule: a locked conference still lets its moderators (admins) in."""
    async with dialin_hub(tmp_path) as (hub, caller, events):
        room = hub.conferences.get("ops")
        hub.conferences.lock("ops", True, actor="test")
        # the participant PIN is right, but the room is locked: dropped, not counted wrong
        guest = await caller.dial("8000", tone=700.0)
        assert guest.status == 0, guest.reason
        (pg,) = room.participants.values()
        await until(lambda: pg.state is ParticipantState.LOBBY)
        await guest.leg.send_dtmf(PIN + "#")
        refused = await next_outcome(events)
        assert (refused.outcome, refused.participant, refused.reason) == (
            "refused",
            pg.id,
            "locked",
        )
        await guest.leg.wait_ended(10.0)
        assert (pg.state, pg.reason) == (ParticipantState.LEFT, "conference-locked")
        assert hub.dialin.lockouts() == {}

        chief = await caller.dial("8000", tone=1100.0)
        assert chief.status == 0, chief.reason
        pc = next(p for p in room.participants.values() if p.id != pg.id)
        await until(lambda: pc.state is ParticipantState.LOBBY)
        await chief.leg.send_dtmf(MODERATOR_PIN + "#")
        admitted = await next_outcome(events)
        assert (admitted.outcome, admitted.participant, admitted.role) == (
            "admitted",
            pc.id,
            "moderator",
        )
        assert pc.state is ParticipantState.JOINED and room.locked


async def test_a_caller_that_keys_nothing_is_dropped(tmp_path: Path) -> None:
    async with dialin_hub(tmp_path, pin_timeout=1.0) as (hub, caller, events):
        silent = await caller.dial("8000", tone=700.0)
        assert silent.status == 0
        timeout = await next_outcome(events)
        assert (timeout.outcome, timeout.failures) == ("timeout", 0)
        await silent.leg.wait_ended(10.0)
        (p,) = hub.conferences.get("ops").participants.values()
        assert (p.state, p.reason) == (ParticipantState.LEFT, "pin-timeout")
        assert hub.dialin.lockouts() == {}  # silence is not a wrong PIN


async def test_a_caller_hanging_up_in_the_lobby_is_reported(tmp_path: Path) -> None:
    async with dialin_hub(tmp_path) as (hub, caller, events):
        call = await caller.dial("8000", tone=700.0)
        await call.leg.send_dtmf("13")  # half a PIN, then gone
        await call.leg.hangup()
        gone = await next_outcome(events)
        assert (gone.outcome, gone.conference) == ("abandoned", "ops")
        (p,) = hub.conferences.get("ops").participants.values()
        await until(lambda: p.state is ParticipantState.LEFT)
        assert hub.conferences.get("ops").counted() == 0


# SIPp's INVITE of the scenario below, sent twice: without, then with the digest answer
SIPP_INVITE = """  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[caller]@[domain]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: {cseq} INVITE{auth}
      Contact: <sip:[caller]@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=sipp 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-15
      a=ptime:20
      a=sendrecv
    ]]>
  </send>
"""

DIALIN_SCENARIO = (
    """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<!-- UAC with digest calls a conference number, keys its PIN as RFC 4733 events
     (SIPp's DTMF captures), then waits for the hub's BYE. -->
<scenario name="cchub dial-in with PIN">
{invite_1}  <recv response="100" optional="true"/>
  <recv response="407" auth="true"/>
  <send>
    <![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      [last_Via:]
      From: <sip:[caller]@[domain]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
{invite_2}  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rrs="true"/>
  <send>
    <![CDATA[
      ACK [next_url] SIP/2.0
      [routes]
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[caller]@[domain]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 ACK
      Contact: <sip:[caller]@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <pause milliseconds="600"/>
  <!-- DTMF -->
  <recv request="BYE"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[caller]@[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0
    ]]>
  </send>
</scenario>
"""
).format(
    invite_1=SIPP_INVITE.format(cseq=1, auth=""),
    invite_2=SIPP_INVITE.format(cseq=2, auth="\n      [authentication]"),
)
