"""One conference's media state: its legs, mixing rate, announcements and recording session."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from media.announce import Source
from media.events import (
    AnnouncementFinished,
    MediaEvent,
    RecordingFailed,
    RecordingFinished,
    RecordingIndex,
)
from media.leg import Leg
from media.recording import SUFFIX, FileResult, RecordingWriter

logger = logging.getLogger(__name__)
F32 = npt.NDArray[np.float32]
RATES = (8000, 16000, 48000)


class Conference:
    """Engine-internal: a set of legs mixed together at one rate."""

    def __init__(self, conf_id: str, max_rate: int) -> None:
        if max_rate not in RATES:
            raise ValueError(f"max_rate {max_rate} is not one of {RATES}")
        self.id = conf_id
        self.max_rate = max_rate
        self.legs: dict[str, Leg] = {}
        self.rate = 8000
        self.announcements: list[tuple[int, Source]] = []
        self.recording: RecordingSession | None = None

    def wanted_rate(self) -> int:
        """8 kHz while every leg is narrowband, else the widest leg's rate (up to max_rate)."""
        widest = max((leg.native_rate for leg in self.legs.values()), default=8000)
        rate = next(r for r in RATES if r >= widest)
        return min(rate, self.max_rate)

    def announcement_frame(
        self, rate: int, samples: int, wall: float, events: list[MediaEvent]
    ) -> F32 | None:
        """The sum of every announcement playing into the whole conference for this tick."""
        total: F32 | None = None
        for ann_id, source in list(self.announcements):
            frame = source.next(rate, samples)
            if frame is None:
                self.announcements.remove((ann_id, source))
                events.append(
                    AnnouncementFinished(conference=self.id, ts=wall, announcement=ann_id)
                )
                continue
            total = frame if total is None else total + frame
        return total


def leg_announcement_frame(
    leg: Leg, rate: int, samples: int, wall: float, events: list[MediaEvent]
) -> F32 | None:
    """The sum of the announcements playing to ``leg`` alone; None once none is left."""
    total: F32 | None = None
    for ann_id, source in list(leg.announcements):
        frame = source.next(rate, samples)
        if frame is None:
            leg.announcements.remove((ann_id, source))
            events.append(
                AnnouncementFinished(
                    conference=leg.conference, ts=wall, announcement=ann_id, leg=leg.id
                )
            )
            continue
        total = frame if total is None else total + frame
    return total


IndexCallback = Callable[[RecordingIndex], None]


