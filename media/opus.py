"""Opus (RFC 6716, RTP clock 48000) through libopus via ctypes: encode, decode, PLC and FEC."""

from __future__ import annotations

import ctypes
import functools

import numpy as np
import numpy.typing as npt

from media.errors import CodecError
from media.native import load

RTP_CLOCK_RATE = 48000
APPLICATION_VOIP = 2048
_SET_BITRATE = 4002
_SET_COMPLEXITY = 4010
_SET_INBAND_FEC = 4012
_SET_PACKET_LOSS_PERC = 4014
_SET_DTX = 4016
_GET_LOOKAHEAD = 4027
_MAX_PACKET = 1500
_P = ctypes.c_void_p


@functools.cache
def _lib() -> ctypes.CDLL:
    lib = load("opus", "libopus.so.0", "libopus0")
    err = ctypes.POINTER(ctypes.c_int)
    lib.opus_encoder_create.restype = lib.opus_decoder_create.restype = _P
    lib.opus_encoder_create.argtypes = [ctypes.c_int32, ctypes.c_int, ctypes.c_int, err]
    lib.opus_decoder_create.argtypes = [ctypes.c_int32, ctypes.c_int, err]
    lib.opus_encode.restype = lib.opus_decode.restype = ctypes.c_int
    lib.opus_encode.argtypes = [_P, _P, ctypes.c_int, _P, ctypes.c_int32]
    lib.opus_decode.argtypes = [_P, _P, ctypes.c_int32, _P, ctypes.c_int, ctypes.c_int]
    lib.opus_encoder_destroy.argtypes = lib.opus_decoder_destroy.argtypes = [_P]
    lib.opus_strerror.restype = ctypes.c_char_p
    lib.opus_strerror.argtypes = [ctypes.c_int]
    return lib


def _error(lib: ctypes.CDLL, code: int) -> str:
    text: bytes = lib.opus_strerror(code)
    return text.decode()


class OpusEncoder:
    """A mono Opus encoder at 8, 12, 16, 24 or 48 kHz input."""

    def __init__(
        self,
        sample_rate: int = 48000,
        *,
        bitrate: int = 32000,
        fec: bool = True,
        loss_percent: int = 5,
    ) -> None:
        lib = _lib()
        self._lib = lib
        self.sample_rate = sample_rate
        err = ctypes.c_int(0)
        self._state = lib.opus_encoder_create(sample_rate, 1, APPLICATION_VOIP, ctypes.byref(err))
        if err.value != 0 or not self._state:
            raise CodecError(f"opus_encoder_create({sample_rate}): {_error(lib, err.value)}")
        self._ctl(_SET_BITRATE, bitrate)
        self._ctl(_SET_INBAND_FEC, int(fec))
        self._ctl(_SET_PACKET_LOSS_PERC, loss_percent)
        self._ctl(_SET_COMPLEXITY, 5)
        lookahead = ctypes.c_int(0)
        lib.opus_encoder_ctl(_P(self._state), ctypes.c_int(_GET_LOOKAHEAD), ctypes.byref(lookahead))
        # lookahead in input samples; Ogg's pre-skip counts 48 kHz samples
        self.lookahead_48k = lookahead.value * 48000 // sample_rate
        self._out = np.empty(_MAX_PACKET, dtype=np.uint8)

    def _ctl(self, request: int, value: int) -> None:
        code = self._lib.opus_encoder_ctl(
            _P(self._state), ctypes.c_int(request), ctypes.c_int(value)
        )
        if code != 0:
            raise CodecError(f"opus_encoder_ctl({request}, {value}): {_error(self._lib, code)}")

    def encode(self, pcm: npt.NDArray[np.int16]) -> bytes:
        """One frame (2.5..60 ms of samples at ``sample_rate``) to one Opus packet."""
        pcm = np.ascontiguousarray(pcm, dtype=np.int16)
        n = self._lib.opus_encode(
            self._state, pcm.ctypes.data, len(pcm), self._out.ctypes.data, _MAX_PACKET
        )
        if n < 0:
            raise CodecError(f"opus_encode: {_error(self._lib, n)}")
        return self._out[:n].tobytes()

    def close(self) -> None:
        if self._state:
            self._lib.opus_encoder_destroy(self._state)
            self._state = None

    def __del__(self) -> None:
        self.close()


class OpusDecoder:
    """A mono Opus decoder; ``conceal`` runs the decoder's PLC, ``recover`` its in-band FEC."""

    def __init__(self, sample_rate: int = 48000) -> None:
        lib = _lib()
        self._lib = lib
        self.sample_rate = sample_rate
        err = ctypes.c_int(0)
        self._state = lib.opus_decoder_create(sample_rate, 1, ctypes.byref(err))
        if err.value != 0 or not self._state:
            raise CodecError(f"opus_decoder_create({sample_rate}): {_error(lib, err.value)}")
        self._out = np.empty(sample_rate * 120 // 1000, dtype=np.int16)

    def _decode(self, payload: bytes | None, frame: int, fec: int) -> npt.NDArray[np.int16]:
        frame = min(frame, len(self._out))
        n = self._lib.opus_decode(
            self._state, payload, len(payload) if payload else 0, self._out.ctypes.data, frame, fec
        )
        if n < 0:
            raise CodecError(f"opus_decode: {_error(self._lib, n)}")
        return self._out[:n].copy()

    def decode(self, payload: bytes) -> npt.NDArray[np.int16]:
        return self._decode(payload, len(self._out), 0)

    def conceal(self, samples: int) -> npt.NDArray[np.int16]:
        """Packet-loss concealment for ``samples`` (a multiple of 2.5 ms)."""
        return self._decode(None, samples, 0)

    def recover(self, next_payload: bytes, samples: int) -> npt.NDArray[np.int16]:
        """The lost frame rebuilt from the FEC data carried in the packet after it."""
        return self._decode(next_payload, samples, 1)

    def close(self) -> None:
        if self._state:
            self._lib.opus_decoder_destroy(self._state)
            self._state = None

    def __del__(self) -> None:
        self.close()
