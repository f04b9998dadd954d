"""Fixtures for the media tests: a running engine and RTP phones on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from media import MediaEngine, MediaEvent
from tests.media.rtp_phone import RtpPhone

PhoneFactory = Callable[..., Awaitable[RtpPhone]]


@pytest.fixture
async def engine() -> AsyncIterator[MediaEngine]:
    media = MediaEngine()
    await media.start()
    yield media
    await media.close()


@pytest.fixture
def events(engine: MediaEngine) -> list[MediaEvent]:
    seen: list[MediaEvent] = []
    engine.subscribe(seen.append)
    return seen


@pytest.fixture
async def phones() -> AsyncIterator[PhoneFactory]:
    made: list[RtpPhone] = []

    async def make(codec: str = "PCMU", payload_type: int | None = None) -> RtpPhone:
        phone = await RtpPhone.create(codec, payload_type)
        made.append(phone)
        return phone

    yield make
    for phone in made:
        await phone.stop()
        phone.close()
