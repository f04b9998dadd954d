"""Packaged device drivers; importing this package registers them."""

from devices.drivers import extron_sis, kenwood_cat, ups_mib

__all__ = ["extron_sis", "kenwood_cat", "ups_mib"]
