"""Loading the C codec libraries (Debian libopus0, libspandsp2) once, with a clear error."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

from media.errors import CodecError


@functools.cache
def load(name: str, soname: str, package: str) -> ctypes.CDLL:
    """The library ``soname`` (falling back to ``find_library(name)``); CodecError if absent."""
    for candidate in (soname, ctypes.util.find_library(name)):
        if not candidate:
            continue
        try:
            return ctypes.CDLL(candidate)
        except OSError:
            continue
    raise CodecError(f"{soname} not found: install the Debian package {package}")
