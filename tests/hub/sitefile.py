"""Site files for the hub's tests: one user per role with known tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
