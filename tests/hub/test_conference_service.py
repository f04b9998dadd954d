"""The conference service over real SIP and RTP on 127.0.0.1.

The hub's telephony (a site file with two trunks and a directory endpoint) dials parties
through the lab PSTN gateway simulator and through ``Peer``, a SIP trunk peer written
here on our own stack that answers each number with an RTP phone sending that number's
tone and keeping what it hears. What each party hears is checked with Goertzel
(``media.dsp``)."""

from __future__ import annotations

import asyncio
import os
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from hub.bus import EventBus, Subscription
from hub.conferences.model import (
    ConferenceEnded,
    ConferenceEvent,
    ConferenceFull,
    ConferenceLocked,
    ConferenceNotFound,
    ConferenceState,
    InvalidConferenceRequest,
    InvalidTarget,
    Participant,
    ParticipantRole,
    ParticipantState,
)
from hub.conferences.service import ConferenceCollector, ConferenceService
from hub.config import SiteConfig
from hub.events import (
    ConferenceControl,
    ConferenceParticipantChanged,
    ConferenceRecording,
    ConferenceStateChanged,
    ConferenceTalking,
    Event,
    SubsystemState,
)
from hub.store import SqliteStore
from hub.telephony import Telephony
from lab.bench import Bench
from lab.sims.pstn_gateway import media_target
from media import dsp
from media.announce import Tone
from sip.calls import CallAnswered, CallLeg, CallManager
from sip.dialog import Dialog
from sip.offer_answer import answer
from sip.sdp import SessionDescription
from sip.stack import SipStack, StackConfig
from sip.transport import TransportConfig
from sip.uas import IncomingRequest
from tests.hub.confkit import TE_101, gateway_bench, hub_candidate, phone_media, trunk
from tests.media.rtp_phone import RtpPhone, eventually, listen

pytestmark = pytest.mark.slow

TONES = [400.0, 700.0, 1100.0, 1500.0, 1300.0, 440.0]
GATEWAY_TONE = 440.0


# -- a SIP trunk peer whose numbers are RTP phones ---------------------------------------------


@dataclass(eq=False)
class PeerCall:
    number: str
    phone: RtpPhone
    dialog: Dialog
    ended: asyncio.Event = field(default_factory=asyncio.Event)


class Peer:
    """A gateway on our SIP stack: each number answers with its own tone and records."""

    def __init__(self, tones: dict[str, float | None]) -> None:
        self.tones = tones
        self.calls: dict[str, PeerCall] = {}
        config = StackConfig(
            transport=TransportConfig(hosts=("127.0.0.1",), port=0), rate_limit=None
        )
        self.stack = SipStack(config)
        self.stack.set_handler("INVITE", self._on_invite)
        self.outbound = CallManager(self.stack)
        self.port = 0

    async def __aenter__(self) -> Peer:
        await self.stack.start()
        self.port = self.stack.address("UDP").port
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.outbound.close()
        for call in self.calls.values():
            await call.phone.stop()
            call.phone.close()
        await self.stack.close()

    async def _on_invite(self, incoming: IncomingRequest) -> None:
        number = getattr(incoming.request.uri, "user", "") or ""
        if number not in self.tones:
            incoming.respond(404)
            return
        offer = SessionDescription.parse(incoming.request.body)
        phone = await RtpPhone.create("PCMU")
        sdp = answer(offer, phone_media(phone))
        incoming.respond(200, body=bytes(sdp), content_type="application/sdp")
        dialog = incoming.dialog
        assert dialog is not None
        call = PeerCall(number, phone, dialog)
        self.calls[number] = call
        host, port, _ = media_target(offer, sdp)
        phone.start((host, port), self.tones[number])
        self.stack.bind_dialog(dialog, lambda request: self._in_dialog(call, request))

    def _in_dialog(self, call: PeerCall, incoming: IncomingRequest) -> None:
        if incoming.method == "BYE":
            call.ended.set()
            call.phone.freq = None
        incoming.respond(200)

    async def hangup(self, number: str) -> None:
        call = self.calls[number]
        response = await self.stack.request("BYE", dialog=call.dialog)
        assert response.status == 200
        call.ended.set()

    async def call_hub(self, user: str, hub_port: int, freq: float) -> tuple[CallLeg, RtpPhone]:
        """Call the hub (it knows this peer as a trunk by its address) from a new phone."""
        phone = await RtpPhone.create("PCMU")
        leg = await self.outbound.originate(
            [hub_candidate(user, hub_port)], phone_media(phone, TE_101)
        )
        await leg.wait_for(CallAnswered, within=10)
        assert leg.media is not None
        phone.start((leg.media.remote_host, leg.media.remote_port), freq)
        return leg, phone


