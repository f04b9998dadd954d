"""The media engine's errors: malformed wire input, codec failures, and misuse of the engine."""

from __future__ import annotations


class MediaError(Exception):
    """Root of every error the media engine raises on purpose."""


class RtpParseError(ValueError):
    """Malformed RTP, RTCP or telephone-event bytes; ``reason`` says exactly what is wrong."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CodecError(MediaError):
    """A codec could not be loaded, created, or failed to encode/decode."""


class UnknownConference(MediaError, KeyError):
    """No conference with that id exists in the engine."""


class UnknownLeg(MediaError, KeyError):
    """No leg with that id exists in the engine."""


class MediaStateError(MediaError):
    """The call is not legal now (a duplicate id, the engine closed, recording twice)."""
