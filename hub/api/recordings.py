"""Recording routes: the recordings index (a conference's mix and each talker's track, with
who talked when) and the download of a file, for any role.

A recording session (the id ``POST /api/v1/conferences/{id}/recording`` and the conference
view hand out) writes several files, each a row of the index named ``<session>-mix-<codec>``
or ``<session>-<participant>-<n>-<codec>``. ``GET /api/v1/recordings/{id}`` takes either:
a file's id gives that file, a session's id gives the session with all its files, and
``.../{session}/file`` downloads the session's mix.

Only files inside the conference service's recordings directory are ever served, whatever
path the index holds.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from hub.api.deps import ANY_ROLE, get_hub, require
from hub.auth import Principal
from hub.errors import NotFound
from hub.runtime import Hub
from hub.store import RecordingRow

logger = logging.getLogger(__name__)

router = APIRouter(tags=["conferences"])

HubDep = Annotated[Hub, Depends(get_hub)]
Reader = Annotated[Principal, Depends(require(*ANY_ROLE))]

MEDIA_TYPES = {"wav": "audio/wav", "opus": "audio/ogg"}


class RecordingNotFound(NotFound):
    title = "Recording not found"


class SegmentOut(BaseModel):
    participant: str
    start: float
    end: float


class RecordingOut(BaseModel):
    id: str
    conference: str | None
    kind: str = Field(description="mix (the whole conference) or talker (one participant)")
    talker: str | None = Field(description="the participant of a talker track")
    codec: str = Field(description="wav (16-bit PCM) or opus (Ogg/Opus)")
    media_type: str
    file: str = Field(description="the file's name in the recordings directory")
    start_ts: float
    end_ts: float | None = Field(description="None while the file is still being written")
    bytes: int
    talkers: list[str] = Field(description="participants heard in it")
    segments: list[SegmentOut] = Field(description="who talked when (UNIX time)")
    download: str = Field(description="where to get the file")

    @classmethod
    def of(cls, row: RecordingRow) -> RecordingOut:
        return cls(
            id=row.id,
            conference=row.conference,
            kind=row.kind,
            talker=row.talker,
            codec=row.codec,
            media_type=MEDIA_TYPES.get(row.codec, "application/octet-stream"),
            file=Path(row.path).name,
            start_ts=row.start_ts,
            end_ts=row.end_ts,
            bytes=row.bytes,
            talkers=list(row.talkers),
            segments=[SegmentOut(participant=p, start=a, end=b) for p, a, b in row.segments],
            download=f"/api/v1/recordings/{row.id}/file",
        )


class RecordingList(BaseModel):
    recordings: list[RecordingOut]


class RecordingSessionOut(BaseModel):
    """One recording session of a conference: its mix (one file per format) and the
    talker tracks."""

    id: str = Field(description="the session id the conference API hands out")
    kind: Literal["session"] = "session"
    conference: str | None
    start_ts: float
    end_ts: float | None = Field(description="None while the session is still recording")
    talkers: list[str] = Field(description="participants heard in it")
    download: str = Field(description="the mix file (WAV when the session records WAV)")
    files: list[RecordingOut] = Field(description="the mix files first, then talker tracks")


SESSION_ROWS = 100_000  # files of one session at most: its mixes and every talk spurt's track


async def _session_rows(hub: Hub, session: str) -> list[RecordingRow]:
    """Every row of recording session ``session`` (ids ``<session>-...``), mix files first."""
    mine = await hub.store.recordings(id_prefix=f"{session}-", limit=SESSION_ROWS)
    codecs = list(MEDIA_TYPES)  # WAV first: the mix a session id downloads
    return sorted(
        mine,
        key=lambda r: (
            r.kind != "mix",
            r.start_ts,
            codecs.index(r.codec) if r.codec in codecs else len(codecs),
            r.id,
        ),
    )


def _session(session: str, rows: list[RecordingRow]) -> RecordingSessionOut:
    mixes = [r for r in rows if r.kind == "mix"]
    first = mixes[0] if mixes else rows[0]
    talkers = dict.fromkeys(t for r in mixes for t in r.talkers)
    talkers.update(dict.fromkeys(r.talker for r in rows if r.talker is not None))
    return RecordingSessionOut(
        id=session,
        conference=first.conference,
        start_ts=min(r.start_ts for r in rows),
        end_ts=first.end_ts,
        talkers=list(talkers),
        download=f"/api/v1/recordings/{session}/file",
        files=[RecordingOut.of(r) for r in rows],
    )


async def _row(hub: Hub, recording_id: str) -> RecordingRow:
    """A file's row by its id, or a session's mix row by the session id."""
    row = await hub.store.recording(recording_id)
    if row is None:
        mixes = [r for r in await _session_rows(hub, recording_id) if r.kind == "mix"]
        if not mixes:
            raise RecordingNotFound(f"no recording {recording_id!r}")
        row = mixes[0]
    return row


def _file(hub: Hub, row: RecordingRow) -> Path:
    """The recording's file, refused unless it lies inside the recordings directory."""
    root = hub.conferences.recordings_dir.resolve()
    path = Path(row.path).resolve()
    if not path.is_relative_to(root):
        logger.warning("recording %s: path %s is outside %s, not served", row.id, path, root)
        raise RecordingNotFound(f"recording {row.id!r} has no file in the recordings directory")
    if not path.is_file():
        raise RecordingNotFound(f"the file of recording {row.id!r} is gone ({path.name})")
    return path


