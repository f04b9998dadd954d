"""Wire formats and framers, sans-IO, with thin asyncio clients."""
