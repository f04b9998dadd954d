"""The engine with real RTP on 127.0.0.1: who hears whom, controls, codecs, DTMF, bad input.

Every check is on what the phones' sockets actually received, decoded and run through a
Goertzel detector; nothing here asserts timings.
"""

from __future__ import annotations

import asyncio
import random
import wave
from pathlib import Path

import pytest

from media import (
    AnnouncementFinished,
    DtmfReceived,
    LegSpec,
    MediaEngine,
    MediaEvent,
    MediaResumed,
    MediaTimeout,
    PeerBye,
    RateChanged,
    SourceChanged,
    TalkingStarted,
    TalkingStopped,
    Tone,
    UnknownLeg,
    dsp,
    rtcp,
)
from media.rtp import RtpPacket
from tests.media.conftest import PhoneFactory
from tests.media.rtp_phone import TONES, eventually, join, listen, settle

A, B, C, D = TONES[:4]


async def test_three_legs_each_hear_the_other_two_and_not_themselves(
    engine: MediaEngine, phones: PhoneFactory
) -> None:
    engine.create_conference("c")
    party = [await phones() for _ in range(3)]
    for i, (phone, freq) in enumerate(zip(party, (A, B, C), strict=True)):
        await join(engine, "c", f"leg{i}", phone, freq)
    await settle(party)
    await listen(party)
    assert party[0].tones(TONES) == {B, C}
    assert party[1].tones(TONES) == {A, C}
    assert party[2].tones(TONES) == {A, B}
    stats = engine.leg_stats("leg0")
    assert stats.packets >= 20 and stats.lost == 0 and stats.malformed == 0
    assert engine.conference_info("c").rate == 8000


async def test_mute_deafen_and_listen_only(engine: MediaEngine, phones: PhoneFactory) -> None:
    engine.create_conference("c")
    a, b, c, d = [await phones() for _ in range(4)]
    for name, phone, freq in (("a", a, A), ("b", b, B), ("c", c, C), ("d", d, D)):
        await join(engine, "c", name, phone, freq)
    await listen([a, b, c, d])
    engine.set_mute("b", True)  # b is not heard, still hears
    engine.set_deafen("c", True)  # c hears nothing, is still heard
    engine.set_listen_only("d", True)  # d (silent monitor) hears, is never heard
    await settle([a, b, c, d])
    await listen([a, b, c, d])
    assert a.tones(TONES) == {C}
    assert b.tones(TONES) == {A, C}
    assert c.level() < -60
    assert d.tones(TONES) == {A, C}
    # a muted leg's talking is still reported (the console shows "talking while muted")
    assert set(engine.conference_info("c").talking) == {"a", "b", "c", "d"}
    engine.set_mute("b", False)
    engine.set_deafen("c", False)
    engine.set_listen_only("d", False)
    await settle([a, b, c, d])
    await listen([a, b, c, d])
    assert a.tones(TONES) == {B, C, D}
    assert c.tones(TONES) == {A, B, D}


async def test_gain_changes_levels(engine: MediaEngine, phones: PhoneFactory) -> None:
    engine.create_conference("c")
    a, b = await phones(), await phones()
    await join(engine, "c", "a", a, A)
    await join(engine, "c", "b", b, None)
    await listen([b])
    before = b.level()
    engine.set_gain("a", input_db=-12.0)
    await settle([b])
    await listen([b])
    assert before - b.level() == pytest.approx(12.0, abs=1.0)
    engine.set_gain("b", output_db=-6.0)
    await settle([b])
    await listen([b])
    assert before - b.level() == pytest.approx(18.0, abs=1.0)


