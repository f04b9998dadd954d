"""Sans-IO framers that cut a byte stream into frames: delimiter, length prefix, start/end marker.

Every framer is bounded: a frame longer than ``max_frame`` is discarded and reported.
"""

from __future__ import annotations

import abc
from typing import Literal

DEFAULT_MAX_FRAME = 4096


class FramingError(ValueError):
    """The byte stream broke the framing rules; ``frames`` holds the good frames of this feed."""

    def __init__(self, message: str, frames: list[bytes]) -> None:
        super().__init__(message)
        self.frames = frames


class FrameTooLong(FramingError):
    """A frame exceeded the framer's ``max_frame``; its bytes were discarded."""


class Framer(abc.ABC):
    """Accumulates bytes and returns complete frames.

    ``feed`` never loses a good frame: if an oversized frame had to be discarded while
    feeding, it raises :class:`FrameTooLong` whose ``frames`` carries the good frames that
    were cut in the same call; framing resumes at the next frame boundary.
    """

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        if max_frame <= 0:
            raise ValueError(f"max_frame must be positive, got {max_frame}")
        self.max_frame = max_frame
        self._buffer = bytearray()
        self.discarded = 0

    def reset(self) -> None:
        """Forget buffered bytes (after a reconnect)."""
        self._buffer.clear()

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        frames: list[bytes] = []
        error: str | None = None
        while True:
            try:
                frame = self._next_frame()
            except _Overflow as overflow:
                self.discarded += 1
                error = str(overflow)
                continue
            if frame is None:
                break
            frames.append(frame)
        if error is not None:
            raise FrameTooLong(error, frames)
        return frames

    @abc.abstractmethod
    def _next_frame(self) -> bytes | None:
        """Cut one frame off the buffer, or None when more bytes are needed.

        Raise ``_Overflow`` after dropping the bytes of an oversized frame.
        """


class _Overflow(Exception):
    pass


class DelimiterFramer(Framer):
    """Frames end with ``delimiter`` (``b";"`` for CAT, ``b"\\r\\n"`` for SIS)."""

    def __init__(
        self, delimiter: bytes, max_frame: int = DEFAULT_MAX_FRAME, *, keep_delimiter: bool = True
    ) -> None:
        super().__init__(max_frame)
        if not delimiter:
            raise ValueError("delimiter must not be empty")
        self.delimiter = delimiter
        self.keep_delimiter = keep_delimiter
        self._skipping = False

    def _next_frame(self) -> bytes | None:
        index = self._buffer.find(self.delimiter)
        if index < 0:
            if len(self._buffer) > self.max_frame:
                # keep a possible partial delimiter at the tail so resync works
                keep = len(self.delimiter) - 1
                dropped = len(self._buffer) - keep
                del self._buffer[:dropped]
                was_skipping, self._skipping = self._skipping, True
                if not was_skipping:
                    raise _Overflow(
                        f"frame longer than {self.max_frame} bytes without "
                        f"{self.delimiter!r}; discarded {dropped} bytes"
                    )
            return None
        end = index + len(self.delimiter)
        frame = bytes(self._buffer[: end if self.keep_delimiter else index])
        del self._buffer[:end]
        if self._skipping:
            # tail of a frame whose head was already discarded
            self._skipping = False
            return self._next_frame()
        if index > self.max_frame:
            raise _Overflow(f"frame of {index} bytes exceeds max_frame {self.max_frame}")
        return frame


class LengthPrefixFramer(Framer):
    """Frames start with a big- or little-endian length field counting the payload bytes."""

    def __init__(
        self,
        header_size: int = 2,
        max_frame: int = DEFAULT_MAX_FRAME,
        *,
        byteorder: Literal["big", "little"] = "big",
        include_header: bool = False,
    ) -> None:
        super().__init__(max_frame)
        if header_size not in (1, 2, 4):
            raise ValueError(f"header_size must be 1, 2 or 4, got {header_size}")
        if byteorder not in ("big", "little"):
            raise ValueError(f"byteorder must be 'big' or 'little', got {byteorder!r}")
        self.header_size = header_size
        self.byteorder = byteorder
        self.include_header = include_header
        self._skip = 0

    def _next_frame(self) -> bytes | None:
        if self._skip:
            dropped = min(self._skip, len(self._buffer))
            del self._buffer[:dropped]
            self._skip -= dropped
            if self._skip:
                return None
        if len(self._buffer) < self.header_size:
            return None
        header = bytes(self._buffer[: self.header_size])
        length = int.from_bytes(header, self.byteorder)
        if length > self.max_frame:
            self._skip = self.header_size + length
            raise _Overflow(f"length prefix {length} exceeds max_frame {self.max_frame}")
        total = self.header_size + length
        if len(self._buffer) < total:
            return None
        frame = bytes(self._buffer[0 if self.include_header else self.header_size : total])
        del self._buffer[:total]
        return frame


class MarkerFramer(Framer):
    """Frames run from ``start`` to ``end`` marker (CI-V ``FE FE`` .. ``FD``); noise is dropped."""

    def __init__(self, start: bytes, end: bytes, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        super().__init__(max_frame)
        if not start or not end:
            raise ValueError("start and end markers must not be empty")
        self.start = start
        self.end = end

    def _next_frame(self) -> bytes | None:
        begin = self._buffer.find(self.start)
        if begin < 0:
            # drop noise, but keep a possible partial start marker
            keep = len(self.start) - 1
            if len(self._buffer) > keep:
                del self._buffer[: len(self._buffer) - keep]
            return None
        if begin:
            del self._buffer[:begin]
        stop = self._buffer.find(self.end, len(self.start))
        if stop < 0:
            if len(self._buffer) > self.max_frame:
                size = len(self._buffer)
                del self._buffer[: len(self.start)]  # resync at the next start marker
                raise _Overflow(
                    f"frame longer than {self.max_frame} bytes without end marker "
                    f"{self.end!r} ({size} bytes buffered); discarded"
                )
            return None
        restart = self._buffer.rfind(self.start, 1, stop)
        if restart > 0:
            # a frame without its end marker, followed by a new one: drop the broken head
            del self._buffer[:restart]
            stop -= restart
        total = stop + len(self.end)
        frame = bytes(self._buffer[:total])
        del self._buffer[:total]
        if total > self.max_frame:
            raise _Overflow(f"frame of {total} bytes exceeds max_frame {self.max_frame}")
        return frame
