"""
Shared policies: token-bucket rate limits and length caps.

Each protocol maps a refusal to its own error code. Rate limits are kept per
node in memory (a user's connection lives on one node; a user with devices on
two nodes gets each node's allowance), with a bounded number of buckets so a
flood of distinct ids cannot grow memory without limit.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

MAX_BUCKETS = 100_000


@dataclass(frozen=True)
class Rate:
    per_second: float
    burst: int


def refill(tokens: float, last_s: float, now_s: float, rate: Rate) -> float:
    """Tokens in a bucket at `now_s` (pure, so tests need no clock)."""
    return min(float(rate.burst), tokens + max(0.0, now_s - last_s) * rate.per_second)


class RateLimiter:
    def __init__(self, clock, max_buckets: int = MAX_BUCKETS) -> None:
        self.clock = clock
        self.max_buckets = max_buckets
        self._buckets: OrderedDict[tuple, tuple[float, float]] = OrderedDict()

    def allow(self, scope: tuple, rate: Rate, cost: float = 1.0) -> bool:
        """Take `cost` tokens from the bucket of `scope` if it has them."""
        now = self.clock.seconds()
        tokens, last = self._buckets.pop(scope, (float(rate.burst), now))
        tokens = refill(tokens, last, now, rate)
        allowed = tokens >= cost
        if allowed:
            tokens -= cost
        self._buckets[scope] = (tokens, now)
        while len(self._buckets) > self.max_buckets:
            self._buckets.popitem(last=False)
        return allowed


def too_long(text: str, max_chars: int) -> bool:
    """Length in characters (code points), so a CJK character counts as one."""
    return len(text) > max_chars
