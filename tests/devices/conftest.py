"""Fixtures for device tests: real peers on loopback and on a pty."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.devices.peers import CatRadio, SisServer


@pytest.fixture
async def sis_server() -> AsyncIterator[SisServer]:
    server = SisServer()
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def cat_radio() -> AsyncIterator[CatRadio]:
    radio = CatRadio()
    yield radio
    radio.close()
