"""
Muted users per activity: a muted user can watch but `Message` is refused.

Cluster-wide in Redis: `live:mutes:<activity>` HASH user -> until (ms, or 0
for "until unmuted"). Expiry is checked against the injected clock; expired
entries are pruned by `list` in one script (a fresh mute written meanwhile is
never removed by a stale read). Removing the activity removes its list.
"""

from __future__ import annotations

from heihei.live.activities import mutes_key
from heihei.store.scripts import Script

#: user ids longer than this are refused (WeChat openids are 28 characters)
MAX_USER_CHARS = 128

PRUNE_AND_LIST = Script("live_mutes_prune", r"""
-- KEYS: 1 mutes hash. ARGV: 1 now ms. Drops expired entries, returns the rest flat.
local now = tonumber(ARGV[1])
local all = redis.call('HGETALL', KEYS[1])
local out = {}
for i = 1, #all, 2 do
  local untilms = tonumber(all[i + 1])
  if untilms ~= 0 and untilms <= now then
    redis.call('HDEL', KEYS[1], all[i])
  else
    table.insert(out, all[i]); table.insert(out, all[i + 1])
  end
end
return out
""")


def muted_at(until_ms: int, now_ms: int) -> bool:
    """0 means until unmuted; otherwise muted strictly before `until_ms`."""
    return until_ms == 0 or now_ms < until_ms


class Mutes:
    def __init__(self, store, clock) -> None:
        self.store = store
        self.clock = clock

    def now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    async def mute(self, activity_id: str, user: str, duration_s: float | None = None) -> int | None:
        """Mute `user` in the activity, for `duration_s` or until unmuted; returns the end (ms) or None."""
        until = 0 if duration_s is None else self.now_ms() + max(1, int(duration_s * 1000))
        await self.store.hset(mutes_key(activity_id), user, str(until))
        return until or None

    async def unmute(self, activity_id: str, user: str) -> bool:
        return bool(await self.store.hdel(mutes_key(activity_id), user))

    async def is_muted(self, activity_id: str, user: str) -> bool:
        value = await self.store.hget(mutes_key(activity_id), user)
        return value is not None and muted_at(int(value), self.now_ms())

    async def list(self, activity_id: str) -> dict[str, int | None]:
        """Muted users -> end of the mute in ms (None: until unmuted)."""
        flat = await PRUNE_AND_LIST(self.store, [mutes_key(activity_id)], [self.now_ms()])
        return {flat[i]: (int(flat[i + 1]) or None) for i in range(0, len(flat), 2)}
