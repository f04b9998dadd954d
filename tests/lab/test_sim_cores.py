"""The simulators' sans-IO pieces: SNMP BER bytes, the CAT and SIS framers, the UPS recording."""

from __future__ import annotations

import contextlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lab.sims.extron_sis import ExtronMatrix, MatrixState, SisFramer
from lab.sims.kenwood_cat import OVERFLOW, CatFramer, CatState, KenwoodRadio
from lab.sims.ups_recording import UpsState, render
from lab.snmpwire import ErrorStatus, encode_get, error_status_of, request_id_of, with_error_status

# SNMPv2c GetRequest, community "public", request-id 1, for sysName.0 (1.3.6.1.2.1.1.5.0)
GET_SYSNAME = bytes.fromhex(
    "302602010104067075626c6963a019020101020100020100300e300c06082b060102010105000500"
)


def test_get_request_is_the_exact_ber() -> None:
    assert encode_get("public", "1.3.6.1.2.1.1.5.0", 1) == GET_SYSNAME
    assert request_id_of(GET_SYSNAME) == 1


def test_error_status_is_patched_in_place() -> None:
    patched = with_error_status(GET_SYSNAME, ErrorStatus.genErr)
    assert error_status_of(patched) == 5 and len(patched) == len(GET_SYSNAME)
    assert patched[:17] == GET_SYSNAME[:17]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "truncated BER header at offset 0"),
        (b"\x04\x00", "not an SNMP message (expected SEQUENCE)"),
        (GET_SYSNAME[:20], "BER value at offset 0 runs past the end"),
    ],
)
def test_malformed_datagrams_raise_value_error(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        request_id_of(data)


@given(st.binary(max_size=80))
def test_ber_reader_raises_only_value_error(data: bytes) -> None:
    with contextlib.suppress(ValueError):
        with_error_status(data, ErrorStatus.noSuchName)


@given(st.binary(max_size=200))
def test_framers_never_raise(data: bytes) -> None:
    radio = KenwoodRadio(CatState())
    for command in CatFramer().feed(data):
        if command is not None and command is not OVERFLOW:
            assert all(reply.endswith(";") for reply in radio.handle(command))
    matrix = ExtronMatrix(MatrixState())
    for command in SisFramer().feed(data.decode("latin-1")):
        assert matrix.handle(command)


def test_sis_framer_splits_on_command_characters() -> None:
    assert SisFramer().feed("1*3!\r\n3!I\x1bZXXX\r") == ["1*3!", "3!", "I", "\x1bZXXX"]


def test_recording_follows_the_state_and_stays_sorted() -> None:
    text = render(UpsState(output_source="battery", alarms=["on_battery"]), 4200)
    lines = text.splitlines()
    assert "1.3.6.1.2.1.33.1.4.1.0|2|5" in lines
    assert "1.3.6.1.2.1.33.1.6.1.0|66|1" in lines
    assert "1.3.6.1.2.1.33.1.6.2.1.2.1|6|1.3.6.1.2.1.33.1.6.3.2" in lines
    assert "1.3.6.1.2.1.1.3.0|67|4200" in lines
    oids = [tuple(int(p) for p in line.split("|")[0].split(".")) for line in lines]
    assert oids == sorted(oids)
