"""The RTSP probe against a small RTSP server on loopback: OPTIONS and DESCRIBE answered,
a missing stream (404), a service that needs a password (401: alive), garbage, silence."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from monitoring.coordinator import TARGET_DOWN, TARGET_UP
from monitoring.rtsp_probe import RtspProbe
from monitoring.samples import OccurrenceState
from monitoring.targets import RtspTarget
from tests.monitoring.producers import Recorder, free_port

SDP = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=cam\r\nt=0 0\r\n"
    b"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:stream=0\r\n"
)


class Camera:
    """Answers OPTIONS and DESCRIBE for ``/live``; ``mode`` changes how."""

    def __init__(self) -> None:
        self.mode = "ok"  # ok | missing | auth | garbage | silent
        self.requests: list[str] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> Camera:
        self.server = await asyncio.start_server(self.client, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                method, url, _ = lines[0].split(" ")
                cseq = next(v for k, _, v in (x.partition(": ") for x in lines) if k == "CSeq")
                self.requests.append(method)
                if self.mode == "silent":
                    continue
                if self.mode == "garbage":
                    writer.write(b"\x00\x01garbage that is not RTSP\r\n\r\n")
                elif self.mode == "auth":
                    writer.write(
                        f"RTSP/1.0 401 Unauthorized\r\nCSeq: {cseq}\r\n"
                        'WWW-Authenticate: Digest realm="cam", nonce="1"\r\n\r\n'.encode()
                    )
                elif method == "DESCRIBE" and (self.mode == "missing" or not url.endswith("/live")):
                    writer.write(f"RTSP/1.0 404 Not Found\r\nCSeq: {cseq}\r\n\r\n".encode())
                elif method == "DESCRIBE":
                    writer.write(
                        f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Type: application/sdp\r\n"
                        f"Content-Length: {len(SDP)}\r\n\r\n".encode()
                        + SDP
                    )
                else:
                    writer.write(
                        f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n"
                        "Public: OPTIONS, DESCRIBE\r\n\r\n".encode()
                    )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


@pytest_asyncio.fixture
async def camera() -> AsyncIterator[Camera]:
    async with Camera() as cam:
        yield cam


def probe(port: int, path: str = "/live", **fields: Any) -> tuple[RtspProbe, Recorder]:
    feed = Recorder()
    target = RtspTarget.model_validate(
        {"kind": "rtsp", "id": "cam-1", "url": f"rtsp://127.0.0.1:{port}{path}",
         "timeout": 0.5, **fields}
    )  # fmt: skip
    return RtspProbe(target, feed), feed


async def test_options_and_describe(camera: Camera) -> None:
    coordinator, feed = probe(camera.port)
    assert await coordinator.poll()
    assert camera.requests == ["OPTIONS", "DESCRIBE"]
    assert feed.latest("rtsp.media").value == 1.0
    assert feed.latest("rtsp.status").value == 200.0
    rtt = feed.latest("rtsp.rtt_ms")
    assert rtt.unit == "ms" and rtt.value is not None and rtt.value > 0


async def test_a_missing_stream_fails_and_recovers_once(camera: Camera) -> None:
    camera.mode = "missing"
    coordinator, feed = probe(camera.port)
    assert not await coordinator.poll()
    assert coordinator.stats.last_error.endswith("answered 404 Not Found")
    assert not await coordinator.poll()
    camera.mode = "ok"
    assert await coordinator.poll()
    states = [o.state for o in feed.occurrences if o.kind == TARGET_DOWN]
    assert states == [OccurrenceState.RAISE, OccurrenceState.CLEAR]
    assert [s.value for s in feed.samples if s.metric == TARGET_UP] == [0.0, 0.0, 1.0]


async def test_a_password_protected_camera_is_alive(camera: Camera) -> None:
    camera.mode = "auth"
    coordinator, feed = probe(camera.port)
    assert await coordinator.poll()
    assert feed.latest("rtsp.status").value == 401.0
    assert feed.latest("rtsp.media").value is None


@pytest.mark.parametrize(("mode", "code"), [("garbage", "protocol"), ("silent", "timeout")])
async def test_garbage_and_silence_are_failures(camera: Camera, mode: str, code: str) -> None:
    camera.mode = mode
    coordinator, _ = probe(camera.port)
    assert not await coordinator.poll()
    assert coordinator.stats.errors[code] == 1
    if mode == "garbage":
        assert coordinator.stats.errors["bad_response"] == 1
        assert "not an RTSP status line" in coordinator.stats.last_error


async def test_nobody_listening() -> None:
    coordinator, _ = probe(free_port())  # bound, then released: nothing listens there
    assert not await coordinator.poll()
    assert coordinator.stats.errors["refused"] == 1
