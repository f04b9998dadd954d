"""The site file's ``conferences:`` section: RTP address, recordings, profiles, standing rooms."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from devices.config import Model, Name, check_host
from media.codecs import CODECS

Digits = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[0-9*#]+$")]


def _check_pin(value: str) -> str:
    if "#" in value:
        raise ValueError("a PIN cannot contain '#': callers key '#' to end the PIN")
    if not value.isascii() or not all(c.isdigit() or c == "*" for c in value):
        raise ValueError("a PIN is keyed on a phone: digits 0-9 and '*' only")
    return value


# what a caller keys to get in: digits and '*', '#' ends the entry (dialin.MAX_PIN_DIGITS)
Pin = Annotated[str, Field(min_length=1, max_length=32), AfterValidator(_check_pin)]
RecordFormat = Literal["wav", "opus"]


def _check_codecs(value: list[str]) -> list[str]:
    known = {name.lower(): name for name in CODECS}
    out: list[str] = []
    for name in value:
        canonical = known.get(name.lower())
        if canonical is None:
            raise ValueError(f"unknown codec {name!r}: one of {', '.join(CODECS)}")
        if canonical in out:
            raise ValueError(f"codec {canonical} is listed twice")
        out.append(canonical)
    return out


class ConferenceProfile(Model):
    """How a conference behaves: limits, recording, tones, codecs offered to its legs."""

    max_participants: int = Field(50, ge=1, le=10_000)
    max_duration: float = Field(0, ge=0, description="seconds; 0: no limit")
    record: bool = False
    record_formats: list[RecordFormat] = Field(["wav"], min_length=1)
    end_when_empty: bool = False
    join_tone: bool = True
    codecs: list[str] = Field(["PCMU", "PCMA", "G722", "opus"], min_length=1)
    media_timeout: float = Field(30.0, gt=0, le=3600, description="seconds without RTP")
    _codecs = field_validator("codecs")(_check_codecs)


class Room(Model):
    """A standing conference (it exists from start and is not ended when empty)."""

    id: Name
    name: str
    number: Digits | None = None
    pin: Pin | None = None
    moderator_pin: Pin | None = None
    profile: str = "default"


class ConferenceSection(Model):
    rtp_host: str | None = Field(
        None, description="RTP bind and SDP address (default: sip.host, 127.0.0.1 for 0.0.0.0)"
    )
    recordings_dir: Path | None = Field(None, description="default: <data_dir>/recordings")
    rtp_latch: bool = Field(
        False,
        description="symmetric RTP: send to where a leg's first RTP packet came from rather "
        "than to its SDP address (phones behind NAT); off, RTP from elsewhere is dropped",
    )
    pin_attempts: int = Field(3, ge=1, le=20)
    pin_lockout: float = Field(300.0, ge=0)
    pin_timeout: float = Field(30.0, gt=0, le=600, description="dial-in: seconds to key a PIN")
    pin_digit_timeout: float = Field(5.0, gt=0, le=60, description="dial-in: between digits")
    profiles: dict[Name, ConferenceProfile] = Field({}, validate_default=True)
    rooms: list[Room] = []

    @field_validator("rtp_host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        return None if value is None else check_host(value)

    @field_validator("profiles")
    @classmethod
    def _default_profile(cls, value: dict[str, ConferenceProfile]) -> dict[str, ConferenceProfile]:
        return value if "default" in value else {"default": ConferenceProfile(), **value}

    @model_validator(mode="after")
    def _rooms(self) -> ConferenceSection:
        problems: list[str] = []
        ids: set[str] = set()
        numbers: set[str] = set()
        for i, room in enumerate(self.rooms):
            if room.id in ids:
                problems.append(f"rooms[{i}].id: {room.id!r} is used twice")
            ids.add(room.id)
            if room.number is not None:
                if room.number in numbers:
                    problems.append(f"rooms[{i}].number: {room.number!r} is used twice")
                numbers.add(room.number)
            if room.profile not in self.profiles:
                problems.append(
                    f"rooms[{i}].profile: unknown profile {room.profile!r} "
                    f"(one of {', '.join(sorted(self.profiles))})"
                )
            if room.pin is not None and room.pin == room.moderator_pin:
                problems.append(f"rooms[{i}]: pin and moderator_pin must differ")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def profile(self, name: str) -> ConferenceProfile:
        """The named profile; ``KeyError`` with the known names."""
        try:
            return self.profiles[name]
        except KeyError:
            raise KeyError(
                f"unknown profile {name!r} (one of {', '.join(sorted(self.profiles))})"
            ) from None
