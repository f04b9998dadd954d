"""The talking-and-listening peer harness on its own, without the hub: baresip to baresip
and baresip to SIPp, each hearing the other's tone (and a switched tone) by Goertzel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conferences.audio_peers import (
    PARTY_TONES,
    LoopbackTap,
    SippParty,
    ToneBaresip,
    level,
    mulaw_wav,
    read_wav_growing,
    segments,
    tone_wav,
    tones,
)

pytestmark = pytest.mark.slow

A, B, C, D = PARTY_TONES
CANDIDATES = list(PARTY_TONES)


def test_tone_files_and_segments(tmp_path: Path) -> None:
    rate, audio = read_wav_growing(tone_wav(tmp_path / "a.wav", A, 0.5))
    assert rate == 8000 and len(audio) == 4000
    assert tones(audio, CANDIDATES) == {A} and -12.5 < level(audio) < -11.5
    silence = np.zeros(4000, dtype=np.float32)
    assert tones(silence, CANDIDATES) == set()
    assert segments(np.concatenate([silence, audio, silence]), A) == [(0.5, 1.0)]
    # a file still being written (sizes not filled in) reads to the end of what is there
    raw = (tmp_path / "a.wav").read_bytes()
    truncated = raw[:40] + b"\0\0\0\0" + raw[44:2044]
    (tmp_path / "b.wav").write_bytes(truncated)
    assert len(read_wav_growing(tmp_path / "b.wav")[1]) == 1000
    ulaw = mulaw_wav(tmp_path / "u.wav", B, 0.2).read_bytes()
    assert ulaw[20:22] == b"\x07\x00" and len(ulaw) > 1600


async def test_baresip_hears_baresip_and_switches_tone() -> None:
    async with (
        ToneBaresip(user="alice", tone_hz=A) as alice,
        ToneBaresip(user="bob", tone_hz=B) as bob,
    ):
        await alice.dial(bob.uri())
        await alice.wait_established()
        await bob.wait_established()
        assert tones(await alice.listen(), CANDIDATES) == {B}
        assert tones(await bob.listen(), CANDIDATES) == {A}
        await alice.play(None)
        assert tones(await bob.listen(), CANDIDATES) == set()
        await alice.play(C)
        assert tones(await bob.listen(), CANDIDATES) == {C}
        await alice.hangup()
        await bob.wait_closed()


async def test_baresip_hears_sipp_rtp_stream() -> None:
    tap = LoopbackTap.available()
    async with ToneBaresip(user="alice", tone_hz=A) as alice, SippParty(tone_hz=C, tap=tap) as sipp:
        await alice.dial(sipp.uri())
        await alice.wait_established()
        assert tones(await alice.listen(), CANDIDATES) == {C}
        if tap:
            assert tones(await sipp.listen(), CANDIDATES) == {A}
        await alice.hangup()
        result = await sipp.wait(within=10.0)
    assert result.ok, result
