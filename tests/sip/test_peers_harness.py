"""The real-peer harness works on its own: SIPp, baresip and Kamailio talking to each other.

These tests need none of cchub's SIP stack; they prove the scenarios and runners that the
call-layer tests drive against it.
"""

from __future__ import annotations

import re
from typing import Literal

import pytest

from tests.sip.peers import (
    Baresip,
    Kamailio,
    PeerError,
    Sipp,
    parse_stat_csv,
    split_netstrings,
)

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_sipp_uac_calls_sipp_uas(transport: Literal["udp", "tcp"]) -> None:
    async with Sipp.uas("uas_answer", calls=2, rtp_echo=True, transport=transport) as gateway:
        async with Sipp.uac(
            "uac_call", gateway.address, calls=2, rate=10, duration_ms=50, transport=transport
        ) as phone:
            caller = await phone.wait()
        callee = await gateway.wait()
    assert caller.ok and caller.successful == 2, caller
    assert callee.ok and callee.successful == 2, callee
    # the answer picked a codec from the offer (PCMU 0, PCMA 8, telephone-event 101)
    assert re.search(r"m=audio \d+ RTP/AVP (0|8)\r?\n", caller.messages)
    assert "BYE sip:" in callee.messages
    assert f"{transport.upper()} message received" in callee.messages


async def test_sipp_uas_answers_options_pings() -> None:
    gateway = Sipp.uas("uas_answer", calls=1, auto_answer=True, timeout=4)
    async with gateway, Sipp.uac("uac_options", gateway.address, calls=1) as ping:
        pinged = await ping.wait()
    assert pinged.ok, pinged
    assert "SIP/2.0 200 OK" in pinged.messages


@pytest.mark.parametrize(
    ("status", "reason"), [(486, "Busy Here"), (503, "Service Unavailable"), (404, "Not Found")]
)
async def test_sipp_uas_rejects_with_the_chosen_status(status: int, reason: str) -> None:
    async with Sipp.uas("uas_reject", calls=1, reject=(status, reason), duration_ms=100) as gateway:
        async with Sipp.uac("uac_call", gateway.address, calls=1, timeout=5) as phone:
            caller = await phone.wait()
        callee = await gateway.wait()
    assert caller.failed == 1 and caller.successful == 0, caller
    assert f"SIP/2.0 {status} {reason}" in caller.messages
    assert callee.ok, callee  # the rejection was acknowledged


async def test_sipp_uac_cancels_while_ringing() -> None:
    async with Sipp.uas("uas_no_answer", calls=1) as gateway:
        async with Sipp.uac("uac_cancel", gateway.address, calls=1, duration_ms=200) as phone:
            caller = await phone.wait()
        callee = await gateway.wait()
    assert caller.ok, caller
    assert callee.ok, callee
    assert "SIP/2.0 487 Request Terminated" in caller.messages


async def test_sipp_registers_with_digest_at_kamailio() -> None:
    async with Kamailio(users={"alice": "alice-pw", "bob": "bob-pw"}) as registrar:
        good = {"alice": "alice-pw", "bob": "bob-pw"}
        async with Sipp.uac(
            "uac_register_auth",
            registrar.address,
            calls=2,
            users=good,
            keys={"domain": registrar.domain, "expires": "60"},
        ) as phones:
            registered = await phones.wait()
        bad = {"alice": "wrong"}
        async with Sipp.uac(
            "uac_register_auth",
            registrar.address,
            calls=1,
            users=bad,
            keys={"domain": registrar.domain},
            timeout=4,
        ) as phone:
            refused = await phone.wait()
        async with Sipp.uac("uac_options", registrar.address, calls=1) as ping:
            pinged = await ping.wait()
    assert registered.ok and registered.successful == 2, registered
    assert 'Authorization: Digest username="alice"' in registered.messages
    assert refused.failed == 1, refused
    assert pinged.ok, pinged
    assert "SIP/2.0 200 Keepalive" in pinged.messages


async def test_baresip_calls_a_sipp_uas_and_hangs_up() -> None:
    async with Sipp.uas("uas_answer", calls=1, rtp_echo=True) as gateway, Baresip() as phone:
        await phone.dial(gateway.uri("4000"))
        established = await phone.event("CALL_ESTABLISHED")
        assert established["peeruri"].startswith("sip:4000@127.0.0.1")
        await phone.hangup()
        await phone.event("CALL_CLOSED")
        callee = await gateway.wait()
    assert callee.ok, callee
    assert "c=IN IP4 127.0.0.1" in callee.messages  # baresip's offer stays on loopback


async def test_sipp_uas_hangs_up_on_baresip() -> None:
    async with Sipp.uas("uas_answer_bye", calls=1, duration_ms=300) as gateway, Baresip() as phone:
        await phone.dial(gateway.uri("4001"))
        await phone.event("CALL_ESTABLISHED")
        closed = await phone.event("CALL_CLOSED")
        callee = await gateway.wait()
    assert callee.ok, callee
    assert closed["type"] == "CALL_CLOSED"


async def test_sipp_calls_baresip_which_answers_by_itself() -> None:
    async with Baresip(user="console") as phone:
        async with Sipp.uac(
            "uac_call", phone.address, calls=1, service="console", duration_ms=200
        ) as caller:
            result = await caller.wait()
        await phone.event("CALL_ESTABLISHED")
    assert result.ok, result


async def test_baresip_registers_and_is_called_through_kamailio() -> None:
    users = {"alice": "alice-pw", "bob": "bob-pw"}
    async with (
        Kamailio(users=users) as proxy,
        Baresip(user="bob", password="bob-pw", registrar=proxy.address, domain=proxy.domain) as bob,
    ):
        line = await bob.registered()
        assert line.startswith(f"> sip:bob@{proxy.domain}") and "Expires 60s" in line
        # alice (SIPp) is challenged by the proxy, answers with digest, reaches bob
        async with Sipp.uac(
            "uac_call_auth",
            proxy.address,
            calls=1,
            service="bob",
            auth=("alice", "alice-pw"),
            keys={"caller": "alice", "domain": proxy.domain},
            duration_ms=200,
        ) as alice:
            result = await alice.wait()
        await bob.event("CALL_ESTABLISHED")
    assert result.ok, result
    assert "SIP/2.0 407" in result.messages
    assert "Proxy-Authorization: Digest" in result.messages
    assert "Record-Route:" in result.messages


def test_stat_csv_and_netstring_parsers() -> None:
    stats = parse_stat_csv("A;SuccessfulCall(C);FailedCall(C);\n1;0;0;\n2;5;1;\n")
    assert stats == {"A": "2", "SuccessfulCall(C)": "5", "FailedCall(C)": "1"}
    buffer = bytearray(b'11:{"event":1},3:abc,4:ab')
    assert split_netstrings(buffer) == [b'{"event":1}', b"abc"]
    assert buffer == bytearray(b"4:ab")
    with pytest.raises(PeerError, match="without its ','"):
        split_netstrings(bytearray(b"3:abcd"))
    with pytest.raises(PeerError, match="bad netstring length"):
        split_netstrings(bytearray(b"x3:abc,"))
