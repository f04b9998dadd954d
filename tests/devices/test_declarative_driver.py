"""The declarative driver with both shipped profiles, against hand-written simulators of them.

The simulators (``lab/sims/declarative_ascii.py``, ``declarative_hex.py``) parse the vendors'
frames without the template engine, so these tests prove the engine against an independent
implementation: over TCP, a serial pty and UDP, with garbled, refused, half and lost replies.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devices.capabilities import VideoWall
from devices.drivers.declarative import DeclarativeDevice
from devices.errors import (
    DeviceCommandError,
    DeviceConfigError,
    DeviceTimeout,
    DeviceUnavailable,
    InvalidCommand,
)
from hub.config import SiteConfig
from hub.runtime import Hub
from lab.sims.declarative_ascii import AsciiWall
from lab.sims.declarative_hex import HexSplicer
from lab.sims.declarative_wall import DeclarativeWallSimulator, Dialect, WallState, Window
from tests.devices.peers import FAST, device_config, eventually, online
from tests.devices.wall_sims import fault, running
from tests.hub.sitefile import auth, site_dict

PROFILES = ["lcd-wall-ascii", "splicer-hex"]
# what each device answers for an empty scene and for a window that is not open
CODES = {"lcd-wall-ascii": ("ERR03", "ERR04"), "splicer-hex": ("0x04", "0x05")}
OPTIONS: dict[str, Any] = {"constants": {"windows": 4}}


def declarative(profile: str, transport: dict[str, Any], **options: Any) -> DeclarativeDevice:
    config = device_config(
        "declarative", transport, timeout=1.0, options={"profile": profile, **OPTIONS, **options}
    )
    return DeclarativeDevice(config)


@pytest.fixture(params=PROFILES)
async def controller(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[DeclarativeWallSimulator]:
    async with running("declarative", tmp_path, options={"profile": request.param}) as sim:
        assert isinstance(sim, DeclarativeWallSimulator)
        yield sim


@pytest.fixture
async def wall(controller: DeclarativeWallSimulator) -> AsyncIterator[DeclarativeDevice]:
    device = declarative(controller.device.driver.options["profile"], controller.site_transport())
    async with device:
        await online(device)
        yield device


def profile_of(sim: DeclarativeWallSimulator) -> str:
    return str(sim.device.driver.options["profile"])


async def test_layouts_and_windows_round_trip(
    wall: DeclarativeDevice, controller: DeclarativeWallSimulator
) -> None:
    assert wall.snapshot.state["layout"] is None
    assert wall.snapshot.state["layouts"][:3] == ("day", "flood", "wildfire")
    recall = {"command": "recall_layout", "layout": "day"}
    assert await wall.command(recall) == {"layout": "day"}
    assert controller.state.scene == 1  # the device's own view
    state = wall.snapshot.state
    assert VideoWall.verify(recall, state)
    assert dict(state["windows"][4]) == {"source": 4, "x": 1920, "y": 1080, "w": 1920, "h": 1080}

    opened = {"command": "open_window", "window": 2, "source": 9, "x": 100, "y": 200}
    opened |= {"w": 640, "h": 360}
    assert await wall.command(opened) == {
        "window": 2,
        "source": 9,
        "x": 100,
        "y": 200,
        "w": 640,
        "h": 360,
    }
    assert controller.state.windows[2] == Window(source=9, x=100, y=200, w=640, h=360)
    moved = {"command": "move_window", "window": 2, "x": 0, "y": 0, "w": 1280, "h": 720}
    await wall.command(moved)
    assert controller.state.windows[2] == Window(source=9, x=0, y=0, w=1280, h=720)
    switched = {"command": "set_source", "window": 2, "source": 11}
    assert (await wall.command(switched))["source"] == 11
    assert controller.state.windows[2].source == 11
    assert VideoWall.verify(switched, wall.snapshot.state)
    closed = {"command": "close_window", "window": 2}
    assert await wall.command(closed) == {"window": 2, "closed": True}
    assert 2 not in controller.state.windows
    # the poll reads the same wall back from the device
    await wall.command({"command": "refresh"})
    assert VideoWall.verify(closed, wall.snapshot.state)
    assert sorted(wall.snapshot.state["windows"]) == [1, 3, 4]


async def test_front_panel_recall_is_reported(
    wall: DeclarativeDevice, controller: DeclarativeWallSimulator
) -> None:
    await controller.update({"scene": 2})  # recalled on the front panel
    await eventually(lambda: wall.snapshot.state["layout"] == "flood")
    await eventually(lambda: sorted(wall.snapshot.state["windows"]) == [1])


async def test_device_errors_carry_the_devices_own_code(
    wall: DeclarativeDevice, controller: DeclarativeWallSimulator
) -> None:
    empty, not_open = CODES[profile_of(controller)]
    with pytest.raises(DeviceCommandError) as no_scene:
        await wall.command({"command": "recall_layout", "layout": "9"})
    assert no_scene.value.code == empty
    assert no_scene.value.reason.startswith(("scene not stored", "scene empty"))
    with pytest.raises(DeviceCommandError) as closed:
        await wall.command({"command": "close_window", "window": 3})
    assert closed.value.code == not_open
    controller.inject(fault("error", code="05"))
    with pytest.raises(DeviceCommandError) as locked:
        await wall.command({"command": "recall_layout", "layout": "day"})
    assert locked.value.code in ("ERR05", "0x05")
    controller.clear()
    assert wall.snapshot.online and controller.state.scene == 0


async def test_invalid_commands_are_refused_before_sending(
    wall: DeclarativeDevice, controller: DeclarativeWallSimulator
) -> None:
    with pytest.raises(InvalidCommand, match=r"unknown layout 'night' .known: day, flood"):
        await wall.command({"command": "recall_layout", "layout": "night"})
    too_far = {"command": "move_window", "window": 1, "x": 70000, "y": 0, "w": 10, "h": 10}
    with pytest.raises(InvalidCommand, match="'x'=70000 does not fit"):
        await wall.command(too_far)
    with pytest.raises(InvalidCommand, match="'window' must be a number, got 'left'"):
        await wall.command({"command": "close_window", "window": "left"})
    if profile_of(controller) == "splicer-hex":
        with pytest.raises(InvalidCommand, match=r"maps no 'route' .it maps: close_window"):
            await wall.command({"command": "route", "input": 1, "output": 1})


async def test_the_ascii_profile_also_routes_its_matrix(tmp_path: Path) -> None:
    options = {"profile": "lcd-wall-ascii"}
    async with running("declarative", tmp_path, options=options) as sim:
        device = declarative("lcd-wall-ascii", sim.site_transport())
        async with device:
            await online(device)
            assert device.snapshot.state["ties"][2] == 0
            assert await device.command({"command": "route", "input": 3, "output": 2}) == {
                "input": 3,
                "output": 2,
            }
            assert isinstance(sim.state, WallState) and sim.state.ties[2] == 3
            await sim.update({"ties": {1: 7}})
            await eventually(lambda: device.snapshot.state["ties"][1] == 7)


@pytest.mark.parametrize(
    ("profile", "resource"),
    [("lcd-wall-ascii", {"kind": "pty", "baudrate": 9600}), ("splicer-hex", {"kind": "udp"})],
)
async def test_serial_and_udp_transports(
    profile: str, resource: dict[str, Any], tmp_path: Path
) -> None:
    options = {"profile": profile}
    async with running("declarative", tmp_path, resource=resource, options=options) as sim:
        device = declarative(profile, sim.site_transport())
        async with device:
            await online(device)
            assert await device.command({"command": "recall_layout", "layout": "wildfire"})
            assert isinstance(sim.state, WallState) and sim.state.scene == 3
            assert sorted(device.snapshot.state["windows"]) == [1, 2]
            sim.inject(fault("disconnect"))  # the cable is pulled: nothing answers
            await eventually(lambda: not device.snapshot.online)
            sim.clear()
            await online(device)


async def test_garbled_replies_fail_commands_without_wedging_the_queue(
    wall: DeclarativeDevice, controller: DeclarativeWallSimulator
) -> None:
    controller.inject(fault("garble", rate=1.0))
    results = await asyncio.gather(
        *(wall.command({"command": "recall_layout", "layout": n}) for n in ("day", "flood")),
        return_exceptions=True,
    )
    assert all(isinstance(r, DeviceUnavailable) for r in results), results
    await eventually(lambda: not wall.snapshot.online)
    controller.clear()
    await online(wall)
    assert await wall.command({"command": "recall_layout", "layout": "flood"}) == {
        "layout": "flood"
    }


async def test_lost_replies_time_out_and_the_device_comes_back(
    wall: DeclarativeDevice, controller: DeclarativeWallSimulator
) -> None:
    controller.inject(fault("drop", rate=1.0))
    with pytest.raises(DeviceTimeout, match=r"no answer to .* within 1 s"):
        await wall.command({"command": "recall_layout", "layout": "day"})
    await eventually(lambda: not wall.snapshot.online)
    with pytest.raises(DeviceUnavailable, match="offline"):
        await wall.command({"command": "recall_layout", "layout": "day"})
    controller.clear()
    await online(wall)
    assert await wall.command({"command": "recall_layout", "layout": "day"})


class ChoppyController:
    """A controller whose replies come in pieces, after noise and a truncated frame."""

    def __init__(self, dialect: type[Dialect], noise: bytes) -> None:
        self.dialect = dialect
        self.noise = noise
        self.state = WallState()
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> ChoppyController:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        dialect = self.dialect()
        try:
            while data := await reader.read(1024):
                for reply in dialect.feed(data, self.state):
                    writer.write(self.noise + reply[:5])  # noise, then half a frame
                    await writer.drain()
                    await asyncio.sleep(0.02)
                    writer.write(reply[5:])
                    await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


@pytest.mark.parametrize(
    ("profile", "dialect", "noise"),
    [
        ("lcd-wall-ascii", AsciiWall, b"<SCE\r\n"),  # a cut line, then half the reply
        ("splicer-hex", HexSplicer, b"\x13\xaa\xbb\x01\x81"),  # junk and a truncated frame
    ],
)
async def test_half_frames_and_noise_are_reassembled(
    profile: str, dialect: type[Dialect], noise: bytes
) -> None:
    async with ChoppyController(dialect, noise) as peer:
        device = declarative(profile, {"kind": "tcp", "host": "127.0.0.1", "port": peer.port})
        async with device:
            await online(device)
            assert await device.command({"command": "recall_layout", "layout": "flood"}) == {
                "layout": "flood"
            }
            assert peer.state.scene == 2


INLINE = {
    "profile": "inline-lcd",
    "encoding": "ascii",
    "framing": {"kind": "delimiter", "delimiter": "\r\n"},
    "commands": {
        "recall_layout": {"send": "<SCENE,{layout:02d}>", "reply": r"^<SCENE,(?P<layout>\d\d),OK>$"}
    },
    "errors": [{"match": r"^<ERR,(?P<code>\d\d)>$", "code": "E{code}"}],
}


async def test_an_inline_description_in_the_site_file(tmp_path: Path) -> None:
    async with running("declarative", tmp_path, options={"profile": "lcd-wall-ascii"}) as sim:
        config = device_config(
            "declarative", sim.site_transport(), options={**FAST, "protocol": INLINE}
        )
        device = DeclarativeDevice(config)
        async with device:
            await online(device)
            assert await device.command({"command": "recall_layout", "layout": "2"}) == {
                "layout": "2"
            }
            with pytest.raises(DeviceCommandError, match=r"^E03: the device refused"):
                await device.command({"command": "recall_layout", "layout": "7"})


def test_bad_descriptions_fail_at_load_with_path_and_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "profile: broken\nencoding: ascii\nframing: {kind: delimiter, delimiter: ';'}\n"
        "commands:\n  recall_layout:\n    send: 'SCENE {layuot:d}'\n"
    )
    nowhere = {"kind": "tcp", "host": "127.0.0.1", "port": 1}
    with pytest.raises(DeviceConfigError) as from_file:
        DeclarativeDevice(device_config("declarative", nowhere, options={"profile": str(broken)}))
    assert str(from_file.value) == (
        f"device 'dev-1' (declarative): {broken}: commands.recall_layout.send: unknown field"
        " 'layuot' (fields here: layout), line 6"
    )
    inline = {**INLINE, "checksum": {"kind": "crc8"}}
    with pytest.raises(DeviceConfigError, match=r"options\.protocol\.checksum\.kind: must be"):
        DeclarativeDevice(
            device_config(
                "declarative",
                {"kind": "udp", "host": "127.0.0.1", "port": 1},
                options={"protocol": inline},
            )
        )
    with pytest.raises(DeviceConfigError, match="shipped: lcd-wall-ascii, splicer-hex"):
        declarative("no-such-profile", {"kind": "tcp", "host": "127.0.0.1", "port": 1})
    with pytest.raises(DeviceConfigError, match="give either 'profile'"):
        declarative("splicer-hex", {"kind": "tcp", "host": "127.0.0.1", "port": 1}, protocol=INLINE)
    with pytest.raises(DeviceConfigError, match=r"options\.constants\.adress: not a constant"):
        declarative(
            "splicer-hex", {"kind": "tcp", "host": "127.0.0.1", "port": 1}, constants={"adress": 2}
        )


async def test_recall_layout_through_the_api(tmp_path: Path) -> None:
    async with running("declarative", tmp_path, options={"profile": "splicer-hex"}) as sim:
        data = site_dict(tmp_path)
        data["devices"] = [
            {
                "id": "splicer-1",
                "type": "declarative",
                "transport": sim.site_transport(),
                "poll_interval": 0.3,
                "timeout": 0.5,
                "options": {
                    **FAST,
                    "profile": "splicer-hex",
                    "maps": {"layout": {"防汛会商": 2}},  # the site's own scene names
                },
            }
        ]
        async with Hub(SiteConfig.model_validate(data)) as hub:
            await eventually(lambda: hub.equipment.snapshots()["splicer-1"].online)
            async with httpx.AsyncClient(base_url=hub.api_url, timeout=10) as client:
                url = "/api/v1/devices/splicer-1/commands"
                body: dict[str, Any] = {"command": "recall_layout", "layout": "防汛会商"}
                done = await client.post(url, json=body, headers=auth("dispatcher"))
                assert done.status_code == 200, done.text
                assert done.json()["result"] == {"layout": "防汛会商"}
                shown = (await client.get("/api/v1/devices/splicer-1", headers=auth("ops"))).json()
                assert shown["state"]["layout"] == "防汛会商"
                assert shown["state"]["windows"]["1"]["w"] == 3840
                body["layout"] = "9"
                refused = await client.post(url, json=body, headers=auth("engineer"))
                assert refused.status_code == 502
                assert refused.json()["device_code"] == "0x04"
                body["layout"] = "night"
                invalid = await client.post(url, json=body, headers=auth("engineer"))
                assert invalid.status_code == 422
                assert "unknown layout 'night'" in invalid.text
