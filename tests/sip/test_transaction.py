"""RFC 3261 section 17 transaction state machines on a fake clock: retransmission
schedules, timeouts, absorption of retransmissions, ACK handling and matching."""

from __future__ import annotations

from pathlib import Path

import pytest

from sip.dialog import AnswerRetransmission
from sip.errors import SipStateError
from sip.message import SipMessage, SipRequest, SipResponse, create_response, parse_message
from sip.transaction import (
    Action,
    CancelTimer,
    ClientInviteState,
    ClientInviteTransaction,
    ClientNonInviteState,
    ClientNonInviteTransaction,
    Deliver,
    Failed,
    Send,
    ServerInviteState,
    ServerInviteTransaction,
    ServerNonInviteState,
    ServerNonInviteTransaction,
    StartTimer,
    Terminated,
    TimerName,
    Timers,
    Transaction,
    cancel_for,
    client_key,
    invite_key_for_cancel,
    server_key,
)

RFC4475 = Path(__file__).parent / "data" / "rfc4475"
TIMERS = Timers()  # T1 0.5 s, T2 4 s, T4 5 s, 100 Trying after 0.2 s


def request(method: str = "INVITE", branch: str = "z9hG4bKabc1", *, to_tag: str = "") -> SipRequest:
    to = "<sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else "")
    text = (
        f"{method} sip:bob@example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 192.0.2.1:5060;branch={branch}\r\n"
        "Max-Forwards: 70\r\n"
        f"To: {to}\r\n"
        "From: <sip:alice@example.com>;tag=a1\r\n"
        "Call-ID: call-1@example.com\r\n"
        f"CSeq: 7 {method}\r\n"
        "Route: <sip:proxy.example.com;lr>\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    message = parse_message(text.encode())
    assert isinstance(message, SipRequest)
    return message


def answer(req: SipRequest, status: int, tag: str = "b1") -> SipResponse:
    return create_response(req, status, "X", to_tag=tag if status > 100 else None)


class FakeClock:
    """Carries out a machine's actions against a fake clock and records what it did."""

    def __init__(self, machine: Transaction) -> None:
        self.machine = machine
        self.now = 0.0
        self.timers: dict[TimerName, float] = {}
        self.sent: list[tuple[float, SipMessage, bool]] = []
        self.delivered: list[SipMessage] = []
        self.failed: list[Failed] = []
        self.terminated_at: float | None = None

    def apply(self, actions: list[Action]) -> list[Action]:
        for action in actions:
            if isinstance(action, Send):
                self.sent.append((self.now, action.message, action.retransmission))
            elif isinstance(action, StartTimer):
                assert action.at >= self.now
                self.timers[action.timer] = action.at
            elif isinstance(action, CancelTimer):
                del self.timers[action.timer]
            elif isinstance(action, Deliver):
                self.delivered.append(action.message)
            elif isinstance(action, Failed):
                self.failed.append(action)
            elif isinstance(action, Terminated):
                assert not self.timers, f"timers left running: {self.timers}"
                self.terminated_at = self.now
        return actions

    def advance(self, until: float) -> None:
        """Fire every timer due up to ``until``, in deadline order."""
        while self.timers:
            timer, at = min(self.timers.items(), key=lambda item: item[1])
            if at > until:
                break
            del self.timers[timer]
            self.now = at
            self.apply(self.machine.on_timer(timer, at))
        self.now = until

    def send_times(self) -> list[float]:
        return [round(t, 3) for t, _, _ in self.sent]


# -- client INVITE (section 17.1.1) -------------------------------------------------------


def test_client_invite_timer_a_doubles_until_timer_b() -> None:
    txn = ClientInviteTransaction(request(), reliable=False, timers=TIMERS)
    clock = FakeClock(txn)
    clock.apply(txn.start(0.0))
    clock.advance(40.0)
    # Timer A starts at T1 and doubles each time (no T2 cap for INVITE): 7 transmissions.
    assert clock.send_times() == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert [retrans for _, _, retrans in clock.sent] == [False] + [True] * 6
    assert clock.failed == [Failed(408, "Request Timeout (no response, Timer B)")]
    assert clock.terminated_at == 32.0 and txn.state is ClientInviteState.TERMINATED


def test_client_invite_reliable_sends_once() -> None:
    txn = ClientInviteTransaction(request(), reliable=True, timers=TIMERS)
    clock = FakeClock(txn)
    clock.apply(txn.start(0.0))
    clock.advance(40.0)
    assert clock.send_times() == [0.0]
    assert clock.failed[0].status == 408


def test_client_invite_provisional_stops_retransmission_and_non_2xx_is_acked() -> None:
    invite = request()
    txn = ClientInviteTransaction(invite, reliable=False, timers=TIMERS)
    clock = FakeClock(txn)
    clock.apply(txn.start(0.0))
    clock.advance(0.7)
    clock.apply(txn.receive(answer(invite, 180), 0.7))
    assert txn.state is ClientInviteState.PROCEEDING
    clock.advance(60.0)  # neither A nor B runs in Proceeding
    assert clock.send_times() == [0.0, 0.5] and not clock.failed
    busy = answer(invite, 486)
    clock.apply(txn.receive(busy, 60.0))
    assert txn.state is ClientInviteState.COMPLETED
    assert [m.status for m in clock.delivered if isinstance(m, SipResponse)] == [180, 486]
    ack = clock.sent[-1][1]
    assert isinstance(ack, SipRequest) and ack.method == "ACK"
    assert ack.uri == invite.uri and ack.top_via.branch == invite.top_via.branch
    assert ack.to.tag == "b1" and str(ack.cseq) == "7 ACK"
    assert ack.get_all("Route") == invite.get_all("Route")
    # A retransmitted 486 is absorbed and answered with the same ACK.
    clock.apply(txn.receive(busy, 61.0))
    assert len(clock.delivered) == 2 and clock.sent[-1][1] == ack and clock.sent[-1][2]
    clock.advance(100.0)
    assert clock.terminated_at == 60.0 + 32.0  # Timer D


def test_client_invite_2xx_accepted_passes_retransmissions_until_timer_m() -> None:
    invite = request()
    txn = ClientInviteTransaction(invite, reliable=False, timers=TIMERS)
    clock = FakeClock(txn)
    clock.apply(txn.start(0.0))
    ok = answer(invite, 200)
    clock.apply(txn.receive(ok, 0.1))
    assert txn.state is ClientInviteState.ACCEPTED
    clock.apply(txn.receive(ok, 0.6))  # RFC 6026: 2xx retransmission goes to the TU
    clock.apply(txn.receive(answer(invite, 180), 0.7))  # anything else is absorbed
    assert clock.delivered == [ok, ok]
    assert clock.send_times() == [0.0]  # the 2xx ACK is the TU's job
    clock.advance(60.0)
    assert clock.terminated_at == pytest.approx(0.1 + 32.0)


def test_client_invite_reliable_timer_d_is_zero() -> None:
    invite = request()
    txn = ClientInviteTransaction(invite, reliable=True, timers=TIMERS)
    clock = FakeClock(txn)
    clock.apply(txn.start(0.0))
    clock.apply(txn.receive(answer(invite, 503), 1.0))
    clock.advance(1.0)
    assert clock.terminated_at == 1.0


def test_transport_error_fails_with_503() -> None:
    txn = ClientInviteTransaction(request(), reliable=True, timers=TIMERS)
    clock = FakeClock(txn)
    clock.apply(txn.start(0.0))
    clock.apply(txn.transport_error(0.1))
    assert clock.failed[0].status == 503 and txn.terminated
    assert txn.transport_error(0.2) == []


# -- client non-INVITE (section 17.1.2) ---------------------------------------------------


def test_client_non_invite_timer_e_doubles_to_t2_until_timer_f() -> None:
    txn = ClientNonInviteTransaction(request("OPTIONS"), reliable=False, timers=TIMERS)
    clock = FakeClock(txn)
    clock.apply(txn.start(0.0))
    clock.advance(40.0)
    assert clock.send_times() == [
        0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5
    ]  # fmt: skip
    assert clock.failed[0].status == 408 and clock.terminated_at == 32.0


def test_client_non_invite_proceeding_retransmits_every_t2() -> None:
    options = request("OPTIONS")
    txn = ClientNonInviteTransaction(options, reliable=False, timers=TIMERS)
    clock = FakeClock(txn)
    clock.apply(txn.start(0.0))
    clock.apply(txn.receive(answer(options, 100), 0.2))
    assert txn.state is ClientNonInviteState.PROCEEDING
    clock.advance(10.0)
    assert clock.send_times() == [0.0, 0.5, 4.5, 8.5]


def test_client_non_invite_final_absorbs_retransmissions_until_timer_k() -> None:
    options = request("OPTIONS")
    txn = ClientNonInviteTransaction(options, reliable=False, timers=TIMERS)
    clock = FakeClock(txn)
    clock.apply(txn.start(0.0))
    ok = answer(options, 200)
    clock.apply(txn.receive(ok, 0.3))
    clock.apply(txn.receive(ok, 0.8))
    assert clock.delivered == [ok] and txn.state is ClientNonInviteState.COMPLETED
    clock.advance(10.0)
    assert clock.send_times() == [0.0] and clock.terminated_at == pytest.approx(5.3)


def test_client_non_invite_refuses_invite() -> None:
    with pytest.raises(SipStateError):
        ClientNonInviteTransaction(request("INVITE"), reliable=False, timers=TIMERS)


# -- server INVITE (section 17.2.1) -------------------------------------------------------


def test_server_invite_sends_trying_after_200_ms_and_on_retransmission() -> None:
    invite = request()
    txn = ServerInviteTransaction(invite, reliable=False, timers=TIMERS)
    clock = FakeClock(txn)
    clock.apply(txn.start(0.0))
    assert clock.delivered == [invite] and clock.sent == []
    clock.advance(0.3)
    assert clock.send_times() == [0.2]
    trying = clock.sent[0][1]
    assert isinstance(trying, SipResponse) and trying.status == 100 and trying.to.tag is None
    clock.apply(txn.receive(invite, 0.5))  # retransmitted INVITE: last provisional again
    assert clock.sent[-1][1] == trying and len(clock.delivered) == 1


def test_server_invite_no_trying_when_tu_answers_in_time() -> None:
    invite = request()
    txn = ServerInviteTransaction(invite, reliable=False, timers=TIMERS)
    clock = FakeClock(txn)
    clock.apply(txn.start(0.0))
    clock.apply(txn.respond(answer(invite, 180), 0.05))
    clock.advance(1.0)
    assert [m.status for _, m, _ in clock.sent if isinstance(m, SipResponse)] == [180]


def test_server_invite_immediate_trying() -> None:
    txn = ServerInviteTransaction(request(), reliable=False, timers=Timers(trying_delay=0))
    clock = FakeClock(txn)
    actions = clock.apply(txn.start(0.0))
    assert isinstance(actions[0], Send) and isinstance(actions[0].message, SipResponse)
    assert actions[0].message.status == 100


def test_server_invite_non_2xx_timer_g_until_ack_then_timer_i() -> None:
    invite = request()
    txn = ServerInviteTransaction(invite, reliable=False, timers=TIMERS)
    clock = FakeClock(txn)
    clock.apply(txn.start(0.0))
    busy = answer(invite, 486)
    clock.advance(0.1)
    clock.apply(txn.respond(busy, 0.1))
    assert txn.state is ServerInviteState.COMPLETED
    clock.advance(12.0)
    # Timer G: T1 doubling to the T2 cap.
    assert clock.send_times() == [0.1, 0.6, 1.6, 3.6, 7.6, 11.6]
    clock.apply(txn.receive(invite, 12.0))  # retransmitted INVITE: the 486 again
    assert clock.sent[-1][1] == busy
    ack = request("ACK")
    clock.apply(txn.receive(ack, 12.5))
    assert txn.state is ServerInviteState.CONFIRMED
    clock.apply(txn.receive(ack, 13.0))  # absorbed
    sends = len(clock.sent)
    clock.advance(30.0)
    assert len(clock.sent) == sends and clock.terminated_at == 17.5  # Timer I = T4
    assert clock.delivered == [invite]


def test_server_invite_timer_h_without_ack() -> None:
    invite = request()
    txn = ServerInviteTransaction(invite, reliable=False, timers=TIMERS)
    clock = FakeClock(txn)
    clock.apply(txn.start(0.0))
    clock.apply(txn.respond(answer(invite, 603), 0.0))
    clock.advance(40.0)
    assert clock.failed == [Failed(408, "no ACK for the final response (Timer H)")]
    assert clock.terminated_at == 32.0
    assert clock.send_times() == [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]


def test_server_invite_reliable_has_no_timer_g() -> None:
    invite = request()
    txn = ServerInviteTransaction(invite, reliable=True, timers=TIMERS)
    clock = FakeClock(txn)
    clock.apply(txn.start(0.0))
    clock.apply(txn.respond(answer(invite, 486), 0.0))
    clock.apply(txn.receive(request("ACK"), 1.0))
    clock.advance(1.0)
    assert [m.status for _, m, _ in clock.sent if isinstance(m, SipResponse)] == [486]
    assert clock.terminated_at == 1.0  # Timer I = 0


def test_server_invite_2xx_accepted_absorbs_invite_until_timer_l() -> None:
    invite = request()
    txn = ServerInviteTransaction(invite, reliable=False, timers=TIMERS)
    clock = FakeClock(txn)
    clock.apply(txn.start(0.0))
    ok = answer(invite, 200)
    clock.apply(txn.respond(ok, 0.1))
    assert txn.state is ServerInviteState.ACCEPTED
    clock.apply(txn.receive(invite, 0.6))  # absorbed: the TU retransmits the 2xx itself
    assert len(clock.sent) == 1
    clock.apply(txn.respond(ok, 0.7))  # RFC 6026: further 2xx from the TU pass
    assert len(clock.sent) == 2
    with pytest.raises(SipStateError):
        txn.respond(answer(invite, 486), 0.8)
    clock.advance(40.0)
    assert clock.terminated_at == pytest.approx(32.1)


# -- server non-INVITE (section 17.2.2) ---------------------------------------------------


def test_server_non_invite_absorbs_then_repeats_final_until_timer_j() -> None:
    bye = request("BYE", to_tag="b1")
    txn = ServerNonInviteTransaction(bye, reliable=False, timers=TIMERS)
    clock = FakeClock(txn)
    clock.apply(txn.start(0.0))
    clock.apply(txn.receive(bye, 0.5))  # Trying: absorbed
    assert clock.sent == [] and clock.delivered == [bye]
    clock.apply(txn.respond(answer(bye, 100), 0.6))
    clock.apply(txn.receive(bye, 0.7))
    assert [m.status for _, m, _ in clock.sent if isinstance(m, SipResponse)] == [100, 100]
    ok = answer(bye, 200)
    clock.apply(txn.respond(ok, 1.0))
    assert txn.state is ServerNonInviteState.COMPLETED
    clock.apply(txn.receive(bye, 2.0))
    assert clock.sent[-1][1] == ok and clock.sent[-1][2]
    with pytest.raises(SipStateError):
        txn.respond(ok, 2.5)
    clock.advance(40.0)
    assert clock.terminated_at == 33.0  # Timer J = 64*T1


def test_server_non_invite_reliable_terminates_at_once() -> None:
    options = request("OPTIONS")
    txn = ServerNonInviteTransaction(options, reliable=True, timers=TIMERS)
    clock = FakeClock(txn)
    clock.apply(txn.start(0.0))
    clock.apply(txn.respond(answer(options, 200), 0.1))
    clock.advance(0.1)
    assert clock.terminated_at == 0.1


def test_timers_follow_configured_t1_t2_t4() -> None:
    timers = Timers(t1=0.1, t2=0.4, t4=1.0)
    txn = ClientNonInviteTransaction(request("MESSAGE"), reliable=False, timers=timers)
    clock = FakeClock(txn)
    clock.apply(txn.start(0.0))
    clock.advance(10.0)
    assert clock.send_times()[:6] == [0.0, 0.1, 0.3, 0.7, 1.1, 1.5]
    assert clock.terminated_at == pytest.approx(6.4)


def test_stale_timer_fires_are_ignored() -> None:
    txn = ClientInviteTransaction(request(), reliable=False, timers=TIMERS)
    clock = FakeClock(txn)
    clock.apply(txn.start(0.0))
    assert txn.on_timer(TimerName.A, 0.2) == []  # not due yet
    assert txn.on_timer(TimerName.D, 100.0) == []  # not running


# -- UAS 2xx retransmission (section 13.3.1.4) --------------------------------------------


def test_2xx_retransmitted_until_ack() -> None:
    invite = request()
    ok = answer(invite, 200)
    machine = AnswerRetransmission(invite, ok, reliable=False, timers=TIMERS)
    clock = FakeClock(machine)
    clock.apply(machine.start(0.0))
    clock.advance(8.0)
    assert clock.send_times() == [0.5, 1.5, 3.5, 7.5]
    assert all(m == ok for _, m, _ in clock.sent)
    clock.apply(machine.acknowledge(8.0))
    clock.advance(60.0)
    assert len(clock.sent) == 4 and machine.acked and clock.terminated_at == 8.0
    assert not clock.failed


def test_2xx_without_ack_times_out() -> None:
    invite = request()
    machine = AnswerRetransmission(invite, answer(invite, 200), reliable=False, timers=TIMERS)
    clock = FakeClock(machine)
    clock.apply(machine.start(0.0))
    clock.advance(60.0)
    assert clock.failed[0].status == 408 and clock.terminated_at == 32.0
    assert len(clock.sent) == 10  # 0.5 .. 31.5, capped at T2


def test_2xx_over_tcp_only_waits() -> None:
    invite = request()
    machine = AnswerRetransmission(invite, answer(invite, 200), reliable=True, timers=TIMERS)
    clock = FakeClock(machine)
    clock.apply(machine.start(0.0))
    clock.advance(60.0)
    assert clock.sent == [] and clock.failed[0].status == 408


# -- matching (sections 17.1.3, 17.2.3, 9.2) ----------------------------------------------


def test_server_matching_by_branch_sent_by_and_method() -> None:
    invite = request()
    key = server_key(invite)
    assert server_key(request()) == key
    assert server_key(request("ACK")) == key  # ACK for a non-2xx finds its INVITE
    assert server_key(request("INVITE", "z9hG4bKother")) != key
    cancel = cancel_for(invite)
    assert server_key(cancel) != key and invite_key_for_cancel(cancel) == key
    moved = parse_message(bytes(invite).replace(b"192.0.2.1:5060", b"192.0.2.9:5060"))
    assert isinstance(moved, SipRequest) and server_key(moved) != key


def test_client_matching_by_branch_and_cseq_method() -> None:
    invite = request()
    assert client_key(answer(invite, 180)) == client_key(invite)
    cancel = cancel_for(invite)
    assert client_key(answer(cancel, 200)) == client_key(cancel) != client_key(invite)


def test_rfc2543_fallback_matching() -> None:
    invite = SipRequest.parse((RFC4475 / "inv2543.sip").read_bytes())
    key = server_key(invite)
    assert not key.branch.startswith("z9hG4bK")
    again = SipRequest.parse(bytes(invite))
    assert server_key(again) == key
    # An RFC 2543 ACK repeats the INVITE's Request-URI, top Via, Call-ID, From and CSeq.
    data = bytes(invite).replace(b"INVITE sip:", b"ACK sip:", 1)
    ack = SipRequest.parse(data.replace(b"56 INVITE", b"56 ACK"))
    assert server_key(ack) == key
    other = SipRequest.parse(bytes(invite).replace(b"CSeq: 56", b"CSeq: 57"))
    assert server_key(other) != key
