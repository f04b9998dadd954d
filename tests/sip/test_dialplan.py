"""Dial plan: endpoint addresses, trunk selection with failover, request URIs, endpoints."""

from __future__ import annotations

import urllib.parse
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from sip.dialplan import (
    Address,
    AddressError,
    Candidate,
    Dialplan,
    NoRouteError,
    parse_address,
)
from sip.trunks import CallKind, Scheme, Trunk
from sip.uri import SipUri


def trunk(**fields: Any) -> Trunk:
    return Trunk.model_validate(fields)


TRUNKS = [
    trunk(
        id="pstn-local",
        type="pstn-gateway",
        host="10.0.0.5",
        port=5070,
        dialplan=[
            # the E1 gateway wants national format: +86 138... -> 0138...
            {"scheme": "pstn", "prefixes": ["+86"], "strip": 3, "add": "0", "priority": 10},
            {"scheme": "pstn", "prefixes": ["110", "119", "120"], "priority": 10},
        ],
    ),
    trunk(
        id="pstn-carrier",
        type="pstn-gateway",
        host="192.0.2.7",
        domain="ims.carrier.cn",
        transport="tcp",
    ),
    trunk(
        id="tiantong",
        type="satellite-gateway",
        host="10.0.1.9",
        codecs=["PCMA"],
        registration={"username": "centre", "password": "s3cret"},
    ),
    trunk(id="pdt-1", type="pdt-gateway", host="10.0.2.1"),
    trunk(
        id="pdt-2",
        type="pdt-gateway",
        host="10.0.2.2",
        dialplan=[
            {
                "scheme": "pdt",
                "kinds": ["group"],
                "prefixes": ["1"],
                "priority": 200,
                "add": "9",
                "headers": {"X-PDT-Call": "{kind};id={number}"},
                "params": {},
            }
        ],
    ),
    trunk(id="lte", type="lte-gateway", host="10.0.3.1", port=5062),
    trunk(id="hf-gw", type="roip-gateway", host="10.0.4.1"),
    trunk(
        id="county-hub",
        type="sip-peer",
        host="hub.county.example",
        transport="tls",
        dialplan=[{"scheme": "sip", "domains": ["county.example", "*.county.example"]}],
    ),
]
ENDPOINTS = {
    "duty-officer": ["pstn:+8613800138000", "pdt:unit/2001", "sat:17400000001"],
    "field-team": ["lte:group/777", "roip:hf-ch3"],
}


@pytest.fixture
def plan() -> Dialplan:
    return Dialplan(
        TRUNKS,
        domain="centre.example",
        endpoints=ENDPOINTS,
        local_users={"alice", "console-1"},
        local_hosts=("127.0.0.1:5060",),
    )


def uris(candidates: tuple[Candidate, ...]) -> list[tuple[str | None, str]]:
    return [(c.trunk, str(c.request_uri)) for c in candidates]


# -- addresses -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("pstn:+8613800138000", "pstn:+8613800138000"),
        ("PSTN:+86 138-0013-8000", "pstn:+8613800138000"),
        ("pstn:(010) 6552.1234", "pstn:01065521234"),
        ("pstn:*99#", "pstn:*99#"),
        ("sat:17400000001", "sat:17400000001"),
        ("pdt:group/1001", "pdt:group/1001"),
        ("pdt:UNIT/2001", "pdt:unit/2001"),
        ("lte:5550001", "lte:unit/5550001"),
        ("lte:group/777", "lte:group/777"),
        ("roip:hf-ch3", "roip:hf-ch3"),
        ("user:console-1", "user:console-1"),
        ("tel:+86-138-0013-8000", "pstn:+8613800138000"),
        ("tel:110;phone-context=+86", "pstn:110"),
        ("sip:alice@Example.org:5070;transport=tcp", "sip:alice@Example.org:5070;transport=tcp"),
        ("sips:bob@secure.example", "sips:bob@secure.example"),
        ("  sat:17400000001 ", "sat:17400000001"),
    ],
)
def test_addresses_normalise(text: str, canonical: str) -> None:
    assert str(parse_address(text)) == canonical


