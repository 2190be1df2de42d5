"""
Storing a message: history, idempotency, inboxes and unread counters in one
atomic Redis step.

Layout (all keys from `heihei.store.keys`):
- `hist:<realm>:<conv>` ZSET, score = server id, member = entry `"<id>|<json>"`
- `lastid:<realm>:<conv>` the last server id given in the conversation
- `cid:<realm>:<conv>:<sender>:<client id>` the server id a client id got (TTL)
- `inbox:<realm>:<user>` ZSET of entries not yet written to the user, in arrival order
  (score = server id, raised past the newest entry when needed)
- `unread:<realm>:<user>` HASH conversation -> unread count

Server ids are `ms * 1024 + n`, assigned in the script so they strictly
increase within a conversation even when nodes' clocks disagree. They order a
conversation, give time-range queries a score range, and stay exact as Redis
scores (< 2^53).
"""

from __future__ import annotations

from dataclasses import dataclass

from heihei.core.model import Message, id_floor_for_ms
from heihei.store.keys import key
from heihei.store.scripts import Script

#: the store step, also the first part of `heihei.core.routing`'s scripts
STORE_MESSAGE_LUA = r"""
-- KEYS: 1 history, 2 last id, 3 client-id key, then n inbox keys, then n unread keys
-- ARGV: 1 now ms, 2 payload, 3 dedupe ttl s, 4 history max count, 5 history max age ms,
--       6 inbox max, 7 conversation, 8 n recipients, 9 '1' if the client id counts
local now = tonumber(ARGV[1])
if ARGV[9] == '1' then
  local existing = redis.call('GET', KEYS[3])
  if existing then
    local found = redis.call('ZRANGEBYSCORE', KEYS[1], existing, existing)
    return {0, existing, found[1] or ''}
  end
end
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local id = now * 1024
if id <= last then id = last + 1 end
local idstr = string.format('%d', id)
redis.call('SET', KEYS[2], idstr)
local entry = idstr .. '|' .. ARGV[2]
redis.call('ZADD', KEYS[1], idstr, entry)
local maxcount = tonumber(ARGV[4])
if maxcount > 0 then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(maxcount + 1)) end
local maxage = tonumber(ARGV[5])
if maxage > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%d', (now - maxage) * 1024))
end
if ARGV[9] == '1' then redis.call('SET', KEYS[3], idstr, 'EX', ARGV[3]) end
local n = tonumber(ARGV[8])
local inboxmax = tonumber(ARGV[6])
for i = 1, n do
  -- an inbox keeps arrival order across conversations: ids of two conversations
  -- stored in the same millisecond would otherwise interleave by chance
  local score = id
  local top = redis.call('ZREVRANGE', KEYS[3 + i], 0, 0, 'WITHSCORES')
  if top[2] and tonumber(top[2]) >= score then score = tonumber(top[2]) + 1 end
  redis.call('ZADD', KEYS[3 + i], string.format('%d', score), entry)
  if inboxmax > 0 then redis.call('ZREMRANGEBYRANK', KEYS[3 + i], 0, -(inboxmax + 1)) end
  redis.call('HINCRBY', KEYS[3 + n + i], ARGV[7], 1)
end
return {1, idstr, entry}
"""
STORE_MESSAGE = Script("store_message", STORE_MESSAGE_LUA)

REMOVE_FROM_HISTORY = Script("remove_from_history", r"""
-- KEYS: 1 history; ARGV: 1 server id. Returns the removed entry or false.
local found = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[1])
if found[1] then redis.call('ZREM', KEYS[1], found[1]); return found[1] end
return false
""")


TAKE_ENTRIES = Script("inbox_take", r"""
-- KEYS: 1 inbox; ARGV: entries. Returns the entries this call removed (a concurrent take gets the rest).
local out = {}
for i = 1, #ARGV do
  if redis.call('ZREM', KEYS[1], ARGV[i]) == 1 then table.insert(out, ARGV[i]) end
end
return out
""")


REMOVE_ENTRIES = Script("inbox_remove_many", r"""
-- KEYS: inboxes; ARGV: per inbox how many entries, then all the entries in that order.
-- (ZREM in chunks: Lua's unpack has a stack limit.) Returns how many entries it was given.
local at = #KEYS + 1
for k = 1, #KEYS do
  local last = at + tonumber(ARGV[k]) - 1
  while at <= last do
    local upto = math.min(at + 999, last)
    redis.call('ZREM', KEYS[k], unpack(ARGV, at, upto))
    at = upto + 1
  end
end
return at - #KEYS - 1
""")


@dataclass(frozen=True)
class Retention:
    max_count: int = 10000
    max_age_s: float = 0.0  # 0 = keep regardless of age
    dedupe_ttl_s: int = 86400
    inbox_max: int = 10000


@dataclass(frozen=True)
class Stored:
    message: Message
    duplicate: bool  # the client id was seen before: nothing new was stored


def history_key(realm: str, conversation: str) -> str:
    return key("hist", realm, conversation)


def inbox_key(realm: str, user: str) -> str:
    return key("inbox", realm, user)


def unread_key(realm: str, user: str) -> str:
    return key("unread", realm, user)


