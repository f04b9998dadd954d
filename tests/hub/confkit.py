"""What the hub's telephony and conference tests share: polling, a lab bench with the PSTN
gateway simulator, a site file with the hub's SIP on 127.0.0.1 and trunks, the API client,
and the SIP pieces of a phone that registers with the hub or calls it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import yaml

from hub.runtime import Hub
from hub.yamlsource import load_yaml
from lab.bench import Bench
from lab.benchfile import validate_bench
from sip.dialplan import Candidate, parse_address
from sip.digest import Credentials
from sip.message import Header, SipResponse
from sip.offer_answer import PCMU, TELEPHONE_EVENT, Codec, MediaCapabilities
from sip.stack import SipStack
from sip.uri import SipUri
from tests.hub.sitefile import auth, site_dict
from tests.media.rtp_phone import RtpPhone

HOST = "127.0.0.1"
DOMAIN = "centre.test"
# RtpPhone sends its RFC 4733 events with payload type 101: offer them as that
TE_101 = replace(TELEPHONE_EVENT, static_pt=101)


async def eventually(check: Callable[[], Awaitable[Any]], within: float = 15.0) -> Any:
    """Poll ``check`` until it returns something truthy (generous: the machine is shared)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = await check()
        if result:
            return result
        if loop.time() > deadline:
            name = getattr(check, "__name__", check)
            raise AssertionError(f"not reached within {within} s: {name}")
        await asyncio.sleep(0.05)


# -- the lab ----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def sim_bench(name: str, devices: Mapping[str, Any]) -> AsyncIterator[Bench]:
    """A running lab bench (no control port) of ``devices`` as a bench file spells them."""
    document = {"bench": name, "devices": dict(devices)}
    spec = validate_bench(load_yaml(yaml.safe_dump(document)))
    async with Bench(spec, control=False) as bench:
        yield bench


def sim_device(driver: str, state: Mapping[str, Any]) -> dict[str, Any]:
    """A bench device of simulator ``driver`` on a free UDP port of 127.0.0.1."""
    return {"resource": {"kind": "udp"}, "driver": {"type": driver}, "state": dict(state)}


def gateway_bench(
    name: str, state: Mapping[str, Any], device: str = "pstn-gw"
) -> contextlib.AbstractAsyncContextManager[Bench]:
    """A bench with the lab's PSTN gateway simulator (``sip-pstn-gateway``) as ``device``."""
    return sim_bench(name, {device: sim_device("sip-pstn-gateway", state)})


# -- the site file ----------------------------------------------------------------------------


def trunk(
    trunk_id: str, kind: str, port: int, options_interval: float | None = None
) -> dict[str, Any]:
    """A ``trunks:`` entry to a peer on 127.0.0.1 (no OPTIONS pings unless asked)."""
    return {"id": trunk_id, "type": kind, "host": HOST, "port": port,
            "options_interval": options_interval}  # fmt: skip


def gateway_trunk(gateway: Any, trunk_id: str = "gw") -> dict[str, Any]:
    """The ``trunks:`` entry for a lab gateway simulator, without OPTIONS pings."""
    return {**gateway.site_trunk(trunk_id), "options_interval": None}


def sip_site_dict(
    tmp_path: Path,
    *,
    dispatcher_password: str | None = None,
    phones: Mapping[str, str] = {},
    **sip: Any,
) -> dict[str, Any]:
    """``site_dict`` with the hub's SIP on 127.0.0.1, port 0, domain ``DOMAIN`` (``sip``
    overrides; ``domain=None`` leaves it out). ``dispatcher_password`` lets dispatcher-user
    register; ``phones`` adds a dispatcher SIP user per ``name: password``."""
    data = site_dict(tmp_path)
    if dispatcher_password is not None:
        data["users"][0]["sip_password"] = dispatcher_password  # dispatcher-user
    data["users"] += [
        {"name": name, "role": "dispatcher", "token": f"tok-{name}-0123456789abcdef",
         "sip_password": password}
        for name, password in phones.items()
    ]  # fmt: skip
    settings = {"host": HOST, "port": 0, "domain": DOMAIN, **sip}
    data["sip"] = {k: v for k, v in settings.items() if v is not None}
    return data


# -- the running hub --------------------------------------------------------------------------


def sip_port(hub: Hub) -> int:
    """The UDP port the hub's SIP stack listens on."""
    port: int = hub.telephony.stack.address("UDP").port
    return port


def api_client(hub: Hub, role: str | None = "dispatcher", timeout: float = 15) -> httpx.AsyncClient:
    """An HTTP client for the hub's API, as a user of ``role`` (None: no credentials)."""
    headers = auth(role) if role is not None else None
    return httpx.AsyncClient(base_url=hub.api_url, timeout=timeout, headers=headers)


async def register(
    stack: SipStack, user: str, password: str, hub_port: int, domain: str = DOMAIN
) -> SipResponse:
    """REGISTER ``user`` (digest) with the hub's registrar from ``stack``."""
    aor = f"sip:{user}@{domain}"
    return await stack.request(
        "REGISTER",
        f"sip:{HOST}:{hub_port}",
        from_=aor,
        to=aor,
        headers=[Header("Contact", str(stack.contact(user)))],
        credentials=Credentials(user, password),
    )


def hub_candidate(user: str, hub_port: int) -> Candidate:
    """Where to send a call to ``user`` (a number, a room) at the hub."""
    uri = f"sip:{user}@{HOST}:{hub_port}"
    return Candidate(parse_address(uri), None, SipUri.parse(uri), (HOST, hub_port), "udp")


def phone_media(phone: RtpPhone, dtmf: Codec = TELEPHONE_EVENT) -> MediaCapabilities:
    """What an ``RtpPhone`` offers or answers with: PCMU and RFC 4733 events."""
    return MediaCapabilities(HOST, phone.address[1], (PCMU, dtmf))
