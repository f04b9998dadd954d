"""Extron SIS matrix switcher simulator over TCP: ties, mutes, error codes, front-panel reports.

``ExtronMatrix`` is the sans-IO core (SIS command in, CRLF replies out); the simulator serves
it on a TCP port and broadcasts unsolicited reports for front-panel changes to every client.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from pydantic import Field, model_validator

from lab.registry import register
from lab.simulator import Outbox, SimState, SimStatus, Simulator

CRLF = "\r\n"
ESC = "\x1b"
_TIE = re.compile(r"^(\d+)\*(\d*)([!&$])$")
_QUERY = re.compile(r"^(\d+)([!&$])$")
_MUTE = re.compile(r"^(\d+)(?:\*(\d+))?B$")
KIND = {"!": "All", "&": "Vid", "$": "Aud"}


class MatrixState(SimState):
    model: str = "DXP 88 HD 4K"
    part_number: str = "60-1494-01"
    firmware: str = "1.23"
    inputs: int = Field(8, ge=1, le=128)
    outputs: int = Field(8, ge=1, le=128)
    video_ties: dict[int, int] = Field({}, description="output -> input, 0 = untied")
    audio_ties: dict[int, int] = Field({}, description="output -> input, 0 = untied")
    video_mutes: dict[int, bool] = {}
    banner: bool = Field(True, description="send the copyright banner on connect")

    @model_validator(mode="after")
    def _in_range(self) -> MatrixState:
        for ties in (self.video_ties, self.audio_ties):
            for out, inp in ties.items():
                if not 1 <= out <= self.outputs or not 0 <= inp <= self.inputs:
                    raise ValueError(f"tie {inp}*{out} is outside {self.inputs}x{self.outputs}")
        return self


class ExtronMatrix:
    """The switcher's command interpreter: ``handle("1*3!")`` -> ``"Out03 In01 All"``."""

    def __init__(self, state: MatrixState) -> None:
        self.state = state

    def _n(self, value: int) -> str:
        return (
            f"{value:02d}" if max(self.state.inputs, self.state.outputs) < 100 else f"{value:03d}"
        )

    def banner(self) -> str:
        s = self.state
        return (
            f"(c) Copyright 2024, Extron Electronics, {s.model}, V{s.firmware}, {s.part_number}"
            + CRLF
        )

    def handle(self, command: str) -> str:
        """One SIS command; returns the reply line without CRLF."""
        s = self.state
        if command.startswith(ESC):
            return self._escape(command[1:])
        if command == "I":
            size = f"{self._n(s.inputs)}X{self._n(s.outputs)}"
            return f"V{size} A{size}"
        if command == "Q":
            return s.firmware
        if command == "N":
            return s.part_number
        if match := _TIE.match(command):
            return self._tie(int(match[1]), int(match[2]) if match[2] else None, match[3])
        if match := _QUERY.match(command):
            out = int(match[1])
            if not 1 <= out <= s.outputs:
                return "E13"
            ties = s.audio_ties if match[2] == "$" else s.video_ties
            return self._n(ties.get(out, 0))
        if match := _MUTE.match(command):
            return self._mute(int(match[1]), match[2])
        return "E10"

    def _tie(self, inp: int, out: int | None, kind: str) -> str:
        s = self.state
        if not 0 <= inp <= s.inputs:
            return "E01"
        if out is not None and not 1 <= out <= s.outputs:
            return "E13"
        outputs = [out] if out is not None else list(range(1, s.outputs + 1))
        video, audio = dict(s.video_ties), dict(s.audio_ties)
        for o in outputs:
            if kind in "!&":
                video[o] = inp
            if kind in "!$":
                audio[o] = inp
        s.video_ties, s.audio_ties = video, audio
        if out is None:
            return f"In{self._n(inp)} {KIND[kind]}"
        return f"Out{self._n(out)} In{self._n(inp)} {KIND[kind]}"

    def _mute(self, out: int, value: str | None) -> str:
        s = self.state
        if not 1 <= out <= s.outputs:
            return "E13"
        if value is None:
            return str(int(s.video_mutes.get(out, False)))
        if value not in ("0", "1"):
            return "E13"
        s.video_mutes = {**s.video_mutes, out: value == "1"}
        return f"Vmt{out}*{value}"

    def _escape(self, body: str) -> str:
        if body.upper() == "ZXXX":
            self.state.video_ties, self.state.audio_ties = {}, {}
            return "Zpx"
        return "E10"

    def reports(self, changed: set[str], old: MatrixState) -> list[str]:
        """Unsolicited lines for front-panel changes (tie reports, mute reports)."""
        s, out = self.state, []
        for o in range(1, s.outputs + 1):
            v, a = s.video_ties.get(o, 0), s.audio_ties.get(o, 0)
            v_old, a_old = old.video_ties.get(o, 0), old.audio_ties.get(o, 0)
            if (v, a) == (v_old, a_old):
                continue
            if v == a:
                out.append(f"Out{self._n(o)} In{self._n(v)} All")
            else:
                if v != v_old:
                    out.append(f"Out{self._n(o)} In{self._n(v)} Vid")
                if a != a_old:
                    out.append(f"Out{self._n(o)} In{self._n(a)} Aud")
        for o, muted in s.video_mutes.items():
            if old.video_mutes.get(o, False) != muted:
                out.append(f"Vmt{o}*{int(muted)}")
        return out


