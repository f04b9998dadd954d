"""G.722 (64 kbit/s, 16 kHz audio, RTP clock 8000) through spandsp's reference coder (ctypes)."""

from __future__ import annotations

import ctypes
import functools

import numpy as np
import numpy.typing as npt

from media.errors import CodecError
from media.native import load

SAMPLE_RATE = 16000
RTP_CLOCK_RATE = 8000  # RFC 3551 section 4.5.2: the clock rate is 8000 for historical reasons
_P = ctypes.c_void_p


@functools.cache
def _lib() -> ctypes.CDLL:
    lib = load("spandsp", "libspandsp.so.2", "libspandsp2")
    for fn in (lib.g722_encode_init, lib.g722_decode_init):
        fn.restype = _P
        fn.argtypes = [_P, ctypes.c_int, ctypes.c_int]
    lib.g722_encode.restype = lib.g722_decode.restype = ctypes.c_int
    lib.g722_encode.argtypes = [_P, _P, _P, ctypes.c_int]
    lib.g722_decode.argtypes = [_P, _P, _P, ctypes.c_int]
    lib.g722_encode_free.argtypes = lib.g722_decode_free.argtypes = [_P]
    return lib


class G722Codec:
    """One direction pair of G.722 state: 16 kHz int16 in, one byte per two samples out."""

    name = "G722"

    def __init__(self) -> None:
        lib = _lib()
        self._lib = lib
        self._enc = lib.g722_encode_init(None, 64000, 0)
        self._dec = lib.g722_decode_init(None, 64000, 0)
        if not self._enc or not self._dec:
            raise CodecError("spandsp could not create a G.722 coder")

    def encode(self, pcm: npt.NDArray[np.int16]) -> bytes:
        pcm = np.ascontiguousarray(pcm, dtype=np.int16)
        out = np.empty(len(pcm) // 2 + 1, dtype=np.uint8)
        n = self._lib.g722_encode(self._enc, out.ctypes.data, pcm.ctypes.data, len(pcm))
        return out[:n].tobytes()

    def decode(self, payload: bytes) -> npt.NDArray[np.int16]:
        data = np.frombuffer(payload, dtype=np.uint8)
        out = np.empty(2 * len(data), dtype=np.int16)
        n = self._lib.g722_decode(self._dec, out.ctypes.data, data.ctypes.data, len(data))
        return out[:n]

    def close(self) -> None:
        if self._enc:
            self._lib.g722_encode_free(self._enc)
            self._enc = None
        if self._dec:
            self._lib.g722_decode_free(self._dec)
            self._dec = None

    def __del__(self) -> None:
        self.close()
