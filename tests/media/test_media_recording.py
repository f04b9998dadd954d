"""Recording: the mix and each talker's segments, WAV and Ogg/Opus, read back; crash safety."""

from __future__ import annotations

import asyncio
import os
import signal
import struct
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from media import MediaEngine, MediaEvent, RecordingFailed, RecordingIndex, TalkingStopped, dsp
from media.ogg import read_opus_packets, read_pages
from media.opus import OpusDecoder
from media.recording import RecordingWriter
from tests.media.conftest import PhoneFactory
from tests.media.rtp_phone import TONES, eventually, join

ROOT = Path(__file__).resolve().parents[2]
A, C = TONES[0], TONES[2]
OPUSDEC = "/usr/bin/opusdec"


def read_wav(path: Path) -> tuple[int, npt.NDArray[np.float32]]:
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth()) == (1, 2)
        return wav.getframerate(), np.frombuffer(wav.readframes(wav.getnframes()), "<i2").astype(
            np.float32
        )


def opusdec(path: Path, rate: int) -> npt.NDArray[np.float32]:
    """Decode with opus-tools (an independent Ogg/Opus reader) to 16-bit WAV at ``rate``."""
    out = path.with_suffix(".decoded.wav")
    result = subprocess.run(
        [OPUSDEC, "--quiet", "--rate", str(rate), str(path), str(out)],
        capture_output=True,
        timeout=30,
    )
    assert out.exists(), result.stderr.decode()
    got_rate, samples = read_wav(out)
    assert got_rate == rate
    return samples


def span(
    samples: npt.NDArray[np.float32], rate: int, start: float, end: float
) -> npt.NDArray[np.float32]:
    """The samples between two offsets (seconds), trimmed 60 ms at both ends."""
    return samples[int((start + 0.06) * rate) : int((end - 0.06) * rate)]


needs_opusdec = pytest.mark.skipif(
    not Path(OPUSDEC).exists(), reason="opus-tools (Debian) not installed"
)


@needs_opusdec
async def test_mix_and_talker_segments_with_the_right_tone_in_each(
    engine: MediaEngine, events: list[MediaEvent], phones: PhoneFactory, tmp_path: Path
) -> None:
    engine.create_conference("rec")
    a, b = await phones(), await phones()
    await join(engine, "rec", "a", a, None)
    await join(engine, "rec", "b", b, None)
    index: list[RecordingIndex] = []
    engine.start_recording(
        "rec", tmp_path, formats=("wav", "opus"), rate=16000, on_index=index.append
    )
    assert {(r.kind, r.codec, r.end_ts) for r in index} == {
        ("mix", "wav", None),
        ("mix", "opus", None),
    }
    for phone, leg in ((a, "a"), (b, "b")):
        phone.freq = A if leg == "a" else C
        await eventually(lambda leg=leg: leg in engine.conference_info("rec").talking)
        await asyncio.sleep(0.5)
        phone.freq = None
        await eventually(
            lambda leg=leg: any(isinstance(e, TalkingStopped) and e.leg == leg for e in events)
        )
    records = await engine.stop_recording("rec")
    assert {r.id for r in index if r.end_ts is not None} == {r.id for r in records}
    check_recording(records)


