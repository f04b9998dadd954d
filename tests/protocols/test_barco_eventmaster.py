"""Barco Event Master JSON-RPC: calls, replies and the guide's example responses."""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols import barco_eventmaster as em

DATA = Path(__file__).parent / "data" / "eventmaster"


def data(name: str) -> bytes:
    return (DATA / name).read_bytes()


def test_a_call_is_the_documented_json() -> None:
    method, params = em.activate_preset("Cameras", program=True)
    assert bytes(em.Request(method, params, "7")) == data("activate_preset_request.json")
    parsed = em.Request.parse(data("activate_preset_request.json"))
    assert parsed == em.Request("activatePreset", {"presetName": "Cameras", "type": 1}, "7")
    assert em.activate_preset("x", program=False)[1]["type"] == em.RECALL_PREVIEW


def test_calls_for_windows_are_change_content_on_one_layer() -> None:
    assert em.change_layer(0, 3, source=2, window=(10, 20, 300, 200), shown=True) == (
        "changeContent",
        {
            "id": 0,
            "Layers": [
                {
                    "id": 3,
                    "LastSrcIdx": 2,
                    "Window": {"HPos": 10, "VPos": 20, "HSize": 300, "VSize": 200},
                    "PgmMode": 1,
                    "PvwMode": 1,
                }
            ],
        },
    )
    assert em.change_layer(1, 0, shown=False)[1] == {
        "id": 1,
        "Layers": [{"id": 0, "PgmMode": 0, "PvwMode": 0}],
    }


def test_the_guides_example_responses_parse() -> None:
    presets = em.parse_presets(em.parse_response(data("list_presets_response.json"), "1234"))
    assert presets == [em.Preset(0, "Preset3.00", 3.0), em.Preset(1, "Preset4.00", 4.0)]
    screens = em.parse_destinations(
        em.parse_response(data("list_destinations_response.json"), "1234")
    )
    assert screens == [em.ScreenDestination(0, "Dest1", 3840, 1080, 1)]
    content = em.parse_content(em.parse_response(data("list_content_response.json"), "1234"))
    assert content == em.ScreenContent(
        0, "ScreenDest1", (em.Layer(0, 0, 0, 0, 400, 300, program=True, preview=False),)
    )
    sources = em.parse_sources(em.parse_response(data("list_sources_response.json"), "1234"))
    assert sources == [em.Source(0, "InSource1")]
    assert em.parse_response(data("activate_preset_ok.json"), "7") is None


def test_refusals_carry_the_processors_code() -> None:
    with pytest.raises(em.EventMasterError) as refused:
        em.parse_response(data("refused_response.json"), "8")
    assert (refused.value.code, refused.value.reason) == ("-1", "Preset not found")
    with pytest.raises(em.EventMasterError) as unknown:
        em.parse_response(data("method_not_found.json"), "9")
    assert (unknown.value.code, unknown.value.reason) == ("-32601", "Method not found")
    no_reason = json.dumps({"jsonrpc": "2.0", "result": {"success": 3}, "id": "1"}).encode()
    with pytest.raises(em.EventMasterError, match=r"^3: the processor refused$"):
        em.parse_response(no_reason, "1")


@pytest.mark.parametrize(
    ("body", "request_id", "message"),
    [
        (data("truncated_response.json"), "1", "reply is not JSON: "),
        (b'{"result": {"success": 0}, "id": "1"}', "1", "reply is not JSON-RPC 2.0"),
        (data("activate_preset_ok.json"), "8", "reply is for call '7', not '8'"),
        (b'{"jsonrpc": "2.0", "id": "1"}', "1", "reply has no result.success"),
        (
            b'{"jsonrpc": "2.0", "result": {"success": "0"}, "id": "1"}',
            "1",
            "result.success is not a number: '0'",
        ),
        (b'{"jsonrpc": "2.0", "error": "boom", "id": "1"}', "1", "malformed JSON-RPC error"),
    ],
)
def test_malformed_replies_are_value_errors(body: bytes, request_id: str, message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)) as excinfo:
        em.parse_response(body, request_id)
    assert not isinstance(excinfo.value, em.EventMasterError)


def test_malformed_calls_are_json_rpc_errors() -> None:
    for body, code in ((b"{", em.PARSE_ERROR), (b"[]", em.INVALID_REQUEST)):
        with pytest.raises(em.EventMasterError) as excinfo:
            em.Request.parse(body)
        assert excinfo.value.code == str(code)
    with pytest.raises(em.EventMasterError, match="Invalid params"):
        em.Request.parse(b'{"method": "listContent", "params": [0]}')


def test_unexpected_response_shapes_are_value_errors() -> None:
    with pytest.raises(ValueError, match="listPresets: expected a list of objects"):
        em.parse_presets({"id": 0})
    with pytest.raises(ValueError, match="'HSize' is not a number: 'wide'"):
        em.parse_content({"id": 0, "Layers": [{"id": 1, "HSize": "wide"}]})
    with pytest.raises(ValueError, match="presetSno is not a number"):
        em.parse_presets([{"id": 0, "presetSno": None}])


@given(st.binary(max_size=200))
def test_reply_parser_raises_only_its_declared_errors(body: bytes) -> None:
    with contextlib.suppress(ValueError, em.EventMasterError):
        em.parse_response(body, "1")


@given(st.recursive(st.none() | st.integers() | st.text(max_size=5), st.lists, max_leaves=8))
def test_response_views_raise_only_value_error(response: object) -> None:
    for parse in (em.parse_presets, em.parse_sources, em.parse_content, em.parse_destinations):
        with contextlib.suppress(ValueError):
            parse(response)