def test_address_fields() -> None:
    assert parse_address("pdt:group/1001") == Address(Scheme.PDT, "1001", CallKind.GROUP)
    sip = parse_address("sip:alice@example.org")
    assert sip.scheme is Scheme.SIP and sip.uri == SipUri("example.org", user="alice")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty address"),
        (
            "13800138000",
            "address '13800138000' has no scheme (expected one of pstn:, sat:, "
            "pdt:, lte:, roip:, sip:, sips:, tel:, user:)",
        ),
        (
            "fax:123",
            "unknown address scheme 'fax:' (expected one of pstn:, sat:, pdt:, lte:, "
            "roip:, sip:, sips:, tel:, user:)",
        ),
        ("pstn:", "empty PSTN number in 'pstn:'"),
        ("pstn:+", "bad PSTN number '+': no digits after '+'"),
        (
            "pstn:138x",
            "bad PSTN number '138x': character 'x' not allowed (digits, '*', '#', a leading '+')",
        ),
        ("pstn:86+1", "bad PSTN number '86+1': '+' may only come first"),
        ("pstn:+86*1", "bad PSTN number '+86*1': a '+' number has digits only"),
        (
            "pstn:+8613800138000123",
            "bad PSTN number '+8613800138000123': a '+' number has at most 15 digits",
        ),
        (
            "sat:1740#1",
            "bad satellite number '1740#1': character '#' not allowed (digits, a leading '+')",
        ),
        ("pdt:1001", "bad PDT address 'pdt:1001': expected pdt:group/<id> or pdt:unit/<id>"),
        ("pdt:grp/1001", "bad PDT address 'pdt:grp/1001': 'grp' is not 'group' or 'unit'"),
        ("pdt:group/", "bad PDT address 'pdt:group/': id '' must be 1-16 digits"),
        ("lte:group/A1", "bad LTE address 'lte:group/A1': id 'A1' must be 1-16 digits"),
        ("roip:-x", "bad radio channel '-x' in 'roip:-x': letters, digits, '_.-'"),
        ("user:a b", "bad user name 'a b' in 'user:a b': letters, digits, '_.-+'"),
        ("sip:@host", "bad SIP URI 'sip:@host': empty user before '@'"),
        ("tel:+86;ext=12", "cannot dial 'tel:+86;ext=12': tel parameter 'ext' is not supported"),
        ("tel:+86ab", "cannot dial 'tel:+86ab': the number has letters"),
        ("tel:", "bad tel URI 'tel:': bad number ''"),
        ("pstn:" + "1" * 600, "address longer than 512 characters"),
    ],
)
def test_bad_addresses_say_why(text: str, reason: str) -> None:
    with pytest.raises(AddressError) as caught:
        parse_address(text)
    assert caught.value.reason == reason
    assert caught.value.address == text


# -- resolution ------------------------------------------------------------------------------


def test_pstn_prefers_the_local_gateway_and_fails_over_to_the_carrier(plan: Dialplan) -> None:
    found = plan.resolve("pstn:+8613800138000")
    assert uris(found) == [
        ("pstn-local", "sip:013800138000@10.0.0.5:5070;user=phone"),
        ("pstn-carrier", "sip:+8613800138000@ims.carrier.cn;user=phone;transport=tcp"),
    ]
    assert found[0].destination == ("10.0.0.5", 5070) and found[0].transport == "udp"
    assert found[1].destination == ("192.0.2.7", 5060) and found[1].transport == "tcp"
    # a tel: URI is the same PSTN number
    assert uris(plan.resolve("tel:+86-138-0013-8000")) == uris(found)


def test_numbers_outside_a_prefix_go_to_the_catch_all(plan: Dialplan) -> None:
    assert uris(plan.resolve("pstn:+12125550100")) == [
        ("pstn-carrier", "sip:+12125550100@ims.carrier.cn;user=phone;transport=tcp")
    ]
    assert uris(plan.resolve("pstn:119")) == [
        ("pstn-local", "sip:119@10.0.0.5:5070;user=phone"),
        ("pstn-carrier", "sip:119@ims.carrier.cn;user=phone;transport=tcp"),
    ]


