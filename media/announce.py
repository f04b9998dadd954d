"""Announcement sources: tones with cadence (busy, ringback, beep) and WAV prompts."""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from media.errors import MediaError
from media.resample import ResamplerState, resample_one

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Tone:
    """A tone of one or more frequencies, ``on_ms``/``off_ms`` cadence, for ``duration_ms``.

    ``off_ms == 0`` is a steady tone; ``duration_ms is None`` plays until stopped.
    """

    frequencies: tuple[float, ...]
    on_ms: int = 1000
    off_ms: int = 0
    level_dbfs: float = -14.0
    duration_ms: int | None = None

    def __post_init__(self) -> None:
        if not self.frequencies or any(f <= 0 for f in self.frequencies):
            raise ValueError("a tone needs at least one positive frequency")
        if self.on_ms <= 0 or self.off_ms < 0:
            raise ValueError("on_ms must be positive and off_ms not negative")


BUSY = Tone((425.0,), on_ms=350, off_ms=350)  # China / ITU-T E.180 style busy
RINGBACK = Tone((425.0,), on_ms=1000, off_ms=4000)
BEEP = Tone((1000.0,), on_ms=200, duration_ms=200)


class ToneSource:
    """Generates a :class:`Tone` frame by frame with continuous phase."""

    def __init__(self, tone: Tone) -> None:
        self.tone = tone
        self._elapsed = 0.0  # seconds

    def next(self, rate: int, samples: int) -> F32 | None:
        tone = self.tone
        start = self._elapsed
        if tone.duration_ms is not None and start >= tone.duration_ms / 1000 - 1e-9:
            return None
        t = start + np.arange(samples) / rate
        self._elapsed = start + samples / rate
        amplitude = 32767 * 10 ** (tone.level_dbfs / 20) / len(tone.frequencies)
        out = np.zeros(samples)
        for freq in tone.frequencies:
            out += amplitude * np.sin(2 * np.pi * freq * t)
        period = (tone.on_ms + tone.off_ms) / 1000
        gate = (t % period) < tone.on_ms / 1000
        if tone.duration_ms is not None:
            gate &= t < tone.duration_ms / 1000
        return (out * gate).astype(np.float32)


def read_wav(path: Path) -> tuple[int, F32]:
    """(rate, mono float32 samples in 16-bit scale) of a PCM WAV file (blocking: run off-loop)."""
    try:
        with wave.open(str(path), "rb") as wav:
            rate, width, channels = wav.getframerate(), wav.getsampwidth(), wav.getnchannels()
            raw = wav.readframes(wav.getnframes())
    except (OSError, EOFError, wave.Error) as err:
        raise MediaError(f"cannot read announcement {path}: {err}") from err
    if width == 2:
        data = np.frombuffer(raw, dtype="<i2").astype(np.float32)
    elif width == 1:
        data = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128) * 256
    else:
        raise MediaError(f"announcement {path}: {8 * width}-bit samples, expected 8 or 16")
    if channels > 1:
        data = data.reshape(-1, channels).mean(axis=1).astype(np.float32)
    return rate, data


def convert_rate(samples: F32, src: int, dst: int) -> F32:
    """Whole-buffer rate conversion: polyphase for 8/16/48 kHz ratios, else interpolation."""
    if src == dst:
        return samples
    if dst % src == 0 or src % dst == 0:
        return resample_one(ResamplerState(src, dst), samples)
    positions = np.arange(int(len(samples) * dst / src)) * (src / dst)
    return np.interp(positions, np.arange(len(samples)), samples).astype(np.float32)


class PcmSource:
    """A prompt loaded into memory; converted to whatever rate the conference mixes at."""

    def __init__(self, rate: int, samples: F32, loop: bool = False) -> None:
        self._rate = rate
        self._samples = samples
        self.loop = loop
        self._position = 0.0  # seconds
        self._cache: tuple[int, F32] | None = None

    def next(self, rate: int, samples: int) -> F32 | None:
        if self._cache is None or self._cache[0] != rate:
            self._cache = (rate, convert_rate(self._samples, self._rate, rate))
        data = self._cache[1]
        at = round(self._position * rate)
        if at >= len(data):
            if not self.loop or len(data) == 0:
                return None
            at = 0
        chunk = data[at : at + samples]
        if len(chunk) < samples:
            chunk = np.concatenate([chunk, np.zeros(samples - len(chunk), dtype=np.float32)])
        self._position = (at + samples) / rate
        return chunk


Source = ToneSource | PcmSource
