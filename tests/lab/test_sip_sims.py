"""The SIP simulators on a bench: the PSTN gateway as the hub's trunk (per-number answer,
ring, reject, busy, never answer; digest; RTP tone) and the SIP phone (registers with
digest, is called, dials the hub, RTP), both driven through the bench's control API."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
import yaml

from hub.yamlsource import load_yaml
from lab.bench import Bench
from lab.benchfile import validate_bench
from sip.calls import CallAnswered, CallFailed, CallLeg, CallManager
from sip.dialplan import Dialplan
from sip.digest import Algorithm
from sip.offer_answer import MediaCapabilities
from sip.registrar import Registrar, SipUser
from sip.stack import SipStack, StackConfig
from sip.transport import TransportConfig
from sip.trunk import TrunkSet
from sip.trunks import Trunk
from tests.sip.peers import Sipp

pytestmark = pytest.mark.slow


@dataclass
class Rig:
    bench: Bench
    stack: SipStack
    calls: CallManager
    registrar: Registrar
    incoming: asyncio.Queue[CallLeg]
    rtp: socket.socket

    @property
    def caps(self) -> MediaCapabilities:
        return MediaCapabilities("127.0.0.1", self.rtp.getsockname()[1])

    async def rtp_packets(self, within: float = 5.0) -> bytes:
        loop = asyncio.get_running_loop()
        return await asyncio.wait_for(loop.sock_recv(self.rtp, 2048), within)


async def until(check: Callable[[], bool], within: float = 10.0) -> None:
    """Poll a state the simulators publish only as snapshots."""
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "not reached in time"
        await asyncio.sleep(0.05)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    config = StackConfig(transport=TransportConfig(hosts=("127.0.0.1",), port=0))
    async with SipStack(config) as stack:
        registrar = Registrar(
            [SipUser("phone1", "phone1-pw")], realm="cchub.local", algorithms=(Algorithm.MD5,)
        )
        registrar.attach(stack)
        document = {
            "bench": "sip-lab",
            "strategy": {"on_crash": "report"},
            "devices": {
                "pstn-gw": {
                    "resource": {"kind": "udp"},
                    "driver": {"type": "sip-pstn-gateway"},
                    "state": {"numbers": {"+8613900000000": {"action": "busy"}}},
                },
                "phone-1": {
                    "resource": {"kind": "udp"},
                    "driver": {"type": "sip-phone"},
                    "state": {"registrar_port": stack.address("UDP").port, "expires": 60},
                },
            },
        }
        spec = validate_bench(load_yaml(yaml.safe_dump(document)))
        async with Bench(spec, control=False) as bench:
            gateway = bench.sims["pstn-gw"]
            trunk = Trunk.model_validate(
                {**gateway.site_trunk("pstn-gw"), "options_interval": None}  # type: ignore[attr-defined]
            )
            incoming: asyncio.Queue[CallLeg] = asyncio.Queue()
            trunks = TrunkSet([trunk], stack)
            calls = CallManager(
                stack,
                dialplan=Dialplan([trunk], domain="cchub.local", local_users=["phone1"]),
                trunks=trunks,
                registrar=registrar,
                on_incoming=incoming.put_nowait,
            )
            calls.attach()
            rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            rtp.bind(("127.0.0.1", 0))
            rtp.setblocking(False)
            try:
                yield Rig(bench, stack, calls, registrar, incoming, rtp)
            finally:
                await calls.close()
                rtp.close()


async def test_gateway_answers_and_sends_a_tone(rig: Rig) -> None:
    leg = await rig.calls.originate("pstn:+8613800138000", rig.caps)
    await leg.wait_for(CallAnswered, within=10.0)
    packet = await rig.rtp_packets()
    assert packet[0] == 0x80 and packet[1] & 0x7F == leg.media.payload_type  # type: ignore[union-attr]
    assert len(packet) == 12 + 160  # 20 ms of G.711
    state = rig.bench.sims["pstn-gw"].snapshot()
    assert (state["answered"], state["active_calls"], state["last_number"]) == (
        1,
        1,
        "+8613800138000",
    )
    await leg.hangup()
    await asyncio.sleep(0.2)
    assert rig.bench.sims["pstn-gw"].snapshot()["active_calls"] == 0


@pytest.mark.parametrize(
    ("behaviour", "status"),
    [
        ({"action": "busy"}, 486),
        ({"action": "reject", "status": 404, "reason": "Unallocated Number"}, 404),
    ],
)
async def test_gateway_rejects_as_told(rig: Rig, behaviour: dict[str, object], status: int) -> None:
    await rig.bench.set_state("pstn-gw", {"numbers": {"+8613700000000": behaviour}})
    leg = await rig.calls.originate("pstn:+8613700000000", rig.caps)
    failed = await leg.wait_for(CallFailed, within=10.0)
    assert isinstance(failed, CallFailed) and failed.status == status


async def test_gateway_rings_then_answers_or_never_answers(rig: Rig) -> None:
    await rig.bench.set_state(
        "pstn-gw",
        {
            "numbers": {
                "+861": {"action": "ring", "ring_seconds": 0.3},
                "+862": {"action": "no-answer"},
            }
        },
    )
    ringing = await rig.calls.originate("pstn:+861", rig.caps)
    await ringing.wait_for(CallAnswered, within=10.0)
    silent = await rig.calls.originate("pstn:+862", rig.caps, ring_timeout=0.5)
    failed = await silent.wait_for(CallFailed, within=10.0)
    assert isinstance(failed, CallFailed) and failed.reason == "no-answer"
    await ringing.hangup()


async def test_gateway_with_digest_is_reached_with_the_trunk_credentials(rig: Rig) -> None:
    await rig.bench.set_state("pstn-gw", {"username": "hub", "password": "gw-pw"})
    gateway = rig.bench.sims["pstn-gw"]
    trunk = Trunk.model_validate({**gateway.site_trunk("gw-auth"), "options_interval": None})  # type: ignore[attr-defined]
    rig.calls.trunks = TrunkSet([trunk], rig.stack)
    rig.calls.dialplan = Dialplan([trunk], domain="cchub.local")
    leg = await rig.calls.originate("pstn:+8613800138000", rig.caps)
    await leg.wait_for(CallAnswered, within=10.0)
    await leg.hangup()


async def test_phone_registers_is_called_and_dials(rig: Rig) -> None:
    await until(lambda: bool(rig.registrar.lookup("phone1")))
    assert rig.bench.sims["phone-1"].snapshot()["registered"]
    leg = await rig.calls.originate("user:phone1", rig.caps)
    await leg.wait_for(CallAnswered, within=10.0)
    packet = await rig.rtp_packets()
    assert len(packet) == 172
    await leg.hangup()
    # the phone dials the hub: the hub gets an authenticated incoming leg
    port = rig.stack.address("UDP").port
    await rig.bench.set_state("phone-1", {"dial": f"sip:119@127.0.0.1:{port}"})
    inbound = await asyncio.wait_for(rig.incoming.get(), 10.0)
    assert inbound.caller == "phone1"
    inbound.answer(rig.caps)

    await until(lambda: rig.bench.sims["phone-1"].snapshot()["call_state"] == "established")
    await rig.bench.set_state("phone-1", {"dial": ""})
    await inbound.wait_ended(within=10.0)


async def test_sipp_calls_the_gateway_simulator(rig: Rig) -> None:
    """An independent UAC (SIPp) against the gateway simulator."""
    gateway = rig.bench.site_transport("pstn-gw")
    async with Sipp.uac(
        "uac_call", (gateway["host"], gateway["port"]), calls=2, duration_ms=100, service="+8610"
    ) as phone:
        result = await phone.wait()
    assert result.ok and result.successful == 2, result
    assert rig.bench.sims["pstn-gw"].snapshot()["answered"] == 2