@router.get("/api/v1/recordings", response_model=RecordingList)
async def list_recordings(
    hub: HubDep,
    _: Reader,
    conference: Annotated[str | None, Query(description="only this conference's")] = None,
    kind: Annotated[Literal["mix", "talker"] | None, Query(description="mix or talker")] = None,
    recording: Annotated[
        str | None,
        Query(description="only this recording session's (the id the conference API gives)"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> RecordingList:
    """Recordings, newest first: the mix and each talker's track. With ``recording``, the
    files of that session (mix first), empty when there is no such session."""
    if recording is None:
        rows = await hub.store.recordings(conference=conference, kind=kind, limit=limit)
    else:
        rows = [
            r
            for r in await _session_rows(hub, recording)
            if (conference is None or r.conference == conference) and kind in (None, r.kind)
        ][:limit]
    return RecordingList(recordings=[RecordingOut.of(r) for r in rows])


_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {
        "description": "no such recording, or its file is gone",
        "content": {"application/problem+json": {}},
    }
}


@router.get(
    "/api/v1/recordings/{recording_id}",
    response_model=RecordingOut | RecordingSessionOut,
    responses=_NOT_FOUND,
)
async def get_recording(
    recording_id: str, hub: HubDep, _: Reader
) -> RecordingOut | RecordingSessionOut:
    """One file of the index by its id; or, by a recording session's id (what
    ``POST /api/v1/conferences/{id}/recording`` answers), the session with all its files
    (``kind`` ``session``)."""
    row = await hub.store.recording(recording_id)
    if row is not None:
        return RecordingOut.of(row)
    rows = await _session_rows(hub, recording_id)
    if not rows:
        raise RecordingNotFound(f"no recording {recording_id!r}")
    return _session(recording_id, rows)


@router.get(
    "/api/v1/recordings/{recording_id}/file",
    response_class=FileResponse,
    responses={
        200: {"content": {t: {} for t in MEDIA_TYPES.values()}, "description": "the audio"},
        **_NOT_FOUND,
    },
)
async def download_recording(recording_id: str, hub: HubDep, _: Reader) -> FileResponse:
    """The audio file (``audio/wav`` or ``audio/ogg``); a file still being written is
    served as far as it is written. A session id downloads the session's mix."""
    row = await _row(hub, recording_id)
    path = await asyncio.to_thread(_file, hub, row)
    return FileResponse(
        path, media_type=MEDIA_TYPES.get(row.codec, "application/octet-stream"), filename=path.name
    )