async def test_half_duplex_leg_is_heard_only_while_talking_and_deaf_meanwhile(
    engine: MediaEngine, phones: PhoneFactory
) -> None:
    engine.create_conference("net")
    radio, p1, p2 = await phones(), await phones(), await phones()
    await join(engine, "net", "radio", radio, None, half_duplex=True)
    await join(engine, "net", "p1", p1, A)
    await join(engine, "net", "p2", p2, B)
    await settle([radio, p1, p2])
    await listen([radio])
    assert radio.tones(TONES) == {A, B}  # receiving side of the radio while it is quiet
    radio.freq = 900.0  # the radio keys up: squelch opens at the hub
    await eventually(lambda: "radio" in engine.conference_info("net").talking)
    await listen([radio, p1, p2])
    assert radio.level() < -60  # a half-duplex leg cannot hear while it transmits
    assert p1.tones(TONES) == {B, 900.0}
    assert p2.tones(TONES) == {A, 900.0}
    radio.freq = None
    await eventually(lambda: "radio" not in engine.conference_info("net").talking)
    await settle([radio])
    await listen([radio])
    assert radio.tones(TONES) == {A, B}


async def test_wideband_legs_switch_the_mix_rate_and_everyone_still_hears(
    engine: MediaEngine, events: list[MediaEvent], phones: PhoneFactory
) -> None:
    engine.create_conference("c")
    a, b = await phones(), await phones()
    await join(engine, "c", "a", a, A)
    await join(engine, "c", "b", b, B)
    await listen([a, b])
    wide = await phones("G722")
    await join(engine, "c", "wide", wide, C)
    assert engine.conference_info("c").rate == 16000
    await settle([a, b, wide])
    await listen([a, b, wide])
    assert wide.tones(TONES) == {A, B}
    assert a.tones(TONES) == {B, C}
    webrtc = await phones("opus", 111)
    await join(engine, "c", "webrtc", webrtc, D)
    assert engine.conference_info("c").rate == 48000
    await settle([a, wide, webrtc])
    await listen([a, wide, webrtc])
    assert webrtc.tones(TONES) == {A, B, C}
    assert wide.tones(TONES) == {A, B, D}
    assert a.tones(TONES) == {B, C, D}
    await engine.remove_leg("wide")
    await engine.remove_leg("webrtc")
    assert engine.conference_info("c").rate == 8000
    await settle([a, b])
    await listen([a, b])
    assert a.tones(TONES) == {B}
    rates = [e.rate for e in events if isinstance(e, RateChanged)]
    assert rates == [16000, 48000, 8000]
    assert engine.leg_stats("a").lost == 0  # the moves between mix rates lost no packets


async def test_dtmf_in_and_out(
    engine: MediaEngine, events: list[MediaEvent], phones: PhoneFactory
) -> None:
    engine.create_conference("c")
    a, b = await phones(), await phones()
    await join(engine, "c", "a", a, A)
    await join(engine, "c", "b", b, None)
    await listen([a, b])
    a.dtmf.queue("12#", duration_ms=80)
    engine.send_dtmf("b", "905", duration_ms=60)
    ended = lambda: [e.digit for e in events if isinstance(e, DtmfReceived) and e.ended]  # noqa: E731
    await eventually(lambda: len(ended()) == 3 and len(b.dtmf_digits()) == 3)
    assert ended() == ["1", "2", "#"]
    started = [e.digit for e in events if isinstance(e, DtmfReceived) and not e.ended]
    assert started == ["1", "2", "#"]  # one begin per event despite the repeated end packets
    assert all(e.leg == "a" for e in events if isinstance(e, DtmfReceived))
    durations = [e.duration_ms for e in events if isinstance(e, DtmfReceived) and e.ended]
    assert durations == [80, 80, 80]
    assert b.dtmf_digits() == ["9", "0", "5"]
    assert engine.leg_stats("b").dtmf_sent == 3
    await listen([b])
    assert b.tones(TONES) == {A}  # audio resumes after the events
    with pytest.raises(UnknownLeg):
        engine.send_dtmf("nobody", "1")


class Impairment:
    """Loses, duplicates and reorders a phone's packets on their way to the hub."""

    def __init__(self) -> None:
        self.count = 0
        self.held: bytes | None = None

    def __call__(self, batch: list[bytes]) -> list[bytes]:
        out: list[bytes] = []
        while batch:
            packet = batch.pop(0)
            self.count += 1
            if self.count % 17 == 0:
                continue
            if self.count % 13 == 0:
                out += [packet, packet]
                continue
            if self.count % 11 == 0 and self.held is None:
                self.held = packet
                continue
            out.append(packet)
            if self.held is not None:
                out.append(self.held)
                self.held = None
        return out


