"""The conference and recording routes on a running hub with a real SIP trunk to the lab's
PSTN gateway simulator: each dialled number answers with its own tone, so what the hub
mixed (its recording) shows who was heard when. Roles, audit, problem bodies."""

from __future__ import annotations

import asyncio
import io
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from hub.config import SiteConfig
from hub.runtime import Hub
from hub.store import RecordingRow
from lab.bench import Bench
from media import dsp
from tests.hub.confkit import api_client, eventually, gateway_bench, gateway_trunk, sip_site_dict
from tests.hub.sitefile import auth

pytestmark = pytest.mark.slow

CALLER_A = "+8613800000001"  # answers with TONE_A
OFFICE = "+8613800000002"  # the duty officer's second route, answers with TONE_B
BUSY = "+8613900000000"  # the duty officer's mobile: busy
WATCHER = "+8613800000003"  # a monitor: the gateway's default tone, never heard
TONE_A, TONE_B, TONE_WATCHER = 520.0, 1330.0, 770.0
TONES = [TONE_A, TONE_B, TONE_WATCHER]


@dataclass
class Rig:
    hub: Hub
    bench: Bench
    http: httpx.AsyncClient

    async def call(
        self, method: str, url: str, role: str = "dispatcher", **kwargs: Any
    ) -> httpx.Response:
        return await self.http.request(method, url, headers=auth(role), **kwargs)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    state = {
        "tone_hz": TONE_WATCHER,
        "numbers": {
            CALLER_A: {"tone_hz": TONE_A},
            OFFICE: {"tone_hz": TONE_B},
            BUSY: {"action": "busy"},
        },
    }
    async with gateway_bench("conference-api", state) as bench:
        data = sip_site_dict(tmp_path)
        data["trunks"] = [gateway_trunk(bench.sims["pstn-gw"])]
        data["endpoints"] = [
            {
                "id": "duty-officer",
                "name": "Duty officer",
                "routes": [f"pstn:{BUSY}", f"pstn:{OFFICE}"],
            }
        ]
        data["conferences"] = {
            "rooms": [{"id": "ops", "name": "Operations bridge", "number": "8000", "pin": "4321"}]
        }
        async with Hub(SiteConfig.model_validate(data)) as hub, api_client(hub, None) as http:
            yield Rig(hub, bench, http)


def _tones_between(samples: np.ndarray, rate: int, start: float, end: float) -> set[float]:
    """Which of TONES the mix holds from ``start`` to ``end`` seconds into the file."""
    assert end - start >= 0.3, f"window {start:.2f}..{end:.2f} s too short to judge"
    window = samples[int(start * rate) : int(end * rate)]
    return dsp.dominant(window, rate, TONES, floor=1e-3)


