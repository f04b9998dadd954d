"""Real peers that talk and listen, for the conference tests: tones in, Goertzel out.

* :class:`ToneBaresip` is baresip sending a WAV tone (``aufile`` source, switchable
  mid-call) and writing what it decodes to a WAV (the ``sndfile`` filter), so a test reads
  what the phone *heard*.
* :class:`SippParty` is SIPp answering (or placing) one call and streaming a µ-law WAV
  tone with ``<exec rtp_stream>`` from its media port. SIPp keeps what it receives to
  itself and the hub only takes RTP from the port the SDP names, so what SIPp hears is
  read off the loopback interface (:class:`LoopbackTap`, needs CAP_NET_RAW). With
  ``sdp_port`` SIPp only signals and the SDP names a socket the test owns (an RTP phone
  that can also misbehave: garbage, floods, silence).
* :func:`tone_wav` / :func:`mulaw_wav` write the tones; :func:`tones` finds the candidate
  frequencies present in some audio with ``media.dsp``'s Goertzel filter.

Listening is always "from now on": ``listen(seconds)`` waits until that much new audio
has arrived (no sleeps), so a test asks what a party heard *after* a change took effect.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import re
import socket
import struct
import tempfile
import time
import wave
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from media import dsp
from media.codecs import CodecState, codec_info
from media.rtp import RtpPacket, is_rtcp
from tests.sip.peers import HOST, Address, Baresip, PeerError, Sipp, SippResult, free_port

F32 = npt.NDArray[np.float32]
RATE = 8000
SCENARIOS = Path(__file__).resolve().parent / "scenarios"
# Distinct party tones: no harmonics of one another in the 8 kHz band.
PARTY_TONES = (400.0, 700.0, 1100.0, 1500.0)
SILENT_DBFS = -45.0  # quieter than this is silence (a -12 dBFS tone is far above it)


# -- audio tools -----------------------------------------------------------------------------


def tone_wav(path: Path, freq: float | None, seconds: float, level_dbfs: float = -12.0) -> Path:
    """An 8 kHz mono S16LE WAV of ``freq`` (None: silence), the format aufile and SIPp read."""
    samples = int(seconds * RATE)
    if freq is None:
        pcm = np.zeros(samples, dtype=np.int16)
    else:
        pcm = np.round(dsp.tone(freq, RATE, samples, level_dbfs)).astype(np.int16)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(pcm.astype("<i2").tobytes())
    return path


def read_wav_growing(path: Path) -> tuple[int, F32]:
    """Rate and samples of a 16-bit mono WAV that may still be being written.

    A writer that has not closed the file has not filled in the chunk sizes yet, so the
    ``data`` chunk is taken to run to the end of what is on disk.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return RATE, np.zeros(0, dtype=np.float32)
    if len(raw) < 12 or raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        return RATE, np.zeros(0, dtype=np.float32)
    rate, offset = RATE, 12
    while offset + 8 <= len(raw):
        kind, size = raw[offset : offset + 4], struct.unpack("<I", raw[offset + 4 : offset + 8])[0]
        body = offset + 8
        if kind == b"fmt " and body + 16 <= len(raw):
            channels, rate, _, _, bits = struct.unpack("<HIIHH", raw[body + 2 : body + 16])
            if channels != 1 or bits != 16:
                raise PeerError(f"{path.name}: want 16-bit mono, got {channels} ch {bits} bit")
        if kind == b"data":
            data = raw[body:]
            data = data[: len(data) - len(data) % 2]
            return rate, np.frombuffer(data, dtype="<i2").astype(np.float32)
        offset = body + size + (size & 1)
    return rate, np.zeros(0, dtype=np.float32)


def tones(audio: F32, candidates: Iterable[float], rate: int = RATE) -> set[float]:
    """The candidate tones clearly present in ``audio`` (empty for silence)."""
    if len(audio) == 0 or float(dsp.level_dbfs(audio)) < SILENT_DBFS:
        return set()
    return dsp.dominant(audio, rate, list(candidates))


def level(audio: F32) -> float:
    """RMS level in dBFS (-200 for no audio at all)."""
    return float(dsp.level_dbfs(audio)) if len(audio) else -200.0


def segments(
    audio: F32, freq: float, rate: int = RATE, window: float = 0.1
) -> list[tuple[float, float]]:
    """Spans (start s, end s) of ``audio`` where ``freq`` dominates, in ``window`` steps."""
    step = int(rate * window)
    spans: list[tuple[float, float]] = []
    start: float | None = None
    count = len(audio) // step
    for i in range(count + 1):
        on = False
        if i < count:
            chunk = audio[i * step : (i + 1) * step]
            on = level(chunk) > SILENT_DBFS and dsp.goertzel_power(chunk, freq, rate) > 1e-3
        if on and start is None:
            start = i * window
        elif not on and start is not None:
            spans.append((start, i * window))
            start = None
    return spans


