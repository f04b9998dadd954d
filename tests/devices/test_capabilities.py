"""Capabilities: command models, precise validation errors, verify and inverse, driver wiring."""

from __future__ import annotations

from typing import Any

import pytest

from devices.base import Device
from devices.capabilities import (
    ALL_CAPABILITIES,
    Display,
    Matrix,
    Ptz,
    Route,
    Ups,
    VideoWall,
    capabilities_of,
    capability_for,
    validate_command,
)
from devices.errors import InvalidCommand
from devices.registry import driver_for
from tests.devices.peers import SisServer, device_config, online


def test_route_model_and_api_form() -> None:
    route = Matrix.parse({"command": "route", "input": 3, "output": 1})
    assert route == Route(input=3, output=1, type="all")
    assert route.as_command() == {"command": "route", "input": 3, "output": 1, "type": "all"}
    assert Matrix.parse(route) is route


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (
            {"command": "route", "input": "3", "output": 1},
            "route: 'input' must be an integer, got '3'",
        ),
        ({"command": "route", "input": -1, "output": 1}, "'input' must be >= 0, got -1"),
        ({"command": "route", "input": 1}, "route: 'output' is required"),
        ({"command": "route", "input": 1, "output": 1, "type": "rgb"}, "'type' must be one of"),
        ({"command": "route", "input": 1, "output": 1, "colour": 1}, "'colour' is not a field"),
        ({"command": "power", "on": "yes"}, "power: 'on' must be true or false, got 'yes'"),
        ({"command": "move", "pan": 1, "speed": 99}, "'speed' must be <= 24, got 99"),
        (
            {"command": "open_window", "window": 1, "source": 2, "x": 0, "y": 0, "w": 0, "h": 9},
            "'w' must be > 0, got 0",
        ),
    ],
)
def test_bad_fields_are_named_precisely(command: dict[str, Any], message: str) -> None:
    caps = (Matrix, Display, Ptz, VideoWall)
    with pytest.raises(InvalidCommand) as caught:
        validate_command(caps, command, "test-device")
    assert message in str(caught.value)


def test_unknown_command_lists_the_legal_ones() -> None:
    with pytest.raises(InvalidCommand) as caught:
        validate_command((Display,), {"command": "route"}, "pjlink")
    assert str(caught.value) == "unknown command 'route' for pjlink (legal: input, power, refresh)"
    with pytest.raises(InvalidCommand, match="legal: refresh"):
        validate_command((Ups,), {"command": "power", "on": True}, "nut")
    assert capability_for(ALL_CAPABILITIES, "preset_recall") is Ptz
    assert capability_for(ALL_CAPABILITIES, "explode") is None


def test_matrix_verify_and_inverse_with_live_or_json_keys() -> None:
    route = {"command": "route", "input": 3, "output": 1}
    assert Matrix.verify(route, {"ties": {1: 3}})
    assert Matrix.verify(route, {"ties": {"1": 3}})
    assert not Matrix.verify(route, {"ties": {1: 2}})
    assert not Matrix.verify(route, {})
    audio = {**route, "type": "audio"}
    assert Matrix.verify(audio, {"ties": {1: 9}, "audio_ties": {1: 3}})
    assert Matrix.inverse(route, {"ties": {"1": 2}}) == {
        "command": "route",
        "input": 2,
        "output": 1,
        "type": "all",
    }
    restore = Matrix.inverse(audio, {"ties": {1: 2}, "audio_ties": {1: 5}})
    assert restore is not None and restore["input"] == 5
    assert Matrix.inverse(route, {"ties": {}}) is None


def test_videowall_verify_and_inverse() -> None:
    before: dict[str, Any] = {
        "layout": "day",
        "layouts": ["day", "night"],
        "windows": {"1": {"source": 4, "x": 0, "y": 0, "w": 960, "h": 540}},
    }
    recall = {"command": "recall_layout", "layout": "night"}
    assert VideoWall.verify(recall, {**before, "layout": "night"})
    assert VideoWall.inverse(recall, before) == {"command": "recall_layout", "layout": "day"}
    opened = {
        "command": "open_window",
        "window": 2,
        "source": 7,
        "x": 960,
        "y": 0,
        "w": 960,
        "h": 540,
    }
    after = {
        "windows": {**before["windows"], "2": {"source": 7, "x": 960, "y": 0, "w": 960, "h": 540}}
    }
    assert VideoWall.verify(opened, after)
    assert VideoWall.verify(opened, {"windows": {"2": {"source": "7"}}})  # no geometry reported
    assert not VideoWall.verify(opened, {"windows": {"2": {"source": 8}}})
    assert VideoWall.inverse(opened, before) == {"command": "close_window", "window": 2}
    close = {"command": "close_window", "window": 1}
    assert VideoWall.verify(close, {"windows": {}})
    assert VideoWall.inverse(close, before) == {
        "command": "open_window",
        "window": 1,
        "source": 4,
        "x": 0,
        "y": 0,
        "w": 960,
        "h": 540,
    }
    move = {"command": "move_window", "window": 1, "x": 10, "y": 10, "w": 100, "h": 100}
    assert VideoWall.inverse(move, before) == {
        "command": "move_window",
        "window": 1,
        "x": 0,
        "y": 0,
        "w": 960,
        "h": 540,
    }
    source = {"command": "set_source", "window": 1, "source": 9}
    assert VideoWall.inverse(source, before) == {"command": "set_source", "window": 1, "source": 4}
    assert VideoWall.inverse(source, {"windows": {}}) is None


def test_display_and_ptz_verify_and_inverse() -> None:
    on = {"command": "power", "on": True}
    assert Display.verify(on, {"power": "warming"}) and not Display.verify(on, {"power": "off"})
    assert Display.inverse(on, {"power": "cooling"}) == {"command": "power", "on": False}
    source = {"command": "input", "input": "31"}
    assert Display.verify(source, {"input": "31"})
    assert Display.inverse(source, {"input": "11"}) == {"command": "input", "input": "11"}
    assert Display.inverse(source, {"input": None}) is None
    recall = {"command": "preset_recall", "preset": 2}
    assert Ptz.verify(recall, {"preset": 2}) and not Ptz.verify(recall, {"preset": 1})
    assert Ptz.inverse(recall, {"preset": 5}) == {"command": "preset_recall", "preset": 5}
    assert Ptz.inverse(recall, {"preset": None}) is None
    assert Ptz.verify({"command": "home"}, {"pan": 0, "tilt": 0})
    assert Ptz.inverse({"command": "move", "pan": 1}, {}) is None


def test_drivers_declare_their_capabilities() -> None:
    assert capabilities_of("extron-sis") == (Matrix,)
    assert capabilities_of("kramer-p3000") == (Matrix,)
    assert capabilities_of("pjlink") == (Display,)
    assert capabilities_of("visca") == (Ptz,)
    assert capabilities_of("kenwood-cat") == ()
    for name in ("extron-sis", "kramer-p3000", "pjlink", "visca"):
        assert issubclass(driver_for(name), Device)


async def test_extron_snapshot_has_the_matrix_keys(sis_server: SisServer) -> None:
    transport = {"kind": "tcp", "host": "127.0.0.1", "port": sis_server.port}
    config = device_config("extron-sis", transport, timeout=2.0, options={"outputs": 4})
    async with driver_for("extron-sis")(config) as device:
        await online(device, 10)
        assert Matrix.missing_state(device.snapshot.state) == []
        await device.command({"command": "route", "input": 2, "output": 3})
        assert Matrix.verify({"command": "route", "input": 2, "output": 3}, device.snapshot.state)
