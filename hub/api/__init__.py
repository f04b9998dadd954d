"""The REST + WebSocket API: an adapter on the bus and the store."""
