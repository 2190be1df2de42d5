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
- `cleared:<realm>:<user>` HASH conversation -> the last server id the user cleared
  (their view of the conversation starts after it; the other side keeps theirs)
- `hidden:<realm>:<user>` ZSET of `<conversation>|<server id>` the user deleted
  from their view (bounded)

This module is the only one that names these keys: realms change them
through the methods below (recall, read up to, hide, clear, unread counts),
so every writer keeps the same invariants (an unread count never exceeds
the visible incoming messages, never goes below zero).

Server ids are `ms * 1024 + n`, assigned in the script so they strictly
increase within a conversation even when nodes' clocks disagree. They order a
conversation, give time-range queries a score range, and stay exact as Redis
scores (< 2^53).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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


UNQUEUE = Script("inbox_unqueue", r"""
-- A recalled message leaves the inboxes still holding it, and their unread counts.
-- KEYS: n inbox keys, then n unread keys. ARGV: 1 entry, 2 conversation. Returns how many held it.
local n = #KEYS / 2
local removed = 0
for i = 1, n do
  if redis.call('ZREM', KEYS[i], ARGV[1]) == 1 then
    removed = removed + 1
    local left = redis.call('HINCRBY', KEYS[n + i], ARGV[2], -1)
    if left <= 0 then redis.call('HDEL', KEYS[n + i], ARGV[2]) end
  end
end
return removed
""")

UNREAD_MINUS = Script("unread_minus", r"""
-- KEYS: 1 unread hash. ARGV: conversation, n pairs. Counters never go below zero.
for i = 1, #ARGV, 2 do
  local left = redis.call('HINCRBY', KEYS[1], ARGV[i], -tonumber(ARGV[i + 1]))
  if left <= 0 then redis.call('HDEL', KEYS[1], ARGV[i]) end
end
return 1
""")

# Shared Lua: is a history entry incoming for the user and visible in their view?
_VISIBLE = r"""
local function incoming_visible(entry, user, hidden_key, conv, cleared)
  local sep = string.find(entry, '|', 1, true)
  local id = string.sub(entry, 1, sep - 1)
  if tonumber(id) <= cleared then return false, id end
  local ok, d = pcall(cjson.decode, string.sub(entry, sep + 1))
  if not ok or type(d) ~= 'table' or d.s == user then return false, id end
  if redis.call('ZSCORE', hidden_key, conv .. '|' .. id) then return false, id end
  return true, id
end
"""

READ_UP_TO = Script("unread_read_up_to", _VISIBLE + r"""
-- KEYS: 1 history, 2 unread hash, 3 hidden zset, 4 cleared hash
-- ARGV: 1 conversation, 2 server id read up to, 3 user, 4 scan limit
-- The conversation's unread count becomes the number of visible incoming messages newer
-- than the one read (never more than it was). Returns the new count.
local cur = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if cur <= 0 then return 0 end
local cleared = tonumber(redis.call('HGET', KEYS[4], ARGV[1]) or '0')
local newer = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[2], '+inf', 'LIMIT', 0, tonumber(ARGV[4]))
local n = 0
for i = 1, #newer do
  if incoming_visible(newer[i], ARGV[3], KEYS[3], ARGV[1], cleared) then n = n + 1 end
end
if n < cur then
  if n == 0 then redis.call('HDEL', KEYS[2], ARGV[1]) else redis.call('HSET', KEYS[2], ARGV[1], n) end
  return n
end
return cur
""")

HIDE_MESSAGE = Script("view_hide_message", _VISIBLE + r"""
-- KEYS: 1 history, 2 unread hash, 3 hidden zset, 4 cleared hash
-- ARGV: 1 conversation, 2 server id, 3 user, 4 scan limit, 5 now ms, 6 max hidden
-- Hides one message from the user; if it was one of their unread ones, the count drops by one.
local member = ARGV[1] .. '|' .. ARGV[2]
if redis.call('ZSCORE', KEYS[3], member) then return 0 end
local cur = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
local cleared = tonumber(redis.call('HGET', KEYS[4], ARGV[1]) or '0')
if cur > 0 then
  local newest = redis.call('ZREVRANGEBYSCORE', KEYS[1], '+inf', '-inf', 'LIMIT', 0, tonumber(ARGV[4]))
  local seen = 0
  for i = 1, #newest do
    if seen >= cur then break end
    local visible, id = incoming_visible(newest[i], ARGV[3], KEYS[3], ARGV[1], cleared)
    if visible then
      seen = seen + 1
      if id == ARGV[2] then
        if cur - 1 <= 0 then redis.call('HDEL', KEYS[2], ARGV[1]) else redis.call('HINCRBY', KEYS[2], ARGV[1], -1) end
        break
      end
    end
  end
end
redis.call('ZADD', KEYS[3], ARGV[5], member)
local extra = redis.call('ZCARD', KEYS[3]) - tonumber(ARGV[6])
if extra > 0 then redis.call('ZREMRANGEBYRANK', KEYS[3], 0, extra - 1) end
return 1
""")

