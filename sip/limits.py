"""Flood bounds for the SIP stack, sans-IO: a token bucket per source with a bounded table."""

from __future__ import annotations


class RateLimiter:
    """``rate`` messages per second per key, bursts up to ``burst``; at most ``max_keys``
    keys are tracked (idle ones are forgotten first, so spoofed sources cannot grow it)."""

    def __init__(self, rate: float, burst: float, *, max_keys: int = 10_000) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = float(burst)
        self.max_keys = max_keys
        self._buckets: dict[str, list[float]] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def allow(self, key: str, now: float) -> bool:
        """Take one token for ``key``; False when its bucket is empty."""
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._evict(now)
            self._buckets[key] = [self.burst - 1.0, now]
            return True
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens < 1.0:
            bucket[0] = tokens
            return False
        bucket[0] = tokens - 1.0
        return True

    def _evict(self, now: float) -> None:
        """Forget full (idle) buckets; if none is idle, the oldest eighth of the table."""
        full = [k for k, (tokens, last) in self._buckets.items()
                if tokens + (now - last) * self.rate >= self.burst]  # fmt: skip
        if not full:
            full = list(self._buckets)[: max(1, self.max_keys // 8)]
        for key in full:
            del self._buckets[key]
