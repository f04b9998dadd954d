"""Fixtures for the hub's own tests: a real hub on 127.0.0.1, port 0, in a temp dir."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.config import SiteConfig
from hub.runtime import Hub

TOKENS = {
    "dispatcher": "tok-dispatcher-0123456789",
    "engineer": "tok-engineer-0123456789",
    "ops": "tok-ops-0123456789abcd",
    "platform": "tok-platform-0123456789",
    "admin": "tok-admin-0123456789ab",
}


def site_dict(data_dir: Path, **hub: Any) -> dict[str, Any]:
    return {
        "hub": {
            "name": "test-centre",
            "data_dir": str(data_dir),
            "api": {"host": "127.0.0.1", "port": 0},
            **hub,
        },
        "users": [{"name": f"{role}-user", "role": role, "token": t} for role, t in TOKENS.items()],
    }


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    async with Hub(SiteConfig.model_validate(site_dict(tmp_path))) as running:
        yield running


@pytest.fixture
async def client(hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=hub.api_url, timeout=10) as http:
        yield http
