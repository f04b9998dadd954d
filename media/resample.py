"""Stateful polyphase resampling between 8, 16 and 48 kHz (integer ratios), batched over legs.

Each leg keeps its filter history in a :class:`ResamplerState`; :func:`resample` runs the
frames of many legs with the same ratio as one (legs, samples) matrix product, so joining
a wideband leg costs a few numpy calls per tick, not a Python loop over samples.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

TAPS_PER_PHASE = 16
F32 = npt.NDArray[np.float32]


@functools.cache
def _lowpass(factor: int) -> npt.NDArray[np.float64]:
    """Kaiser-windowed sinc, cut just below the narrower band's Nyquist, unity DC gain."""
    length = factor * TAPS_PER_PHASE
    n = np.arange(length) - (length - 1) / 2
    cutoff = 0.92 / (2 * factor)
    h = 2 * cutoff * np.sinc(2 * cutoff * n) * np.kaiser(length, 7.0)
    return h / h.sum()


@functools.cache
def _kernel(src: int, dst: int) -> tuple[int, int, npt.NDArray[np.float32]]:
    """(up, down, matrix) for src -> dst; only integer ratios are supported."""
    if dst % src == 0:
        up = dst // src
        h = _lowpass(up) * up
        # y[L*n + p] = sum_k h[p + L*k] x[n-k]: column p holds phase p, oldest sample first
        k = TAPS_PER_PHASE
        matrix = np.empty((k, up))
        for p in range(up):
            matrix[:, p] = h[p + up * np.arange(k)][::-1]
        return up, 1, matrix.astype(np.float32)
    if src % dst == 0:
        down = src // dst
        h = _lowpass(down)
        return 1, down, h[::-1].astype(np.float32).reshape(-1, 1)
    raise ValueError(f"cannot resample {src} Hz to {dst} Hz: not an integer ratio")


class ResamplerState:
    """One leg's filter history for one conversion ``src`` -> ``dst``."""

    __slots__ = ("down", "dst", "history", "src", "up")

    def __init__(self, src: int, dst: int) -> None:
        self.src, self.dst = src, dst
        self.up, self.down, matrix = _kernel(src, dst)
        self.history = np.zeros(matrix.shape[0] - 1, dtype=np.float32)


def resample(states: Sequence[ResamplerState], frames: F32) -> F32:
    """Resample ``frames`` (legs, samples), row i with ``states[i]``; all share one ratio."""
    first = states[0]
    up, down, matrix = _kernel(first.src, first.dst)
    history = np.stack([s.history for s in states]) if len(states) > 1 else first.history[None]
    extended = np.concatenate([history, frames.astype(np.float32, copy=False)], axis=1)
    keep = matrix.shape[0] - 1
    for i, state in enumerate(states):
        state.history = extended[i, extended.shape[1] - keep :].copy()
    windows = sliding_window_view(extended, matrix.shape[0], axis=1)
    if up > 1:
        out = windows @ matrix  # (legs, n, up)
        return out.reshape(len(states), -1)
    return (windows[:, down - 1 :: down] @ matrix)[..., 0]


def resample_one(state: ResamplerState, frame: F32) -> F32:
    return resample([state], frame[None])[0]