async def test_conference_from_the_api(rig: Rig) -> None:
    # a standing room from the site file, its PIN never shown
    listing = (await rig.call("GET", "/api/v1/conferences", role="ops")).json()
    (room,) = listing["conferences"]
    assert (room["id"], room["number"], room["has_pin"], room["standing"]) == (
        "ops",
        "8000",
        True,
        True,
    )
    assert "4321" not in str(listing)

    reply = await rig.call(
        "POST", "/api/v1/conferences", json={"name": "Flood response", "record": True}
    )
    assert reply.status_code == 201, reply.text
    conf = reply.json()
    cid = conf["id"]
    assert (conf["state"], conf["participants"], conf["locked"]) == ("empty", [], False)
    assert conf["recording"]
    url = f"/api/v1/conferences/{cid}"

    # by number, and by directory endpoint (its busy mobile first, then the office line)
    reply = await rig.call("POST", f"{url}/participants", json={"target": f"pstn:{CALLER_A}"})
    assert reply.status_code == 202, reply.text
    caller = reply.json()
    assert (caller["state"], caller["target"], caller["endpoint"]) == (
        "dialing",
        f"pstn:{CALLER_A}",
        None,
    )
    reply = await rig.call("POST", f"{url}/participants", json={"target": "duty-officer"})
    assert reply.status_code == 202, reply.text
    officer = reply.json()
    assert officer["endpoint"] == "duty-officer"
    a, b = caller["id"], officer["id"]

    async def both_talking() -> dict[str, Any] | None:
        view: dict[str, Any] = (await rig.call("GET", url, role="ops")).json()
        return view if sorted(view["talking"]) == sorted([a, b]) else None

    view = await eventually(both_talking)
    assert view["state"] == "multi"
    people = {p["id"]: p for p in view["participants"]}
    assert {p["state"] for p in people.values()} == {"joined"}
    assert (people[b]["route"], people[b]["trunk"]) == (1, "gw")
    assert [(t["route"], t["status"]) for t in people[b]["attempts"]] == [(0, 486)]
    listed = (await rig.call("GET", f"{url}/participants", role="engineer")).json()
    assert sorted(p["id"] for p in listed["participants"]) == sorted([a, b])
    assert rig.bench.sims["pstn-gw"].snapshot()["active_calls"] == 2
    await asyncio.sleep(1.0)  # a second of both talking in the recording

    # mute A: from now on only B is heard
    reply = await rig.call("PATCH", f"{url}/participants/{a}", json={"muted": True})
    assert reply.status_code == 200, reply.text
    assert reply.json()["muted"] is True

    # locked: a plain participant is refused, a silent monitor is let in
    assert (await rig.call("POST", f"{url}/lock")).json()["locked"] is True
    reply = await rig.call("POST", f"{url}/participants", json={"target": f"pstn:{WATCHER}"})
    assert reply.status_code == 409
    problem = reply.json()
    assert reply.headers["content-type"] == "application/problem+json"
    assert (
        problem["title"] == "Conference locked" and "as a moderator or monitor" in problem["detail"]
    )
    reply = await rig.call(
        "POST", f"{url}/participants", json={"target": f"pstn:{WATCHER}", "role": "monitor"}
    )
    assert reply.status_code == 202, reply.text
    watcher = reply.json()["id"]

    async def watcher_joined() -> bool:
        p = (await rig.call("GET", f"{url}/participants/{watcher}")).json()
        return bool(p["state"] == "joined")

    await eventually(watcher_joined)
    await asyncio.sleep(1.0)  # a second of B alone (and the monitor, who must not be heard)

    # kick B (强拆): its call is hung up at the gateway
    reply = await rig.call("DELETE", f"{url}/participants/{b}")
    assert reply.status_code == 200, reply.text
    assert (reply.json()["state"], reply.json()["reason"]) == ("left", "kicked")

    async def two_calls_left() -> bool:
        return bool(rig.bench.sims["pstn-gw"].snapshot()["active_calls"] == 2)

    await eventually(two_calls_left)
    view = (await rig.call("GET", url)).json()
    assert view["state"] == "single"  # A joined; the monitor does not count

    reply = await rig.call("DELETE", url)
    assert reply.status_code == 200, reply.text
    ended = reply.json()
    assert ended["state"] == "ended"
    assert {p["state"] for p in ended["participants"]} == {"left"}
    assert ended["talking"] == []

    # who did what: control events and the audit log
    events = (await rig.call("GET", "/api/v1/events", params={"kinds": "conference."})).json()
    controls = {
        e["data"]["action"]: e
        for e in events["events"]
        if e["kind"] == "conference.control" and e["data"]["conference"] == cid
    }
    assert {"mute", "lock", "kick"} <= set(controls)
    assert controls["mute"]["data"]["actor"] == "dispatcher-user"
    audit = (await rig.call("GET", "/api/v1/audit", role="ops", params={"limit": 50})).json()
    mute_audit = next(e for e in audit if e["target"] == f"conference:{cid}/participant:{a}")
    assert (mute_audit["actor"], mute_audit["result"], mute_audit["detail"]) == (
        "dispatcher-user",
        "200",
        "muted=True",
    )

    # the recording: both tones, then B alone after the mute, never the monitor
    async def mix_finished() -> dict[str, Any] | None:
        query = {"conference": cid, "kind": "mix"}
        rows = (await rig.call("GET", "/api/v1/recordings", params=query)).json()["recordings"]
        return rows[0] if rows and rows[0]["end_ts"] else None

    mix = await eventually(mix_finished)
    talkers = (
        await rig.call("GET", "/api/v1/recordings", params={"conference": cid, "kind": "talker"})
    ).json()["recordings"]
    assert {r["talker"] for r in talkers} >= {a, b}
    assert mix["codec"] == "wav" and mix["media_type"] == "audio/wav"
    assert {a, b} <= set(mix["talkers"])
    assert (await rig.call("GET", f"/api/v1/recordings/{mix['id']}")).json() == mix
    reply = await rig.call("GET", mix["download"], role="ops")
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "audio/wav"
    assert reply.headers["content-disposition"] == f'attachment; filename="{mix["file"]}"'
    with wave.open(io.BytesIO(reply.content)) as wav:
        rate = wav.getframerate()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float32)
    start = mix["start_ts"]
    joined = max(people[a]["joined_ts"], people[b]["joined_ts"]) - start
    muted = controls["mute"]["ts"] - start
    kicked = controls["kick"]["ts"] - start
    assert _tones_between(samples, rate, joined + 0.3, muted - 0.1) == {TONE_A, TONE_B}
    assert _tones_between(samples, rate, muted + 0.3, kicked - 0.1) == {TONE_B}

    # a file that is gone, and a row pointing outside the recordings directory: 404
    rig.hub.store.save_recording(
        RecordingRow(
            id="rec-outside", conference=cid, kind="mix", path="/etc/passwd", codec="wav",
            start_ts=1.0, end_ts=2.0,
        )
    )  # fmt: skip
    await rig.hub.store.flush()
    reply = await rig.call("GET", "/api/v1/recordings/rec-outside/file")
    assert reply.status_code == 404 and "recordings directory" in reply.json()["detail"]
    stored = await rig.hub.store.recording(mix["id"])
    assert stored is not None
    await asyncio.to_thread(Path(stored.path).unlink)
    reply = await rig.call("GET", mix["download"])
    assert reply.status_code == 404 and "is gone" in reply.json()["detail"]


