"""Bad input at conference level, through the hub with real peers: a participant whose RTP
is garbled and then floods, a participant that sends nothing, and a caller offering only a
codec the hub does not support. Each is handled and reported, and the two baresip phones
in the same conference keep hearing each other's tones without a gap."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hub.runtime import Hub
from media import dsp
from media.rtp import RtpPacket
from tests.conferences.audio_peers import (
    F32,
    PARTY_TONES,
    SCENARIOS,
    SippParty,
    ToneBaresip,
    garbage,
    tones,
)
from tests.conferences.conf_hub import (
    GATEWAY_NUMBER,
    ConfClient,
    conference_site,
    joined_conference,
    registered_phones,
    running_hub,
    sip_address,
)
from tests.media.rtp_phone import RtpPhone, eventually
from tests.sip.peers import Sipp, free_port

pytestmark = pytest.mark.slow

PHONES = {"alice": "alice-sip-pw", "bob": "bob-sip-pw"}
ALICE, BOB, MALLORY, _ = PARTY_TONES
CANDIDATES = list(PARTY_TONES)
ROOM_NUMBER = "8000"


@dataclass
class Scene:
    hub: Hub
    api: ConfClient
    conf: str
    phones: dict[str, ToneBaresip]
    pids: dict[str, str]
    gateway_port: int


@contextlib.asynccontextmanager
async def two_phones(tmp_path: Path, **profile: Any) -> AsyncIterator[Scene]:
    """alice and bob (baresip) dialled into one conference and joined; a gateway trunk
    on a reserved port for a third party; a standing room ``ROOM_NUMBER`` for dial-in."""
    gateway_port = free_port()
    site = conference_site(
        tmp_path,
        phones=PHONES,
        gateway_port=gateway_port,
        conferences={
            "profiles": {"default": {"join_tone": False, **profile}},
            "rooms": [{"id": "ops", "name": "Operations", "number": ROOM_NUMBER}],
        },
    )
    targets = {name: f"user:{name}" for name in PHONES}
    async with (
        running_hub(site) as (hub, api),
        registered_phones(hub, PHONES) as phones,
        joined_conference(api, "bad input", targets) as (conf, pids),
    ):
        yield Scene(hub, api, conf, phones, pids, gateway_port)


def frame_levels(audio: F32, rate: int = 8000) -> list[float]:
    """The level of each 20 ms frame."""
    n = rate // 50
    frames = audio[: len(audio) // n * n].reshape(-1, n)
    return [float(x) for x in dsp.level_dbfs(frames)]


async def assert_clean(phone: ToneBaresip, expected: set[float], seconds: float = 1.0) -> None:
    """``phone`` hears exactly ``expected``, steadily: no 20 ms frame drops out."""
    audio = await phone.listen(seconds)
    assert tones(audio, CANDIDATES) == expected
    levels = frame_levels(audio)
    assert min(levels) > -25.0, f"{phone.user}: a frame dropped to {min(levels):.1f} dBFS"


async def test_garbled_then_flooding_leg_leaves_the_others_clean(tmp_path: Path) -> None:
    async with two_phones(tmp_path) as scene:
        alice, bob = scene.phones["alice"], scene.phones["bob"]
        # mallory: SIPp signals behind the gateway, the test's own socket does its RTP,
        # so the bad packets come from the address the hub accepts
        mouth = await RtpPhone.create("PCMU")
        party = SippParty(tone_hz=None, port=scene.gateway_port, sdp_port=mouth.address[1])
        async with party:
            pid = await scene.api.dial(scene.conf, GATEWAY_NUMBER)
            await scene.api.wait_state(scene.conf, pid, "joined")
            target = party.far_media()
            mouth.start(target, MALLORY)
            try:
                assert tones(await alice.listen(0.6), CANDIDATES) == {BOB, MALLORY}
                assert mouth.transport is not None
                # garbage and a burst of well-formed packets from mallory's own address,
                # while alice and bob listen
                for data in garbage(400):
                    mouth.transport.sendto(data, target)
                flood = [
                    bytes(RtpPacket(0, i & 0xFFFF, i * 160, 0x5EED, bytes(160)))
                    for i in range(4000)
                ]
                for i, data in enumerate(flood):
                    mouth.transport.sendto(data, target)
                    if i % 500 == 499:
                        await asyncio.sleep(0)  # let the socket drain
                await assert_clean(alice, {BOB, MALLORY})
                await assert_clean(bob, {ALICE, MALLORY})
                stats = scene.hub.conferences.engine.leg_stats(pid)
                assert stats.malformed > 0, stats
                assert stats.flood_dropped + stats.ssrc_changes + stats.late > 0, stats
                # mallory is still in, and heard again once it behaves
                assert (await scene.api.participant(scene.conf, pid))["state"] == "joined"
                await eventually(lambda: len(mouth.packets()) > 0)
                assert tones(await alice.listen(0.6), CANDIDATES) == {BOB, MALLORY}
            finally:
                await mouth.stop()
                mouth.close()


async def test_leg_that_sends_nothing_is_dropped_on_media_timeout(tmp_path: Path) -> None:
    async with two_phones(tmp_path, media_timeout=2.0) as scene:
        alice, bob = scene.phones["alice"], scene.phones["bob"]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as mute_socket:
            mute_socket.bind(("127.0.0.1", 0))  # answers with an SDP, never sends RTP
            party = SippParty(
                tone_hz=None, port=scene.gateway_port, sdp_port=mute_socket.getsockname()[1]
            )
            async with party:
                pid = await scene.api.dial(scene.conf, GATEWAY_NUMBER)
                await scene.api.wait_state(scene.conf, pid, "joined")
                left = await scene.api.wait_state(scene.conf, pid, ("left", "failed"), 15.0)
                assert left["state"] == "left" and left["reason"] == "media-timeout", left
                result = await party.wait(within=10.0)  # the hub hung it up: SIPp got BYE
                assert result.ok, result
        await assert_clean(alice, {BOB})
        await assert_clean(bob, {ALICE})
        changes = await scene.api.events("conference.participant")
        reasons = [e["data"].get("reason") for e in changes if e["data"]["participant"] == pid]
        assert "media-timeout" in reasons


async def test_offer_of_an_unsupported_codec_is_refused_488(tmp_path: Path) -> None:
    async with two_phones(tmp_path) as scene:
        # a caller through the gateway trunk to the room number, offering only GSM (3)
        caller = Sipp.uac(
            SCENARIOS / "uac_offer_refused.xml",
            sip_address(scene.hub),
            port=scene.gateway_port,
            service=ROOM_NUMBER,
            keys={"codec": "GSM", "pt": "3"},
            timeout=10,
        )
        async with caller:
            result = await caller.wait()
        assert result.ok, result
        assert "SIP/2.0 488" in result.messages
        await assert_clean(scene.phones["alice"], {BOB})
        await assert_clean(scene.phones["bob"], {ALICE})