class History:
    def __init__(self, store, clock, retention: Retention) -> None:
        self.store = store
        self.clock = clock
        self.retention = retention

    def now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    async def store_message(self, message: Message, inbox_for: list[str] = ()) -> Stored:
        """Store `message` in its conversation and queue it for `inbox_for`, atomically."""
        keys, args = self.store_call(message, inbox_for)
        return self.stored(message, await STORE_MESSAGE(self.store, keys, args))

    def store_call(self, message: Message, inbox_for: list[str] = ()) -> tuple[list[str], list]:
        """KEYS and ARGV of the store step (`STORE_MESSAGE_LUA`), for this script or a larger one."""
        realm, conv = message.realm, message.conversation
        dedupe = bool(message.client_id) and self.retention.dedupe_ttl_s > 0
        cid_key = key("cid", realm, conv, message.sender, message.client_id) if dedupe else key("cid", "-")
        recipients = list(inbox_for)
        keys = ([history_key(realm, conv), key("lastid", realm, conv), cid_key]
                + [inbox_key(realm, u) for u in recipients] + [unread_key(realm, u) for u in recipients])
        r = self.retention
        args = [message.created_ms, message.payload_json().decode("utf-8"), r.dedupe_ttl_s, r.max_count,
                int(r.max_age_s * 1000), r.inbox_max, conv, len(recipients), "1" if dedupe else "0"]
        return keys, args

    @staticmethod
    def stored(message: Message, reply: list) -> Stored:
        """The store step's answer `{created, id, entry, ...}` as a `Stored`."""
        created, id_text, entry = reply[0], reply[1], reply[2]
        if created == 0 or created == "0":
            if entry:
                return Stored(Message.from_entry(message.realm, entry), duplicate=True)
            return Stored(message.with_stored(int(id_text), ""), duplicate=True)
        return Stored(message.with_stored(int(id_text), entry), duplicate=False)

    async def page(self, realm: str, conversation: str, *, begin_ms: int | None = None, end_ms: int | None = None,
                   offset: int = 0, count: int = 100, newest_first: bool = False) -> list[Message]:
        """Messages of a conversation in a time range, paged like `LIMIT offset, count`."""
        low = str(id_floor_for_ms(begin_ms)) if begin_ms is not None else "-inf"
        high = str(id_floor_for_ms(end_ms + 1) - 1) if end_ms is not None else "+inf"
        hk = history_key(realm, conversation)
        if newest_first:
            entries = await self.store.zrevrangebyscore(hk, high, low, offset=offset, count=count)
        else:
            entries = await self.store.zrangebyscore(hk, low, high, offset=offset, count=count)
        return [Message.from_entry(realm, e) for e in entries]

    async def latest(self, realm: str, conversation: str, count: int) -> list[Message]:
        """The newest `count` messages, oldest first."""
        if count <= 0:
            return []
        entries = await self.store.zrange(history_key(realm, conversation), -count, -1)
        return [Message.from_entry(realm, e) for e in entries]

    async def remove(self, realm: str, conversation: str, server_id: int) -> Message | None:
        entry = await REMOVE_FROM_HISTORY(self.store, [history_key(realm, conversation)], [server_id])
        return Message.from_entry(realm, entry) if entry else None


class Inbox:
    """Per-user queue of stored messages not yet written to any of the user's connections."""

    def __init__(self, store) -> None:
        self.store = store

    async def pending(self, realm: str, user: str, limit: int = 500) -> list[Message]:
        entries = await self.store.zrange(inbox_key(realm, user), 0, limit - 1)
        return [Message.from_entry(realm, e) for e in entries]

    async def count(self, realm: str, user: str) -> int:
        return int(await self.store.zcard(inbox_key(realm, user)))

    async def ack(self, realm: str, user: str, entries: list[str]) -> None:
        """Remove entries that were written to the user's connection."""
        if entries:
            await self.store.zrem(inbox_key(realm, user), *entries)

    async def ack_many(self, realm: str, entries_by_user: dict[str, list[str]]) -> None:
        """`ack` for several users in one Redis call."""
        users = [u for u, entries in entries_by_user.items() if entries]
        if users:
            await REMOVE_ENTRIES(self.store, [inbox_key(realm, u) for u in users],
                                 [len(entries_by_user[u]) for u in users]
                                 + [e for u in users for e in entries_by_user[u]])

    async def take(self, realm: str, user: str, conversation: str | None = None) -> list[Message]:
        """Remove and return the queued messages (optionally of one conversation), for pull
        protocols; atomic, so two concurrent pulls never both return the same message."""
        messages = await self.pending(realm, user, limit=10000)
        if conversation is not None:
            messages = [m for m in messages if m.conversation == conversation]
        if not messages:
            return []
        removed = await TAKE_ENTRIES(self.store, [inbox_key(realm, user)], [m.entry for m in messages])
        taken = set(removed)
        return [m for m in messages if m.entry in taken]

    async def unread(self, realm: str, user: str) -> dict[str, int]:
        raw = await self.store.hgetall(unread_key(realm, user))
        return {k: int(v) for k, v in raw.items() if int(v) > 0}

    async def mark_read(self, realm: str, user: str, conversation: str | None = None) -> None:
        if conversation is None:
            await self.store.delete(unread_key(realm, user))
        else:
            await self.store.hdel(unread_key(realm, user), conversation)
