"""The video wall simulators on the wire: Event Master JSON-RPC over HTTP, the splicer dialects."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lab.harness import BenchThread
from lab.sims.declarative_ascii import AsciiWall
from lab.sims.declarative_hex import HexSplicer, frame
from lab.sims.declarative_wall import WallState, Window, dialect_for
from lab.sims.videowall_eventmaster import EventMasterSimulator
from tests.devices.wall_sims import running
from tests.lab.wire import device, simulator

GOLDEN = Path(__file__).parent.parent / "protocols" / "data" / "splicer_hex"


# --- Barco Event Master over HTTP ------------------------------------------------------------


@pytest.fixture
def processor(bench: BenchThread) -> Iterator[httpx.Client]:
    transport = bench.site_transport(device(bench, "barco-eventmaster"))
    with httpx.Client(base_url=transport["url"], timeout=5) as client:
        yield client


def call(client: httpx.Client, method: str, params: dict[str, Any], id_: str = "1") -> Any:
    body = {"params": params, "method": method, "id": id_, "jsonrpc": "2.0"}
    reply = client.post("/jsonrpc", json=body)
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/json"
    answer = reply.json()
    assert answer["jsonrpc"] == "2.0" and answer["id"] == id_
    return answer


def test_presets_recall_and_content(processor: httpx.Client, bench: BenchThread) -> None:
    presets = call(processor, "listPresets", {"ScreenDest": -1, "AuxDest": -1})["result"]
    assert presets["success"] == 0
    assert [(p["id"], p["Name"], p["presetSno"]) for p in presets["response"]] == [
        (0, "Overview", 1.0),
        (1, "Cameras", 2.0),
        (2, "Flood consult", 3.0),
    ]
    for params in (
        {"id": 1, "type": 1},
        {"presetSno": 2.0, "type": 1},
        {"presetName": "Cameras", "type": 1},
    ):
        assert call(processor, "activatePreset", params)["result"] == {
            "success": 0,
            "response": None,
        }
    content = call(processor, "listContent", {"id": 0})["result"]["response"]
    on_program = [
        (layer["id"], layer["LastSrcIdx"]) for layer in content["Layers"] if layer["PgmMode"] == 1
    ]
    assert on_program == [(0, 0), (1, 1), (2, 2), (3, 3)]
    name = simulator(bench, "barco-eventmaster")
    assert sorted(bench.state(name)["layers"]) == ["0", "1", "2", "3"]


def test_change_content_and_refusals(processor: httpx.Client) -> None:
    layer = {
        "id": 6,
        "LastSrcIdx": 2,
        "Window": {"HPos": 5, "VPos": 6, "HSize": 70, "VSize": 80},
        "PgmMode": 1,
        "PvwMode": 1,
    }
    assert call(processor, "changeContent", {"id": 0, "Layers": [layer]})["result"]["success"] == 0
    layers = call(processor, "listContent", {"id": 0})["result"]["response"]["Layers"]
    assert {k: layers[6][k] for k in ("LastSrcIdx", "HPos", "VSize", "PgmMode")} == {
        "LastSrcIdx": 2,
        "HPos": 5,
        "VSize": 80,
        "PgmMode": 1,
    }
    refused = call(processor, "changeContent", {"id": 0, "Layers": [{"id": 9}]})["result"]
    assert refused == {"success": -1, "response": "No layer 9"}
    missing = call(processor, "activatePreset", {"presetName": "Nope"})["result"]
    assert missing == {"success": -1, "response": "Preset not found"}
    assert call(processor, "listContent", {"id": 3})["result"]["success"] == -1
    assert call(processor, "cut", {})["error"] == {"code": -32601, "message": "Method not found"}
    assert call(processor, "listContent", {"id": "0"})["error"]["code"] == -32602


def test_http_errors_and_keep_alive(processor: httpx.Client, bench: BenchThread) -> None:
    garbage = processor.post("/jsonrpc", content=b"{nope")
    assert garbage.json()["error"] == {"code": -32700, "message": "Parse error"}
    assert processor.get("/jsonrpc").status_code == 405
    assert processor.post("/other", content=b"{}").status_code == 404
    sim = bench.bench.sims[simulator(bench, "barco-eventmaster")]
    assert isinstance(sim, EventMasterSimulator)
    before = sim.connections
    for n in range(3):
        call(processor, "listSources", {"type": 0}, id_=str(n))
    assert sim.connections == before  # one keep-alive connection


def test_faults_on_the_processor(processor: httpx.Client, bench: BenchThread) -> None:
    name = simulator(bench, "barco-eventmaster")
    bench.inject(name, "error", code="-5")
    assert call(processor, "listPresets", {})["result"]["success"] == -5
    bench.clear(name, "error")
    bench.inject(name, "refuse")
    url = bench.site_transport(name)["url"]
    with pytest.raises(httpx.ConnectError):
        httpx.post(url + "/jsonrpc", json={}, timeout=2)
    bench.clear(name)
    assert call(processor, "listPresets", {})["result"]["success"] == 0


# --- the splicing processor (hex) on the bench ------------------------------------------------


class HexPeer:
    def __init__(self, transport: dict[str, Any]) -> None:
        self.sock = socket.create_connection((transport["host"], transport["port"]), timeout=2)

    def ask(self, data: bytes) -> bytes:
        self.sock.sendall(data)
        return self.read()

    def read(self) -> bytes:
        out = b""
        while len(out) < 15:
            chunk = self.sock.recv(15 - len(out))
            if not chunk:
                raise ConnectionError("closed")
            out += chunk
        return out

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def splicer(bench: BenchThread) -> Iterator[HexPeer]:
    peer = HexPeer(bench.site_transport(device(bench, "declarative")))
    yield peer
    peer.close()


def test_splicer_answers_the_golden_frames(splicer: HexPeer) -> None:
    assert (
        splicer.ask((GOLDEN / "recall_scene_3.bin").read_bytes())
        == (GOLDEN / "recall_scene_3_reply.bin").read_bytes()
    )
    status = splicer.ask(frame(1, 0x11, bytes([2])))
    assert status[3] == 0x91 and status[4:6] == bytes([2, 7])
    assert struct.unpack(">4H", status[6:14]) == (0, 1080, 3840, 1080)
    refused = splicer.ask(frame(1, 0x01, bytes([9])))  # scene 9 is empty
    assert refused == (GOLDEN / "error_scene_empty.bin").read_bytes()


def test_splicer_checks_checksum_and_address(splicer: HexPeer) -> None:
    bad = bytearray(frame(1, 0x10))
    bad[14] ^= 0xFF
    assert splicer.ask(bytes(bad))[3:6] == bytes([0xEE, 0x10, 0x02])
    splicer.sock.sendall(frame(2, 0x10))  # another processor's address: silence
    splicer.sock.settimeout(0.3)
    with pytest.raises(TimeoutError):
        splicer.read()


def test_splicer_reports_front_panel_recalls(splicer: HexPeer, bench: BenchThread) -> None:
    name = simulator(bench, "declarative")
    assert splicer.ask(frame(1, 0x10))[3:5] == bytes([0x90, 0])  # the session is up
    bench.set_state(name, scene=2)
    report = splicer.read()
    assert report[3:5] == bytes([0x90, 2])
    assert bench.state(name)["windows"] == {"1": Window(source=5, w=3840, h=2160).model_dump()}


# --- the dialects, sans-IO --------------------------------------------------------------------


def test_ascii_wall_commands_and_errors() -> None:
    wall, state = AsciiWall(), WallState()
    assert wall.feed(b"<SCENE,01>\r\n<GET,SC", state) == [b"<SCENE,01,OK>\r\n"]
    assert wall.feed(b"ENE>\n", state) == [b"<SCENE,01>\r\n"]
    assert wall.feed(b"<GET,WIN,02>\r", state) == [b"<WIN,02,02,1920,0000,1920,1080>\r\n"]
    assert wall.feed(b"<WINOPEN,05,16,0010,0020,0300,0200>\r\n", state) == [b"<WINOPEN,05,OK>\r\n"]
    assert state.windows[5] == Window(source=16, x=10, y=20, w=300, h=200)
    assert wall.feed(b"<WINSRC,05,07>\r\n<ROUTE,03,04>\r\n", state) == [
        b"<WINSRC,05,07,OK>\r\n",
        b"<ROUTE,03,04,OK>\r\n",
    ]
    errors = [
        (b"<BOGUS>", b"<ERR,01>"),
        (b"SCENE,01", b"<ERR,01>"),
        (b"<SCENE,1>", b"<ERR,02>"),
        (b"<SCENE,33>", b"<ERR,02>"),
        (b"<SCENE,09>", b"<ERR,03>"),
        (b"<WINCLOSE,06>", b"<ERR,04>"),
        (b"<WINOPEN,05,17,0000,0000,0001,0001>", b"<ERR,02>"),
        (b"<ROUTE,01,05>", b"<ERR,02>"),
    ]
    for command, error in errors:
        assert wall.feed(command + b"\r\n", state) == [error + b"\r\n"], command
    state.locked = True
    assert wall.feed(b"<WINCLOSE,05>\r\n", state) == [b"<ERR,05>\r\n"]
    assert wall.feed(b"x" * 300, state) == [b"<ERR,01>\r\n"]  # an overlong line
    assert wall.feed(b"tail\r\n<GET,SCENE>\r\n", state) == [b"<SCENE,01>\r\n"]


def test_dialects_are_found_by_profile_name() -> None:
    assert dialect_for("lcd-wall-ascii") is AsciiWall
    assert dialect_for("devices/profiles/splicer-hex.yaml") is HexSplicer
    with pytest.raises(ValueError, match=r"no simulator speaks profile 'mine\.yaml'"):
        dialect_for("mine.yaml")


async def test_a_profile_nobody_simulates_is_reported_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="simulated: lcd-wall-ascii, splicer-hex"):
        async with running("declarative", tmp_path, options={"profile": "mine"}):
            pass


@given(st.binary(max_size=120))
def test_dialects_answer_any_bytes_with_their_own_frames(data: bytes) -> None:
    for replies in (AsciiWall().feed(data, WallState()), HexSplicer().feed(data, WallState())):
        for reply in replies:
            assert reply.endswith(b"\r\n") or (len(reply) == 15 and reply[:2] == b"\xaa\xbb")
