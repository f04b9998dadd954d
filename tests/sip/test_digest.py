"""Digest authentication: the RFC worked examples, the server's nonces and replay check,
and the client's choice of challenge."""

from __future__ import annotations

import pytest

from sip.digest import (
    Algorithm,
    AuthOutcome,
    Challenge,
    Credentials,
    DigestClient,
    DigestCredentials,
    DigestServer,
    digest_response,
    parse_auth_params,
    replace_credentials,
)
from sip.errors import SipParseError
from sip.message import Header, SipRequest, SipResponse, create_response, parse_message

# RFC 2617 section 3.5 (the HTTP example; the computation is the same for SIP).
RFC2617_AUTHORIZATION = (
    'Digest username="Mufasa", realm="testrealm@host.com", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, '
    'nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", '
    'opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)
# RFC 7616 section 3.9.1, which RFC 8760 (SIP digest with SHA-256) takes its algorithms from.
RFC7616 = {
    "username": "Mufasa",
    "realm": "http-auth@example.org",
    "password": "Circle of Life",
    "method": "GET",
    "uri": "/dir/index.html",
    "nonce": "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
    "qop": "auth",
    "nc": "00000001",
    "cnonce": "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
}


def register(extra: str = "", uri: str = "sip:cchub.local") -> SipRequest:
    text = (
        f"REGISTER {uri} SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bKr1\r\n"
        "To: <sip:alice@cchub.local>\r\n"
        "From: <sip:alice@cchub.local>;tag=f1\r\n"
        "Call-ID: reg-1\r\n"
        "CSeq: 1 REGISTER\r\n"
        f"{extra}"
        "Content-Length: 0\r\n\r\n"
    )
    message = parse_message(text.encode())
    assert isinstance(message, SipRequest)
    return message


def passwords(name: str) -> str | None:
    return {"alice": "wonderland"}.get(name)


def challenged(server: DigestServer, request: SipRequest, now: float = 1000.0) -> SipResponse:
    headers = server.challenge_headers(now=now)
    return create_response(request, 401, "Unauthorized", to_tag="t", headers=headers)


def test_rfc2617_worked_example() -> None:
    credentials = DigestCredentials.parse(RFC2617_AUTHORIZATION)
    assert credentials.username == "Mufasa" and credentials.nc == "00000001"
    assert credentials.opaque == "5ccc069c403ebaf9f0171e9517f40e41"
    computed = digest_response(
        algorithm=Algorithm.MD5,
        username="Mufasa",
        realm="testrealm@host.com",
        password="Circle Of Life",
        method="GET",
        uri=credentials.uri,
        nonce=credentials.nonce,
        qop="auth",
        nc=credentials.nc,
        cnonce=credentials.cnonce,
    )
    assert computed == credentials.response == "6629fae49393a05397450978507c4ef1"


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        (Algorithm.SHA256, "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
        (Algorithm.MD5, "8ca523f5e9506fed4657c9700eebdbec"),
    ],
)
def test_rfc7616_worked_example(algorithm: Algorithm, expected: str) -> None:
    assert digest_response(algorithm=algorithm, **RFC7616) == expected


def test_session_variants_hash_nonce_and_cnonce() -> None:
    plain = digest_response(algorithm=Algorithm.SHA256, **RFC7616)
    session = digest_response(algorithm=Algorithm.SHA256_SESS, **RFC7616)
    other_cnonce = digest_response(algorithm=Algorithm.SHA256_SESS, **{**RFC7616, "cnonce": "x"})
    assert len(session) == 64 and len({plain, session, other_cnonce}) == 3
    assert len(digest_response(algorithm=Algorithm.MD5_SESS, **RFC7616)) == 32


