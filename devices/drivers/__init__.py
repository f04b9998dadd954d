"""Packaged device drivers; importing this package registers them."""

from devices.drivers import (
    declarative,
    extron_sis,
    kenwood_cat,
    kramer_p3000,
    nut,
    pjlink,
    ups_mib,
    videowall_eventmaster,
    visca,
)

__all__ = [
    "declarative",
    "extron_sis",
    "kenwood_cat",
    "kramer_p3000",
    "nut",
    "pjlink",
    "ups_mib",
    "videowall_eventmaster",
    "visca",
]
