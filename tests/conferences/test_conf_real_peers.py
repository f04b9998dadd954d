"""Conferences through the hub's API with real peers: two registered baresip phones and a
SIPp party behind a PSTN gateway trunk, each sending its own tone. What each one hears is
checked with a Goertzel filter: the other two and never itself; then mute, deafen, kick,
silent monitor, roll call and recording do what they say."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hub.runtime import Hub
from tests.conferences.audio_peers import (
    PARTY_TONES,
    SILENT_DBFS,
    LoopbackTap,
    SippParty,
    ToneBaresip,
    level,
    read_wav_growing,
    segments,
    tones,
)
from tests.conferences.conf_hub import (
    GATEWAY_NUMBER,
    ConfClient,
    conference_site,
    joined_conference,
    registered_phones,
    running_hub,
)
from tests.sip.peers import free_port

pytestmark = pytest.mark.slow

PHONES = {"alice": "alice-sip-pw", "bob": "bob-sip-pw"}
EXTRA = {"carol": "carol-sip-pw", "dave": "dave-sip-pw"}  # monitor / roll call members
ALICE, BOB, SIPP, CAROL = PARTY_TONES
TONES = {"alice": ALICE, "bob": BOB, "carol": CAROL, "dave": None}
CANDIDATES = list(PARTY_TONES)
# SIPp's port is only readable with a packet socket; without it SIPp still talks and is
# heard, only what it hears goes unchecked.
TAP = LoopbackTap.available()


@dataclass
class Bridge:
    hub: Hub
    api: ConfClient
    conf: str
    phones: dict[str, ToneBaresip]
    sipp: SippParty
    pids: dict[str, str]

    async def heard(self, who: str, seconds: float = 0.6) -> set[float]:
        """The tones ``who`` hears from now on."""
        party = self.sipp if who == "sipp" else self.phones[who]
        return tones(await party.listen(seconds), CANDIDATES)


@contextlib.asynccontextmanager
async def three_party_bridge(
    tmp_path: Path, *, extra: bool = False, **conference: object
) -> AsyncIterator[Bridge]:
    """alice (400 Hz) and bob (700 Hz) on baresip, SIPp (1100 Hz) behind the gateway,
    all dialled out by the hub into one conference, all joined. ``extra`` also registers
    carol (1500 Hz, answers) and dave (silent, never answers), not dialled."""
    gateway_port = free_port()
    phones_in = {**PHONES, **(EXTRA if extra else {})}
    site = conference_site(
        tmp_path,
        phones=phones_in,
        gateway_port=gateway_port,
        conferences={"profiles": {"default": {"join_tone": False}}},
    )
    sipp = SippParty(tone_hz=SIPP, tap=TAP, port=gateway_port)
    targets = {"alice": "user:alice", "bob": "user:bob", "sipp": GATEWAY_NUMBER}
    async with (
        running_hub(site) as (hub, api),
        sipp,
        registered_phones(hub, phones_in, TONES, unanswered={"dave"}) as phones,
        joined_conference(api, "three parties", targets, **conference) as (conf, pids),
    ):
        yield Bridge(hub, api, conf, phones, sipp, pids)


async def test_three_parties_hear_each_other_and_not_themselves(tmp_path: Path) -> None:
    async with three_party_bridge(tmp_path) as bridge:
        assert await bridge.heard("alice") == {BOB, SIPP}
        assert await bridge.heard("bob") == {ALICE, SIPP}
        if TAP:
            assert await bridge.heard("sipp") == {ALICE, BOB}
        view = await bridge.api.conference(bridge.conf)
        assert view["state"] == "multi"
        joined = {p["id"]: p for p in view["participants"]}
        assert all(joined[pid]["codec"] in ("PCMU", "PCMA") for pid in bridge.pids.values())
        assert joined[bridge.pids["sipp"]]["trunk"] == "gw"


async def test_mute_deafen_and_kick(tmp_path: Path) -> None:
    async with three_party_bridge(tmp_path) as bridge:
        api, conf, pids = bridge.api, bridge.conf, bridge.pids
        # mute alice: nobody hears her; she still hears the others
        assert (await api.patch(conf, pids["alice"], muted=True))["muted"] is True
        assert await bridge.heard("bob") == {SIPP}
        if TAP:
            assert await bridge.heard("sipp") == {BOB}
        assert await bridge.heard("alice") == {BOB, SIPP}
        await api.patch(conf, pids["alice"], muted=False)
        assert await bridge.heard("bob") == {ALICE, SIPP}

        # deafen bob: he hears silence, the others still hear him
        assert (await api.patch(conf, pids["bob"], deafened=True))["deafened"] is True
        quiet = await bridge.phones["bob"].listen(0.6)
        assert tones(quiet, CANDIDATES) == set() and level(quiet) < SILENT_DBFS
        assert await bridge.heard("alice") == {BOB, SIPP}
        await api.patch(conf, pids["bob"], deafened=False)
        assert await bridge.heard("bob") == {ALICE, SIPP}

        # kick SIPp: the hub sends it a BYE, the others stop hearing it
        kicked = await api.kick(conf, pids["sipp"])
        assert kicked["state"] == "left" and kicked["reason"] == "kicked"
        result = await bridge.sipp.wait(within=10.0)
        assert result.ok, result
        assert "BYE sip:" in result.messages
        assert await bridge.heard("alice") == {BOB}
        assert await bridge.heard("bob") == {ALICE}
        controls = await api.events("conference.control")
        actions = [e["data"]["action"] for e in controls]
        for action in ("mute", "unmute", "deafen", "undeafen", "kick"):
            assert action in actions, actions


async def test_silent_monitor_hears_everyone_and_is_heard_by_nobody(tmp_path: Path) -> None:
    async with three_party_bridge(tmp_path, extra=True) as bridge:
        api, conf = bridge.api, bridge.conf
        monitor = await api.dial(conf, "user:carol", role="monitor")
        joined = await api.wait_state(conf, monitor, "joined")
        assert joined["role"] == "monitor"
        # carol sends 1500 Hz all along: nobody hears it, she hears all three
        assert await bridge.heard("carol") == {ALICE, BOB, SIPP}
        assert await bridge.heard("alice") == {BOB, SIPP}
        assert await bridge.heard("bob") == {ALICE, SIPP}
        if TAP:
            assert await bridge.heard("sipp") == {ALICE, BOB}
        view = await api.conference(conf)
        assert view["state"] == "multi"
        roles = {p["id"]: p["role"] for p in view["participants"]}
        assert roles[monitor] == "monitor"


async def test_roll_call_reports_who_answered(tmp_path: Path) -> None:
    async with three_party_bridge(tmp_path, extra=True) as bridge:
        api, conf = bridge.api, bridge.conf
        report = await api.rollcall(
            conf, ["user:carol", "user:dave"], mode="parallel", ring_timeout=3
        )
        assert report["state"] == "finished"
        assert report["answered"] == ["user:carol"]
        assert report["unanswered"] == ["user:dave"]
        members = {m["target"]: m for m in report["members"]}
        assert members["user:carol"]["outcome"] == "answered"
        assert members["user:dave"]["outcome"] == "unanswered"
        assert members["user:dave"]["reason"]
        # the member who answered is in the conference: heard and hearing
        assert await bridge.heard("carol") == {ALICE, BOB, SIPP}
        assert CAROL in await bridge.heard("alice")
        # dave's phone rang and was given up on: its call is over
        await bridge.phones["dave"].wait_closed(within=10.0)
        events = await api.events("conference.rollcall")
        assert events and events[-1]["data"]["state"] == "finished"


async def test_recording_has_each_talker_in_the_right_segment(tmp_path: Path) -> None:
    async with three_party_bridge(tmp_path) as bridge:
        api, conf, pids = bridge.api, bridge.conf, bridge.pids
        alice, bob = bridge.phones["alice"], bridge.phones["bob"]
        await alice.play(None)
        await bob.play(None)
        assert await bridge.heard("alice") == {SIPP}  # only SIPp talks now
        started = await api.call("POST", f"/api/v1/conferences/{conf}/recording", 201)
        # turns: alice talks, then bob; each turn lasts until the other phone has heard it
        # for a second (no sleeps: the listening paces it)
        await alice.play(ALICE)
        await bob.listen(1.0)
        await alice.play(None)
        assert await bridge.heard("bob") == {SIPP}
        await bob.play(BOB)
        await alice.listen(1.0)
        await bob.play(None)
        assert await bridge.heard("alice") == {SIPP}
        await api.call("DELETE", f"/api/v1/conferences/{conf}/recording")

        rows = (await api.call("GET", "/api/v1/recordings", params={"conference": conf}))[
            "recordings"
        ]
        (mix,) = [r for r in rows if r["kind"] == "mix"]
        # the API names the recording session; its files are indexed as <id>-<kind>-<format>
        assert mix["id"].startswith(started["recording"]) and mix["end_ts"] is not None
        reply = await api.http.get(mix["download"])
        assert reply.status_code == 200 and reply.headers["content-type"] == "audio/wav"
        wav = tmp_path / "mix.wav"
        wav.write_bytes(reply.content)
        rate, audio = read_wav_growing(wav)

        def spans(freq: float) -> list[tuple[float, float]]:
            return [
                (mix["start_ts"] + a, mix["start_ts"] + b) for a, b in segments(audio, freq, rate)
            ]

        def indexed(pid: str) -> list[tuple[float, float]]:
            return [(s["start"], s["end"]) for s in mix["segments"] if s["participant"] == pid]

        # alice's and bob's tones are in the mix exactly where the index says they talked
        for name, freq in (("alice", ALICE), ("bob", BOB)):
            heard, talked = spans(freq), indexed(pids[name])
            assert len(heard) == 1 and len(talked) == 1, (name, heard, talked)
            assert abs(heard[0][0] - talked[0][0]) < 0.5, (name, heard, talked)
            assert abs(heard[0][1] - talked[0][1]) < 1.0, (name, heard, talked)
        alice_span, bob_span = spans(ALICE)[0], spans(BOB)[0]
        assert alice_span[1] <= bob_span[0] + 0.2  # in turn, alice first
        # SIPp talked throughout
        (sipp_span,) = spans(SIPP)
        assert sipp_span[0] <= alice_span[0] and sipp_span[1] >= bob_span[1]
        # each talker's own track holds its tone and nobody else's
        talkers = {r["talker"]: r for r in rows if r["kind"] == "talker"}
        for name, freq in (("alice", ALICE), ("bob", BOB)):
            track = talkers[pids[name]]
            body = (await api.http.get(track["download"])).content
            path = tmp_path / f"{name}.wav"
            path.write_bytes(body)
            track_rate, track_audio = read_wav_growing(path)
            assert tones(track_audio, CANDIDATES, track_rate) == {freq}
