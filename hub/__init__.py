"""The cchub process: site file, event bus, store, API, auth and CLI."""

__version__ = "0.1.0"
