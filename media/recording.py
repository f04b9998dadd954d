"""Recording sinks (WAV, Ogg/Opus) and the writer thread that runs them off the event loop.

Each sink flushes once per second of audio: the WAV header's sizes are rewritten and an
Ogg page is completed, so a file cut by a crash (even SIGKILL) is readable up to the last
second written. The tick hands frames to :class:`RecordingWriter` through a bounded queue;
when the disk falls behind, frames are dropped and counted, the tick never waits.
"""

from __future__ import annotations

import logging
import os
import random
import struct
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from media import ogg
from media.g711 import to_int16
from media.opus import OpusEncoder
from media.resample import ResamplerState, resample_one

logger = logging.getLogger(__name__)

_WAV_HEADER = struct.Struct("<4sI4s4sIHHIIHH4sI")


class Sink(Protocol):
    path: Path
    codec: str

    def write(self, pcm: npt.NDArray[np.int16]) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> int:
        """Finish the file; returns its size in bytes."""
        ...


class WavSink:
    """16-bit mono PCM WAV whose header is kept true at every flush."""

    codec = "wav"

    def __init__(self, path: Path, rate: int, fsync: bool = False) -> None:
        self.path = path
        self.rate = rate
        self.fsync = fsync
        self._file = open(path, "wb")  # noqa: SIM115 - kept open for the recording's life
        self._data_bytes = 0
        self._file.write(self._header())
        self.flush()

    def _header(self) -> bytes:
        return _WAV_HEADER.pack(
            b"RIFF",
            36 + self._data_bytes,
            b"WAVE",
            b"fmt ",
            16,
            1,
            1,
            self.rate,
            self.rate * 2,
            2,
            16,
            b"data",
            self._data_bytes,
        )

    def write(self, pcm: npt.NDArray[np.int16]) -> None:
        data = pcm.astype("<i2", copy=False).tobytes()
        self._file.write(data)
        self._data_bytes += len(data)

    def flush(self) -> None:
        end = self._file.tell()
        self._file.seek(0)
        self._file.write(self._header())
        self._file.seek(end)
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())

    def close(self) -> int:
        self.flush()
        size = self._file.tell()
        self._file.close()
        return size


class OggOpusSink:
    """Ogg/Opus (RFC 7845), 20 ms packets, one page per second of audio."""

    codec = "opus"

    def __init__(self, path: Path, rate: int, fsync: bool = False, bitrate: int = 24000) -> None:
        self.path = path
        self.rate = rate
        self.fsync = fsync
        self._encoder = OpusEncoder(rate, bitrate=bitrate, fec=False)
        self._frame = rate // 50
        self._serial = random.getrandbits(32)
        self._sequence = 0
        self._granule = 0
        self._pending: list[bytes] = []
        self._carry = np.zeros(0, dtype=np.int16)
        self._file = open(path, "wb")  # noqa: SIM115 - kept open for the recording's life
        self._page([ogg.opus_head(self._encoder.lookahead_48k, rate)], 0, ogg.BOS)
        self._page([ogg.opus_tags("cchub", ["ENCODER=cchub media engine"])], 0, 0)
        self.flush()

    def _page(self, packets: list[bytes], granule: int, flags: int) -> None:
        self._file.write(
            ogg.build_page(
                packets, serial=self._serial, sequence=self._sequence, granule=granule, flags=flags
            )
        )
        self._sequence += 1

    def write(self, pcm: npt.NDArray[np.int16]) -> None:
        samples = np.concatenate([self._carry, pcm]) if len(self._carry) else pcm
        whole = len(samples) - len(samples) % self._frame
        for at in range(0, whole, self._frame):
            self._pending.append(self._encoder.encode(samples[at : at + self._frame]))
            self._granule += 960
            if len(self._pending) >= 250:  # stay under 255 lacing values per page
                self._flush_page(0)
        self._carry = samples[whole:].copy()

    def _flush_page(self, flags: int) -> None:
        if self._pending or flags:
            self._page(self._pending, self._granule, flags)
            self._pending = []

    def flush(self) -> None:
        self._flush_page(0)
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())

    def close(self) -> int:
        if len(self._carry):
            pad = np.zeros(self._frame - len(self._carry), dtype=np.int16)
            self.write(pad)
        self._flush_page(ogg.EOS)
        self._file.flush()
        size = self._file.tell()
        self._file.close()
        self._encoder.close()
        return size


SINKS: dict[str, Callable[[Path, int, bool], Sink]] = {"wav": WavSink, "opus": OggOpusSink}
SUFFIX = {"wav": ".wav", "opus": ".opus"}


