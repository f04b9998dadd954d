"""SIP signalling written here, sans-IO, with asyncio transports."""
