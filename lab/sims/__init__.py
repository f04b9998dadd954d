"""The bench's device simulators; importing this package registers them."""

from lab.sims import extron_sis, kenwood_cat, ups_mib

__all__ = ["extron_sis", "kenwood_cat", "ups_mib"]