class SisFramer:
    """SIS commands end at their command character; escape commands end at CR."""

    def __init__(self) -> None:
        self._buffer = ""

    def feed(self, text: str) -> list[str]:
        out = []
        for char in text:
            if self._buffer.startswith(ESC):
                if char in "\r\n":
                    out.append(self._buffer)
                    self._buffer = ""
                else:
                    self._buffer += char
            elif char in "\r\n " and not self._buffer:
                continue
            elif char.isdigit() or char == "*" or (char == ESC and not self._buffer):
                self._buffer += char
            else:
                out.append(self._buffer + char)
                self._buffer = ""
        return out


class _Client:
    def __init__(self, sim: ExtronSisSimulator, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.outbox = Outbox(sim, self._write)

    def _write(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)


@register("extron-sis")
class ExtronSisSimulator(Simulator):
    """The switcher on a TCP port; every client gets front-panel tie reports."""

    resource_kinds = ("tcp",)
    state_model = MatrixState
    state: MatrixState

    _server: asyncio.Server | None = None
    port = 0

    async def _open(self) -> None:
        self._clients: dict[asyncio.Task[Any], _Client] = {}
        self.host = getattr(self.device.resource, "host", "127.0.0.1")
        self.port = getattr(self.device.resource, "port", 0)
        await self._listen()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        await self._stop_listening()
        self._on_disconnect()

    async def _stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def site_transport(self) -> dict[str, Any]:
        return {"kind": "tcp", "host": self.host, "port": self.port}

    async def _on_link(self, down: bool) -> None:
        if down:
            await self._stop_listening()
            self._on_disconnect()
        else:
            await self._listen()

    def _on_disconnect(self) -> None:
        for task, client in list(self._clients.items()):
            client.writer.close()
            task.cancel()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if self.faults.silent() or self.link_down or task is None:
            writer.close()
            return
        client = _Client(self, writer)
        self._clients[task] = client
        self._tasks.adopt(task)
        sender = self.spawn(client.outbox.run(), "tcp writer")
        peer = writer.get_extra_info("peername")
        self.log.info("client connected: %s", peer)
        try:
            await self._converse(reader, client)
        except ConnectionError as err:
            self.log.info("client %s: %s", peer, err)
        except Exception as err:  # loop boundary: this matrix crashes, the bench goes on
            self.crashed(err)
        finally:
            self._clients.pop(task, None)
            sender.cancel()
            writer.close()
            self.log.info("client gone: %s", peer)

    async def _converse(self, reader: asyncio.StreamReader, client: _Client) -> None:
        framer = SisFramer()
        if self.state.banner:
            client.outbox.send(ExtronMatrix(self.state).banner().encode())
        while data := await reader.read(1024):
            for command in framer.feed(data.decode("latin-1")):
                self.check_crash()
                code = self.faults.error_code("E10")
                if code is not None:
                    reply = code
                else:
                    old = self.state.model_copy(deep=True)
                    matrix = ExtronMatrix(self.state)
                    reply = matrix.handle(command)
                    self._broadcast(matrix.reports(self._changed(old), old), skip=client)
                client.outbox.send((reply + CRLF).encode("latin-1"))
            await client.writer.drain()

    def _changed(self, old: MatrixState) -> set[str]:
        return {k for k in MatrixState.model_fields if getattr(old, k) != getattr(self.state, k)}

    def _broadcast(self, lines: list[str], skip: _Client | None = None) -> None:
        for client in self._clients.values():
            if client is not skip:
                for line in lines:
                    client.outbox.send((line + CRLF).encode("latin-1"))

    def _state_changed(self, changed: set[str], old: SimState) -> None:
        if self.status is SimStatus.RUNNING and isinstance(old, MatrixState):
            self._broadcast(ExtronMatrix(self.state).reports(changed, old))


__all__ = ["ExtronMatrix", "ExtronSisSimulator", "MatrixState", "SisFramer"]