class RecordingSession:
    """The mix of one conference plus one file set per talker segment, with an index.

    Frames go to the writer thread; file results come back on the loop and turn into
    :class:`RecordingIndex` records (given to ``on_index``) and ``RecordingFinished`` events.
    """

    def __init__(
        self,
        conference: str,
        directory: Path,
        *,
        writer: RecordingWriter,
        loop: asyncio.AbstractEventLoop,
        emit: Callable[[MediaEvent], None],
        formats: tuple[str, ...],
        rate: int,
        talkers: bool,
        fsync: bool,
        on_index: IndexCallback | None,
        start_ts: float,
    ) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.conference = conference
        self.directory = directory
        self.formats = formats
        self.rate = rate
        self.talkers = talkers
        self.fsync = fsync
        self.start_ts = start_ts
        self.end_ts: float | None = None
        self.segments: list[tuple[str, float, float]] = []
        self._writer = writer
        self._loop = loop
        self._emit = emit
        self._on_index = on_index
        self._open_talkers: dict[str, tuple[str, float, int]] = {}
        self._segment_count = 0
        self._pending = 0
        self.done: asyncio.Future[list[RecordingIndex]] = loop.create_future()
        self._finished: list[RecordingIndex] = []
        self.mix_key = f"{self.id}-mix"
        self._open(self.mix_key, f"{conference}-{self.id}-mix")
        for codec, path in self._paths(f"{conference}-{self.id}-mix").items():
            self._index(
                RecordingIndex(
                    id=f"{self.id}-mix-{codec}",
                    conference=conference,
                    kind="mix",
                    path=str(path),
                    codec=codec,
                    start_ts=start_ts,
                    end_ts=None,
                    bytes=0,
                )
            )

    def _paths(self, stem: str) -> dict[str, Path]:
        return {codec: self.directory / (stem + SUFFIX[codec]) for codec in self.formats}

    def _open(self, key: str, stem: str) -> None:
        self._pending += 1
        self._writer.open(key, self._paths(stem), self.rate, self.fsync, self._failed_threadsafe)

    def _failed_threadsafe(self, path: str, reason: str) -> None:
        self._loop.call_soon_threadsafe(
            self._emit,
            RecordingFailed(conference=self.conference, ts=self.start_ts, path=path, reason=reason),
        )

    def _index(self, record: RecordingIndex) -> None:
        if self._on_index is not None:
            try:
                self._on_index(record)
            except Exception:
                logger.exception("recording index callback failed for %s", record.path)

    # -- called by the mixer every tick ------------------------------------------------------

    def mix_frame(self, rate: int, frame: F32) -> None:
        self._writer.write(self.mix_key, rate, frame)

    def talker_started(self, leg: str, ts: float) -> None:
        if not self.talkers or leg in self._open_talkers or self.end_ts is not None:
            return
        self._segment_count += 1
        key = f"{self.id}-{leg}-{self._segment_count}"
        self._open_talkers[leg] = (key, ts, self._segment_count)
        self._open(key, f"{self.conference}-{self.id}-{leg}-{self._segment_count}")

    def talker_frame(self, leg: str, rate: int, frame: F32) -> None:
        entry = self._open_talkers.get(leg)
        if entry is not None:
            self._writer.write(entry[0], rate, frame)

    def talker_stopped(self, leg: str, ts: float) -> None:
        entry = self._open_talkers.pop(leg, None)
        if entry is None:
            return
        key, start, number = entry
        self.segments.append((leg, start, ts))
        stem = f"{self.conference}-{self.id}-{leg}-{number}"

        def done(results: list[FileResult]) -> None:
            self._loop.call_soon_threadsafe(self._talker_closed, leg, stem, start, ts, results)

        self._writer.close(key, done)

    def _talker_closed(
        self, leg: str, stem: str, start: float, end: float, results: list[FileResult]
    ) -> None:
        for result in results:
            self._finish(
                RecordingIndex(
                    id=f"{self.id}-{leg}-{stem.rsplit('-', 1)[-1]}-{result.codec}",
                    conference=self.conference,
                    kind="talker",
                    path=result.path,
                    codec=result.codec,
                    start_ts=start,
                    end_ts=end,
                    bytes=result.bytes,
                    talker=leg,
                    talkers=(leg,),
                    segments=((leg, start, end),),
                )
            )
        self._settle()

    def stop(self, ts: float) -> None:
        """End the recording: close the open talker segments and the mix."""
        if self.end_ts is not None:
            return
        self.end_ts = ts
        for leg in list(self._open_talkers):
            self.talker_stopped(leg, ts)

        def done(results: list[FileResult]) -> None:
            self._loop.call_soon_threadsafe(self._mix_closed, results)

        self._writer.close(self.mix_key, done)

    def _mix_closed(self, results: list[FileResult]) -> None:
        talkers = tuple(dict.fromkeys(leg for leg, _, _ in self.segments))
        for result in results:
            self._finish(
                RecordingIndex(
                    id=f"{self.id}-mix-{result.codec}",
                    conference=self.conference,
                    kind="mix",
                    path=result.path,
                    codec=result.codec,
                    start_ts=self.start_ts,
                    end_ts=self.end_ts,
                    bytes=result.bytes,
                    talkers=talkers,
                    segments=tuple(self.segments),
                )
            )
        self._settle()

    def _finish(self, record: RecordingIndex) -> None:
        self._finished.append(record)
        self._index(record)
        self._emit(
            RecordingFinished(conference=self.conference, ts=record.end_ts or 0.0, index=record)
        )

    def _settle(self) -> None:
        self._pending -= 1
        if self._pending <= 0 and not self.done.done():
            # the mix record lists every segment, including those closed after it
            self.done.set_result(list(self._finished))
