"""Fixtures for the hub's own tests: a real hub on 127.0.0.1, port 0, in a temp dir."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from hub.config import SiteConfig
from hub.runtime import Hub
from tests.hub.sitefile import site_dict


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    async with Hub(SiteConfig.model_validate(site_dict(tmp_path))) as running:
        yield running


@pytest.fixture
async def client(hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=hub.api_url, timeout=10) as http:
        yield http
