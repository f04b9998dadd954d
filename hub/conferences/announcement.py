"""What an announcement plays, as the API and plan steps both take it: a tone or a WAV file
from the hub's data directory (nothing outside it is ever read)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from hub.conferences.model import ConferenceError
from media.announce import Tone


class InvalidAnnouncement(ConferenceError):
    status = 422
    title = "Invalid announcement"


class ToneSpec(BaseModel):
    """A steady tone: frequency, length and level."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    frequency: float = Field(gt=0, lt=4000, description="Hz")
    seconds: float = Field(gt=0, le=600)
    level: float = Field(-14.0, ge=-60, le=0, description="dBFS")

    def tone(self) -> Tone:
        return Tone(
            (self.frequency,), level_dbfs=self.level, duration_ms=round(self.seconds * 1000)
        )

    def describe(self) -> str:
        return f"tone {self.frequency:g} Hz for {self.seconds:g} s"


def announcement_file(data_dir: Path, name: str) -> Path:
    """The WAV file ``name`` inside ``data_dir``; :class:`InvalidAnnouncement` otherwise."""
    root = data_dir.resolve()
    path = (root / name).resolve()
    if not path.is_relative_to(root):
        raise InvalidAnnouncement(f"file {name!r} is outside the hub's data directory {root}")
    if not path.is_file():
        raise InvalidAnnouncement(f"file {name!r} does not exist in {root}")
    return path
