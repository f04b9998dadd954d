"""Trunks at runtime against Kamailio (a real, independent SIP server): outbound REGISTER
with digest and its refresh, a wrong password retried with back-off, and OPTIONS
keep-alive going up, down when Kamailio stops, and up again when it comes back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from sip.stack import SipStack, StackConfig
from sip.transaction import Timers
from sip.transport import TransportConfig
from sip.trunk import RegistrationState, TrunkRuntime, TrunkState, TrunkStatus
from sip.trunks import Trunk
from tests.sip.peers import Kamailio

pytestmark = pytest.mark.slow


@pytest.fixture
async def stack() -> AsyncIterator[SipStack]:
    config = StackConfig(
        transport=TransportConfig(hosts=("127.0.0.1",), port=0),
        timers=Timers(t1=0.05, t2=0.4),
    )
    async with SipStack(config) as running:
        yield running


class Changes:
    """Collects trunk status changes and lets a test wait for one."""

    def __init__(self) -> None:
        self.seen: list[TrunkStatus] = []
        self._event = asyncio.Event()

    def __call__(self, status: TrunkStatus) -> None:
        self.seen.append(status)
        self._event.set()

    async def until(self, within: float = 10.0, after: int = 0, **wanted: Any) -> TrunkStatus:
        """The first change from index ``after`` on with the ``wanted`` fields."""

        async def scan() -> TrunkStatus:
            index = after
            while True:
                for status in self.seen[index:]:
                    if all(getattr(status, k) == v for k, v in wanted.items()):
                        return status
                index = len(self.seen)
                self._event.clear()
                await self._event.wait()

        return await asyncio.wait_for(scan(), within)


def kamailio_trunk(kamailio: Kamailio, **extra: Any) -> Trunk:
    return Trunk.model_validate(
        {
            "id": "kam",
            "type": "sip-peer",
            "host": "127.0.0.1",
            "port": kamailio.port,
            "domain": kamailio.domain,
            **extra,
        }
    )


async def test_outbound_registration_with_digest_and_refresh(stack: SipStack) -> None:
    changes = Changes()
    async with Kamailio(users={"hub": "hub-secret"}) as kamailio:
        trunk = kamailio_trunk(
            kamailio,
            username="hub",
            password="hub-secret",
            registration={"expiry": 120},
            options_interval=None,
        )
        runtime = TrunkRuntime(trunk, stack, on_change=changes)
        await runtime.start()
        try:
            status = await changes.until(registration=RegistrationState.REGISTERED)
            assert status.registered_expires == 120  # what Kamailio granted
            # a refresh happens at half the interval (60 s) - too long for a test; ask now
            response = await runtime.refresh()
            assert response.status == 200
            assert "<sip:hub@127.0.0.1" in (response.get("Contact") or "")
        finally:
            await runtime.close()
    assert "Digest" not in repr(runtime.credentials)  # credentials never show the secret


async def test_registration_with_wrong_password_fails_and_retries(stack: SipStack) -> None:
    changes = Changes()
    async with Kamailio(users={"hub": "hub-secret"}) as kamailio:
        trunk = kamailio_trunk(
            kamailio, username="hub", password="wrong", registration=True, options_interval=None
        )
        runtime = TrunkRuntime(trunk, stack, on_change=changes, retry_base=0.2)
        await runtime.start()
        try:
            failed = await changes.until(registration=RegistrationState.FAILED)
            assert failed.detail.startswith("40")  # challenged again: 401 or 403
            await asyncio.sleep(0.6)  # back-off retries go on without new change events
            assert [s.registration for s in changes.seen].count(RegistrationState.FAILED) == 1
        finally:
            await runtime.close()


async def test_options_keepalive_up_down_up(stack: SipStack) -> None:
    changes = Changes()
    kamailio = Kamailio(users={"probe": "unused"}, auth=False)
    await kamailio.start()
    try:
        trunk = kamailio_trunk(kamailio, options_interval=0.2)
        runtime = TrunkRuntime(trunk, stack, on_change=changes, options_timeout=1.0)
        await runtime.start()
        try:
            await changes.until(state=TrunkState.UP)
            await kamailio.stop()
            down = await changes.until(state=TrunkState.DOWN)
            assert "OPTIONS" in down.detail
            assert not runtime.usable
            restarted = Kamailio(users={"probe": "unused"}, auth=False, port=kamailio.port)
            async with restarted:
                await changes.until(within=15.0, after=2, state=TrunkState.UP)
                states = [s.state for s in changes.seen]
                assert states == [TrunkState.UP, TrunkState.DOWN, TrunkState.UP]
        finally:
            await runtime.close()
    finally:
        await kamailio.__aexit__(None, None, None)