def test_hash_is_escaped_in_the_request_uri(plan: Dialplan) -> None:
    found = plan.resolve("pstn:*99#")
    assert str(found[0].request_uri) == "sip:*99%23@ims.carrier.cn;user=phone;transport=tcp"


def test_satellite_number_goes_to_the_satellite_gateway(plan: Dialplan) -> None:
    (only,) = plan.resolve("sat:17400000001")
    assert (only.trunk, str(only.request_uri)) == (
        "tiantong",
        "sip:17400000001@10.0.1.9;user=phone",
    )
    assert only.codecs == ("PCMA",)


def test_pdt_group_and_unit_carry_the_call_type(plan: Dialplan) -> None:
    assert uris(plan.resolve("pdt:group/1001")) == [
        ("pdt-1", "sip:1001@10.0.2.1;call-type=group"),
        ("pdt-2", "sip:91001@10.0.2.2"),
    ]
    assert plan.resolve("pdt:group/1001")[1].headers == (("X-PDT-Call", "group;id=91001"),)
    # pdt-2 serves groups only
    assert uris(plan.resolve("pdt:unit/2001")) == [("pdt-1", "sip:2001@10.0.2.1;call-type=unit")]


def test_lte_and_radio_channels(plan: Dialplan) -> None:
    assert uris(plan.resolve("lte:5550001")) == [
        ("lte", "sip:5550001@10.0.3.1:5062;call-type=unit")
    ]
    assert uris(plan.resolve("roip:hf-ch3")) == [("hf-gw", "sip:hf-ch3@10.0.4.1")]


def test_sip_uris_go_through_the_peer_direct_or_local(plan: Dialplan) -> None:
    (peer,) = plan.resolve("sip:dispatch@ops.county.example")
    assert (peer.trunk, peer.destination, peer.transport) == (
        "county-hub",
        ("hub.county.example", 5060),
        "tls",
    )
    assert str(peer.request_uri) == "sip:dispatch@ops.county.example"
    (direct,) = plan.resolve("sip:bob@192.0.2.50:5080;transport=tcp")
    assert (direct.trunk, direct.destination, direct.transport) == (
        None,
        ("192.0.2.50", 5080),
        "tcp",
    )
    (secure,) = plan.resolve("sips:carol@[2001:db8::1]")
    assert (secure.destination, secure.transport) == (("2001:db8::1", 5061), "tls")
    (local,) = plan.resolve("sip:alice@centre.example")
    assert (local.trunk, local.destination, str(local.request_uri)) == (
        None,
        None,
        "sip:alice@centre.example",
    )
    (by_host,) = plan.resolve("sip:console-1@127.0.0.1:5060")
    assert str(by_host.request_uri) == "sip:console-1@centre.example"


def test_local_users(plan: Dialplan) -> None:
    (alice,) = plan.resolve("user:alice")
    assert (alice.trunk, alice.destination, str(alice.request_uri)) == (
        None,
        None,
        "sip:alice@centre.example",
    )
    with pytest.raises(NoRouteError, match="no SIP user 'mallory' on this hub"):
        plan.resolve("user:mallory")
    with pytest.raises(NoRouteError, match="names this hub but no user"):
        plan.resolve("sip:centre.example")


def test_unserved_addresses_say_why() -> None:
    plan = Dialplan([TRUNKS[0]], domain="centre.example")
    with pytest.raises(NoRouteError) as caught:
        plan.resolve("sat:17400000001")
    assert caught.value.reason == "no route to 'sat:17400000001': no trunk serves sat:"
    with pytest.raises(NoRouteError, match="no trunk serves pdt group calls"):
        plan.resolve("pdt:group/1")


