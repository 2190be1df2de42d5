"""
Timers held in Redis, so that any node can fire them.

A live's timers (the anchor's heart-beat expiry, a viewer's, the grace
period of a stopped stream, the longest pause) must survive the node that set
them: a node killed in the middle of a countdown must not leave a live stuck
in "playing". So a timer is a member of one sorted set whose score is its due
time (ms, from the injected clock), and every node's sweeper claims what is
due.

Claiming is a lease, not a removal: `claim` moves each due member's score to
`now + lease_ms` in one script and returns it with that score. The claimer
fires it and then `done(member, claim)` removes it, but only if the score is
still the claim (a heart-beat that re-armed the timer meanwhile moved it, and
wins; a claim score is half a millisecond off the whole-ms grid re-arms use,
so a re-arm to exactly `now + lease` is never mistaken for the claim). A node
that dies between claim and done leaves the member due again
when the lease ends, so another node fires it: timers fire at least once, and
what they do is idempotent (stopping a stopped live changes nothing).
"""

from __future__ import annotations

from heihei.store.scripts import Script

CLAIM = Script("heihei_deadlines_claim", r"""
-- KEYS: 1 the timers zset. ARGV: 1 now ms, 2 lease ms, 3 at most this many.
-- Returns {member, claim score, ..., the earliest due time left ('' when none)}: the due members are
-- leased to this caller.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
-- half a millisecond off the grid, so a re-arm (whole ms) can never land on the claim score by chance
local claim = tonumber(ARGV[1]) + tonumber(ARGV[2]) + 0.5
local out = {}
for i = 1, #due do
  redis.call('ZADD', KEYS[1], 'XX', claim, due[i])
  out[#out + 1] = due[i]
  out[#out + 1] = string.format('%.1f', claim)
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
out[#out + 1] = first[2] or ''
return out
""")

DONE = Script("heihei_deadlines_done", r"""
-- KEYS: 1 the timers zset. ARGV: 1 member, 2 the claim score. Removes it if it was not re-armed.
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 1
end
return 0
""")

STILL_CLAIMED = Script("heihei_deadlines_still", r"""
-- KEYS: 1 the timers zset. ARGV: 1 member, 2 the claim score. 1 if the claim still holds.
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then return 1 end
return 0
""")


class Deadlines:
    """Named timers in one sorted set (`key`), due at ms on the injected clock."""

    def __init__(self, store, clock, key: str, *, lease_s: float = 30.0) -> None:
        self.store = store
        self.clock = clock
        self.key = key
        self.lease_ms = int(lease_s * 1000)
        #: called with the due ms of every timer this node arms (its sweeper wakes for it)
        self.on_armed = None
        #: the earliest due time (ms) the last claim saw left in Redis, None when there was none
        self.next_due_ms: int | None = None

    def now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    async def set(self, member: str, due_ms: int) -> None:
        """Arm (or re-arm) `member` to fire at `due_ms`."""
        await self.store.zadd(self.key, int(due_ms), member)
        if self.on_armed is not None:
            self.on_armed(int(due_ms))

    async def cancel(self, *members: str) -> None:
        if members:
            await self.store.zrem(self.key, *members)

    async def due_at(self, member: str) -> int | None:
        score = await self.store.zscore(self.key, member)
        return None if score is None else int(float(score))

    async def claim(self, limit: int = 200) -> list[tuple[str, float]]:
        """The members due now, leased to this node: [(member, claim score)]. Also notes when the
        next one left is due (`next_due_ms`)."""
        flat = list(await CLAIM(self.store, [self.key], [self.now_ms(), self.lease_ms, limit]) or [""])
        last = flat.pop()
        self.next_due_ms = int(float(last)) if last not in ("", None) else None
        return [(flat[i], float(flat[i + 1])) for i in range(0, len(flat), 2)]

    async def still_claimed(self, member: str, claim: float) -> bool:
        """False when the timer was re-armed (a heart-beat arrived) or cancelled since the claim."""
        return bool(int(await STILL_CLAIMED(self.store, [self.key], [member, claim])))

    async def done(self, member: str, claim: float) -> bool:
        return bool(int(await DONE(self.store, [self.key], [member, claim])))
