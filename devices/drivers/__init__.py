"""Packaged device drivers; importing this package registers them."""
