"""The bench's device simulators; importing this package registers them."""

from lab.sims import (
    declarative_ascii,
    declarative_hex,
    extron_sis,
    kenwood_cat,
    kramer_p3000,
    nut,
    pjlink,
    pstn_gateway,
    sip_phone,
    ups_mib,
    videowall_eventmaster,
    visca,
)

__all__ = [
    "declarative_ascii",
    "declarative_hex",
    "extron_sis",
    "kenwood_cat",
    "kramer_p3000",
    "nut",
    "pjlink",
    "pstn_gateway",
    "sip_phone",
    "ups_mib",
    "videowall_eventmaster",
    "visca",
]