# -- the rig: hub telephony + conference service, the lab gateway, the peer -------------------


@dataclass
class Rig:
    service: ConferenceService
    telephony: Telephony
    store: SqliteStore
    bus: EventBus
    events: Subscription
    peer: Peer
    bench: Bench
    seen: list[Event] = field(default_factory=list)

    def drain(self) -> list[Event]:
        while (event := self.events.get_nowait()) is not None:
            self.seen.append(event)
        return self.seen

    def of(self, kind: type[Event], **match: Any) -> list[Any]:
        return [
            e
            for e in self.drain()
            if isinstance(e, kind) and all(getattr(e, k) == v for k, v in match.items())
        ]

    def states(self, conf_id: str) -> list[tuple[str, str]]:
        return [(e.state, e.reason) for e in self.of(ConferenceStateChanged, conference=conf_id)]

    async def dial_all(self, conf_id: str, numbers: list[str], **kwargs: Any) -> list[Participant]:
        parties = [
            await self.service.dial(conf_id, f"sat:{n}", actor="disp", **kwargs) for n in numbers
        ]
        await asyncio.wait_for(asyncio.gather(*(p.settled.wait() for p in parties)), 15)
        return parties

    def phone(self, number: str) -> RtpPhone:
        return self.peer.calls[number].phone


def site(tmp_path: Path, gateway_port: int, peer_port: int) -> SiteConfig:
    return SiteConfig.model_validate(
        {
            "hub": {"name": "conf-test", "data_dir": str(tmp_path)},
            "sip": {"host": "127.0.0.1", "port": 0, "domain": "centre.test"},
            "trunks": [
                trunk("gw", "pstn-gateway", gateway_port),
                trunk("sat", "satellite-gateway", peer_port),
            ],
            "endpoints": [
                {
                    "id": "chief",
                    "name": "County chief",
                    "routes": ["pstn:+8613800000001", "sat:+8816000009"],
                },
            ],
            "conferences": {
                "rtp_host": "127.0.0.1",
                "profiles": {
                    "default": {"join_tone": False, "media_timeout": 1.5},
                    "small": {"join_tone": False, "max_participants": 2},
                    "recorded": {"join_tone": False, "record": True, "record_formats": ["wav"]},
                    "briefing": {"join_tone": True, "end_when_empty": True},
                },
                "rooms": [
                    {"id": "ops", "name": "Operations bridge", "number": "8000", "pin": "4321"}
                ],
            },
        }
    )


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    tones: dict[str, float | None] = {f"+88160000{i}": f for i, f in enumerate(TONES[:5], 1)}
    tones["+8816000009"] = 1700.0  # the chief's satellite phone
    state = {"tone_hz": GATEWAY_TONE, "numbers": {"+8613800000001": {"action": "busy"}}}
    async with (
        gateway_bench("conference-lab", state) as bench,
        Peer(tones) as peer,
    ):
        gateway = bench.sims["pstn-gw"]
        config = site(tmp_path, gateway.port, peer.port)  # type: ignore[attr-defined]
        store = SqliteStore(tmp_path / "cchub.db")
        await store.open()
        bus = EventBus(sink=store)
        events = bus.subscribe("test", maxsize=100_000)
        telephony = Telephony(config, bus, store)
        service = ConferenceService(config, bus, store, telephony)
        await telephony.start()
        await service.start()
        try:
            yield Rig(service, telephony, store, bus, events, peer, bench)
        finally:
            await service.stop()
            await telephony.stop()
            await store.close()


async def until(check: Callable[[], bool], within: float = 10.0) -> None:
    await eventually(check, within)


async def heard(phone: RtpPhone, seconds: float = 0.4) -> set[float]:
    await listen([phone], seconds)
    return phone.tones([*TONES, 1700.0], seconds)