# -- baresip ---------------------------------------------------------------------------------


@dataclass
class ToneBaresip(Baresip):
    """baresip that sends ``tone_hz`` (None: silence) and records what it decodes.

    The tone file lasts ``tone_seconds`` (aufile ends the call's audio at end of file).
    ``play(freq)`` switches the source mid-call (baresip's ``ausrc`` command).
    """

    tone_hz: float | None = 400.0
    tone_seconds: float = 60.0
    # aufile reads the whole file into memory, so a long silence is cheap enough
    _heard_dir: Path | None = field(default=None, init=False)

    def config_text(self) -> str:
        assert self.workdir is not None
        self._heard_dir = self.workdir / "heard"
        self._heard_dir.mkdir(exist_ok=True)
        source = self._wav(self.tone_hz)
        lines = [
            line
            for line in super().config_text().splitlines()
            if not line.startswith(("audio_player", "audio_source", "audio_alert"))
        ]
        first_app = next(i for i, line in enumerate(lines) if line.startswith("module_app"))
        lines[first_app:first_app] = ["module aufile.so", "module sndfile.so"]
        lines += [
            f"audio_source aufile,{source}",
            # no sound device: the bridge's player end has no source, so nothing plays,
            # but the decode chain (and the sndfile filter in it) runs for every packet
            "audio_player aubridge,sink",
            "audio_alert aubridge,alert",
            f"snd_path {self._heard_dir}",
        ]
        return "\n".join(lines) + "\n"

    def _wav(self, freq: float | None) -> Path:
        assert self.workdir is not None
        name = "silence" if freq is None else f"tone-{freq:g}"
        path = self.workdir / f"{name}.wav"
        if not path.exists():
            tone_wav(path, freq, self.tone_seconds)
        return path

    async def play(self, freq: float | None) -> None:
        """Send ``freq`` from now on (None: silence)."""
        path = await asyncio.to_thread(self._wav, freq)
        await self.command("ausrc", f"aufile,{path}")

    async def toggle_mute(self) -> str:
        """baresip's own microphone mute (it then sends silence)."""
        return await self.command("mute")

    def heard_file(self) -> Path | None:
        """The WAV of what the current (latest) call decoded."""
        if self._heard_dir is None:
            return None
        dumps = sorted(self._heard_dir.glob("dump-*-dec.wav"), key=lambda p: p.stat().st_mtime)
        return dumps[-1] if dumps else None

    def heard(self) -> tuple[int, F32]:
        path = self.heard_file()
        return (RATE, np.zeros(0, dtype=np.float32)) if path is None else read_wav_growing(path)

    async def listen(self, seconds: float = 0.6, within: float = 10.0) -> F32:
        """What the phone hears over the next ``seconds`` of received audio."""
        return await _listen(lambda: self.heard(), seconds, within, f"baresip {self.user}")

    async def wait_established(self, within: float = 10.0, after: int = 0) -> dict[str, Any]:
        return await self.event("CALL_ESTABLISHED", within=within, after=after)

    async def wait_closed(self, within: float = 10.0, after: int = 0) -> dict[str, Any]:
        return await self.event("CALL_CLOSED", within=within, after=after)


async def _listen(source: Any, seconds: float, within: float, who: str, settle: float = 0.1) -> F32:
    """The next ``seconds`` of samples from ``source() -> (rate, samples)``.

    The first ``settle`` seconds are dropped: audio already in flight (jitter buffers,
    sockets) when a change was made belongs to the time before it.
    """
    rate, audio = source()
    start = len(audio) + int(settle * rate)
    need = start + int(seconds * rate)
    deadline = time.monotonic() + within
    while len(audio) < need:
        if time.monotonic() > deadline:
            got = max(0, len(audio) - start) / rate
            raise AssertionError(
                f"{who}: heard only {got:.2f} s of audio in {within:.0f} s (wanted {seconds} s)"
            )
        await asyncio.sleep(0.05)
        rate, audio = source()
    return audio[start:need]


# -- hearing what SIPp hears -----------------------------------------------------------------


