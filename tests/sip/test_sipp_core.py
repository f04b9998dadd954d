"""SIPp (a real, independent SIP implementation) against the stack: OPTIONS over UDP and
TCP, and REGISTER with digest against the registrar. The app under test is the stack plus
registrar started in-process on 127.0.0.1, port 0; SIPp runs bounded (``-m``, ``-timeout``)
and must exit 0 with every call successful."""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sip.registrar import Registrar, SipUser
from sip.stack import SipStack, StackConfig
from sip.transport import TransportConfig

SIPP = shutil.which("sipp")
SCENARIOS = Path(__file__).parent / "data" / "sipp_core"
CALLS = 20

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(SIPP is None, reason="sipp (Debian sip-tester) is not installed"),
]


@dataclass
class CoreApp:
    stack: SipStack
    registrar: Registrar

    @property
    def port(self) -> int:
        return self.stack.address("UDP").port


@pytest.fixture
async def app() -> AsyncIterator[CoreApp]:
    """The test-only app: the stack with the registrar, on 127.0.0.1 and a free port."""
    stack = SipStack(StackConfig(transport=TransportConfig(hosts=("127.0.0.1",), port=0)))
    registrar = Registrar(
        [SipUser("alice", "s3cret-pw"), SipUser("bob", "other")],
        realm="cchub.local",
        max_contacts=CALLS + 5,
    )
    registrar.attach(stack)
    async with stack, registrar:
        yield CoreApp(stack, registrar)


@dataclass
class SippRun:
    returncode: int
    successful: int
    failed: int
    output: str


async def sipp(app: CoreApp, scenario: str, *args: str, cwd: Path) -> SippRun:
    assert SIPP is not None
    command = [
        SIPP, f"127.0.0.1:{app.port}", "-sf", str(SCENARIOS / scenario), "-i", "127.0.0.1",
        "-m", str(CALLS), "-r", "50", "-l", "10", "-timeout", "20s", "-timeout_error",
        "-nostdin", *args,
    ]  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        *command, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    output = out.decode(errors="replace")

    def count(label: str) -> int:
        found = re.findall(rf"{label}\s*\|\s*\d+\s*\|\s*(\d+)", output)
        return int(found[-1]) if found else -1

    assert process.returncode is not None
    return SippRun(process.returncode, count("Successful call"), count("Failed call"), output)


@pytest.mark.parametrize("transport", ["u1", "t1"])
async def test_sipp_options(app: CoreApp, tmp_path: Path, transport: str) -> None:
    run = await sipp(app, "options_uac.xml", "-s", "hub", "-t", transport, cwd=tmp_path)
    assert run.returncode == 0, run.output[-2000:]
    assert (run.successful, run.failed) == (CALLS, 0)
    assert app.stack.counters.messages_in == CALLS
    assert app.stack.counters.parse_errors == 0


async def test_sipp_register_with_digest(app: CoreApp, tmp_path: Path) -> None:
    run = await sipp(
        app, "register_digest_uac.xml", "-s", "alice", "-au", "alice", "-ap", "s3cret-pw",
        cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.output[-2000:]
    assert (run.successful, run.failed) == (CALLS, 0)
    counters = app.registrar.counters
    assert (counters.challenged, counters.registered, counters.auth_failed) == (CALLS, CALLS, 0)
    bindings = app.registrar.lookup("alice")
    assert len(bindings) == CALLS  # each SIPp call registered its own contact
    assert {str(b.uri).split("@")[0] for b in bindings} == {
        f"sip:alice-{n}" for n in range(1, CALLS + 1)
    }


async def test_sipp_register_with_wrong_password_fails(app: CoreApp, tmp_path: Path) -> None:
    run = await sipp(
        app, "register_digest_uac.xml", "-s", "alice", "-au", "alice", "-ap", "wrong",
        cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode != 0 and run.successful == 0
    assert app.registrar.lookup("alice") == []
    assert app.registrar.counters.auth_failed > 0
