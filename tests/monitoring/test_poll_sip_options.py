"""SIP OPTIONS pings through the hub's SIP stack client to a real SIP user agent (cchub's
own stack, which answers OPTIONS by default), one that answers 503, and a dead address."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from hub.monitoring import SipOptionsClient
from monitoring.coordinator import TARGET_DOWN
from monitoring.samples import OccurrenceState
from monitoring.sip_options import SipOptionsProbe
from monitoring.targets import SipOptionsTarget
from sip.stack import SipStack, StackConfig
from sip.transport import TransportConfig
from sip.uas import IncomingRequest
from tests.monitoring.producers import Recorder


@pytest_asyncio.fixture
async def client() -> AsyncIterator[SipOptionsClient]:
    options = SipOptionsClient("127.0.0.1")
    yield options
    await options.close()


@pytest_asyncio.fixture
async def gateway() -> AsyncIterator[SipStack]:
    stack = SipStack(StackConfig(transport=TransportConfig(port=0), rate_limit=None))
    async with stack:
        yield stack


def target(uri: str, **fields: object) -> SipOptionsTarget:
    return SipOptionsTarget.model_validate(
        {"kind": "sip-options", "id": "pstn-gw", "uri": uri, "timeout": 1.0, "retries": 0, **fields}
    )


async def test_a_live_gateway_answers(client: SipOptionsClient, gateway: SipStack) -> None:
    port = gateway.address("UDP").port
    feed = Recorder()
    probe = SipOptionsProbe(target(f"sip:gw@127.0.0.1:{port}"), feed, client)
    assert await probe.poll()
    assert feed.latest("sip.options_status").value == 200.0
    assert feed.latest("sip.options_rtt_ms").unit == "ms"
    tcp = SipOptionsProbe(target(f"sip:gw@127.0.0.1:{port};transport=tcp"), feed, client)
    assert await tcp.poll()


async def test_an_overloaded_gateway_is_down(client: SipOptionsClient, gateway: SipStack) -> None:
    def overloaded(request: IncomingRequest) -> None:
        request.respond(503, "Service Unavailable")

    gateway.set_handler("OPTIONS", overloaded)
    feed = Recorder()
    probe = SipOptionsProbe(target(f"sip:gw@127.0.0.1:{gateway.address('UDP').port}"), feed, client)
    assert not await probe.poll()
    assert probe.stats.errors["device"] == 1 and probe.stats.errors["status_503"] == 1
    assert "answered 503 Service Unavailable" in probe.stats.last_error
    lenient = SipOptionsProbe(
        target(f"sip:gw@127.0.0.1:{gateway.address('UDP').port}", alive=[200, 503]), feed, client
    )
    assert await lenient.poll()


async def test_a_dead_gateway_times_out(client: SipOptionsClient) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        feed = Recorder()
        probe = SipOptionsProbe(target(f"sip:gw@127.0.0.1:{silent.getsockname()[1]}"), feed, client)
        assert not await probe.poll()
    assert probe.stats.errors["timeout"] == 1
    assert [o.state for o in feed.occurrences if o.kind == TARGET_DOWN] == [OccurrenceState.RAISE]


@pytest.mark.parametrize("uri", ["sip:gw@127.0.0.1:1;transport=sctp"])
async def test_an_unroutable_uri_is_refused(client: SipOptionsClient, uri: str) -> None:
    probe = SipOptionsProbe(target(uri), Recorder(), client)
    assert not await probe.poll()
    assert probe.stats.up is False
