"""A real MQTT broker (Debian's ``mosquitto``) on loopback for tests and the lab: a generated
config in a temporary directory, a free port, anonymous access, no persistence; stopped on
exit. ``publish()`` sends with mosquitto's own ``mosquitto_pub`` client."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from pathlib import Path
from types import TracebackType

from lab.processes import find_program, free_port, stop_process

START_TIMEOUT = 10.0


class MosquittoUnavailable(RuntimeError):
    """mosquitto is not installed (Debian packages ``mosquitto`` and ``mosquitto-clients``)."""


def program(name: str) -> str:
    return find_program(
        name,
        "install Debian's mosquitto and mosquitto-clients (`make deps`)",
        error=MosquittoUnavailable,
    )


class Mosquitto:
    """``async with Mosquitto() as broker:`` — ``broker.port`` accepts MQTT clients."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """``port`` 0: a free one (a given port is for restarting a broker where it was)."""
        self.host = host
        self.port = port
        self._wanted = port
        self._proc: asyncio.subprocess.Process | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    async def __aenter__(self) -> Mosquitto:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        broker = program("mosquitto")
        self._dir = tempfile.TemporaryDirectory(prefix="cchub-mosquitto-")
        folder = Path(self._dir.name)
        last = ""
        for _ in range(3):  # the free port can be taken between the probe and the bind
            self.port = self._wanted or free_port(self.host)
            conf = folder / "mosquitto.conf"
            conf.write_text(
                f"listener {self.port} {self.host}\n"
                "allow_anonymous true\n"
                "persistence false\n"
                "log_dest stderr\n"
                "log_type error\n"
                "log_type warning\n"
                "max_queued_messages 100000\n" + ("user root\n" if os.geteuid() == 0 else ""),
                # as root, mosquitto would switch to its own user; stay who we are
                encoding="utf-8",
            )
            self._proc = await asyncio.create_subprocess_exec(
                broker,
                "-c",
                str(conf),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            if await self._ready():
                return
            last = await self._kill()
        await self.stop()
        raise RuntimeError(f"mosquitto did not start: {last}")

    async def _ready(self) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        while loop.time() < deadline:
            if self._proc is None or self._proc.returncode is not None:
                return False
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection(self.host, self.port)
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
                return True
            await asyncio.sleep(0.05)
        return False

    async def _kill(self) -> str:
        proc, self._proc = self._proc, None
        if proc is None:
            return ""
        await stop_process(proc)
        err = b""
        if proc.stderr is not None:
            with contextlib.suppress(Exception):
                err = await asyncio.wait_for(proc.stderr.read(), 1)
        return err.decode(errors="replace")[-2000:]

    async def stop(self) -> None:
        await self._kill()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    async def publish(
        self, topic: str, *messages: str | bytes, qos: int = 0, retain: bool = False
    ) -> None:
        """Publish with ``mosquitto_pub`` (one process; several messages via ``-l``)."""
        args = [program("mosquitto_pub"), "-h", self.host, "-p", str(self.port), "-t", topic]
        args += ["-q", str(qos)] + (["-r"] if retain else [])
        lines = [m.encode() if isinstance(m, str) else m for m in messages]
        if len(lines) == 1:
            args.append("-s")  # the whole of stdin is the message (any bytes)
            data = lines[0]
        else:
            args.append("-l")  # one message per line of stdin
            data = b"\n".join(lines) + b"\n"
        proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(data), 60)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        if proc.returncode != 0:
            raise RuntimeError(f"mosquitto_pub failed ({proc.returncode}): {out.decode()[-500:]}")