async def test_jitter_buffer_with_lost_reordered_and_duplicated_packets(
    engine: MediaEngine, phones: PhoneFactory
) -> None:
    engine.create_conference("c")
    a, b = await phones(), await phones()
    a.shaper = Impairment()
    await join(engine, "c", "a", a, A)
    await join(engine, "c", "b", b, None)
    await eventually(lambda: a.sent > 100)
    await listen([b])
    stats = engine.leg_stats("a")
    assert stats.lost > 0 and stats.reordered > 0 and stats.duplicates > 0
    assert stats.concealed > 0
    assert b.tones(TONES) == {A}  # concealed gaps, the tone carries on
    assert b.level() > -20


async def test_ssrc_change_and_media_timeout(
    engine: MediaEngine, events: list[MediaEvent], phones: PhoneFactory
) -> None:
    engine.create_conference("c")
    a, b = await phones(), await phones()
    await join(engine, "c", "a", a, A, media_timeout=0.6)
    await join(engine, "c", "b", b, None)
    await listen([b])
    a.ssrc, a.seq = 0xABCDEF, 40000  # a new source (a re-INVITE towards another gateway)
    await eventually(lambda: any(isinstance(e, SourceChanged) for e in events))
    await listen([b])
    assert b.tones(TONES) == {A}
    assert engine.leg_stats("a").ssrc_changes == 1
    await a.stop()
    await eventually(lambda: any(isinstance(e, MediaTimeout) and e.leg == "a" for e in events))
    a.start(a.target or ("127.0.0.1", 9), A)
    await eventually(lambda: any(isinstance(e, MediaResumed) and e.leg == "a" for e in events))


async def test_garbage_floods_and_strangers_are_counted_and_do_not_disturb_others(
    engine: MediaEngine, phones: PhoneFactory
) -> None:
    engine.create_conference("c")
    a, b, c = await phones(), await phones(), await phones()
    await join(engine, "c", "a", a, A)
    await join(engine, "c", "b", b, B)
    info = await join(engine, "c", "c", c, C)
    await listen([a, b])
    rng = random.Random(7)
    junk = [
        b"",
        b"\x80",
        bytes(11),
        bytes.fromhex("40000001000000000000000100"),  # version 1
        bytes.fromhex("8f0000010000000000000001"),  # CSRCs past the end
        bytes.fromhex("a000000100000000000000010000"),  # padding count 0
        bytes.fromhex("80c8000500000001"),  # RTCP cut short
    ] + [rng.randbytes(rng.randint(1, 200)) for _ in range(200)]
    assert c.transport is not None
    for at in range(0, len(junk), 8):  # a few per tick: each one is parsed and judged
        for data in junk[at : at + 8]:
            c.transport.sendto(data, info.local)
        await asyncio.sleep(0.02)
    # a codec the leg did not negotiate
    c.transport.sendto(bytes(RtpPacket(18, 1, 1, 1, bytes(20))), info.local)
    # a flood from the leg's own address: 3000 packets in about half a second
    for i in range(3000):
        c.transport.sendto(bytes(RtpPacket(0, rng.getrandbits(16), i, 99, bytes(160))), info.local)
        if i % 50 == 49:
            await asyncio.sleep(0.01)
    # a stranger on another address
    stranger = await phones()
    assert stranger.transport is not None
    for i in range(50):
        stranger.transport.sendto(bytes(RtpPacket(0, i, i * 160, 5, bytes(160))), info.local)
    await settle([a, b])
    await listen([a, b])
    stats = engine.leg_stats("c")
    assert stats.malformed >= 150  # the few random ones that parse as RTP count elsewhere
    assert stats.flood_dropped > 1000
    assert stats.unknown_payload_type >= 1
    assert stats.wrong_source >= 40
    assert a.tones(TONES) == {B, C}
    assert b.tones(TONES) == {A, C}
    assert engine.stats().legs == 3