def test_challenge_round_trip() -> None:
    text = 'Digest realm="cchub.local", nonce="abc", algorithm=SHA-256, qop="auth", stale=true'
    challenge = Challenge.parse(text)
    assert challenge.algorithm is Algorithm.SHA256 and challenge.stale
    assert challenge.qop == ("auth",)
    assert Challenge.parse(str(challenge)) == challenge
    assert Challenge.parse('Digest realm="r", nonce="n"').algorithm is Algorithm.MD5


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('Basic realm="x"', "not a Digest challenge"),
        ('Digest realm="x"', "without realm or nonce"),
        ('Digest realm="x", nonce="n", algorithm=AKAv1-MD5', "unsupported digest algorithm"),
        ('Digest realm="x", nonce="n" nonce2="m"', "expected ','"),
        ('Digest realm="x, nonce="n"', "bad auth parameter"),
        ('Digest realm="x", realm="y", nonce="n"', "given twice"),
    ],
)
def test_malformed_challenges(text: str, error: str) -> None:
    with pytest.raises(SipParseError, match=error):
        Challenge.parse(text)


def test_auth_params_unquote_escapes() -> None:
    scheme, params = parse_auth_params(r'Digest username="a\"b", realm = "r" , qop=auth')
    assert scheme == "Digest" and params == {"username": 'a"b', "realm": "r", "qop": "auth"}


# -- server -------------------------------------------------------------------------------


def test_server_accepts_client_answer_and_refuses_replay() -> None:
    server = DigestServer("cchub.local", clock=lambda: 1000.0)
    client = DigestClient(Credentials("alice", "wonderland"))
    request = register()
    authorization = client.answer(request, challenged(server, request))
    assert [h.name for h in authorization] == ["Authorization"]
    signed = replace_credentials(request, authorization)
    result = server.verify(signed, passwords)
    assert result.ok and result.username == "alice"
    replayed = server.verify(signed, passwords)
    assert replayed.outcome is AuthOutcome.STALE and "replayed" in replayed.reason
    again = replace_credentials(request, client.preemptive(request))  # nc=00000002
    assert "nc=00000002" in (again.get("Authorization") or "")
    assert server.verify(again, passwords).ok


def test_server_outcomes() -> None:
    server = DigestServer("cchub.local", nonce_ttl=60, clock=lambda: 1000.0)
    request = register()
    assert server.verify(request, passwords).outcome is AuthOutcome.MISSING

    def answered(password: str, user: str = "alice", **change: object) -> SipRequest:
        client = DigestClient(Credentials(user, password))
        headers = client.answer(request, challenged(server, request, 1000.0))
        signed = replace_credentials(request, headers)
        value = signed.get("Authorization") or ""
        for old, new in change.items():
            value = value.replace(old.replace("_", "-"), str(new))
        return replace_credentials(request, [Header("Authorization", value)])

    assert server.verify(answered("wonderland"), passwords).ok
    wrong = server.verify(answered("guess"), passwords)
    assert wrong.outcome is AuthOutcome.REJECTED and wrong.reason == "wrong password"
    unknown = server.verify(answered("x", user="mallory"), passwords)
    assert unknown.outcome is AuthOutcome.REJECTED and "unknown user" in unknown.reason
    later = server.verify(answered("wonderland"), passwords, now=1000.0 + 61)
    assert later.outcome is AuthOutcome.STALE and later.reason == "nonce expired"
    no_qop = answered("wonderland", **{", qop=auth": ""})
    assert server.verify(no_qop, passwords).outcome is AuthOutcome.MALFORMED
    other_uri = answered("wonderland", **{'uri="sip:cchub.local"': 'uri="sip:other"'})
    assert "Request-URI" in server.verify(other_uri, passwords).reason
    bad = replace_credentials(request, [Header("Authorization", 'Digest username="alice"')])
    assert server.verify(bad, passwords).outcome is AuthOutcome.MALFORMED


def test_nonce_from_another_server_is_stale_not_rejected() -> None:
    mine = DigestServer("cchub.local", secret=b"1" * 32, clock=lambda: 1000.0)
    other = DigestServer("cchub.local", secret=b"2" * 32, clock=lambda: 1000.0)
    request = register()
    client = DigestClient(Credentials("alice", "wonderland"))
    signed = replace_credentials(request, client.answer(request, challenged(other, request)))
    result = mine.verify(signed, passwords)
    assert result.outcome is AuthOutcome.STALE and "not issued" in result.reason


