"""The arguments of the conference layer's plan steps (the step's extra keys in the site
file): checked when the site file loads, and again when a step runs."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hub.conferences.announcement import ToneSpec
from hub.conferences.config import Pin
from hub.conferences.model import ParticipantRole


class StepArguments(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CreateConferenceArgs(StepArguments):
    name: str = Field(min_length=1, max_length=200)
    pin: Pin | None = None
    profile: str = Field("default", min_length=1, max_length=64)
    record: bool | None = Field(None, description="default: the profile's")
    max_duration: float | None = Field(None, ge=0, le=7 * 86400)


class DialArgs(StepArguments):
    conference: str = Field(min_length=1, description="a create_conference step id or an id")
    targets: list[str] = Field([], description="endpoint ids or addresses (pstn:..., sip:...)")
    role: str | None = Field(None, min_length=1, description="every site endpoint with it")
    wait: bool = Field(True, description="wait until every target answered or failed")
    ring_timeout: float | None = Field(None, gt=0, le=600)
    as_role: ParticipantRole = Field(ParticipantRole.PARTICIPANT, description="their role")

    @model_validator(mode="after")
    def _someone(self) -> DialArgs:
        if not self.targets and self.role is None:
            raise ValueError("give 'targets' or 'role' (or both)")
        return self


class AnnounceArgs(StepArguments):
    conference: str = Field(min_length=1)
    tone: ToneSpec | None = None
    file: str | None = Field(None, min_length=1, description="a WAV file in the data directory")

    @model_validator(mode="after")
    def _one(self) -> AnnounceArgs:
        if (self.tone is None) == (self.file is None):
            raise ValueError("give either 'tone' or 'file'")
        return self


STEP_ARGUMENTS: dict[str, type[StepArguments]] = {
    "create_conference": CreateConferenceArgs,
    "dial": DialArgs,
    "announce": AnnounceArgs,
}