def check_recording(records: list[RecordingIndex]) -> None:
    """The index is consistent and every file holds the right tone in the right place."""
    mix = {r.codec: r for r in records if r.kind == "mix"}
    talkers = sorted(
        (r for r in records if r.kind == "talker"), key=lambda r: (r.start_ts, r.codec)
    )
    assert set(mix) == {"wav", "opus"}
    assert mix["wav"].talkers == ("a", "b")
    (leg_a, a_start, a_end), (leg_b, b_start, b_end) = mix["wav"].segments
    assert (leg_a, leg_b) == ("a", "b") and a_start < a_end <= b_start < b_end
    assert [(r.talker, r.codec) for r in talkers] == [
        ("a", "opus"),
        ("a", "wav"),
        ("b", "opus"),
        ("b", "wav"),
    ]
    assert all(r.bytes > 0 and Path(r.path).stat().st_size == r.bytes for r in records)
    start = mix["wav"].start_ts
    # the mix: each talker's tone where the index says that talker spoke
    rate, audio = read_wav(Path(mix["wav"].path))
    assert rate == 16000
    assert dsp.dominant(span(audio, rate, a_start - start, a_end - start), rate, TONES) == {A}
    assert dsp.dominant(span(audio, rate, b_start - start, b_end - start), rate, TONES) == {C}
    # the same through opus-tools from the Ogg/Opus file
    decoded = opusdec(Path(mix["opus"].path), 16000)
    assert abs(len(decoded) - len(audio)) < 0.05 * rate
    assert dsp.dominant(span(decoded, rate, a_start - start, a_end - start), rate, TONES) == {A}
    assert dsp.dominant(span(decoded, rate, b_start - start, b_end - start), rate, TONES) == {C}
    # each talker's own segment file holds only that talker
    for record, tone in ((talkers[1], A), (talkers[3], C)):
        rate, own = read_wav(Path(record.path))
        assert record.end_ts is not None
        assert len(own) / rate == pytest.approx(record.end_ts - record.start_ts, abs=0.05)
        assert dsp.dominant(own[int(0.05 * rate) :], rate, TONES) == {tone}
    assert dsp.dominant(opusdec(Path(talkers[0].path), 16000)[800:], 16000, TONES) == {A}


def wav_header_seconds(directory: Path) -> float:
    """Seconds of audio the WAV header vouches for (what a reader will see after a crash)."""
    for path in directory.glob("*.wav"):
        header = path.read_bytes()[:44]
        if len(header) == 44:
            return float(struct.unpack_from("<I", header, 40)[0] / 32000)
    return 0.0


def test_a_recording_survives_sigkill_up_to_the_last_second(tmp_path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.media.record_child", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == b"recording"
        deadline = time.monotonic() + 30
        while wav_header_seconds(tmp_path) < 2.0:  # the writer flushes once a second
            assert time.monotonic() < deadline, "no two seconds recorded within 30 s"
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    wav_path = next(iter(tmp_path.glob("*.wav")))
    rate, audio = read_wav(wav_path)  # the header was kept true: a plain reader opens it
    assert rate == 16000 and len(audio) >= 2 * rate
    assert dsp.dominant(audio[rate // 2 :], rate, TONES[:2]) == {TONES[1]}
    opus_path = next(iter(tmp_path.glob("*.opus")))
    data = opus_path.read_bytes()
    pages = list(read_pages(data))  # every complete page passes its CRC; a cut tail is left
    assert pages[0].flags & 0x02 and not any(p.flags & 0x04 for p in pages)  # no EOS: cut off
    pre_skip, input_rate, packets = read_opus_packets(data)
    assert input_rate == 16000 and len(packets) >= 100  # two seconds of 20 ms packets
    decoder = OpusDecoder(16000)
    pcm = np.concatenate([decoder.decode(p) for p in packets]).astype(np.float32)
    assert dsp.dominant(pcm[rate // 2 :], rate, TONES[:2]) == {TONES[1]}
    if Path(OPUSDEC).exists():
        assert len(opusdec(opus_path, 16000)) >= 2 * rate - pre_skip


async def test_unwritable_directory_is_reported_and_the_engine_goes_on(
    engine: MediaEngine, events: list[MediaEvent], tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    engine.create_conference("c")
    engine.start_recording("c", blocker / "sub", formats=("wav",))
    await eventually(lambda: any(isinstance(e, RecordingFailed) for e in events))
    failure = next(e for e in events if isinstance(e, RecordingFailed))
    assert failure.path.endswith(".wav") and failure.reason
    assert await engine.stop_recording("c") == []
    assert engine.stats().recording_errors == 1


def test_writer_queue_is_bounded_and_counts_drops(tmp_path: Path) -> None:
    writer = RecordingWriter(max_frames=2)  # not started: nothing drains
    frame = np.zeros(160, dtype=np.float32)
    writer.open("k", {"wav": tmp_path / "k.wav"}, 8000, False, lambda path, reason: None)
    assert writer.write("k", 8000, frame) and writer.write("k", 8000, frame)
    assert not writer.write("k", 8000, frame)
    assert writer.dropped_frames == 1
    results = []
    writer.close("k", results.extend)
    writer.start()
    writer.stop()
    assert [(r.codec, r.bytes) for r in results] == [("wav", 44 + 2 * 320)]