def write_wav(path: Path, freq: float, seconds: float = 3.0) -> None:
    samples = dsp.tone(freq, 16000, int(16000 * seconds), -12.0).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(samples.tobytes())


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def wait(awaitable: Awaitable[Any], within: float = 10.0) -> Any:
    return await asyncio.wait_for(awaitable, within)


# -- tests --------------------------------------------------------------------------------------


async def test_three_parties_hear_each_other_and_not_themselves(rig: Rig) -> None:
    service = rig.service
    conf = service.create(name="Flood response", actor="disp")
    numbers = ["+881600001", "+881600002", "+881600003"]
    parties = await rig.dial_all(conf.id, numbers)
    assert [p.state for p in parties] == [ParticipantState.JOINED] * 3
    assert all(p.trunk == "sat" and p.codec == "PCMU" for p in parties)
    assert conf.state is ConferenceState.MULTI
    a, b, c = (rig.phone(n) for n in numbers)
    for phone, own in ((a, 400.0), (b, 700.0), (c, 1100.0)):
        expected = {400.0, 700.0, 1100.0} - {own}
        await until(lambda p=phone, e=expected: p.tones(TONES) == e, 10)  # type: ignore[misc]
    assert rig.states(conf.id) == [
        ("empty", "created"),
        ("single", f"{parties[0].id} joined"),
        ("multi", f"{parties[1].id} joined"),
    ]
    # the engine's talk detection reaches the bus as conference.talking
    await until(lambda: len(rig.of(ConferenceTalking, conference=conf.id, talking=True)) == 3)
    # SNMP rows, Prometheus families and health come from the same state
    legs = service.snmp_legs()
    assert [(r.party, r.bearer, r.state) for r in legs] == [
        (f"sat:{n}", "satellite", "joined") for n in numbers
    ]
    row = next(r for r in service.snmp_conferences() if r.name == "Flood response")
    assert (row.state, row.legs) == ("multi", 3) and {r.conference for r in legs} == {row.index}
    families = {f.name: f for f in ConferenceCollector(service).collect()}
    samples = {
        (s.name, tuple(s.labels.values())): s.value for f in families.values() for s in f.samples
    }
    assert samples[("cchub_conferences", ("multi",))] == 1.0
    assert samples[("cchub_conferences", ("empty",))] == 1.0  # the standing room
    assert samples[("cchub_conference_legs", ("joined",))] == 3.0
    assert ("cchub_media_late_ticks_total", ()) in samples
    state, detail = service.health()
    assert state is not SubsystemState.DOWN and "2 conferences, 3 legs" in detail
    view = service.describe(conf)
    assert view["state"] == "multi" and sorted(view["talking"]) == sorted(p.id for p in parties)
    assert [v["route"] for v in view["participants"]] == [0, 0, 0]

    # mute a: nobody hears 400 any more; a still hears the others
    service.set_mute(conf.id, parties[0].id, True, actor="disp")
    await until(lambda: b.tones(TONES) == {1100.0} and c.tones(TONES) == {700.0})
    assert await heard(a) == {700.0, 1100.0}
    # deafen b: b hears nothing, is still heard
    service.set_mute(conf.id, parties[0].id, False, actor="disp")
    service.set_deafen(conf.id, parties[1].id, True, actor="disp")
    await until(lambda: b.level() < -60 and c.tones(TONES) == {400.0, 700.0})
    service.set_deafen(conf.id, parties[1].id, False, actor="disp")
    await until(lambda: b.tones(TONES) == {400.0, 1100.0})
    # a monitor (监听) hears everyone and is heard by nobody; it does not count
    (monitor,) = await rig.dial_all(conf.id, ["+881600004"], role=ParticipantRole.MONITOR)
    mon = rig.phone("+881600004")
    await until(lambda: mon.tones(TONES) == {400.0, 700.0, 1100.0})
    for phone in (a, b, c):
        assert 1500.0 not in await heard(phone)
    assert conf.counted() == 3 and conf.state is ConferenceState.MULTI
    # mute-all spares moderators (and monitors are never heard anyway)
    service.set_role(conf.id, parties[2].id, ParticipantRole.MODERATOR, actor="disp")
    service.mute_all(conf.id, True, actor="disp")
    assert [p.muted for p in parties] == [True, True, False]
    await until(lambda: a.tones(TONES) == {1100.0} and mon.tones(TONES) == {1100.0})
    actions = [e.action for e in rig.of(ConferenceControl, conference=conf.id)]
    assert actions == ["mute", "unmute", "deafen", "undeafen", "role", "mute-all"]

    # kick c (强拆): its call gets a BYE, the others stop hearing it
    await service.remove(conf.id, parties[2].id, actor="disp")
    await wait(rig.peer.calls["+881600003"].ended.wait())
    assert (parties[2].state, parties[2].reason) == (ParticipantState.LEFT, "kicked")
    service.mute_all(conf.id, False, actor="disp")
    await until(lambda: a.tones(TONES) == {700.0} and mon.tones(TONES) == {400.0, 700.0})
    # end: everyone is hung up, the conference is ended
    await service.end(conf.id, actor="disp")
    for number in ("+881600001", "+881600002", "+881600004"):
        await wait(rig.peer.calls[number].ended.wait())
    assert all(p.state is ParticipantState.LEFT for p in (*parties, monitor))
    assert rig.states(conf.id)[-1] == ("ended", "ended")
    assert service.engine.stats().legs == 0 and conf.id not in service.engine.conferences()
    with pytest.raises(ConferenceEnded):
        await service.dial(conf.id, "sat:+881600005", actor="disp")