CLEAR_CONVERSATION = Script("view_clear_conversation", r"""
-- KEYS: 1 history, 2 cleared hash, 3 unread hash. ARGV: 1 conversation.
-- The user's view of the conversation starts after its newest message, which is read.
local newest = redis.call('ZRANGE', KEYS[1], -1, -1)
if newest[1] then
  local sep = string.find(newest[1], '|', 1, true)
  redis.call('HSET', KEYS[2], ARGV[1], string.sub(newest[1], 1, sep - 1))
end
redis.call('HDEL', KEYS[3], ARGV[1])
return 1
""")

#: how far back the per-user view scripts look in one conversation
VIEW_SCAN_LIMIT = 500
#: messages one user may hide (the oldest marks go beyond)
MAX_HIDDEN = 10000
#: receivers per recall call (a large group is done in chunks)
RECALL_CHUNK = 500


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


def hidden_key(realm: str, user: str) -> str:
    return key("hidden", realm, user)


def cleared_key(realm: str, user: str) -> str:
    return key("cleared", realm, user)


def conversation_keys(realm: str, conversation: str) -> list[str]:
    """Every key a conversation's history occupies, for a realm that deletes the conversation
    atomically with keys of its own (a removed live activity)."""
    return [history_key(realm, conversation), key("lastid", realm, conversation)]


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

    async def since_id(self, realm: str, conversation: str, low_id: int, count: int) -> list[Message]:
        """Up to `count` messages with an id of at least `low_id`, oldest first."""
        entries = await self.store.zrangebyscore(history_key(realm, conversation), str(low_id), "+inf",
                                                 offset=0, count=count)
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

    async def recall(self, realm: str, conversation: str, server_id: int, receivers: list[str]) -> Message | None:
        """Take a message back: out of the history, and out of every receiver's inbox (and unread
        count) still holding it. Returns it, or None if it was not there any more."""
        removed = await self.remove(realm, conversation, server_id)
        if removed is None:
            return None
        for i in range(0, len(receivers), RECALL_CHUNK):
            part = receivers[i:i + RECALL_CHUNK]
            await UNQUEUE(self.store, [inbox_key(realm, u) for u in part] + [unread_key(realm, u) for u in part],
                          [removed.entry, conversation])
        return removed


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

    async def unread_minus(self, realm: str, user: str, counts: dict[str, int]) -> None:
        """Lower per-conversation unread counts (never below zero), e.g. for messages pulled."""
        args: list[Any] = []
        for conversation, n in counts.items():
            if n > 0:
                args += [conversation, n]
        if args:
            await UNREAD_MINUS(self.store, [unread_key(realm, user)], args)

    # -- one user's view of a conversation --------------------------------------------------

    def _view_keys(self, realm: str, user: str, conversation: str) -> list[str]:
        return [history_key(realm, conversation), unread_key(realm, user), hidden_key(realm, user),
                cleared_key(realm, user)]

    async def read_up_to(self, realm: str, user: str, conversation: str, server_id: int) -> int:
        """The user read the conversation up to `server_id`: returns its new unread count."""
        return int(await READ_UP_TO(self.store, self._view_keys(realm, user, conversation),
                                    [conversation, server_id, user, VIEW_SCAN_LIMIT]))

    async def hide(self, realm: str, user: str, conversation: str, server_id: int, now_ms: int) -> bool:
        """The message leaves this user's view (and their unread count, if it was unread)."""
        return bool(int(await HIDE_MESSAGE(self.store, self._view_keys(realm, user, conversation),
                                           [conversation, server_id, user, VIEW_SCAN_LIMIT, now_ms, MAX_HIDDEN])))

    async def is_hidden(self, realm: str, user: str, conversation: str, server_id: int) -> bool:
        return await self.store.zscore(hidden_key(realm, user), f"{conversation}|{server_id}") is not None

    async def clear(self, realm: str, user: str, conversation: str) -> None:
        """The conversation, as it is now, leaves this user's view and counts as read."""
        await CLEAR_CONVERSATION(self.store, [history_key(realm, conversation), cleared_key(realm, user),
                                              unread_key(realm, user)], [conversation])

    async def cleared(self, realm: str, user: str) -> dict[str, int]:
        """Conversation -> the last server id this user cleared."""
        return {conv: int(sid) for conv, sid in (await self.store.hgetall(cleared_key(realm, user))).items()}
