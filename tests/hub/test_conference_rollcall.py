"""Roll call (点名), the bridged two-party call, barge (强插) and silent monitor (监听) through
the hub's API, with real SIP and RTP on 127.0.0.1.

The hub has a trunk to the lab's PSTN gateway simulator (per-number answer, busy, reject,
never answer) for the roll-call members, and SIP phones registered as site users (each a
real SIP stack answering with an RTP phone that sends its own tone and keeps what it
hears) for the calls; what each party hears is checked with a Goertzel filter.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.config import SiteConfig
from hub.runtime import Hub
from lab.bench import Bench
from media import dsp
from sip.calls import CallLeg, CallManager
from sip.stack import SipStack, StackConfig
from sip.transport import TransportConfig
from tests.hub.confkit import (
    DOMAIN,
    api_client,
    eventually,
    gateway_bench,
    gateway_trunk,
    phone_media,
    register,
    sip_port,
    sip_site_dict,
)
from tests.hub.sitefile import auth
from tests.media.rtp_phone import RtpPhone, listen

pytestmark = pytest.mark.slow

RATE = 8000
BARGE_HZ = 1400.0  # hub.conferences.rollcall.BARGE_TONE
PHONES = {"alice": 400.0, "bob": 700.0, "carol": 1100.0, "mona": 1500.0}
CANDIDATES = [*PHONES.values(), BARGE_HZ]
# What the gateway simulator does with each number the roll-call members are reached on.
NUMBERS = {
    "+8610002": {"action": "busy"},
    "+8610003": {"action": "no-answer"},
    "+8610004": {"action": "reject", "status": 404, "reason": "Unallocated Number"},
}
ENDPOINTS = [
    {"id": "chief", "name": "County chief", "routes": ["pstn:+8610001"], "roles": ["leader"]},
    {"id": "deputy", "name": "Deputy", "routes": ["pstn:+8610002"], "roles": ["leader"]},
    {"id": "duty", "name": "Duty officer", "routes": ["pstn:+8610003"], "roles": ["leader"]},
    # the first route is unallocated: the hub falls back to the second, which answers
    {"id": "field", "name": "Field team", "routes": ["pstn:+8610004", "pstn:+8610005"],
     "roles": ["field"]},
]  # fmt: skip


# -- the peers --------------------------------------------------------------------------------


class SoftPhone:
    """A SIP phone registered with the hub as a site user: answers at once with an
    ``RtpPhone`` that sends its tone and keeps every packet it hears."""

    def __init__(self, user: str, tone_hz: float) -> None:
        self.user = user
        self.tone_hz = tone_hz
        self.leg: CallLeg | None = None
        self.calls_answered = 0
        config = StackConfig(transport=TransportConfig(hosts=("127.0.0.1",), port=0))
        self.stack = SipStack(config)
        self.calls = CallManager(self.stack, on_incoming=self._incoming, trust_all=True)
        self.rtp: RtpPhone | None = None

    async def start(self, hub_sip_port: int, domain: str) -> None:
        self.calls.attach()
        await self.stack.start()
        self.rtp = await RtpPhone.create("PCMU")
        response = await register(
            self.stack, self.user, f"{self.user}-sip-pw", hub_sip_port, domain
        )
        assert response.status == 200, (self.user, response.status)

    async def close(self) -> None:
        await self.calls.close()
        await self.stack.close()
        if self.rtp is not None:
            await self.rtp.stop()
            self.rtp.close()

    def _incoming(self, leg: CallLeg) -> None:
        assert self.rtp is not None
        if self.leg is not None and not self.leg.ended:
            leg.reject(486)
            return
        self.leg = leg
        media = leg.answer(phone_media(self.rtp))
        assert media is not None and media.codec == "PCMU"
        self.calls_answered += 1
        self.rtp.start((media.remote_host, media.remote_port), self.tone_hz)

    @property
    def in_call(self) -> bool:
        return self.leg is not None and not self.leg.ended

    def hears(self, last_seconds: float = 0.4) -> set[float]:
        assert self.rtp is not None
        return self.rtp.tones(CANDIDATES, last_seconds)

    def heard_barge_tone(self) -> bool:
        """Did any 100 ms of what it received since the last ``clear`` carry the tone?"""
        assert self.rtp is not None
        audio = self.rtp.audio()
        return any(
            BARGE_HZ in dsp.dominant(audio[i : i + 800], RATE, CANDIDATES)
            for i in range(0, max(0, len(audio) - 800), 400)
        )


@dataclass
class Rig:
    hub: Hub
    http: httpx.AsyncClient
    bench: Bench
    phones: dict[str, SoftPhone]

    async def conference(self, conf_id: str) -> dict[str, Any]:
        reply = await self.http.get(f"/api/v1/conferences/{conf_id}")
        assert reply.status_code == 200, reply.text
        body: dict[str, Any] = reply.json()
        return body

    async def create(self, name: str) -> str:
        reply = await self.http.post("/api/v1/conferences", json={"name": name})
        assert reply.status_code == 201, reply.text
        return str(reply.json()["id"])

    async def roll_call(self, conf_id: str, rid: str) -> dict[str, Any]:
        reply = await self.http.get(f"/api/v1/conferences/{conf_id}/roll-calls/{rid}")
        assert reply.status_code == 200, reply.text
        body: dict[str, Any] = reply.json()
        return body

    async def finished(self, conf_id: str, rid: str, within: float = 20.0) -> dict[str, Any]:
        async def done() -> dict[str, Any] | None:
            report = await self.roll_call(conf_id, rid)
            return report if report["state"] != "running" else None

        result: dict[str, Any] = await eventually(done, within)
        return result

    async def joined(self, conf_id: str, count: int) -> list[dict[str, Any]]:
        """Wait until ``count`` participants are joined; return them."""

        async def check() -> list[dict[str, Any]]:
            view = await self.conference(conf_id)
            joined = [p for p in view["participants"] if p["state"] == "joined"]
            return joined if len(joined) == count else []

        result: list[dict[str, Any]] = await eventually(check)
        return result

    async def events(self, kinds: str) -> list[dict[str, Any]]:
        reply = await self.http.get("/api/v1/events", params={"kinds": kinds, "limit": 1000})
        assert reply.status_code == 200, reply.text
        events: list[dict[str, Any]] = reply.json()["events"]
        return events


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with gateway_bench("rollcall", {"numbers": NUMBERS}) as bench:
        data = sip_site_dict(tmp_path, phones={user: f"{user}-sip-pw" for user in PHONES})
        data["trunks"] = [gateway_trunk(bench.sims["pstn-gw"])]
        data["endpoints"] = ENDPOINTS
        data["conferences"] = {"rtp_host": "127.0.0.1"}
        phones = {user: SoftPhone(user, hz) for user, hz in PHONES.items()}
        async with Hub(SiteConfig.model_validate(data)) as hub:
            http = api_client(hub)
            try:
                for phone in phones.values():
                    await phone.start(sip_port(hub), DOMAIN)
                yield Rig(hub, http, bench, phones)
            finally:
                await http.aclose()
                for phone in phones.values():
                    with contextlib.suppress(Exception):
                        await phone.close()


# -- roll call ----------------------------------------------------------------------------------


def by_target(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["target"]: m for m in report["members"]}


async def test_sequential_roll_call_reports_who_answered_and_who_did_not(rig: Rig) -> None:
    conf = await rig.create("morning roll call")
    reply = await rig.http.post(
        f"/api/v1/conferences/{conf}/roll-calls",
        json={"members": ["role:leader", "field"], "mode": "sequential", "ring_timeout": 1.5},
    )
    assert reply.status_code == 202, reply.text
    started = reply.json()
    assert started["state"] == "running" and started["mode"] == "sequential"
    # role:leader expands to the site endpoints with that role, in site order
    assert [m["target"] for m in started["members"]] == ["chief", "deputy", "duty", "field"]
    assert started["members"][0]["via_role"] == "leader"

    report = await rig.finished(conf, started["id"])
    assert report["state"] == "finished"
    assert report["answered"] == ["chief", "field"]
    assert report["unanswered"] == ["deputy", "duty"]
    members = by_target(report)
    chief, deputy, duty, field = (members[t] for t in ("chief", "deputy", "duty", "field"))
    assert (chief["outcome"], chief["trunk"], chief["route"]) == ("answered", "gw", 0)
    assert chief["answer_seconds"] is not None and chief["answer_seconds"] >= 0
    assert (deputy["outcome"], deputy["status"]) == ("unanswered", 486)
    assert duty["outcome"] == "unanswered" and "no-answer" in duty["reason"]
    # the fallback: the first route was unallocated, the second answered
    assert (field["outcome"], field["route"], field["trunk"]) == ("answered", 1, "gw")
    assert [a["status"] for a in field["attempts"]] == [404]
    # one at a time: each member dialled only once the one before had an outcome
    ordered = [chief, deputy, duty, field]
    for before, after in itertools.pairwise(ordered):
        assert after["dialled_ts"] >= before["settled_ts"]

    # the answered members are in the conference; the others are not
    view = await rig.conference(conf)
    states = {p["target"]: p["state"] for p in view["participants"]}
    assert states["chief"] == states["field"] == "joined"
    assert states["deputy"] == states["duty"] == "failed"

    events = [e["data"] for e in await rig.events("conference.rollcall")]
    mine = [e for e in events if e["rollcall"] == started["id"]]
    assert mine[0]["state"] == "running" and mine[-1]["state"] == "finished"
    assert [m["target"] for m in mine[-1]["answered"]] == ["chief", "field"]
    unanswered = {m["target"]: m for m in mine[-1]["unanswered"]}
    assert unanswered["deputy"]["status"] == 486


async def test_parallel_roll_call_calls_everyone_at_once(rig: Rig) -> None:
    conf = await rig.create("all hands")
    reply = await rig.http.post(
        f"/api/v1/conferences/{conf}/roll-calls",
        json={"members": ["chief", "deputy", "duty", "field", "user:alice"],
              "mode": "parallel", "ring_timeout": 1.5},
    )  # fmt: skip
    assert reply.status_code == 202, reply.text
    report = await rig.finished(conf, reply.json()["id"])
    assert report["state"] == "finished"
    assert sorted(report["answered"]) == ["chief", "field", "user:alice"]
    assert sorted(report["unanswered"]) == ["deputy", "duty"]
    members = report["members"]
    # all at once: every member was dialled before the first outcome came in
    assert max(m["dialled_ts"] for m in members) <= min(m["settled_ts"] for m in members)
    alice = by_target(report)["user:alice"]
    assert alice["trunk"] is None and alice["outcome"] == "answered"
    assert rig.phones["alice"].in_call

    listing = (await rig.http.get(f"/api/v1/conferences/{conf}/roll-calls")).json()
    assert [r["id"] for r in listing["roll_calls"]] == [report["id"]]


async def test_cancel_hangs_up_the_ringing_and_skips_the_rest(rig: Rig) -> None:
    conf = await rig.create("cancelled roll call")
    reply = await rig.http.post(
        f"/api/v1/conferences/{conf}/roll-calls",
        json={"members": ["chief", "duty", "deputy"], "mode": "sequential", "ring_timeout": 60},
    )
    rid = reply.json()["id"]

    async def duty_ringing() -> bool:
        report = await rig.roll_call(conf, rid)
        return bool(by_target(report)["duty"]["outcome"] == "calling")

    await eventually(duty_ringing)
    assert by_target(await rig.roll_call(conf, rid))["chief"]["outcome"] == "answered"
    reply = await rig.http.delete(f"/api/v1/conferences/{conf}/roll-calls/{rid}")
    assert reply.status_code == 200, reply.text
    report = reply.json()
    assert report["state"] == "cancelled"
    members = by_target(report)
    assert members["chief"]["outcome"] == "answered"  # stays in the conference
    assert members["duty"]["outcome"] == "cancelled"  # was ringing: hung up
    assert members["deputy"]["outcome"] == "cancelled"  # never called
    assert members["deputy"]["dialled_ts"] is None

    view = await rig.conference(conf)
    states = {p["target"]: p["state"] for p in view["participants"]}
    assert states == {"chief": "joined", "duty": states["duty"]} and states["duty"] != "joined"
    # cancelling twice: the roll call is over
    again = await rig.http.delete(f"/api/v1/conferences/{conf}/roll-calls/{rid}")
    assert again.status_code == 409


async def test_roll_call_bad_input(rig: Rig) -> None:
    conf = await rig.create("bad input")
    url = f"/api/v1/conferences/{conf}/roll-calls"
    unknown_role = await rig.http.post(url, json={"members": ["role:mayor"]})
    assert unknown_role.status_code == 422
    assert "no endpoint has role 'mayor'" in unknown_role.json()["detail"]
    bad_address = await rig.http.post(url, json={"members": ["chief", "pstn:12ab"]})
    assert bad_address.status_code == 422 and "pstn:12ab" in bad_address.json()["detail"]
    bad_mode = await rig.http.post(url, json={"members": ["chief"], "mode": "random"})
    assert bad_mode.status_code == 422
    empty = await rig.http.post(url, json={"members": []})
    assert empty.status_code == 422
    missing = await rig.http.post(
        "/api/v1/conferences/nope/roll-calls", json={"members": ["chief"]}
    )
    assert missing.status_code == 404
    assert (await rig.http.get(f"{url}/rc-nope")).status_code == 404
    reader = await rig.http.post(url, json={"members": ["chief"]}, headers=auth("ops"))
    assert reader.status_code == 403
    assert (await rig.http.get(url, headers=auth("ops"))).json() == {"roll_calls": []}


# -- the bridged call, monitor and barge --------------------------------------------------------


async def test_call_monitor_and_barge(rig: Rig) -> None:
    alice, bob, carol, mona = (rig.phones[n] for n in ("alice", "bob", "carol", "mona"))
    reply = await rig.http.post("/api/v1/calls", json={"a": "user:alice", "b": "user:bob"})
    assert reply.status_code == 202, reply.text
    call = reply.json()
    conf = call["id"]
    assert call["kind"] == "call"
    await rig.joined(conf, 2)
    assert alice.rtp is not None and bob.rtp is not None
    await listen([alice.rtp, bob.rtp], 0.6)
    assert alice.hears() == {PHONES["bob"]}
    assert bob.hears() == {PHONES["alice"]}

    # 监听: a monitor hears both parties and is heard by neither
    reply = await rig.http.post(
        f"/api/v1/conferences/{conf}/participants", json={"target": "user:mona", "role": "monitor"}
    )
    assert reply.status_code == 202, reply.text
    await rig.joined(conf, 3)
    assert mona.rtp is not None
    await listen([alice.rtp, bob.rtp, mona.rtp], 0.6)
    assert mona.hears() == {PHONES["alice"], PHONES["bob"]}
    assert alice.hears() == {PHONES["bob"]}
    assert bob.hears() == {PHONES["alice"]}

    # 强插: the monitor does not count, so this is still a two-party call
    for phone in (alice, bob):
        assert phone.rtp is not None
        phone.rtp.clear()
    reply = await rig.http.post(f"/api/v1/conferences/{conf}/barge", json={"target": "user:carol"})
    assert reply.status_code == 202, reply.text
    assert reply.json()["target"] == "user:carol"
    await rig.joined(conf, 4)

    async def announced() -> bool:
        events = await rig.events("conference.control")
        actions = [e["data"]["action"] for e in events if e["data"]["conference"] == conf]
        return "barge" in actions and "announce" in actions

    await eventually(announced)
    assert carol.rtp is not None
    await listen([alice.rtp, bob.rtp, carol.rtp], 0.8)
    assert alice.heard_barge_tone() and bob.heard_barge_tone()
    await listen([alice.rtp, bob.rtp, carol.rtp, mona.rtp], 0.6)
    assert alice.hears() == {PHONES["bob"], PHONES["carol"]}
    assert bob.hears() == {PHONES["alice"], PHONES["carol"]}
    assert carol.hears() == {PHONES["alice"], PHONES["bob"]}
    assert mona.hears() == {PHONES["alice"], PHONES["bob"], PHONES["carol"]}

    # a second barge: the call has three parties now
    again = await rig.http.post(f"/api/v1/conferences/{conf}/barge", json={"target": "chief"})
    assert again.status_code == 409 and "3 joined" in again.json()["detail"]

    # the barger leaves: the call goes on; then one party leaves and the other is released
    assert carol.leg is not None and alice.leg is not None
    await carol.leg.hangup()
    await rig.joined(conf, 3)
    await alice.leg.hangup()

    async def ended() -> bool:
        return bool((await rig.conference(conf))["state"] == "ended")

    await eventually(ended)

    async def released() -> bool:
        return not bob.in_call and not mona.in_call

    await eventually(released)
    states = await rig.events("conference.state")
    final = [e["data"] for e in states if e["data"]["conference"] == conf][-1]
    assert (final["state"], final["reason"]) == ("ended", "hangup")


async def test_call_ends_when_a_party_does_not_answer(rig: Rig) -> None:
    reply = await rig.http.post(
        "/api/v1/calls", json={"a": "user:alice", "b": "deputy", "name": "to the deputy"}
    )
    assert reply.status_code == 202, reply.text
    conf = reply.json()["id"]

    async def ended() -> bool:
        return bool((await rig.conference(conf))["state"] == "ended")

    await eventually(ended)  # deputy is busy: alice is released
    assert not rig.phones["alice"].in_call


async def test_barge_refused_unless_into_a_two_party_call(rig: Rig) -> None:
    conf = await rig.create("not a call")
    reply = await rig.http.post(f"/api/v1/conferences/{conf}/barge", json={"target": "chief"})
    assert reply.status_code == 409 and "not a two-party call" in reply.json()["detail"]
    # a call whose second party is still ringing has one joined party
    reply = await rig.http.post(
        "/api/v1/calls", json={"a": "chief", "b": "duty", "ring_timeout": 60}
    )
    call = reply.json()["id"]
    await rig.joined(call, 1)
    reply = await rig.http.post(f"/api/v1/conferences/{call}/barge", json={"target": "field"})
    assert reply.status_code == 409 and "1 joined" in reply.json()["detail"]
    missing = await rig.http.post("/api/v1/conferences/nope/barge", json={"target": "chief"})
    assert missing.status_code == 404
    bad = await rig.http.post("/api/v1/calls", json={"a": "chief", "b": "pdt:grp/1"})
    assert bad.status_code == 422 and "pdt:grp/1" in bad.json()["detail"]
    calls = (await rig.http.get("/api/v1/conferences")).json()["conferences"]
    assert [c["id"] for c in calls if c["kind"] == "call"] == [call]  # nothing half-made