async def test_endpoint_routes_fall_back_and_the_participant_shows_which_answered(
    rig: Rig, tmp_path: Path
) -> None:
    conf = rig.service.create(name="Chief", actor="disp")
    chief = await rig.service.dial(conf.id, "chief", actor="disp")
    assert chief.state is ParticipantState.DIALING and chief.endpoint == "chief"
    await wait(chief.settled.wait(), 15)
    assert chief.state is ParticipantState.JOINED
    assert (chief.route, chief.trunk) == (1, "sat")
    assert chief.attempts == [{"route": 0, "trunk": "gw", "status": 486, "reason": "Busy Here"}]
    changes = rig.of(ConferenceParticipantChanged, participant=chief.id)
    assert [(e.state, e.route, e.trunk) for e in changes] == [
        ("dialing", None, None),
        ("dialing", 0, "gw"),
        ("dialing", 1, "sat"),
        ("joined", 1, "sat"),
    ]
    # the gateway's own tone (a PSTN party) reaches the satellite phone through the mix
    pstn = await rig.service.dial(conf.id, "pstn:+8613900000002", actor="disp")
    await wait(pstn.settled.wait(), 15)
    assert (pstn.state, pstn.trunk) == (ParticipantState.JOINED, "gw")
    sat_phone = rig.phone("+8816000009")
    await until(lambda: sat_phone.tones([GATEWAY_TONE, 1700.0]) == {GATEWAY_TONE})
    # a WAV prompt to everyone; a file that is not a WAV is refused with the reason
    prompt = tmp_path / "prompt.wav"
    await asyncio.to_thread(write_wav, prompt, 900.0)
    await rig.service.announce(conf.id, actor="disp", file=prompt)
    await until(lambda: 900.0 in sat_phone.tones([GATEWAY_TONE, 900.0, 1700.0]))
    with pytest.raises(InvalidConferenceRequest, match="cannot read announcement"):
        await rig.service.announce(conf.id, actor="disp", file=tmp_path / "missing.wav")
    # bad targets fail at once with the dial plan's reason; nothing is left bound
    with pytest.raises(InvalidTarget, match="no scheme"):
        await rig.service.dial(conf.id, "nobody", actor="disp")
    with pytest.raises(InvalidTarget, match="no trunk serves pdt"):
        await rig.service.dial(conf.id, "pdt:group/1001", actor="disp")
    # a number nobody answers: failed with the SIP status, its RTP sockets closed
    fds = open_fds()
    lost = await rig.service.dial(conf.id, "sat:+881699999", actor="disp")
    assert open_fds() == fds + 2
    await wait(lost.settled.wait(), 15)
    assert (lost.state, lost.status) == (ParticipantState.FAILED, 404)
    await until(lambda: open_fds() == fds)
    assert rig.service.engine.stats().legs == 2


