"""Pure rate-limit bookkeeping: token buckets and an unknown-code lockout, clock injected.

Both live in the process: an instance admits its own share, so N instances behind a
load balancer admit up to N times the configured rate (the README says so). They hold
one small entry per key or client address, and forget idle ones, so a flood of
made-up keys or addresses cannot grow them without bound.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

Clock = Callable[[], float]


@dataclass(frozen=True)
class Rate:
    """`per_second` sustained, up to `burst` at once."""

    per_second: float
    burst: int


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass
class TokenBuckets:
    """One token bucket per name (an API key, a client address) at the same `rate`."""

    rate: Rate
    clock: Clock = time.monotonic
    max_entries: int = 100_000
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def _refilled(self, name: str) -> _Bucket:
        now = self.clock()
        bucket = self._buckets.get(name)
        if bucket is None:
            self._make_room(now)
            bucket = self._buckets[name] = _Bucket(float(self.rate.burst), now)
            return bucket
        elapsed = max(now - bucket.updated, 0.0)
        bucket.tokens = min(float(self.rate.burst), bucket.tokens + elapsed * self.rate.per_second)
        bucket.updated = now
        return bucket

    def _make_room(self, now: float) -> None:
        """Drop full buckets (they are the same as no bucket), then the oldest."""
        if len(self._buckets) < self.max_entries:
            return
        refill = self.rate.burst / self.rate.per_second
        self._buckets = {n: b for n, b in self._buckets.items() if now - b.updated < refill}
        while len(self._buckets) >= self.max_entries:
            del self._buckets[next(iter(self._buckets))]

    def take(self, name: str) -> float:
        """Spend one token: 0.0 when allowed, else the seconds until one is available."""
        bucket = self._refilled(name)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate.per_second

    def empty_for(self, name: str) -> float:
        """Seconds until `name` could spend a token (0.0 when it can now); spends nothing."""
        if name not in self._buckets:
            return 0.0
        bucket = self._refilled(name)
        return 0.0 if bucket.tokens >= 1.0 else (1.0 - bucket.tokens) / self.rate.per_second


def retry_after(seconds: float) -> str:
    """A `Retry-After` value: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(seconds)))


@dataclass
class UnknownCodeLockout:
    """`limit` misses within `window` seconds lock a key out for `lockout` seconds."""

    limit: int
    window: float
    lockout: float
    clock: Clock = time.monotonic
    max_entries: int = 100_000
    _misses: dict[str, deque[float]] = field(default_factory=dict)
    _locked_until: dict[str, float] = field(default_factory=dict)

    def locked_for(self, key: str) -> float:
        """Seconds this key stays locked out; 0.0 when it may look codes up."""
        until = self._locked_until.get(key)
        if until is None:
            return 0.0
        remaining = until - self.clock()
        if remaining > 0:
            return remaining
        del self._locked_until[key]
        return 0.0

    def record_miss(self, key: str) -> float:
        """Count an unknown code; the lockout it starts (seconds), or 0.0."""
        now = self.clock()
        misses = self._misses.get(key)
        if misses is None:
            if len(self._misses) >= self.max_entries:
                self._forget_stale(now)
            misses = self._misses[key] = deque()
        misses.append(now)
        while misses and misses[0] <= now - self.window:
            misses.popleft()
        if len(misses) < self.limit:
            return 0.0
        misses.clear()
        self._locked_until[key] = now + self.lockout
        return self.lockout

    def _forget_stale(self, now: float) -> None:
        self._misses = {k: m for k, m in self._misses.items() if m and m[-1] > now - self.window}
        while len(self._misses) >= self.max_entries:
            del self._misses[next(iter(self._misses))]
