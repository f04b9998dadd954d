"""What operators see of a conference through the API, with real SIP and RTP: a
participant's bad input (garbled, foreign, undeclared payload type, flooding) in its own
view and in /metrics, and the recording id the conference API hands out resolving through
the recordings API down to a WAV that holds the participant's tone."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import socket
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hub.runtime import Hub
from media import dsp
from media.rtp import RtpPacket
from tests.conferences.audio_peers import SippParty
from tests.conferences.conf_hub import GATEWAY_NUMBER, ConfClient, conference_site, running_hub
from tests.hub.sitefile import auth
from tests.media.rtp_phone import RtpPhone, eventually
from tests.sip.peers import free_port

pytestmark = pytest.mark.slow

TONE = 770.0
OTHER_TONES = [520.0, 1330.0]
BATCH = 8  # datagrams sent before waiting for the engine: half its per-tick flood limit


@dataclass
class Scene:
    hub: Hub
    api: ConfClient
    conf: str
    pid: str
    mouth: RtpPhone  # the participant's RTP: the address its SDP named, a tone on it
    target: tuple[str, int]  # the hub's RTP port for the participant


@contextlib.asynccontextmanager
async def one_party(tmp_path: Path) -> AsyncIterator[Scene]:
    """A hub with a PSTN gateway trunk; SIPp answers behind it with an SDP naming the
    test's own RTP socket, which sends a steady tone: one joined participant."""
    gateway_port = free_port()
    site = conference_site(
        tmp_path,
        gateway_port=gateway_port,
        conferences={"profiles": {"default": {"join_tone": False}}},
    )
    mouth = await RtpPhone.create("PCMU")
    try:
        party = SippParty(tone_hz=None, port=gateway_port, sdp_port=mouth.address[1])
        async with running_hub(site) as (hub, api), party:
            conf = await api.create("ops")
            pid = await api.dial(conf, GATEWAY_NUMBER)
            await api.wait_state(conf, pid, "joined")
            target = party.far_media()
            mouth.start(target, TONE)
            try:
                yield Scene(hub, api, conf, pid, mouth, target)
            finally:
                await mouth.stop()
                await api.http.delete(f"/api/v1/conferences/{conf}")
    finally:
        mouth.close()


def malformed(count: int) -> list[bytes]:
    """Datagrams no RTP parser takes: truncated, version 1, an extension or CSRC list
    running past the end."""
    kinds = [
        bytes([0x80, 0x00, 0x01]),
        bytes([0x40]) + bytes(171),
        bytes([0x90, 0x00]) + bytes(10) + b"\xbe\xde\xff\xff",
        bytes([0x8F, 0x00]) + bytes(14),
    ]
    return [kinds[i % len(kinds)] for i in range(count)]


async def media(scene: Scene) -> dict[str, Any]:
    view = await scene.api.participant(scene.conf, scene.pid)
    assert view["media"] is not None, view
    figures: dict[str, Any] = view["media"]
    return figures


async def send_counted(scene: Scene, datagrams: list[bytes], counter: str) -> None:
    """Send in small batches, each once the participant's ``counter`` shows the last one
    (so the engine's flood limit never mixes in)."""
    assert scene.mouth.transport is not None
    engine = scene.hub.conferences.engine
    start = (await media(scene))[counter]
    for i in range(0, len(datagrams), BATCH):
        for data in datagrams[i : i + BATCH]:
            scene.mouth.transport.sendto(data, scene.target)
        expected = start + min(i + BATCH, len(datagrams))
        await eventually(
            lambda e=expected: getattr(engine.leg_stats(scene.pid), counter) >= e  # type: ignore[misc]
        )


async def prometheus(scene: Scene) -> dict[str, float]:
    reply = await scene.api.http.get("/metrics", headers=auth("ops"))
    assert reply.status_code == 200, reply.text
    samples: dict[str, float] = {}
    for line in reply.text.splitlines():
        match = re.match(r"^(cchub_(?:conference|dialin)\S*)\s+(\S+)$", line)
        if match:
            samples[match.group(1)] = float(match.group(2))
    return samples