class RtpDecoder:
    """Decodes the RTP packets of one payload type into a growing buffer of samples."""

    def __init__(self, codec: str = "PCMU") -> None:
        self.info = codec_info(codec)
        static = self.info.static_payload_type
        self.payload_type = 0 if static is None else static
        self.packets = 0
        self.junk = 0
        self._codec = CodecState(self.info)
        self._chunks: list[F32] = []

    def feed(self, data: bytes) -> None:
        if is_rtcp(data):
            return
        try:
            packet = RtpPacket.parse(data)
        except ValueError:
            self.junk += 1
            return
        if packet.payload_type == self.payload_type:
            self.packets += 1
            self._chunks.append(self._codec.decode(packet.payload))

    def heard(self) -> tuple[int, F32]:
        if len(self._chunks) > 1:
            self._chunks = [np.concatenate(self._chunks)]
        audio = self._chunks[0] if self._chunks else np.zeros(0, dtype=np.float32)
        return self.info.sample_rate, audio


_ETH_P_IP = 0x0800
_PACKET_HOST = 0  # on lo every datagram shows twice: as sent (OUTGOING) and as received


def _udp_port_filter(port: int) -> bytes:
    """A classic BPF program keeping IPv4 UDP datagrams to ``port`` (packet = IP header)."""
    program = [
        (0x30, 0, 0, 9),  # ldb [9]            IP protocol
        (0x15, 0, 4, 17),  # jeq #17 (UDP)     else drop
        (0xB1, 0, 0, 0),  # ldxb 4*([0]&0xf)   IP header length
        (0x48, 0, 0, 2),  # ldh [x+2]          UDP destination port
        (0x15, 0, 1, port),  # jeq #port       else drop
        (0x06, 0, 0, 0xFFFF),  # ret #65535
        (0x06, 0, 0, 0),  # ret #0
    ]
    return b"".join(struct.pack("HBBI", *insn) for insn in program)


class LoopbackTap:
    """What arrives at a UDP port on 127.0.0.1 that a program (SIPp) has bound: a packet
    socket on ``lo`` with a kernel filter for that port, decoding the RTP in it.

    SIPp keeps what it receives to itself, and the hub only accepts RTP from the address
    its SDP names, so the port that sends a SIPp party's tone is also the one the hub
    sends to; reading it needs CAP_NET_RAW (:meth:`available`).
    """

    def __init__(self, port: int, codec: str = "PCMU") -> None:
        self.port = port
        self.decoder = RtpDecoder(codec)
        self._sock: socket.socket | None = None

    @staticmethod
    def available() -> bool:
        try:
            probe = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(_ETH_P_IP))
        except (PermissionError, AttributeError, OSError):
            return False
        probe.close()
        return True

    def open(self) -> LoopbackTap:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(_ETH_P_IP))
        program = _udp_port_filter(self.port)
        buffer = ctypes.create_string_buffer(program)
        fprog = struct.pack("HL", len(program) // 8, ctypes.addressof(buffer))
        sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)
        sock.bind(("lo", _ETH_P_IP))
        sock.setblocking(False)
        self._sock = sock
        asyncio.get_running_loop().add_reader(sock.fileno(), self._readable)
        return self

    def _readable(self) -> None:
        assert self._sock is not None
        while True:
            try:
                data, addr = self._sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            if addr[2] != _PACKET_HOST or len(data) < 28:
                continue
            header = (data[0] & 0x0F) * 4
            self.decoder.feed(data[header + 8 :])

    def heard(self) -> tuple[int, F32]:
        return self.decoder.heard()

    async def listen(self, seconds: float = 0.6, within: float = 10.0) -> F32:
        return await _listen(self.heard, seconds, within, f"tap on :{self.port}")

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None


_SO_ATTACH_FILTER = 26


# -- SIPp ------------------------------------------------------------------------------------


def mulaw_wav(path: Path, freq: float | None, seconds: float, level_dbfs: float = -12.0) -> Path:
    """A G.711 µ-law WAV (format 7): SIPp's ``rtp_stream`` sends its bytes as PCMU as-is."""
    samples = int(seconds * RATE)
    pcm = (
        np.zeros(samples, dtype=np.float32)
        if freq is None
        else dsp.tone(freq, RATE, samples, level_dbfs)
    )
    data = CodecState(codec_info("PCMU")).encode(pcm)
    fmt = struct.pack("<HHIIHHH", 7, 1, RATE, RATE, 1, 8, 0)
    fact = struct.pack("<I", samples)
    body = (
        b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"fact"
        + struct.pack("<I", len(fact))
        + fact
        + b"data"
        + struct.pack("<I", len(data))
        + data
    )
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


