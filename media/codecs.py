"""The codecs a leg can use, and per-leg codec state for the ones not batched as G.711."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from media import g711, g722
from media.errors import CodecError
from media.opus import OpusDecoder, OpusEncoder

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class CodecInfo:
    """``rtp_clock`` is the RTP timestamp rate; ``sample_rate`` the PCM rate it codes."""

    name: str
    rtp_clock: int
    sample_rate: int
    static_payload_type: int | None
    law: int | None = None  # G.711 law for the batched path

    @property
    def wideband(self) -> bool:
        return self.sample_rate > 8000


CODECS: dict[str, CodecInfo] = {
    "PCMU": CodecInfo("PCMU", 8000, 8000, 0, g711.ULAW),
    "PCMA": CodecInfo("PCMA", 8000, 8000, 8, g711.ALAW),
    "G722": CodecInfo("G722", g722.RTP_CLOCK_RATE, g722.SAMPLE_RATE, 9),
    "opus": CodecInfo("opus", 48000, 48000, None),
}


def codec_info(name: str) -> CodecInfo:
    for key, info in CODECS.items():
        if key.lower() == name.lower():
            return info
    raise CodecError(f"unknown codec {name!r}: one of {', '.join(CODECS)}")


class CodecState:
    """Encoder and decoder state of one leg; G.711 is stateless, so it is kept here too."""

    def __init__(self, info: CodecInfo) -> None:
        self.info = info
        self._g722: g722.G722Codec | None = None
        self._opus_enc: OpusEncoder | None = None
        self._opus_dec: OpusDecoder | None = None
        if info.name == "G722":
            self._g722 = g722.G722Codec()
        elif info.name == "opus":
            self._opus_enc = OpusEncoder(48000)
            self._opus_dec = OpusDecoder(48000)

    def decode(self, payload: bytes) -> F32:
        if self.info.law is not None:
            return g711.decode(np.frombuffer(payload, dtype=np.uint8), self.info.law)
        if self._g722 is not None:
            return self._g722.decode(payload).astype(np.float32)
        assert self._opus_dec is not None
        return self._opus_dec.decode(payload).astype(np.float32)

    def encode(self, pcm: F32) -> bytes:
        if self.info.law is not None:
            return g711.encode(pcm, self.info.law).tobytes()
        if self._g722 is not None:
            return self._g722.encode(g711.to_int16(pcm))
        assert self._opus_enc is not None
        return self._opus_enc.encode(g711.to_int16(pcm))

    @property
    def has_plc(self) -> bool:
        return self._opus_dec is not None

    def conceal(self, samples: int, next_payload: bytes | None) -> F32:
        """The decoder's own concealment (Opus), using in-band FEC when the next packet is here."""
        assert self._opus_dec is not None
        if next_payload is not None:
            return self._opus_dec.recover(next_payload, samples).astype(np.float32)
        return self._opus_dec.conceal(samples).astype(np.float32)

    def close(self) -> None:
        for coder in (self._g722, self._opus_enc, self._opus_dec):
            if coder is not None:
                coder.close()