def test_a_rule_that_strips_the_whole_number_is_skipped_with_its_reason() -> None:
    greedy = trunk(
        id="greedy", type="pstn-gateway", host="10.9.9.9", dialplan=[{"scheme": "pstn", "strip": 5}]
    )
    plan = Dialplan([greedy, TRUNKS[1]], domain="centre.example")
    assert uris(plan.resolve("pstn:110")) == [
        ("pstn-carrier", "sip:110@ims.carrier.cn;user=phone;transport=tcp")
    ]
    with pytest.raises(NoRouteError, match="trunk 'greedy': strip 5 leaves no number"):
        Dialplan([greedy], domain="x").resolve("pstn:110")


def test_priority_then_longest_prefix_then_file_order() -> None:
    def gw(name: str, prefixes: list[str], priority: int) -> Trunk:
        rule = {"scheme": "pstn", "prefixes": prefixes, "priority": priority}
        return trunk(id=name, type="pstn-gateway", host="10.0.0.1", dialplan=[rule])

    plan = Dialplan(
        [
            gw("a", [], 50),
            gw("b", ["+86"], 50),
            gw("c", ["+86138"], 50),
            gw("d", [], 10),
            gw("e", ["+1"], 1),
        ],
        domain="x",
    )
    assert [c.trunk for c in plan.resolve("pstn:+8613800138000")] == ["d", "c", "b", "a"]


def test_endpoints_expand_to_their_routes_in_order(plan: Dialplan) -> None:
    found = plan.resolve_endpoint("duty-officer")
    assert [(c.route, c.trunk) for c in found] == [
        (0, "pstn-local"),
        (0, "pstn-carrier"),
        (1, "pdt-1"),
        (2, "tiantong"),
    ]
    assert [str(c.address) for c in found][::2] == ["pstn:+8613800138000", "pdt:unit/2001"]


def test_unroutable_routes_are_skipped_and_reported() -> None:
    plan = Dialplan(
        [TRUNKS[2]],
        domain="centre.example",
        endpoints={"duty-officer": ENDPOINTS["duty-officer"], "field-team": ["lte:group/7"]},
    )
    assert [c.trunk for c in plan.resolve_endpoint("duty-officer")] == ["tiantong"]
    with pytest.raises(NoRouteError) as caught:
        plan.resolve_endpoint("field-team")
    assert caught.value.reason == (
        "endpoint 'field-team' has no usable route: no route to 'lte:group/7': "
        "no trunk serves lte group calls"
    )
    with pytest.raises(NoRouteError, match="unknown endpoint 'ghost'"):
        plan.resolve_endpoint("ghost")
    assert plan.unroutable() == [
        "endpoint 'duty-officer': no route to 'pstn:+8613800138000': no trunk serves pstn:",
        "endpoint 'duty-officer': no route to 'pdt:unit/2001': no trunk serves pdt unit calls",
        "endpoint 'field-team': no route to 'lte:group/7': no trunk serves lte group calls",
    ]


# -- trunk models ----------------------------------------------------------------------------


