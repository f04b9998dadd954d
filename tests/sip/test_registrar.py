"""The registrar (RFC 3261 section 10.3) on a fake clock: digest, expiry rules, several
contacts with q values, removal, ordering, sweeping and the binding-change events."""

from __future__ import annotations

import pytest

from sip.digest import Algorithm, Challenge, Credentials, DigestClient, replace_credentials
from sip.message import SipRequest, SipResponse, parse_message
from sip.registrar import Binding, BindingChange, BindingEvent, Registrar, SipUser

USERS = [SipUser("alice", "wonderland", frozenset({"dispatcher"})), SipUser("bob", "builder")]


class Phone:
    """A UA registering to the registrar under test (signs with DigestClient)."""

    def __init__(self, registrar: Registrar, user: str = "alice", password: str = "wonderland"):
        self.registrar = registrar
        self.user = user
        self.client = DigestClient(Credentials(user, password))
        self.call_id = f"reg-{user}"
        self.cseq = 0

    def request(self, *headers: str, to_user: str | None = None) -> SipRequest:
        self.cseq += 1
        aor = f"sip:{to_user or self.user}@cchub.local"
        text = (
            "REGISTER sip:cchub.local SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bKr{self.cseq}\r\n"
            f"To: <{aor}>\r\nFrom: <{aor}>;tag=f1\r\nCall-ID: {self.call_id}\r\n"
            f"CSeq: {self.cseq} REGISTER\r\n" + "".join(f"{h}\r\n" for h in headers) + "\r\n"
        )
        message = parse_message(text.encode())
        assert isinstance(message, SipRequest)
        return message

    def register(self, *headers: str, to_user: str | None = None) -> SipResponse:
        """REGISTER, answer the challenge, return the final answer."""
        first = self.registrar.process(self.request(*headers, to_user=to_user))
        if first.status != 401:
            return first
        request = self.request(*headers, to_user=to_user)
        signed = replace_credentials(request, self.client.answer(request, first))
        return self.registrar.process(signed)


@pytest.fixture
def clock() -> list[float]:
    return [1000.0]


@pytest.fixture
def changes() -> list[BindingChange]:
    return []


@pytest.fixture
def registrar(clock: list[float], changes: list[BindingChange]) -> Registrar:
    return Registrar(
        USERS,
        realm="cchub.local",
        min_expires=60,
        max_expires=3600,
        default_expires=1800,
        max_contacts=3,
        on_change=changes.append,
        clock=lambda: clock[0],
    )


def contacts(response: SipResponse) -> dict[str, str | None]:
    return {str(c.uri): c.param("expires") for c in response.contacts}


def test_challenge_offers_md5_first_then_sha256(registrar: Registrar) -> None:
    response = registrar.process(Phone(registrar).request("Contact: <sip:alice@192.0.2.7>"))
    assert response.status == 401 and response.to.tag
    challenges = [Challenge.parse(v) for v in response.get_all("WWW-Authenticate")]
    assert [c.algorithm for c in challenges] == [Algorithm.MD5, Algorithm.SHA256]
    assert {c.realm for c in challenges} == {"cchub.local"} and challenges[0].qop == ("auth",)
    assert registrar.counters.challenged == 1


def test_register_with_digest_and_lookup(
    registrar: Registrar, changes: list[BindingChange]
) -> None:
    phone = Phone(registrar)
    response = phone.register("Contact: <sip:alice@192.0.2.7:5062>", "Expires: 600")
    assert response.status == 200
    assert contacts(response) == {"sip:alice@192.0.2.7:5062": "600"}
    [binding] = registrar.lookup("alice")
    assert str(binding.uri) == "sip:alice@192.0.2.7:5062" and binding.expires_in(1000.0) == 600
    assert [c.event for c in changes] == [BindingEvent.ADDED]
    assert registrar.user("alice") == USERS[0] and "wonderland" not in repr(USERS[0])
    assert registrar.lookup("bob") == [] and registrar.registered_users == ["alice"]


def test_refresh_is_not_an_event_but_a_changed_q_is(
    registrar: Registrar, changes: list[BindingChange]
) -> None:
    phone = Phone(registrar)
    phone.register("Contact: <sip:alice@192.0.2.7>")
    phone.register("Contact: <sip:alice@192.0.2.7>")
    assert [c.event for c in changes] == [BindingEvent.ADDED]
    phone.register("Contact: <sip:alice@192.0.2.7>;q=0.5")
    assert [c.event for c in changes] == [BindingEvent.ADDED, BindingEvent.UPDATED]


def test_expires_sources_and_limits(registrar: Registrar) -> None:
    phone = Phone(registrar)
    response = phone.register(
        "Contact: <sip:a@h1>;expires=120, <sip:a@h2>",
        "Contact: <sip:a@h3>;expires=99999",
        "Expires: 300",
    )
    assert contacts(response) == {"sip:a@h1": "120", "sip:a@h2": "300", "sip:a@h3": "3600"}
    default = Phone(registrar, "bob", "builder").register("Contact: <sip:b@h>")
    assert contacts(default) == {"sip:b@h": "1800"}


