"""G.711 µ-law and A-law by lookup tables, for whole batches of frames at once.

Samples are float32 in 16-bit PCM scale (−32768..32767) throughout the engine. Decoding
takes from a 256-entry table per law; encoding takes from a 65536-entry table per law,
indexed by the sample's 16-bit pattern. A (legs, samples) array is one ``take`` per law
present, whatever the number of legs.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

ULAW, ALAW = 0, 1
_BIAS = 0x84


def _ulaw_decode_table() -> npt.NDArray[np.int16]:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + _BIAS) << exponent) - _BIAS
    return np.where(u & 0x80, -magnitude, magnitude).astype(np.int16)


def _alaw_decode_table() -> npt.NDArray[np.int16]:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    exponent = (a >> 4) & 0x07
    mantissa = a & 0x0F
    magnitude = np.where(
        exponent == 0,
        (mantissa << 4) + 8,
        ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0),
    )
    return np.where(a & 0x80, magnitude, -magnitude).astype(np.int16)


def _segment(magnitude: npt.NDArray[np.int32], base: int) -> npt.NDArray[np.int32]:
    """Index of the highest set bit above ``base`` (0..7): the G.711 segment."""
    seg = np.zeros_like(magnitude)
    for bit in range(7, 0, -1):
        seg = np.where((seg == 0) & (magnitude >= (base << bit)), bit, seg)
    return seg


def _ulaw_encode_table() -> npt.NDArray[np.uint8]:
    # the 14-bit reference algorithm (ITU-T G.191 / Sun g711.c), so bytes match other stacks
    pcm = np.arange(65536, dtype=np.int32)
    pcm = np.where(pcm >= 32768, pcm - 65536, pcm) >> 2
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    value = np.minimum(np.abs(pcm), 8159) + 0x21
    seg_end = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
    seg = np.searchsorted(seg_end, value, side="left")
    ulaw = (np.minimum(seg, 7) << 4) | ((value >> (np.minimum(seg, 7) + 1)) & 0x0F)
    ulaw = np.where(seg >= 8, 0x7F, ulaw)
    return (ulaw ^ mask).astype(np.uint8)


def _alaw_encode_table() -> npt.NDArray[np.uint8]:
    pcm = np.arange(65536, dtype=np.int32)
    pcm = np.where(pcm >= 32768, pcm - 65536, pcm)
    sign = np.where(pcm >= 0, 0x80, 0)
    magnitude = np.where(pcm < 0, -pcm - 1, pcm) >> 3  # 13-bit magnitude
    magnitude = np.minimum(magnitude, 0x0FFF)
    exponent = _segment(magnitude, 0x10)
    mantissa = np.where(exponent == 0, magnitude >> 1, magnitude >> exponent) & 0x0F
    return ((sign | (exponent << 4) | mantissa) ^ 0x55).astype(np.uint8)


DECODE = np.concatenate([_ulaw_decode_table(), _alaw_decode_table()]).astype(np.float32)
ENCODE = (_ulaw_encode_table(), _alaw_encode_table())
ULAW_SILENCE = int(ENCODE[ULAW][0])
ALAW_SILENCE = int(ENCODE[ALAW][0])


_DECODE_BY_LAW = (DECODE[:256].copy(), DECODE[256:].copy())


def decode(data: npt.NDArray[np.uint8], law: int | npt.NDArray[np.intp]) -> npt.NDArray[np.float32]:
    """Bytes (any shape) to float32 PCM; ``law`` is ULAW/ALAW or one law per row."""
    if not isinstance(law, np.ndarray):
        return _DECODE_BY_LAW[law].take(data)
    out = _DECODE_BY_LAW[ULAW].take(data)
    alaw = law == ALAW
    if alaw.any():
        out[alaw] = _DECODE_BY_LAW[ALAW].take(data[alaw])
    return out


def to_int16(pcm: npt.NDArray[np.floating]) -> npt.NDArray[np.int16]:
    """Float PCM in 16-bit scale to int16, rounded and saturated."""
    return np.clip(np.rint(pcm), -32768, 32767).astype(np.int16)


def encode(pcm: npt.NDArray[np.floating], law: int | npt.NDArray[np.intp]) -> npt.NDArray[np.uint8]:
    """Float PCM (any shape) to G.711 bytes; ``law`` is ULAW/ALAW or one law per row."""
    index = to_int16(pcm).view(np.uint16)
    if not isinstance(law, np.ndarray):
        return ENCODE[law].take(index)
    out = ENCODE[ULAW].take(index)
    alaw = law == ALAW
    if alaw.any():
        out[alaw] = ENCODE[ALAW].take(index[alaw])
    return out