async def test_bad_input_shows_in_the_participant_view_and_metrics(tmp_path: Path) -> None:
    async with one_party(tmp_path) as scene:
        before = await media(scene)
        assert before["live"] is True and before["conference"] == scene.conf
        await eventually(lambda: scene.hub.conferences.engine.leg_stats(scene.pid).packets > 10)
        assert (before["malformed"], before["wrong_source"], before["flood_dropped"]) == (0, 0, 0)

        # garbled datagrams and packets of a payload type never negotiated, from the
        # participant's own address
        await send_counted(scene, malformed(40), "malformed")
        undeclared = [bytes(RtpPacket(99, i, i * 160, 0xBAD, bytes(160))) for i in range(16)]
        await send_counted(scene, undeclared, "unknown_payload_type")
        # a stranger aiming at the participant's port
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
            stranger.bind(("127.0.0.1", 0))
            for i in range(12):
                stranger.sendto(bytes(RtpPacket(0, i, i * 160, 0xF00, bytes(160))), scene.target)
            await eventually(
                lambda: scene.hub.conferences.engine.leg_stats(scene.pid).wrong_source >= 12
            )
        # a flood: thousands of packets at once, more than the engine takes per tick
        assert scene.mouth.transport is not None
        for i in range(3000):
            data = bytes(RtpPacket(0, (40000 + i) & 0xFFFF, i * 160, 0x5EED, bytes(160)))
            scene.mouth.transport.sendto(data, scene.target)
            if i % 500 == 499:
                await asyncio.sleep(0)  # let the socket drain
        await eventually(
            lambda: scene.hub.conferences.engine.leg_stats(scene.pid).flood_dropped > 0
        )

        figures = await media(scene)
        assert figures["malformed"] == 40
        assert figures["unknown_payload_type"] == 16
        assert figures["wrong_source"] == 12
        assert figures["flood_dropped"] > 0
        assert figures["datagrams"] >= figures["packets"] + 40 + 16
        # the lean views leave the figures out; the participant is still in
        view = await scene.api.conference(scene.conf)
        (listed,) = view["participants"]
        assert listed["media"] is None and listed["state"] == "joined"

        samples = await prometheus(scene)
        assert samples["cchub_conference_rtp_malformed_total"] == 40
        assert samples["cchub_conference_rtp_unknown_payload_type_total"] == 16
        assert samples["cchub_conference_rtp_wrong_source_total"] == 12
        assert samples["cchub_conference_rtp_flood_dropped_total"] >= figures["flood_dropped"]
        # packets and loss count per RTP source, and the flood was another source: the
        # totals carry on across source changes instead of starting again
        assert samples["cchub_conference_rtp_packets_total"] > 0
        assert "cchub_conference_rtp_lost_total" in samples
        assert samples["cchub_conference_media_timeouts_total"] == 0
        counters = scene.hub.dialin.counters
        for outcome in ("admitted", "refused", "wrong-pin", "locked-out", "blocked"):
            key = f'cchub_dialin_total{{outcome="{outcome}"}}'
            assert samples[key] == counters[outcome]
        assert samples["cchub_dialin_lockouts"] == len(scene.hub.dialin.lockouts())

        # kicked: its view keeps the figures as they were, the totals do not go back
        kicked = await scene.api.kick(scene.conf, scene.pid)
        assert kicked["state"] == "left"
        after = await media(scene)
        assert after["live"] is False
        assert (after["malformed"], after["wrong_source"]) == (40, 12)
        assert after["flood_dropped"] >= figures["flood_dropped"]
        later = await prometheus(scene)
        assert later["cchub_conference_rtp_malformed_total"] == 40
        assert later["cchub_conference_rtp_wrong_source_total"] == 12
        for name in ("packets", "lost", "flood_dropped"):
            key = f"cchub_conference_rtp_{name}_total"
            assert later[key] >= samples[key], name  # counters never go back


