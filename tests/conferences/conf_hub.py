"""A running hub for the conference tests: a site file with SIP users (baresip registers
as them) and a PSTN gateway trunk (a SIPp party answers behind it), and a small client for
``/api/v1/conferences`` that waits on participant states instead of sleeping."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from hub.config import SiteConfig
from hub.runtime import Hub
from tests.conferences.audio_peers import PARTY_TONES, ToneBaresip
from tests.hub.confkit import DOMAIN, HOST, api_client, sip_port, sip_site_dict, trunk

GATEWAY_NUMBER = "pstn:+8613800138000"


def conference_site(
    tmp_path: Path,
    *,
    phones: Mapping[str, str] = {},
    gateway_port: int | None = None,
    conferences: Mapping[str, Any] | None = None,
    endpoints: list[dict[str, Any]] | None = None,
) -> SiteConfig:
    """Site with one SIP user per ``phones`` entry (name: password) and, with
    ``gateway_port``, a PSTN gateway trunk there (``GATEWAY_NUMBER`` reaches it)."""
    # baresip 1.0 gives up on a SHA-256 challenge next to the MD5 one
    data = sip_site_dict(tmp_path, phones=phones, digest_algorithms=["MD5"])
    if gateway_port is not None:
        data["trunks"] = [trunk("gw", "pstn-gateway", gateway_port)]
    if endpoints:
        data["endpoints"] = endpoints
    data["conferences"] = {"rtp_host": "127.0.0.1", **(conferences or {})}
    return SiteConfig.model_validate(data)


def sip_address(hub: Hub) -> tuple[str, int]:
    return (HOST, sip_port(hub))


@dataclass
class ConfClient:
    """The conference API as a dispatcher uses it."""

    http: httpx.AsyncClient

    async def call(self, method: str, path: str, expect: int = 200, **kwargs: Any) -> Any:
        reply = await self.http.request(method, path, **kwargs)
        assert reply.status_code == expect, f"{method} {path}: {reply.status_code} {reply.text}"
        return reply.json() if reply.content else None

    async def create(self, name: str = "bridge", **fields: Any) -> str:
        body = await self.call("POST", "/api/v1/conferences", 201, json={"name": name, **fields})
        return str(body["id"])

    async def conference(self, conf: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("GET", f"/api/v1/conferences/{conf}")
        return result

    async def dial(self, conf: str, target: str, **fields: Any) -> str:
        body = await self.call(
            "POST",
            f"/api/v1/conferences/{conf}/participants",
            202,
            json={"target": target, **fields},
        )
        return str(body["id"])

    async def participant(self, conf: str, pid: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(
            "GET", f"/api/v1/conferences/{conf}/participants/{pid}"
        )
        return result

    async def patch(self, conf: str, pid: str, **changes: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(
            "PATCH", f"/api/v1/conferences/{conf}/participants/{pid}", json=changes
        )
        return result

    async def kick(self, conf: str, pid: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(
            "DELETE", f"/api/v1/conferences/{conf}/participants/{pid}"
        )
        return result

    async def wait_state(
        self, conf: str, pid: str, states: str | tuple[str, ...], within: float = 15.0
    ) -> dict[str, Any]:
        """The participant once its state is one of ``states`` (fails on another final one)."""
        wanted = (states,) if isinstance(states, str) else states
        deadline = time.monotonic() + within
        while True:
            p = await self.participant(conf, pid)
            if p["state"] in wanted:
                return p
            if p["state"] in ("left", "failed"):
                raise AssertionError(f"participant {pid} is {p['state']}, wanted {wanted}: {p}")
            if time.monotonic() > deadline:
                raise AssertionError(f"participant {pid} not {wanted} within {within} s: {p}")
            await asyncio.sleep(0.05)

    async def rollcall(self, conf: str, members: list[str], **fields: Any) -> dict[str, Any]:
        """Start a roll call and wait for its report."""
        path = f"/api/v1/conferences/{conf}/roll-calls"
        started = await self.call("POST", path, 202, json={"members": members, **fields})
        deadline = time.monotonic() + 30.0
        while True:
            report: dict[str, Any] = await self.call("GET", f"{path}/{started['id']}")
            if report["state"] != "running":
                return report
            if time.monotonic() > deadline:
                raise AssertionError(f"roll call still running after 30 s: {report}")
            await asyncio.sleep(0.1)

    async def events(self, kinds: str) -> list[dict[str, Any]]:
        body = await self.call("GET", "/api/v1/events", params={"kinds": kinds, "limit": 1000})
        result: list[dict[str, Any]] = body["events"]
        return result


@contextlib.asynccontextmanager
async def running_hub(site: SiteConfig) -> AsyncIterator[tuple[Hub, ConfClient]]:
    async with Hub(site) as hub, api_client(hub) as http:
        yield hub, ConfClient(http)


@contextlib.asynccontextmanager
async def joined_conference(
    api: ConfClient, name: str, targets: Mapping[str, str], **fields: Any
) -> AsyncIterator[tuple[str, dict[str, str]]]:
    """A new conference with each of ``targets`` (key: dial target) dialled in and joined:
    its id and the participant ids by key. Deleted on the way out, while the peers still
    answer (else each BYE times out)."""
    conf = await api.create(name, **fields)
    pids = {key: await api.dial(conf, target) for key, target in targets.items()}
    for pid in pids.values():
        await api.wait_state(conf, pid, "joined")
    try:
        yield conf, pids
    finally:
        await api.http.delete(f"/api/v1/conferences/{conf}")


@contextlib.asynccontextmanager
async def registered_phones(
    hub: Hub,
    phones: Mapping[str, str],
    tones: Mapping[str, float | None] | None = None,
    unanswered: Collection[str] = (),
) -> AsyncIterator[dict[str, ToneBaresip]]:
    """One :class:`ToneBaresip` per phone, registered with the hub, each with its tone
    (default: ``PARTY_TONES`` in order); the ``unanswered`` ones ring and never answer."""
    tones = tones or {name: PARTY_TONES[i] for i, name in enumerate(phones)}
    async with contextlib.AsyncExitStack() as stack:
        out: dict[str, ToneBaresip] = {}
        for name, password in phones.items():
            phone = ToneBaresip(
                user=name,
                password=password,
                registrar=sip_address(hub),
                domain=DOMAIN,
                tone_hz=tones.get(name),
                auto_answer=name not in unanswered,
            )
            out[name] = await stack.enter_async_context(phone)
        await asyncio.gather(*(phone.registered(within=10.0) for phone in out.values()))
        yield out