@dataclass
class SippParty:
    """SIPp as a conference party: it answers one call (``uas_tone``, the hub dials it,
    e.g. through a gateway trunk at ``port``) and streams ``tone_hz`` (PCMU, ``rtp_stream``)
    until the far end hangs up, within ``timeout``. ``tap=True`` also opens a
    :class:`LoopbackTap` on its RTP port so the test hears what SIPp is sent (needs
    CAP_NET_RAW). With ``sdp_port`` SIPp sends no RTP and its SDP names that port instead.
    """

    tone_hz: float | None = 1100.0
    timeout: float = 40.0
    tap: bool = False
    caller: str = "sipp"
    port: int = 0
    sdp_port: int | None = None
    sipp: Sipp | None = field(default=None, init=False)
    ear: LoopbackTap | None = field(default=None, init=False)
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, init=False)

    @property
    def rtp_port(self) -> int:
        """Where SIPp streams from, and what its SDP names: SIPp 3.6 binds its
        ``rtp_stream`` socket (``[rtpstream_audio_port]``) at ``-mp`` when there is no
        ``-rtp_echo``."""
        assert self.sipp is not None
        return self.sipp.media_port

    async def start(self) -> Self:
        self._tmp = tempfile.TemporaryDirectory(prefix="sipp-party-")
        workdir = Path(self._tmp.name)
        name = "uas_tone"
        options: dict[str, Any] = {
            "calls": 1,
            "timeout": self.timeout,
            "keys": {"caller": self.caller},
            "workdir": workdir,
            "port": self.port,
            "media_port": free_port(span=2),  # the stream's RTP and RTCP
        }
        self.sipp = Sipp(workdir / f"{name}.xml", None, **options)
        text = (SCENARIOS / f"{name}.xml").read_text(encoding="ascii")
        if self.sdp_port is not None:  # the test's socket does the media, not SIPp
            text = text.replace("[rtpstream_audio_port]", str(self.sdp_port))
            text = re.sub(r"<exec rtp_stream=[^>]*/>", "", text)
        (workdir / f"{name}.xml").write_text(text, encoding="ascii")
        await asyncio.to_thread(mulaw_wav, workdir / "tone.wav", self.tone_hz, 30.0)
        if self.tap:
            self.ear = LoopbackTap(self.rtp_port).open()
        await self.sipp.start()
        return self

    @property
    def address(self) -> Address:
        assert self.sipp is not None
        return self.sipp.address

    def uri(self, user: str = "sipp") -> str:
        return f"sip:{user}@{HOST}:{self.address[1]}"

    def far_media(self) -> Address:
        """The RTP address the far end's SDP named (the first SDP SIPp received)."""
        assert self.sipp is not None and self.sipp.workdir is not None
        text = (self.sipp.workdir / "messages.log").read_text(errors="replace")
        received = text.split("message received", 1)[-1]
        host = re.search(r"^c=IN IP4 (\S+)", received, re.MULTILINE)
        port = re.search(r"^m=audio (\d+)", received, re.MULTILINE)
        if host is None or port is None:
            raise PeerError("SIPp has received no SDP yet")
        return host.group(1), int(port.group(1))

    async def listen(self, seconds: float = 0.6, within: float = 10.0) -> F32:
        if self.ear is None:
            raise PeerError("SippParty(tap=True) is needed to hear what SIPp is sent")
        return await self.ear.listen(seconds, within)

    async def wait(self, within: float | None = None) -> SippResult:
        """Wait for SIPp to finish its call (the far end's BYE, or its own)."""
        assert self.sipp is not None
        return await self.sipp.wait(within)

    async def stop(self) -> None:
        if self.sipp is not None:
            await self.sipp.__aexit__(None, None, None)
        if self.ear is not None:
            self.ear.close()
            self.ear = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    async def __aenter__(self) -> Self:
        try:
            return await self.start()
        except BaseException:
            await self.stop()
            raise

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


# -- raw RTP mischief ------------------------------------------------------------------------


def garbage(count: int, seed: int = 5) -> list[bytes]:
    """Datagrams that are not RTP a receiver can use: random bytes, truncated headers,
    wrong version, header extensions and CSRC counts that run past the end."""
    rng = np.random.default_rng(seed)
    out: list[bytes] = []
    for i in range(count):
        kind = i % 5
        if kind == 0:
            out.append(rng.bytes(int(rng.integers(1, 200))))
        elif kind == 1:
            out.append(bytes([0x80, 0x00, 0x01]))
        elif kind == 2:
            out.append(bytes([0x40]) + rng.bytes(171))
        elif kind == 3:
            out.append(bytes([0x90, 0x00]) + rng.bytes(10) + b"\xbe\xde\xff\xff")
        else:
            out.append(bytes([0x8F, 0x00]) + rng.bytes(14))
    return out