def test_trunk_defaults_and_registration_shorthand() -> None:
    sat = trunk(
        id="t",
        type="satellite-gateway",
        host="gw.example",
        username="centre",
        password="pw",
        registration=True,
    )
    assert sat.registration is not None and sat.registration.expiry == 3600
    assert sat.register_username == "centre"
    assert sat.register_password is not None and sat.register_password.get_secret_value() == "pw"
    assert [r.scheme for r in sat.rules] == [Scheme.SAT]
    assert trunk(id="t", type="pstn-gateway", host="h", registration=False).registration is None
    assert trunk(id="p", type="sip-peer", host="peer.example").rules[0].domains == ["peer.example"]
    assert trunk(id="n", type="pstn-gateway", host="h", dialplan=[]).rules == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"registration": {"expiry": 600}}, "registration needs a username"),
        ({"dialplan": [{"scheme": "pstn", "kinds": ["group"]}]}, "'kinds' applies to pdt and lte"),
        ({"dialplan": [{"scheme": "sip"}]}, "a sip rule needs 'domains'"),
        ({"dialplan": [{"scheme": "pstn", "domains": ["a.b"]}]}, "'domains' applies to sip"),
        ({"dialplan": [{"scheme": "user"}]}, "'user' addresses are local registrations"),
        ({"dialplan": [{"scheme": "pstn", "prefixes": ["+86-10"]}]}, "bad prefix '+86-10'"),
        (
            {"dialplan": [{"scheme": "pdt", "params": {"t": "{type}"}}]},
            "unknown placeholder {type} (legal: {kind}, {number}, {scheme})",
        ),
        (
            {"dialplan": [{"scheme": "pdt", "headers": {"Via": "x"}}]},
            "header 'Via' is set by the SIP stack",
        ),
        ({"dialplan": [{"scheme": "pdt", "params": {"a b": "x"}}]}, "bad URI parameter name"),
        ({"codecs": ["PCMA", "PCMA"]}, "a codec is listed twice"),
        ({"host": "bad host"}, "not an IP address or host name: 'bad host'"),
    ],
)
def test_bad_trunks_say_why(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        trunk(**{"id": "t", "type": "pstn-gateway", "host": "10.0.0.1", **fields})
    assert message in str(caught.value)


# -- properties ------------------------------------------------------------------------------

digits = st.text("0123456789", min_size=1, max_size=14)
addresses = st.one_of(
    digits.map(lambda d: f"pstn:+{d}"),
    st.text("0123456789*#", min_size=1, max_size=30).map(lambda d: f"pstn:{d}"),
    digits.map(lambda d: f"sat:{d}"),
    st.tuples(st.sampled_from(["pdt", "lte"]), st.sampled_from(["group", "unit"]), digits).map(
        lambda t: f"{t[0]}:{t[1]}/{t[2]}"
    ),
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,20}", fullmatch=True).map(lambda c: f"roip:{c}"),
    st.from_regex(r"[a-z][a-z0-9]{0,10}", fullmatch=True).map(lambda u: f"sip:{u}@h.example"),
)


@given(addresses)
def test_canonical_form_round_trips(text: str) -> None:
    address = parse_address(text)
    assert parse_address(str(address)) == address


@given(st.text(max_size=80))
def test_any_text_parses_or_raises_address_error(text: str) -> None:
    try:
        address = parse_address(text)
    except AddressError as err:
        assert err.reason
    else:
        assert parse_address(str(address)) == address


rules = st.fixed_dictionaries(
    {
        "scheme": st.just("pstn"),
        "prefixes": st.lists(
            st.text("+0123456789", min_size=1, max_size=3).filter(lambda p: "+" not in p[1:]),
            max_size=2,
        ),
        "strip": st.integers(0, 4),
        "add": st.text("0123456789*#", max_size=3),
        "priority": st.integers(0, 3),
    }
)


@given(st.lists(rules, min_size=1, max_size=4), st.text("0123456789*#", min_size=1, max_size=12))
def test_every_candidate_is_a_valid_request_uri(
    rule_list: list[dict[str, Any]], number: str
) -> None:
    trunks = [
        trunk(id=f"gw{i}", type="pstn-gateway", host=f"10.0.0.{i}", port=5060 + i, dialplan=[r])
        for i, r in enumerate(rule_list)
    ]
    try:
        found = Dialplan(trunks, domain="x").resolve(f"pstn:{number}")
    except NoRouteError:
        return
    assert len({c.trunk for c in found}) == len(found)
    by_trunk = {t.id: t.rules[0] for t in trunks}
    priorities = [by_trunk[c.trunk].priority for c in found if c.trunk]
    assert priorities == sorted(priorities)
    for candidate in found:
        assert candidate.trunk is not None
        rule = by_trunk[candidate.trunk]
        assert not rule.prefixes or any(number.startswith(p) for p in rule.prefixes)
        reparsed = SipUri.parse(str(candidate.request_uri))
        assert reparsed == candidate.request_uri
        assert urllib.parse.unquote(reparsed.user or "") == rule.add + number[rule.strip :]
