"""SNMP security shared by the UPS driver, the pollers, the trap receiver and the hub's
agent: USM protocol names as the site file spells them, credentials for a transport, and
what to check when an agent's USM refuses us."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pysnmp.hlapi.v3arch.asyncio import (  # type: ignore[import-untyped]
    CommunityData,
    UsmUserData,
    usmAesBlumenthalCfb192Protocol,
    usmAesBlumenthalCfb256Protocol,
    usmAesCfb128Protocol,
    usmAesCfb192Protocol,
    usmAesCfb256Protocol,
    usmDESPrivProtocol,
    usmHMAC128SHA224AuthProtocol,
    usmHMAC192SHA256AuthProtocol,
    usmHMAC256SHA384AuthProtocol,
    usmHMAC384SHA512AuthProtocol,
    usmHMACMD5AuthProtocol,
    usmHMACSHAAuthProtocol,
)
from pysnmp.proto import errind  # type: ignore[import-untyped]

from devices.config import SnmpTransport

AUTH_PROTOCOLS: Mapping[str, Any] = {
    "MD5": usmHMACMD5AuthProtocol,
    "SHA": usmHMACSHAAuthProtocol,
    "SHA-224": usmHMAC128SHA224AuthProtocol,
    "SHA-256": usmHMAC192SHA256AuthProtocol,
    "SHA-384": usmHMAC256SHA384AuthProtocol,
    "SHA-512": usmHMAC384SHA512AuthProtocol,
}
PRIV_PROTOCOLS: Mapping[str, Any] = {
    "DES": usmDESPrivProtocol,
    "AES": usmAesCfb128Protocol,
    "AES128": usmAesCfb128Protocol,
    "AES192": usmAesBlumenthalCfb192Protocol,  # key localisation as net-snmp does it
    "AES256": usmAesBlumenthalCfb256Protocol,
    "AES192C": usmAesCfb192Protocol,  # ... as Cisco does it (Reeder draft)
    "AES256C": usmAesCfb256Protocol,
}

# the agent's USM refused us: what to check in the site file
_AUTH_HINTS: tuple[tuple[type[Exception], str], ...] = (
    (errind.WrongDigest, "auth_key and auth_protocol"),
    (errind.AuthenticationFailure, "auth_key and auth_protocol"),
    (errind.AuthenticationError, "auth_key and auth_protocol"),
    (errind.DecryptionError, "priv_key and priv_protocol"),
    (errind.UnknownUserName, "user"),
    (errind.UnknownSecurityName, "user"),
    (errind.UnsupportedSecurityLevel, "security_level"),
    (errind.NotInTimeWindow, "the agent's clock and engine boots"),
    (errind.UnsupportedAuthProtocol, "auth_protocol"),
    (errind.UnsupportedPrivProtocol, "priv_protocol"),
    (errind.EncryptionError, "priv_protocol (is the cryptography package installed?)"),
)


def auth_hint(indication: object) -> str | None:
    """What to check when ``indication`` (pysnmp's error indication) is a USM refusal."""
    for kind, check in _AUTH_HINTS:
        if isinstance(indication, kind):
            return check
    return None


def snmp_credentials(transport: SnmpTransport) -> Any:
    """pysnmp's ``CommunityData`` (v1/v2c) or ``UsmUserData`` (v3) for ``transport``."""
    if transport.version != "3":
        community = transport.community.get_secret_value() if transport.community else "public"
        return CommunityData(community, mpModel=0 if transport.version == "1" else 1)
    level = transport.level
    kwargs: dict[str, Any] = {}
    if level != "noAuthNoPriv" and transport.auth_key is not None:
        kwargs["authKey"] = transport.auth_key.get_secret_value()
        kwargs["authProtocol"] = AUTH_PROTOCOLS[transport.auth_protocol or "SHA"]
    if level == "authPriv" and transport.priv_key is not None:
        kwargs["privKey"] = transport.priv_key.get_secret_value()
        kwargs["privProtocol"] = PRIV_PROTOCOLS[transport.priv_protocol or "AES128"]
    return UsmUserData(transport.user, **kwargs)
