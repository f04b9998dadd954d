"""The hub's telephony wiring through its public setup path: a site file with SIP users,
a SIPp gateway as trunk and a dead trunk; REGISTER (digest) from a client stack, a call
to a directory endpoint, the directory and call routes, events, records, metrics, health."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hub.config import SiteConfig
from hub.runtime import Hub
from sip.calls import CallAnswered
from sip.offer_answer import MediaCapabilities
from sip.stack import SipStack, StackConfig
from sip.transport import TransportConfig
from tests.hub.confkit import api_client, eventually, register, sip_port, sip_site_dict, trunk
from tests.hub.sitefile import site_dict
from tests.sip.peers import Sipp, free_port

pytestmark = pytest.mark.slow


def telephony_site(tmp_path: Path, gateway_port: int) -> SiteConfig:
    data = sip_site_dict(tmp_path, dispatcher_password="disp-sip-pw")
    data["trunks"] = [
        trunk("gw", "pstn-gateway", gateway_port),
        trunk("dead", "satellite-gateway", free_port(), options_interval=0.3),
    ]
    data["endpoints"] = [
        {"id": "chief", "name": "County chief", "routes": ["pstn:+8613800138000"]},
    ]
    return SiteConfig.model_validate(data)


async def test_hub_telephony_end_to_end(tmp_path: Path) -> None:
    gateway = Sipp.uas("uas_answer", calls=1, duration_ms=50)
    async with gateway, Hub(telephony_site(tmp_path, gateway.port)) as hub:
        http = api_client(hub, timeout=10)
        port = sip_port(hub)
        assert port != 0
        # a phone registers as the dispatcher user, with digest
        config = StackConfig(transport=TransportConfig(hosts=("127.0.0.1",), port=0))
        async with http, SipStack(config) as phone:
            response = await register(phone, "dispatcher-user", "disp-sip-pw", port)
            assert response.status == 200

            async def directory() -> dict[str, Any]:
                reply = await http.get("/api/v1/endpoints")
                assert reply.status_code == 200
                body: dict[str, Any] = reply.json()
                trunks = {t["id"]: t for t in body["trunks"]}
                return body if trunks["dead"]["state"] == "down" else {}

            body = await eventually(directory, within=10.0)
            (user,) = body["users"]
            assert user["name"] == "dispatcher-user" and user["roles"] == ["dispatcher"]
            assert user["bindings"][0]["contact"].startswith("sip:dispatcher-user@127.0.0.1")
            (chief,) = body["endpoints"]
            assert chief["routes"] == [
                {"address": "pstn:+8613800138000", "trunks": ["gw"], "error": None}
            ]

            # the hub calls a directory endpoint through the SIPp gateway trunk
            leg = await hub.telephony.calls.originate(
                "chief", MediaCapabilities("127.0.0.1", 40000)
            )
            await leg.wait_for(CallAnswered)
            calls = (await http.get("/api/v1/calls")).json()
            assert [(c["id"], c["state"], c["trunk"]) for c in calls] == [
                (leg.id, "established", "gw")
            ]
            assert calls[0]["media"]["remote_port"] > 0
            metrics = (await http.get("/metrics")).text
            assert 'cchub_sip_calls_active{state="established"} 1.0' in metrics
            assert 'cchub_sip_trunk_up{trunk="dead"} 0.0' in metrics
            assert "cchub_sip_messages_in_total" in metrics
            health = (await http.get("/api/v1/health")).json()
            sip = next(s for s in health["subsystems"] if s["name"] == "sip")
            assert sip["state"] == "degraded" and "dead" in sip["detail"]
            await leg.hangup()
            assert (await gateway.wait()).ok

            async def records() -> list[dict[str, Any]]:
                reply = await http.get("/api/v1/calls/records")
                result: list[dict[str, Any]] = reply.json()
                return result

            (record,) = await eventually(records, within=10.0)
            assert (record["leg"], record["trunk"], record["reason"]) == (leg.id, "gw", "local-bye")
            events = (await http.get("/api/v1/events", params={"kinds": "sip."})).json()["events"]
            kinds = {(e["kind"], e["data"].get("phase") or e["data"].get("change")) for e in events}
            assert ("sip.binding", "added") in kinds
            assert {
                ("sip.call", "trying"),
                ("sip.call", "answered"),
                ("sip.call", "ended"),
            } <= kinds
            trunk_events = [e["data"] for e in events if e["kind"] == "sip.trunk"]
            assert {"trunk": "dead", "state": "down"}.items() <= trunk_events[0].items()


async def test_site_without_sip_runs_no_listener(tmp_path: Path) -> None:
    async with Hub(SiteConfig.model_validate(site_dict(tmp_path))) as hub:
        assert not hub.telephony.enabled
        assert "sip" not in {h.name for h in hub.health()}
        assert hub.telephony.directory() == {"endpoints": [], "users": [], "trunks": []}