async def test_far_end_bye_and_media_timeout_drop_participants(rig: Rig) -> None:
    conf = rig.service.create(name="Drops", actor="disp")
    first, second, third = await rig.dial_all(conf.id, ["+881600001", "+881600002", "+881600003"])
    await rig.peer.hangup("+881600001")
    await until(lambda: first.state is ParticipantState.LEFT)
    assert first.reason == "remote-bye"
    await until(lambda: rig.phone("+881600002").tones(TONES) == {1100.0})
    # the third phone stops sending RTP: dropped after the profile's media timeout (1.5 s)
    await rig.phone("+881600003").stop()
    await until(lambda: third.state is ParticipantState.LEFT, 10)
    assert third.reason == "media-timeout"
    await wait(rig.peer.calls["+881600003"].ended.wait())  # and its call was hung up
    assert conf.state is ConferenceState.SINGLE and rig.service.counters["media_timeouts"] == 1
    assert rig.service.engine.conference_info(conf.id).legs == (second.id,)
    left = rig.of(ConferenceParticipantChanged, conference=conf.id, state="left")
    assert [(e.participant, e.reason) for e in left] == [
        (first.id, "remote-bye"),
        (third.id, "media-timeout"),
    ]


async def test_max_duration_ends_the_conference(rig: Rig) -> None:
    conf = rig.service.create(name="Short", actor="disp", max_duration=1.0)
    (party,) = await rig.dial_all(conf.id, ["+881600001"])
    await wait(rig.peer.calls["+881600001"].ended.wait(), 10)
    await until(lambda: conf.state is ConferenceState.ENDED)
    assert conf.reason == "max-duration" and party.reason == "conference-ended"
    assert rig.states(conf.id)[-1] == ("ended", "max-duration")
    assert rig.service.get(conf.id) is conf and conf not in rig.service.list()


async def test_recording_writes_index_rows(rig: Rig, tmp_path: Path) -> None:
    conf = rig.service.create(name="Recorded", actor="disp", profile="recorded")
    assert conf.recording is not None
    parties = await rig.dial_all(conf.id, ["+881600001", "+881600002"])
    await until(lambda: len(rig.of(ConferenceTalking, conference=conf.id, talking=True)) == 2)
    await listen([rig.phone("+881600001")], 0.6)
    await rig.service.stop_recording(conf.id, actor="disp")
    assert conf.recording is None
    await rig.store.flush()
    rows = await rig.store.recordings(conference=conf.id)
    mix = [r for r in rows if r.kind == "mix"]
    talkers = {r.talker for r in rows if r.kind == "talker"}
    assert len(mix) == 1 and mix[0].end_ts is not None and mix[0].bytes > 44
    mix_path = Path(mix[0].path)
    assert mix_path.parent == tmp_path / "recordings"
    assert await asyncio.to_thread(mix_path.exists)
    assert {p.id for p in parties} <= talkers
    assert {p.id for p in parties} <= {s[0] for s in mix[0].segments}
    finished = rig.of(ConferenceRecording, conference=conf.id, recording_kind="mix")
    assert finished[-1].end_ts is not None
    # recording again, then the conference ends: the files close with it
    await rig.service.start_recording(conf.id, actor="disp")
    await rig.service.end(conf.id, actor="disp")
    await rig.store.flush()
    rows = await rig.store.recordings(conference=conf.id)
    assert len([r for r in rows if r.kind == "mix"]) == 2
    assert all(r.end_ts is not None for r in rows)


