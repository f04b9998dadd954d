"""RTSP probe of a camera: connect over TCP, OPTIONS (round trip measured), then DESCRIBE
(the camera must offer at least one stream). A 401 proves a live RTSP service; any other
4xx/5xx, a refused or silent connection, or bytes that are not RTSP, fail the poll.

Samples: ``rtsp.rtt_ms`` (OPTIONS round trip), ``rtsp.status`` (last status code),
``rtsp.media`` (``m=`` lines of the DESCRIBE answer).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import urllib.parse
from collections.abc import Sequence
from typing import Any

from monitoring.coordinator import Coordinator, Feed, PollFailed
from monitoring.samples import Sample
from monitoring.targets import RtspTarget
from protocols.rtsp import ResponseReader, RtspRequest, RtspResponse

DEFAULT_PORT = 554
AUTH_REQUIRED = 401


class RtspProbe(Coordinator):
    """Probes one RTSP URL; a fresh connection per poll (as a viewer would make)."""

    kind = "rtsp"
    target: RtspTarget

    def __init__(self, target: RtspTarget, feed: Feed, **kwargs: Any) -> None:
        super().__init__(target, feed, **kwargs)
        parsed = urllib.parse.urlsplit(target.url)
        self.host = parsed.hostname or ""
        self.port = parsed.port or DEFAULT_PORT
        self._cseq = 0

    async def _fetch(self) -> Sequence[Sample]:
        try:
            async with asyncio.timeout(self.target.timeout):
                reader, writer = await asyncio.open_connection(self.host, self.port)
        except TimeoutError:
            raise PollFailed("timeout", f"no TCP connection to {self.host}:{self.port}") from None
        except OSError as err:
            raise PollFailed(
                "refused", f"cannot connect to {self.host}:{self.port}: {err}"
            ) from err
        try:
            started = time.perf_counter()
            options = await self._exchange(reader, writer, "OPTIONS", {})
            rtt_ms = (time.perf_counter() - started) * 1000.0
            last = options
            media: float | None = None
            if self.target.method == "DESCRIBE" and options.status < 300:
                last = await self._exchange(
                    reader, writer, "DESCRIBE", {"Accept": "application/sdp"}
                )
                if last.status < 300:
                    media = float(last.media_count())
                    if media == 0:
                        raise PollFailed(
                            "device", f"DESCRIBE {self.target.url}: no media in the SDP"
                        )
        finally:
            writer.close()
            with contextlib.suppress(OSError, ConnectionError, TimeoutError):
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()
        if last.status >= 300 and last.status != AUTH_REQUIRED:
            raise PollFailed(
                "device", f"{self.target.url} answered {last.status} {last.reason}".rstrip()
            )
        now = self._clock()
        return [
            self.make_sample("rtsp.rtt_ms", rtt_ms, now, "ms"),
            self.make_sample("rtsp.status", float(last.status), now),
            self.make_sample("rtsp.media", media, now),
        ]

    async def _exchange(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        method: str,
        headers: dict[str, str],
    ) -> RtspResponse:
        self._cseq += 1
        cseq = self._cseq
        request = RtspRequest(method, self.target.url, cseq, {"User-Agent": "cchub", **headers})
        parser = ResponseReader()
        try:
            async with asyncio.timeout(self.target.timeout):
                writer.write(bytes(request))
                await writer.drain()
                while True:
                    data = await reader.read(4096)
                    if not data:
                        raise PollFailed("protocol", f"{method}: the camera closed the connection")
                    for response in parser.feed(data):
                        if response.cseq == cseq:
                            return response
                        self.count("stray_response")
        except TimeoutError:
            raise PollFailed(
                "timeout", f"{method} {self.target.url}: no answer within {self.target.timeout:g} s"
            ) from None
        except ValueError as err:
            self.count("bad_response")
            raise PollFailed("protocol", f"{method} {self.target.url}: {err}") from err
        except (ConnectionError, OSError) as err:
            raise PollFailed("refused", f"{method} {self.target.url}: {err}") from err
