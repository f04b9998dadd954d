"""Small vectorised signal tools: tones, levels, soft clipping and a Goertzel tone detector."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
FULL_SCALE = 32767.0
# Soft clipping: linear up to the knee, then a tanh curve that approaches full scale.
_KNEE = 0.75 * FULL_SCALE
_SPAN = FULL_SCALE - _KNEE


def tone(
    freq: float, rate: int, samples: int, level_dbfs: float = -12.0, phase: float = 0.0
) -> F32:
    """A sine of ``samples`` samples at ``level_dbfs`` (peak), starting at ``phase`` radians."""
    amplitude = FULL_SCALE * 10 ** (level_dbfs / 20)
    t = np.arange(samples, dtype=np.float64)
    return (amplitude * np.sin(phase + 2 * np.pi * freq * t / rate)).astype(np.float32)


def level_dbfs(frames: F32) -> npt.NDArray[np.float64]:
    """RMS level of each row (or of a 1-D frame) in dB below a full-scale sine's RMS."""
    x = np.asarray(frames, dtype=np.float32)
    power = np.einsum("...i,...i->...", x, x, dtype=np.float64) / max(1, x.shape[-1])
    # a full-scale sine has RMS 32767/sqrt(2): 0 dBFS by the usual convention
    return 10 * np.log10(power / (FULL_SCALE**2 / 2) + 1e-12)


def soft_clip(frames: F32) -> F32:
    """Limit in place to 16-bit range with a smooth knee (only the loud samples cost)."""
    magnitude = np.abs(frames)
    loud = magnitude > _KNEE
    if loud.any():
        over = magnitude[loud] - _KNEE
        frames[loud] = np.sign(frames[loud]) * (_KNEE + _SPAN * np.tanh(over / _SPAN))
    return frames


def goertzel_power(x: npt.ArrayLike, freq: float, rate: int) -> float:
    """Normalised power of ``freq`` in ``x`` (a full-scale sine gives about 1.0)."""
    samples = np.asarray(x, dtype=np.float64)
    n = len(samples)
    if n == 0:
        return 0.0
    # evaluating the DFT at one (non-integer) bin is what the Goertzel recursion computes
    phase = np.exp(-2j * np.pi * freq * np.arange(n) / rate)
    value = complex(np.dot(samples, phase))
    return float(abs(value) ** 2 / (n * FULL_SCALE / 2) ** 2)


def dominant(
    x: npt.ArrayLike, rate: int, candidates: list[float], floor: float = 1e-4
) -> set[float]:
    """Candidates clearly present in ``x``: power above ``floor`` and above 1/10 of the best."""
    powers = {f: goertzel_power(x, f, rate) for f in candidates}
    best = max(powers.values(), default=0.0)
    return {f for f, p in powers.items() if p > floor and p > best / 10}
