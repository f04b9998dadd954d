"""Conferences through the hub's API with real peers: two registered baresip phones and a
SIPp party behind a PSTN gateway trunk, each sending its own tone. What each one hears is
checked with a Goertzel filter: the other two and never itself; then mute, deafen, kick,
silent monitor, roll call and recording do what they say."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hub.runtime import Hub
from tests.conferences.audio_peers import (
    PARTY_TONES,
    SILENT_DBFS,
    LoopbackTap,
    SippParty,
    ToneBaresip,
    level,
    tones,
)
from tests.conferences.conf_hub import (
    GATEWAY_NUMBER,
    ConfClient,
    conference_site,
    registered_phones,
    running_hub,
)
from tests.sip.peers import free_port

pytestmark = pytest.mark.slow

PHONES = {"alice": "alice-sip-pw", "bob": "bob-sip-pw"}
ALICE, BOB, SIPP, CAROL = PARTY_TONES
CANDIDATES = list(PARTY_TONES)
# SIPp's port is only readable with a packet socket; without it SIPp still talks and is
# heard, only what it hears goes unchecked.
TAP = LoopbackTap.available()


@dataclass
class Bridge:
    hub: Hub
    api: ConfClient
    conf: str
    phones: dict[str, ToneBaresip]
    sipp: SippParty
    pids: dict[str, str]

    async def heard(self, who: str, seconds: float = 0.6) -> set[float]:
        """The tones ``who`` hears from now on."""
        party = self.sipp if who == "sipp" else self.phones[who]
        return tones(await party.listen(seconds), CANDIDATES)


@contextlib.asynccontextmanager
async def three_party_bridge(tmp_path: Path, **conference: object) -> AsyncIterator[Bridge]:
    """alice (400 Hz) and bob (700 Hz) on baresip, SIPp (1100 Hz) behind the gateway,
    all dialled out by the hub into one conference, all joined."""
    gateway_port = free_port()
    site = conference_site(
        tmp_path,
        phones=PHONES,
        gateway_port=gateway_port,
        conferences={"profiles": {"default": {"join_tone": False}}},
    )
    sipp = SippParty(tone_hz=SIPP, tap=TAP, port=gateway_port)
    async with running_hub(site) as (hub, api), sipp, registered_phones(hub, PHONES) as phones:
        conf = await api.create("three parties", **conference)
        pids = {
            "alice": await api.dial(conf, "user:alice"),
            "bob": await api.dial(conf, "user:bob"),
            "sipp": await api.dial(conf, GATEWAY_NUMBER),
        }
        for pid in pids.values():
            await api.wait_state(conf, pid, "joined")
        yield Bridge(hub, api, conf, phones, sipp, pids)


async def test_three_parties_hear_each_other_and_not_themselves(tmp_path: Path) -> None:
    async with three_party_bridge(tmp_path) as bridge:
        assert await bridge.heard("alice") == {BOB, SIPP}
        assert await bridge.heard("bob") == {ALICE, SIPP}
        if TAP:
            assert await bridge.heard("sipp") == {ALICE, BOB}
        view = await bridge.api.conference(bridge.conf)
        assert view["state"] == "multi"
        joined = {p["id"]: p for p in view["participants"]}
        assert {joined[pid]["codec"] for pid in bridge.pids.values()} == {"PCMU"} or all(
            joined[pid]["codec"] in ("PCMU", "PCMA") for pid in bridge.pids.values()
        )
        assert joined[bridge.pids["sipp"]]["trunk"] == "gw"


async def test_mute_deafen_and_kick(tmp_path: Path) -> None:
    async with three_party_bridge(tmp_path) as bridge:
        api, conf, pids = bridge.api, bridge.conf, bridge.pids
        # mute alice: nobody hears her; she still hears the others
        assert (await api.patch(conf, pids["alice"], muted=True))["muted"] is True
        assert await bridge.heard("bob") == {SIPP}
        if TAP:
            assert await bridge.heard("sipp") == {BOB}
        assert await bridge.heard("alice") == {BOB, SIPP}
        await api.patch(conf, pids["alice"], muted=False)
        assert await bridge.heard("bob") == {ALICE, SIPP}

        # deafen bob: he hears silence, the others still hear him
        assert (await api.patch(conf, pids["bob"], deafened=True))["deafened"] is True
        quiet = await bridge.phones["bob"].listen(0.6)
        assert tones(quiet, CANDIDATES) == set() and level(quiet) < SILENT_DBFS
        assert await bridge.heard("alice") == {BOB, SIPP}
        await api.patch(conf, pids["bob"], deafened=False)
        assert await bridge.heard("bob") == {ALICE, SIPP}

        # kick SIPp: the hub sends it a BYE, the others stop hearing it
        kicked = await api.kick(conf, pids["sipp"])
        assert kicked["state"] == "left" and kicked["reason"] == "kicked"
        result = await bridge.sipp.wait(within=10.0)
        assert result.ok, result
        assert "BYE sip:" in result.messages
        assert await bridge.heard("alice") == {BOB}
        assert await bridge.heard("bob") == {ALICE}
        controls = await api.events("conference.control")
        actions = [e["data"]["action"] for e in controls]
        for action in ("mute", "unmute", "deafen", "undeafen", "kick"):
            assert action in actions, actions