def test_nonce_table_is_bounded() -> None:
    now = [1000.0]
    server = DigestServer("cchub.local", max_tracked_nonces=4, clock=lambda: now[0])
    request = register()
    signed: list[SipRequest] = []
    for step in range(10):
        now[0] = 1000.0 + step
        client = DigestClient(Credentials("alice", "wonderland"))
        answer = client.answer(request, challenged(server, request, now[0]))
        one = replace_credentials(request, answer)
        assert server.verify(one, passwords).ok
        signed.append(one)
    assert server.tracked_nonces <= 4
    # The oldest nonces were dropped from the table: they are stale now, not replayable.
    assert server.verify(signed[0], passwords).outcome is AuthOutcome.STALE


def test_only_offered_algorithms_are_accepted() -> None:
    server = DigestServer("cchub.local", algorithms=[Algorithm.SHA256], clock=lambda: 1000.0)
    md5_server = DigestServer("cchub.local", algorithms=[Algorithm.MD5], clock=lambda: 1000.0)
    request = register()
    client = DigestClient(Credentials("alice", "wonderland"))
    signed = replace_credentials(request, client.answer(request, challenged(md5_server, request)))
    assert "MD5 not offered" in server.verify(signed, passwords).reason


# -- client -------------------------------------------------------------------------------


def challenge_response(status: int, *challenges: str) -> SipResponse:
    name = "Proxy-Authenticate" if status == 407 else "WWW-Authenticate"
    return create_response(
        register(), status, "X", to_tag="t", headers=tuple(Header(name, c) for c in challenges)
    )


def test_client_picks_strongest_algorithm_whatever_the_order() -> None:
    response = challenge_response(
        401,
        'Digest realm="cchub.local", nonce="n1", algorithm=MD5, qop="auth"',
        'Digest realm="cchub.local", nonce="n2", algorithm=AKAv1-MD5, qop="auth"',
        'Digest realm="cchub.local", nonce="n3", algorithm=SHA-256, qop="auth"',
    )
    [header] = DigestClient(Credentials("alice", "pw")).answer(register(), response)
    credentials = DigestCredentials.parse(header.value)
    assert credentials.algorithm is Algorithm.SHA256 and credentials.nonce == "n3"
    assert credentials.qop == "auth" and credentials.nc == "00000001" and credentials.cnonce


def test_client_proxy_challenge_and_realm_filter() -> None:
    response = challenge_response(407, 'Digest realm="gw", nonce="n", qop="auth"')
    [header] = DigestClient(Credentials("a", "pw")).answer(register(), response)
    assert header.name == "Proxy-Authorization"
    assert DigestClient(Credentials("a", "pw", realm="other")).answer(register(), response) == []


def test_client_does_not_loop_on_refused_credentials_but_answers_stale() -> None:
    client = DigestClient(Credentials("alice", "pw"))
    request = register()
    first = challenge_response(401, 'Digest realm="r", nonce="n1", qop="auth"')
    signed = replace_credentials(request, client.answer(request, first))
    refused = challenge_response(401, 'Digest realm="r", nonce="n2", qop="auth"')
    assert client.answer(signed, refused) == []
    stale = challenge_response(401, 'Digest realm="r", nonce="n3", qop="auth", stale=true')
    [header] = client.answer(signed, stale)
    assert 'nonce="n3"' in header.value


def test_client_answers_rfc2069_challenge_without_qop() -> None:
    response = challenge_response(401, 'Digest realm="r", nonce="n"')
    [header] = DigestClient(Credentials("alice", "pw")).answer(register(), response)
    credentials = DigestCredentials.parse(header.value)
    assert credentials.qop is None and credentials.nc is None
    assert credentials.response == digest_response(
        algorithm=Algorithm.MD5, username="alice", realm="r", password="pw",
        method="REGISTER", uri="sip:cchub.local", nonce="n",
    )  # fmt: skip


def test_credentials_repr_hides_password() -> None:
    assert "pw-secret" not in repr(Credentials("alice", "pw-secret"))
