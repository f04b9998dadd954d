"""What the media engine reports to whoever drives it (frozen dataclasses, no hub imports).

The conference layer subscribes with ``MediaEngine.subscribe(callback)`` and turns these
into bus events. ``ts`` is UNIX time, taken when the engine noticed the change.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaEvent:
    conference: str
    ts: float


@dataclass(frozen=True, slots=True, kw_only=True)
class TalkingStarted(MediaEvent):
    leg: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TalkingStopped(MediaEvent):
    leg: str
    reason: str = "silence"  # "silence", "left" (the leg was removed), "ended" (conference)


@dataclass(frozen=True, slots=True, kw_only=True)
class DtmfReceived(MediaEvent):
    """One RFC 4733 event; ``ended`` is False at its first packet, True once at its end."""

    leg: str
    digit: str
    ended: bool
    duration_ms: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaTimeout(MediaEvent):
    """No RTP from the leg for ``seconds`` (sent once; ``MediaResumed`` when it comes back)."""

    leg: str
    seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaResumed(MediaEvent):
    leg: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceChanged(MediaEvent):
    """The leg's RTP SSRC changed (a re-INVITE, a transfer, a gateway failover)."""

    leg: str
    ssrc: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerBye(MediaEvent):
    """The far end sent an RTCP BYE."""

    leg: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RateChanged(MediaEvent):
    """The conference now mixes at ``rate`` Hz (a wideband leg joined, or the last one left)."""

    rate: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AnnouncementFinished(MediaEvent):
    announcement: int
    leg: str | None = None
    stopped: bool = False  # True when stopped early


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingIndex:
    """One row for the store's ``recordings`` table (a mix, or one talker's segment)."""

    id: str
    conference: str
    kind: str  # "mix" or "talker"
    path: str
    codec: str  # "wav" (16-bit PCM) or "opus" (Ogg/Opus)
    start_ts: float
    end_ts: float | None
    bytes: int
    talker: str | None = None
    talkers: tuple[str, ...] = ()
    segments: tuple[tuple[str, float, float], ...] = field(default=())  # (leg, start, end)


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingFinished(MediaEvent):
    index: RecordingIndex


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingFailed(MediaEvent):
    path: str
    reason: str