async def test_talk_events_with_final_stop_when_a_talker_leaves(
    engine: MediaEngine, events: list[MediaEvent], phones: PhoneFactory
) -> None:
    engine.create_conference("c")
    a, b = await phones(), await phones()
    await join(engine, "c", "a", a, A)
    await join(engine, "c", "b", b, None)
    await eventually(lambda: any(isinstance(e, TalkingStarted) for e in events))
    a.freq = None
    await eventually(lambda: any(isinstance(e, TalkingStopped) for e in events))
    a.freq = A
    await eventually(lambda: sum(isinstance(e, TalkingStarted) for e in events) == 2)
    await engine.remove_leg("a")
    talk = [
        (type(e).__name__, e.leg, getattr(e, "reason", ""))
        for e in events
        if isinstance(e, TalkingStarted | TalkingStopped)
    ]
    assert talk == [
        ("TalkingStarted", "a", ""),
        ("TalkingStopped", "a", "silence"),
        ("TalkingStarted", "a", ""),
        ("TalkingStopped", "a", "left"),
    ]
    assert all(
        e.conference == "c" for e in events if isinstance(e, TalkingStarted | TalkingStopped)
    )


async def test_announcements_to_the_conference_and_to_one_leg(
    engine: MediaEngine, events: list[MediaEvent], phones: PhoneFactory, tmp_path: Path
) -> None:
    engine.create_conference("c")
    a, b = await phones(), await phones()
    await join(engine, "c", "a", a, None)
    await join(engine, "c", "b", b, None)
    ring = engine.play_tone("c", Tone((1000.0,)))  # until stopped
    private = engine.play_tone("c", Tone((600.0,), duration_ms=60000), leg="a")
    await settle([a, b])
    await listen([a, b])
    assert a.tones([600.0, 1000.0, 1500.0]) == {600.0, 1000.0}
    assert b.tones([600.0, 1000.0, 1500.0]) == {1000.0}
    assert engine.stop_announcement(ring) and engine.stop_announcement(private)
    prompt = tmp_path / "prompt.wav"
    with wave.open(str(prompt), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(dsp.tone(1500.0, 16000, 16000, -10.0).astype("<i2").tobytes())
    played = await engine.play_file("c", prompt)
    await settle([a, b])
    await listen([a, b])
    assert a.tones([600.0, 1000.0, 1500.0]) == {1500.0}
    assert b.tones([600.0, 1000.0, 1500.0]) == {1500.0}
    await eventually(
        lambda: any(
            isinstance(e, AnnouncementFinished) and e.announcement == played for e in events
        )
    )
    finished = {e.announcement: e.stopped for e in events if isinstance(e, AnnouncementFinished)}
    assert finished == {ring: True, private: True, played: False}


async def test_rtcp_reports_out_and_bye_in(
    engine: MediaEngine, events: list[MediaEvent], phones: PhoneFactory
) -> None:
    engine.create_conference("c")
    a, b = await phones(), await phones()
    info = await join(engine, "c", "a", a, A, rtcp_mux=True)
    await join(engine, "c", "b", b, B)
    await eventually(
        lambda: any(
            isinstance(p, rtcp.SenderReport) for d in a.rtcp for p in rtcp.parse_compound(d)
        )
    )
    report = next(
        p for d in a.rtcp for p in rtcp.parse_compound(d) if isinstance(p, rtcp.SenderReport)
    )
    assert report.packet_count > 0
    assert report.reports and report.reports[0].ssrc == a.ssrc
    assert a.transport is not None
    own = rtcp.ReceiverReport(
        a.ssrc,
        (rtcp.ReportBlock(report.ssrc, 0, 0, 1, 0, (report.ntp_timestamp >> 16) & 0xFFFFFFFF, 0),),
    )
    a.transport.sendto(rtcp.build_compound([own, rtcp.Bye((a.ssrc,), "hang-up")]), info.local)
    await eventually(lambda: any(isinstance(e, PeerBye) for e in events))
    bye = next(e for e in events if isinstance(e, PeerBye))
    assert (bye.leg, bye.reason) == ("a", "hang-up")
    stats = engine.leg_stats("a")
    assert stats.rtcp_received == 1 and stats.rtcp_sent >= 1
    assert stats.round_trip_ms is not None and stats.round_trip_ms >= 0


async def test_bad_setup_is_refused_precisely(engine: MediaEngine, phones: PhoneFactory) -> None:
    from media import MediaStateError, UnknownConference
    from media.errors import CodecError

    with pytest.raises(UnknownConference):
        await engine.add_leg("nope", LegSpec(leg_id="x"))
    engine.create_conference("c")
    with pytest.raises(MediaStateError, match="conference 'c' exists"):
        engine.create_conference("c")
    with pytest.raises(CodecError, match="unknown codec 'G729'"):
        await engine.add_leg("c", LegSpec(leg_id="x", codec="G729"))
    with pytest.raises(ValueError, match="ptime 25 ms"):
        await engine.add_leg("c", LegSpec(leg_id="x", ptime=25))
    with pytest.raises(ValueError, match="codec opus has no static payload type"):
        await engine.add_leg("c", LegSpec(leg_id="x", codec="opus"))
    phone = await phones()
    await join(engine, "c", "x", phone, A)
    with pytest.raises(MediaStateError, match="leg 'x' exists"):
        await engine.add_leg("c", LegSpec(leg_id="x"))
    assert engine.stats().legs == 1


async def test_ptime_other_than_20_ms(engine: MediaEngine, phones: PhoneFactory) -> None:
    """A 30 ms PCMA leg and a 20 ms PCMU leg hear each other (non-batched path, FIFO)."""
    engine.create_conference("c")
    a, b = await phones("PCMA"), await phones()
    a.ptime_ms = 30
    await join(engine, "c", "a", a, A, ptime=30)
    await join(engine, "c", "b", b, B)
    await settle([a, b])
    await listen([a, b])
    assert a.tones(TONES) == {B}
    assert b.tones(TONES) == {A}
    sizes = {len(p.payload) for p in a.packets()}
    assert sizes == {240}  # the hub sends what was negotiated


async def test_remote_learned_from_first_packet_and_leg_moved_between_conferences(
    engine: MediaEngine, phones: PhoneFactory
) -> None:
    engine.create_conference("one")
    engine.create_conference("two")
    a, b, c = await phones(), await phones(), await phones()
    await join(engine, "one", "a", a, A)
    await join(engine, "two", "b", b, B)
    # the SDP answer is not in yet: the leg learns its peer from the first packet (NAT)
    info = await engine.add_leg("one", LegSpec(leg_id="c", remote=None))
    c.start(info.local, C)
    await settle([a, c])
    await listen([a, c])
    assert c.tones(TONES) == {A} and a.tones(TONES) == {C}
    await engine.move_leg("c", "two")  # a transfer: same stream, other conference
    await settle([a, b, c])
    await listen([a, b, c])
    assert c.tones(TONES) == {B} and b.tones(TONES) == {C}
    assert a.level() < -60
    assert engine.conference_info("two").legs == ("b", "c")


async def test_a_fast_sender_clock_does_not_grow_the_delay(
    engine: MediaEngine, phones: PhoneFactory
) -> None:
    """A phone whose clock runs 2 % fast, talking all along: frames are shed, delay bounded."""
    engine.create_conference("c")
    a, b = await phones(), await phones()
    a.clock_scale = 1.02  # one extra frame a second (1 % would take minutes to show)
    await join(engine, "c", "a", a, A)
    await join(engine, "c", "b", b, None)
    await eventually(lambda: engine.leg_stats("a").drift_drops >= 2, within=30)
    stats = engine.leg_stats("a")
    assert stats.extra["jb_max_depth"] <= 5
    assert stats.jitter_buffer_frames <= 5
    await listen([b])
    assert b.tones(TONES) == {A}