@dataclass(frozen=True, slots=True)
class FileResult:
    path: str
    codec: str
    bytes: int
    error: str = ""


class _Track:
    """The sinks of one recorded stream (a mix, or a talker segment) and its resampler."""

    def __init__(self, sinks: list[Sink], rate: int) -> None:
        self.sinks = sinks
        self.rate = rate
        self.resampler: ResamplerState | None = None
        self.unflushed = 0


@dataclass(frozen=True, slots=True)
class _Open:
    paths: dict[str, Path]
    rate: int
    fsync: bool
    on_error: Callable[[str, str], None]


@dataclass(frozen=True, slots=True)
class _Write:
    rate: int
    pcm: npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class _Close:
    done: Callable[[list[FileResult]], None]


class RecordingWriter:
    """A daemon thread that owns every recording file; the loop only enqueues."""

    def __init__(self, max_frames: int = 500) -> None:
        self.max_frames = max_frames
        self.dropped_frames = 0
        self.errors = 0
        self._items: deque[tuple[str, _Open | _Write | _Close]] = deque()
        self._frames = 0
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._tracks: dict[str, _Track] = {}
        self._stopping = False

    def start(self) -> None:
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="cchub-recording", daemon=True)
            self._thread.start()

    def open(
        self,
        key: str,
        paths: dict[str, Path],
        rate: int,
        fsync: bool,
        on_error: Callable[[str, str], None],
    ) -> None:
        """Open the files for ``key`` (one per codec); errors go to ``on_error(path, reason)``."""
        self._put(key, _Open(paths, rate, fsync, on_error))

    def write(self, key: str, rate: int, pcm: npt.NDArray[np.float32]) -> bool:
        """Queue one frame at ``rate`` Hz; False (and counted) when the writer is behind."""
        return self._put(key, _Write(rate, pcm))

    def close(self, key: str, done: Callable[[list[FileResult]], None]) -> None:
        """Finish ``key``'s files; ``done`` runs on the writer thread with the results."""
        self._put(key, _Close(done))

    def _put(self, key: str, item: _Open | _Write | _Close) -> bool:
        with self._cond:
            if isinstance(item, _Write):
                if self._frames >= self.max_frames:
                    self.dropped_frames += 1
                    return False
                self._frames += 1
            self._items.append((key, item))
            self._cond.notify()
        return True

    def stop(self, timeout: float = 5.0) -> None:
        """Drain the queue, close every file still open, and end the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._items and not self._stopping:
                    self._cond.wait()
                if not self._items:
                    break
                key, item = self._items.popleft()
                if isinstance(item, _Write):
                    self._frames -= 1
            try:
                self._handle(key, item)
            except Exception:
                self.errors += 1
                logger.exception("recording %s: %s failed", key, type(item).__name__)
        for key in list(self._tracks):
            self._finish(key)

    def _handle(self, key: str, item: _Open | _Write | _Close) -> None:
        if isinstance(item, _Open):
            sinks: list[Sink] = []
            for codec, path in item.paths.items():
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    sinks.append(SINKS[codec](path, item.rate, item.fsync))
                except Exception as err:  # a disk or codec problem: report it, go on
                    self.errors += 1
                    logger.warning("recording %s: cannot open %s: %s", key, path, err)
                    item.on_error(str(path), str(err))
            self._tracks[key] = _Track(sinks, item.rate)
        elif isinstance(item, _Write):
            track = self._tracks.get(key)
            if track is None:
                return
            pcm = item.pcm
            if item.rate != track.rate:
                state = track.resampler
                if state is None or state.src != item.rate:
                    state = track.resampler = ResamplerState(item.rate, track.rate)
                pcm = resample_one(state, pcm)
            samples = to_int16(pcm)
            for sink in track.sinks:
                sink.write(samples)
            track.unflushed += len(samples)
            if track.unflushed >= track.rate:  # once a second of audio
                track.unflushed = 0
                for sink in track.sinks:
                    sink.flush()
        else:
            item.done(self._finish(key))

    def _finish(self, key: str) -> list[FileResult]:
        track = self._tracks.pop(key, None)
        results = []
        for sink in track.sinks if track else []:
            try:
                results.append(FileResult(str(sink.path), sink.codec, sink.close()))
            except Exception as err:
                self.errors += 1
                logger.warning("recording %s: closing %s failed: %s", key, sink.path, err)
                results.append(FileResult(str(sink.path), sink.codec, 0, str(err)))
        return results