def test_interval_too_brief(registrar: Registrar) -> None:
    response = Phone(registrar).register("Contact: <sip:a@h1>;expires=30")
    assert (response.status, response.get("Min-Expires")) == (423, "60")
    assert registrar.lookup("alice") == []


def test_several_contacts_ordered_by_q_and_capped(registrar: Registrar) -> None:
    phone = Phone(registrar)
    phone.register("Contact: <sip:a@desk>;q=0.5, <sip:a@mobile>;q=0.9, <sip:a@soft>")
    assert [str(b.uri) for b in registrar.lookup("alice")] == [
        "sip:a@soft", "sip:a@mobile", "sip:a@desk"
    ]  # fmt: skip
    refused = phone.register("Contact: <sip:a@fourth>")
    assert (refused.status, refused.reason) == (403, "Forbidden (more than 3 contacts)")
    assert len(registrar.lookup("alice")) == 3
    bad_q = phone.register("Contact: <sip:a@desk>;q=2")
    assert bad_q.status == 400


def test_query_remove_and_star(registrar: Registrar, changes: list[BindingChange]) -> None:
    phone = Phone(registrar)
    phone.register("Contact: <sip:a@desk>, <sip:a@mobile>")
    query = phone.register()
    assert set(contacts(query)) == {"sip:a@desk", "sip:a@mobile"}
    removed = phone.register("Contact: <sip:a@desk>;expires=0")
    assert set(contacts(removed)) == {"sip:a@mobile"}
    refused = phone.register("Contact: *")
    assert refused.status == 400 and "Expires: 0" in refused.reason
    everything = phone.register("Contact: *", "Expires: 0")
    assert everything.status == 200 and everything.contacts == ()
    assert registrar.lookup("alice") == []
    assert [c.event for c in changes] == [
        BindingEvent.ADDED, BindingEvent.ADDED, BindingEvent.REMOVED, BindingEvent.REMOVED
    ]  # fmt: skip


def test_out_of_order_register_is_refused(registrar: Registrar) -> None:
    phone = Phone(registrar)
    phone.register("Contact: <sip:a@desk>")
    phone.cseq = 0  # an old, delayed REGISTER of the same Call-ID (CSeq 1, 2 <= 2)
    response = phone.register("Contact: <sip:a@desk>;expires=0")
    assert response.status == 500 and "out of order" in response.reason
    assert len(registrar.lookup("alice")) == 1


def test_auth_failures(registrar: Registrar) -> None:
    wrong = Phone(registrar, "alice", "guess").register("Contact: <sip:a@x>")
    assert (wrong.status, wrong.reason) == (403, "Forbidden (bad credentials)")
    unknown = Phone(registrar, "mallory", "x").register("Contact: <sip:m@x>")
    assert unknown.status == 403
    other = Phone(registrar).register("Contact: <sip:a@x>", to_user="bob")
    assert other.reason == "Forbidden (authenticated user does not match To)"
    assert registrar.counters.auth_failed == 2 and registrar.counters.rejected == 1


def test_expired_nonce_gets_stale_challenge(registrar: Registrar) -> None:
    phone = Phone(registrar)
    first = registrar.process(phone.request("Contact: <sip:a@x>"))
    later = phone.request("Contact: <sip:a@x>")
    signed = replace_credentials(later, phone.client.answer(later, first))
    # The nonce clock is the wall clock: ask the server about a time past its lifetime.
    result = registrar.digest.verify(signed, lambda _: "wonderland", now=4102444800.0)
    assert result.outcome.value == "stale"
    response = registrar.challenge(signed, result)
    assert response.status == 401 and "stale=true" in (response.get("WWW-Authenticate") or "")


def test_sweep_expires_bindings(
    registrar: Registrar, clock: list[float], changes: list[BindingChange]
) -> None:
    phone = Phone(registrar)
    phone.register("Contact: <sip:a@short>;expires=60, <sip:a@long>;expires=600")
    clock[0] += 61
    assert [str(b.uri) for b in registrar.lookup("alice")] == ["sip:a@long"]  # filtered at once
    expired = registrar.sweep()
    assert [str(b.uri) for b in expired] == ["sip:a@short"]
    assert changes[-1] == BindingChange(BindingEvent.EXPIRED, expired[0])
    clock[0] += 600
    registrar.sweep()
    assert registrar.lookup("alice") == [] and registrar.registered_users == []


def test_removed_user_loses_bindings(registrar: Registrar, changes: list[BindingChange]) -> None:
    Phone(registrar, "bob", "builder").register("Contact: <sip:b@h>")
    registrar.set_users(USERS[:1])
    assert registrar.lookup("bob") == [] and changes[-1].event is BindingEvent.REMOVED
    assert isinstance(changes[-1].binding, Binding)