def _tones(wav_bytes: bytes) -> set[float]:
    with wave.open(io.BytesIO(wav_bytes)) as wav:
        rate = wav.getframerate()
        raw = wav.readframes(wav.getnframes())
    samples = np.frombuffer(raw, dtype="<i2").astype(np.float32)  # dsp scales int16
    assert len(samples) > rate // 2, f"only {len(samples)} samples recorded"
    return dsp.dominant(samples, rate, [TONE, *OTHER_TONES], floor=1e-3)


async def test_recording_id_resolves_through_the_recordings_api(tmp_path: Path) -> None:
    async with one_party(tmp_path) as scene:
        api, url = scene.api, f"/api/v1/conferences/{scene.conf}"
        started = await api.call("POST", f"{url}/recording", 201)
        session = started["recording"]
        assert (await api.conference(scene.conf))["recording"] == session

        # while it records: the session and its mix file, not yet finished
        live = await api.call("GET", f"/api/v1/recordings/{session}")
        assert (live["kind"], live["id"], live["conference"]) == ("session", session, scene.conf)
        assert live["end_ts"] is None and live["files"][0]["kind"] == "mix"
        # a second of the participant's tone, with talk detection seeing it
        await eventually(
            lambda: bool((scene.hub.conferences.get(scene.conf)).participants[scene.pid].talking)
        )
        await asyncio.sleep(1.0)
        await api.call("DELETE", f"{url}/recording")

        async def finished() -> dict[str, Any] | None:
            body: dict[str, Any] = await api.call("GET", f"/api/v1/recordings/{session}")
            talkers = [f for f in body["files"] if f["kind"] == "talker"]
            return body if body["end_ts"] is not None and talkers else None

        done = await eventually_async(finished)
        kinds = [(f["kind"], f["talker"]) for f in done["files"]]
        assert kinds[0] == ("mix", None) and ("talker", scene.pid) in kinds
        assert all(f["id"].startswith(f"{session}-") for f in done["files"])
        assert scene.pid in done["talkers"]

        # the list filtered by session gives the same files; another session gives none
        listed = await api.call("GET", "/api/v1/recordings", params={"recording": session})
        assert [r["id"] for r in listed["recordings"]] == [f["id"] for f in done["files"]]
        only_mix = await api.call(
            "GET", "/api/v1/recordings", params={"recording": session, "kind": "mix"}
        )
        assert [r["kind"] for r in only_mix["recordings"]] == ["mix"]
        none = await api.call("GET", "/api/v1/recordings", params={"recording": "0123abcd4567"})
        assert none["recordings"] == []

        # the session id downloads the mix; a file id still gives that one file
        reply = await api.http.get(done["download"])
        assert reply.status_code == 200, reply.text
        assert reply.headers["content-type"] == "audio/wav"
        assert _tones(reply.content) == {TONE}
        mix = done["files"][0]
        assert (await api.call("GET", f"/api/v1/recordings/{mix['id']}")) == mix
        talker = next(f for f in done["files"] if f["kind"] == "talker")
        reply = await api.http.get(talker["download"])
        assert reply.status_code == 200 and _tones(reply.content) == {TONE}

        # an unknown id is still a precise 404
        reply = await api.http.get("/api/v1/recordings/0123abcd4567")
        assert reply.status_code == 404
        assert reply.json()["detail"] == "no recording '0123abcd4567'"
        reply = await api.http.get("/api/v1/recordings/0123abcd4567/file")
        assert reply.status_code == 404


async def eventually_async(check: Any, within: float = 15.0) -> Any:
    """Poll the coroutine function ``check`` until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not true within {within} s: {check}")
        await asyncio.sleep(0.05)
