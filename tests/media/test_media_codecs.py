"""G.711, G.722 (spandsp), Opus (libopus), resampling, soft clipping, talk detection."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from media import dsp, g711
from media.codecs import CodecState, codec_info
from media.errors import CodecError
from media.g722 import G722Codec
from media.opus import OpusDecoder, OpusEncoder
from media.resample import ResamplerState, resample
from media.talk import TalkColumns, TalkSettings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import audioop  # the CPython reference G.711 (Python <= 3.12)
    except ImportError:  # pragma: no cover - newer Pythons
        audioop = None


def test_g711_known_values() -> None:
    # G.711 table points: µ-law 0xFF and A-law 0xD5 are zero/smallest positive; extremes
    assert g711.DECODE[0xFF] == 0 and g711.DECODE[0x00] == -32124 and g711.DECODE[0x80] == 32124
    assert g711.DECODE[256 + 0xD5] == 8 and g711.DECODE[256 + 0x55] == -8
    assert g711.DECODE[256 + 0xAA] == 32256 and g711.DECODE[256 + 0x2A] == -32256
    assert (g711.ULAW_SILENCE, g711.ALAW_SILENCE) == (0xFF, 0xD5)


@pytest.mark.skipif(audioop is None, reason="audioop (reference G.711) not in this Python")
def test_g711_tables_match_the_reference_for_every_sample() -> None:
    assert audioop is not None
    pcm = np.arange(-32768, 32768, dtype=np.int16)
    every = bytes(range(256))
    for law, lin2, to_lin in (
        (g711.ULAW, audioop.lin2ulaw, audioop.ulaw2lin),
        (g711.ALAW, audioop.lin2alaw, audioop.alaw2lin),
    ):
        expected = np.frombuffer(lin2(pcm.tobytes(), 2), dtype=np.uint8)
        assert np.array_equal(g711.encode(pcm.astype(np.float32), law), expected)
        decoded = np.frombuffer(to_lin(every, 2), dtype=np.int16)
        assert np.array_equal(g711.decode(np.arange(256, dtype=np.uint8), law), decoded)


def test_g711_batch_of_mixed_laws_in_one_call() -> None:
    frames = np.stack([dsp.tone(440, 8000, 160), dsp.tone(1000, 8000, 160)])
    laws = np.array([g711.ULAW, g711.ALAW])
    encoded = g711.encode(frames, laws)
    assert np.array_equal(encoded[0], g711.encode(frames[0], g711.ULAW))
    assert np.array_equal(encoded[1], g711.encode(frames[1], g711.ALAW))
    decoded = g711.decode(encoded, laws)
    assert np.max(np.abs(decoded - frames)) < 0.04 * 32767


def test_g722_round_trips_a_wideband_tone() -> None:
    coder = G722Codec()
    x = dsp.tone(6000, 16000, 16000, -10.0)  # above 4 kHz: only a 16 kHz codec carries it
    payload = b"".join(coder.encode(g711.to_int16(x[i : i + 320])) for i in range(0, 16000, 320))
    assert len(payload) == 8000  # 64 kbit/s
    decoder = G722Codec()
    y = np.concatenate([decoder.decode(payload[i : i + 160]) for i in range(0, 8000, 160)])
    assert len(y) == 16000
    tail = y[2000:].astype(np.float32)
    assert dsp.goertzel_power(tail, 6000, 16000) > 0.5 * dsp.goertzel_power(x[2000:], 6000, 16000)
    assert dsp.dominant(tail, 16000, [1000, 3000, 6000]) == {6000}


def test_g722_bitstream_is_decodable_by_a_fresh_reference_decoder() -> None:
    # the stream is standard G.722: any decoder state started at zero reads it the same
    stream = G722Codec().encode(g711.to_int16(dsp.tone(1000, 16000, 3200)))
    first = G722Codec().decode(stream)
    second = G722Codec().decode(stream)
    assert np.array_equal(first, second)
    assert dsp.dominant(first[800:], 16000, [500, 1000, 2000]) == {1000}


def test_opus_encode_decode_conceal_and_fec() -> None:
    encoder = OpusEncoder(48000, fec=True, loss_percent=20)
    decoder = OpusDecoder(48000)
    tone = dsp.tone(800, 48000, 48000, -12.0)
    packets = [encoder.encode(g711.to_int16(tone[i : i + 960])) for i in range(0, 48000, 960)]
    assert all(10 < len(p) < 400 for p in packets)
    out = []
    for i, packet in enumerate(packets):
        if i == 20:
            out.append(decoder.conceal(960))  # lost: decoder PLC
        elif i == 30:
            out.append(decoder.recover(packets[31], 960))  # lost: rebuilt from 31's FEC
        else:
            out.append(decoder.decode(packet))
    assert all(len(chunk) == 960 for chunk in out)
    audio = np.concatenate(out).astype(np.float32)
    assert dsp.dominant(audio[9600:], 48000, [400, 800, 1600]) == {800}
    assert dsp.level_dbfs(out[20].astype(np.float32)) > -40  # concealment is not silence
    assert dsp.level_dbfs(out[30].astype(np.float32)) > -25


def test_codec_registry_and_errors() -> None:
    assert codec_info("pcmu").static_payload_type == 0
    assert codec_info("G722").rtp_clock == 8000 and codec_info("G722").sample_rate == 16000
    assert codec_info("OPUS").rtp_clock == 48000 and codec_info("opus").wideband
    with pytest.raises(CodecError, match="unknown codec 'GSM'"):
        codec_info("GSM")
    state = CodecState(codec_info("PCMA"))
    assert state.decode(state.encode(np.zeros(160, dtype=np.float32))).shape == (160,)


@pytest.mark.parametrize(
    ("src", "dst"),
    [(8000, 16000), (8000, 48000), (16000, 48000), (48000, 8000), (16000, 8000), (48000, 16000)],
)
def test_resampling_is_continuous_across_frames(src: int, dst: int) -> None:
    up, back = ResamplerState(src, dst), ResamplerState(dst, src)
    n = src // 50
    x = dsp.tone(1000, src, src, -10.0)
    frames = [resample([back], resample([up], x[None, i : i + n]))[0] for i in range(0, src, n)]
    y = np.concatenate(frames)
    lag = max(range(64), key=lambda lag: float(np.dot(x[2000:3000], y[2000 + lag : 3000 + lag])))
    error = y[2000 + lag :] - x[2000 : len(y) - lag]
    assert np.sqrt(np.mean(error**2)) < 0.002 * 32767  # -54 dB: no clicks at frame edges


def test_resampling_a_batch_equals_one_by_one() -> None:
    frames = np.stack([dsp.tone(f, 8000, 160) for f in (300, 700, 1300)])
    batch_states = [ResamplerState(8000, 48000) for _ in range(3)]
    single_states = [ResamplerState(8000, 48000) for _ in range(3)]
    for _ in range(3):
        batch = resample(batch_states, frames)
        singles = np.stack(
            [resample([s], f[None])[0] for s, f in zip(single_states, frames, strict=True)]
        )
        assert np.allclose(batch, singles, atol=1e-3)
    with pytest.raises(ValueError, match="not an integer ratio"):
        ResamplerState(8000, 44100)


def test_soft_clip_limits_smoothly() -> None:
    x = np.array([0.0, 10000.0, -24000.0, 40000.0, -90000.0], dtype=np.float32)
    y = dsp.soft_clip(x.copy())
    assert y[0] == 0 and y[1] == 10000 and y[2] == -24000  # below the knee: untouched
    assert 24575 < y[3] < 32767 and -32767 < y[4] < y[3] * -1 + 1
    assert np.all(np.abs(y) <= 32767)


def test_talk_detection_hysteresis_attack_and_hang() -> None:
    settings = TalkSettings(start_dbfs=-30, stop_dbfs=-40, attack_frames=2, hang_frames=3)
    talk = TalkColumns(2)
    levels = [
        (-20, -60),
        (-20, -35),
        (-35, -35),
        (-35, -20),
        (-45, -20),
        (-45, -50),
        (-45, -50),
        (-45, -50),
    ]
    log = []
    for a, b in levels:
        started, stopped = talk.update(settings, np.array([a, b], dtype=np.float64))
        log.append((started.tolist(), stopped.tolist()))
    assert log == [
        ([], []),
        ([0], []),  # leg 0: two frames above -30 dBFS
        ([], []),  # -35 is below start but above stop: leg 0 keeps talking (hysteresis)
        ([], []),  # leg 1's earlier -35 frames did not count towards its attack
        ([1], []),
        ([], []),  # leg 0 below stop since frame 4: hang 3 frames
        ([], [0]),
        ([], [1]),
    ]
    assert talk.talking.tolist() == [False, False]