async def test_roles_and_problems(rig: Rig) -> None:
    conf = (await rig.call("POST", "/api/v1/conferences", json={"name": "Drill"})).json()
    url = f"/api/v1/conferences/{conf['id']}"

    # who may do what
    assert (await rig.http.get("/api/v1/conferences")).status_code == 401
    assert (await rig.http.get("/api/v1/recordings")).status_code == 401
    reply = await rig.call("POST", "/api/v1/conferences", role="ops", json={"name": "x"})
    assert reply.status_code == 403 and "needs one of" in reply.json()["detail"]
    assert (await rig.call("POST", f"{url}/lock", role="ops")).status_code == 403
    assert (await rig.call("GET", url, role="ops")).status_code == 200
    for role in ("platform", "engineer", "admin"):
        reply = await rig.call("POST", f"{url}/lock", role=role)
        assert reply.status_code == 200, (role, reply.text)

    # not found
    reply = await rig.call("GET", "/api/v1/conferences/nope")
    assert reply.status_code == 404
    assert reply.json()["title"] == "Conference not found"
    assert reply.json()["detail"] == "no conference 'nope'"
    reply = await rig.call("PATCH", f"{url}/participants/p-999", json={"muted": True})
    assert (reply.status_code, reply.json()["title"]) == (404, "Participant not found")
    reply = await rig.call("GET", "/api/v1/recordings/nope")
    assert (reply.status_code, reply.json()["detail"]) == (404, "no recording 'nope'")

    # unprocessable
    reply = await rig.call(
        "POST", f"{url}/participants", json={"target": "nobody-here", "role": "moderator"}
    )
    assert reply.status_code == 422 and reply.json()["title"] == "Invalid target"
    assert "nobody-here" in reply.json()["detail"]
    reply = await rig.call("POST", "/api/v1/conferences", json={"name": "x", "profile": "vip"})
    assert reply.status_code == 422 and "unknown profile 'vip'" in reply.json()["detail"]
    reply = await rig.call("POST", "/api/v1/conferences", json={"name": "x", "pin": "12ab"})
    assert reply.status_code == 422 and reply.json()["errors"][0]["where"] == "pin"
    reply = await rig.call("POST", "/api/v1/conferences", json={"name": "x", "pin": "12#"})
    assert reply.status_code == 422 and "callers key '#' to end the PIN" in reply.text
    reply = await rig.call("PATCH", f"{url}/participants/p-1", json={})
    assert reply.status_code == 422 and "at least one of" in reply.json()["detail"]
    reply = await rig.call("POST", f"{url}/announcements", json={"file": "../../etc/passwd"})
    assert reply.status_code == 422 and "outside the hub's data directory" in reply.json()["detail"]
    reply = await rig.call(
        "POST", f"{url}/announcements", json={"tone": {"frequency": 440, "seconds": 1}, "file": "x"}
    )
    assert reply.status_code == 422 and "either 'tone' or 'file'" in reply.json()["detail"]
    reply = await rig.call(
        "POST", f"{url}/announcements", json={"tone": {"frequency": 440, "seconds": 0.2}}
    )
    assert reply.status_code == 202 and reply.json()["announcement"] >= 0

    # recording on and off; a second stop is a conflict
    reply = await rig.call("POST", f"{url}/recording")
    assert reply.status_code == 201 and reply.json()["recording"]
    assert (await rig.call("DELETE", f"{url}/recording")).json()["recording"] is None
    reply = await rig.call("DELETE", f"{url}/recording")
    assert reply.status_code == 409 and "not recording" in reply.json()["detail"]

    # an ended conference is still shown (with why), but takes nothing
    assert (await rig.call("DELETE", url)).status_code == 200
    view = (await rig.call("GET", url)).json()
    assert (view["state"], view["reason"]) == ("ended", "ended")
    reply = await rig.call("POST", f"{url}/participants", json={"target": f"pstn:{CALLER_A}"})
    assert reply.status_code == 409 and reply.json()["title"] == "Conference ended"
    assert (await rig.call("DELETE", url)).status_code == 409