async def test_dial_in_lobby_admit_dtmf_and_announcement(rig: Rig) -> None:
    room = rig.service.get("ops")
    assert room.standing and room.number == "8000" and room.pin == "4321"
    (inside,) = await rig.dial_all(room.id, ["+881600001"])
    joined: list[Participant] = []
    digits: list[tuple[str, str]] = []
    rig.service.dtmf_listeners.append(lambda p, d: digits.append((p.id, d)))

    async def incoming(leg: CallLeg) -> None:
        joined.append(await rig.service.join_leg(room.id, leg, actor="dialin", lobby=True))

    rig.telephony.calls.on_incoming = incoming
    hub_port = rig.telephony.stack.address("UDP").port
    leg, caller = await rig.peer.call_hub("8000", hub_port, 1300.0)
    await until(lambda: bool(joined) and joined[0].state is ParticipantState.LOBBY)
    guest = joined[0]
    assert guest.direction == "inbound" and guest.trunk == "sat" and inside.joined_ts
    # in the lobby: not in the mix either way; a prompt to the guest alone
    inside_phone = rig.phone("+881600001")
    assert 1300.0 not in await heard(inside_phone)
    await rig.service.announce(
        room.id, actor="dialin", tone=Tone((1500.0,), duration_ms=None), participant=guest.id
    )
    await until(lambda: caller.tones(TONES) == {1500.0})
    assert 1500.0 not in await heard(inside_phone)
    # digits by SIP INFO and by RFC 4733 both reach the listeners
    await leg.send_dtmf("43")
    caller.dtmf.queue("21#", 80)
    await until(lambda: [d for _, d in digits] == ["4", "3", "2", "1", "#"])
    assert {pid for pid, _ in digits} == {guest.id}
    await rig.service.admit(guest.id)
    assert guest.state is ParticipantState.JOINED and room.state is ConferenceState.MULTI
    await until(lambda: inside_phone.tones(TONES) == {1300.0})
    await until(lambda: 400.0 in caller.tones(TONES))
    # ending a standing room hangs everyone up and opens it again, empty
    await rig.service.end(room.id, actor="disp")
    await wait(leg.wait_ended(10))
    fresh = rig.service.get("ops")
    assert fresh is not room and fresh.state is ConferenceState.EMPTY and not fresh.participants


async def test_state_machine_locks_limits_and_invalid_events(rig: Rig) -> None:
    service = rig.service
    conf = service.create(name="Rules", actor="disp", profile="small")
    service.fire(conf, ConferenceEvent.LEAVE, reason="nobody is here")
    assert conf.state is ConferenceState.EMPTY and service.invalid_events == 1
    service.lock(conf.id, True, actor="disp")
    with pytest.raises(ConferenceLocked):
        await service.dial(conf.id, "sat:+881600001", actor="disp")
    p1 = await service.dial(conf.id, "sat:+881600001", actor="disp", override_lock=True)
    p2 = await service.dial(conf.id, "sat:+881600002", actor="disp", override_lock=True)
    with pytest.raises(ConferenceFull):
        await service.dial(conf.id, "sat:+881600003", actor="disp", override_lock=True)
    await wait(asyncio.gather(p1.settled.wait(), p2.settled.wait()), 15)
    # a participant turned monitor no longer counts; back again it does
    service.set_role(conf.id, p2.id, ParticipantRole.MONITOR, actor="disp")
    assert conf.state is ConferenceState.SINGLE
    service.set_role(conf.id, p2.id, ParticipantRole.PARTICIPANT, actor="disp")
    assert conf.state is ConferenceState.MULTI
    await service.end(conf.id, actor="disp", reason="drill over")
    service.fire(conf, ConferenceEvent.JOIN)
    assert service.invalid_events == 2 and conf.state is ConferenceState.ENDED
    assert rig.states(conf.id) == [
        ("empty", "created"),
        ("single", f"{p1.id} joined"),
        ("multi", f"{p2.id} joined"),
        ("single", f"{p2.id} is monitor"),
        ("multi", f"{p2.id} is participant"),
        ("ended", "drill over"),
    ]
    with pytest.raises(ConferenceEnded):
        await service.end(conf.id, actor="disp")
    with pytest.raises(ConferenceNotFound):
        service.get("conf-nope")
    # a two-party call bridged by the hub ends when one side hangs up
    call = service.create(name="A to B", actor="disp", kind="call")
    caller, callee = await rig.dial_all(call.id, ["+881600003", "+881600004"])
    await rig.peer.hangup("+881600004")
    await until(lambda: call.state is ConferenceState.ENDED)
    assert (call.reason, callee.reason, caller.reason) == (
        "hangup",
        "remote-bye",
        "conference-ended",
    )
    await wait(rig.peer.calls["+881600003"].ended.wait())
    # end_when_empty: the last one leaving ends it; the join tone is heard by those inside
    brief = service.create(name="Briefing", actor="disp", profile="briefing")
    (solo,) = await rig.dial_all(brief.id, ["+881600005"])
    await until(lambda: 1000.0 in rig.phone("+881600005").tones([1000.0, 900.0]))
    await rig.peer.hangup("+881600005")
    await until(lambda: brief.state is ConferenceState.ENDED)
    assert brief.reason == "empty" and solo.reason == "remote-bye"
