"""
The jim realm's own Redis state. Messages, inboxes, unread counters, groups
and presence are the core's; this module keeps what only customer service
needs, next to them:

- `jim:user:<id>`        HASH id, type, nick, avatar, terminal, sign, extras (JSON text)
- `jim:token:<token>`    STRING the user id a connection token stands for (expires)
- `jim:agents`           SET ids of users registered as agents (type 1)
- `jim:assign:<visitor>` STRING the agent a visitor was last given
- `jim:open:<agent>`     ZSET visitor -> ms of the conversation's last activity
- `jim:contacts:<user>`  ZSET partner -> ms of the last activity with them (the chat list)
- `jim:pending:<user>`   SET partners whose last private message to <user> is unanswered
- `jim:msg:<id>`         STRING JSON locating message <id> (32 hex) for recall
- `jim:cmsg:<user>:<client id>` STRING the message id a sender's own id got

Every change touching several keys is one Lua script, so a chat list never
shows half an update.
"""

from __future__ import annotations

from typing import Any, Iterable

import orjson

from heihei.store.keys import key
from heihei.store.scripts import Script

REALM = "jim"
VISITOR, AGENT, CONSULTANT = 0, 1, 2
USER_TYPES = (VISITOR, AGENT, CONSULTANT)
#: partners kept per chat list; the least recent go beyond this
MAX_CONTACTS = 10000
USER_FIELDS = ("nick", "avatar", "terminal", "sign", "extras")

REGISTER = Script("jim_register", r"""
-- KEYS: 1 user hash, 2 agents set. ARGV: 1 id, 2 type ('' = keep, new users 0), then field, value pairs.
local t = ARGV[2]
if t == '' then t = redis.call('HGET', KEYS[1], 'type') or '0' end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'type', t)
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
if t == '1' then redis.call('SADD', KEYS[2], ARGV[1]) else redis.call('SREM', KEYS[2], ARGV[1]) end
return t
""")

ENSURE_USER = Script("jim_ensure_user", r"""
-- KEYS: 1 user hash. ARGV: 1 id, 2 terminal. A user first seen on the WebSocket gets a minimal record.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'type', '0', 'terminal', ARGV[2])
return 1
""")

GET_USERS = Script("jim_get_users", r"""
local out = {}
for i = 1, #KEYS do out[i] = redis.call('HGETALL', KEYS[i]) end
return out
""")

_TRIM = r"""
local function trim(contacts, pending, max)
  local n = redis.call('ZCARD', contacts)
  if n > max then
    local old = redis.call('ZRANGE', contacts, 0, n - max - 1)
    for i = 1, #old do redis.call('SREM', pending, old[i]) end
    redis.call('ZREMRANGEBYRANK', contacts, 0, n - max - 1)
  end
end
"""

PRIVATE_SENT = Script("jim_private_sent", _TRIM + r"""
-- A private message went from a to b: both chat lists move, b now waits for a's reply.
-- (That a, who replied, has read the conversation is the core's unread count: Jim.send_private.)
-- KEYS: 1 contacts:a, 2 contacts:b, 3 pending:a, 4 pending:b, 5 user:a, 6 user:b, 7 open:a, 8 open:b
-- ARGV: 1 now ms, 2 a, 3 b, 4 max contacts
local now = ARGV[1]
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('ZADD', KEYS[2], now, ARGV[2])
redis.call('SREM', KEYS[3], ARGV[3])
redis.call('SADD', KEYS[4], ARGV[2])
local ta = redis.call('HGET', KEYS[5], 'type') or '0'
local tb = redis.call('HGET', KEYS[6], 'type') or '0'
if ta == '1' and tb == '0' then redis.call('ZADD', KEYS[7], now, ARGV[3]) end
if tb == '1' and ta == '0' then redis.call('ZADD', KEYS[8], now, ARGV[2]) end
local max = tonumber(ARGV[4])
trim(KEYS[1], KEYS[3], max)
trim(KEYS[2], KEYS[4], max)
return 1
""")

ADD_CONTACT = Script("jim_add_contact", _TRIM + r"""
-- KEYS: 1 contacts:owner, 2 pending:owner. ARGV: 1 now ms, 2 partner, 3 max contacts
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
trim(KEYS[1], KEYS[2], tonumber(ARGV[3]))
return 1
""")

ASSIGN = Script("jim_assign", _TRIM + r"""
-- Visitor v is given agent g (replacing agent o, if any).
-- KEYS: 1 assign:v, 2 open:g, 3 contacts:v, 4 contacts:g, 5 pending:v, 6 pending:g, 7 open:o (or any key)
-- ARGV: 1 now ms, 2 v, 3 g, 4 o ('' = none), 5 max contacts
redis.call('SET', KEYS[1], ARGV[3])
if ARGV[4] ~= '' and ARGV[4] ~= ARGV[3] then redis.call('ZREM', KEYS[7], ARGV[2]) end
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[4], ARGV[1], ARGV[2])
local max = tonumber(ARGV[5])
trim(KEYS[3], KEYS[5], max)
trim(KEYS[4], KEYS[6], max)
return 1
""")

OPEN_COUNTS = Script("jim_open_counts", r"""
-- KEYS: open:<agent> for each candidate. ARGV: 1 oldest ms still open.
-- Forgets conversations quiet for too long and returns each agent's open count.
local out = {}
for i = 1, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', '(' .. ARGV[1])
  out[i] = redis.call('ZCARD', KEYS[i])
end
return out
""")

COUNTERS = Script("jim_counters", r"""
-- KEYS: 1 contacts:owner, 2 pending:owner. ARGV: 1 'recent' since (ms).
-- Returns {all contacts, recent contacts, waiting for a reply}.
local all = redis.call('ZCARD', KEYS[1])
local recent = redis.call('ZCOUNT', KEYS[1], ARGV[1], '+inf')
local waiting = 0
local pending = redis.call('SMEMBERS', KEYS[2])
for i = 1, #pending do
  if redis.call('ZSCORE', KEYS[1], pending[i]) then waiting = waiting + 1 end
end
return {all, recent, waiting}
""")


def _k(*parts: object) -> str:
    return key("jim", *parts)


def user_key(user: str) -> str:
    return _k("user", user)


def _pairs(raw: Any) -> dict[str, str]:
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    items = list(raw or [])
    return {str(items[i]): str(items[i + 1]) for i in range(0, len(items) - 1, 2)}


class JimStore:
    """Typed access to the keys above; every method is one or two Redis calls."""

    def __init__(self, store) -> None:
        self.store = store

    # -- users and tokens ------------------------------------------------------------

    async def register(self, user: str, user_type: int | None, fields: dict[str, str]) -> int:
        """Create or update a user; returns the type now registered."""
        args: list[str] = [user, "" if user_type is None else str(user_type)]
        for name, value in fields.items():
            args += [name, value]
        return int(await REGISTER(self.store, [user_key(user), _k("agents")], args))

    async def ensure_user(self, user: str, terminal: str = "ws") -> bool:
        return bool(int(await ENSURE_USER(self.store, [user_key(user)], [user, terminal])))

    async def set_fields(self, user: str, fields: dict[str, str]) -> None:
        if fields:
            await self.store.hmset(user_key(user), {"id": user, **fields})

    async def user(self, user: str) -> dict[str, str] | None:
        record = _pairs(await self.store.hgetall(user_key(user)))
        return record or None

    async def users(self, users: Iterable[str]) -> dict[str, dict[str, str]]:
        """Records of many users in one call (unknown ones are left out)."""
        users = list(dict.fromkeys(users))
        if not users:
            return {}
        rows = await GET_USERS(self.store, [user_key(u) for u in users], [])
        out = {}
        for user, row in zip(users, rows):
            record = _pairs(row)
            if record:
                out[user] = record
        return out

    async def bind_token(self, token: str, user: str, ttl_s: float) -> str | None:
        """Bind `token` to `user`; returns the user it was bound to before (None if nobody)."""
        args = [_k("token", token), user]
        if ttl_s > 0:
            args += ["EX", max(1, int(ttl_s))]
        previous = await self.store.execute_command("SET", *args, "GET")
        return str(previous) if previous else None

    async def token_users(self, tokens: list[str]) -> list[str | None]:
        """The user each token is bound to now (None: expired or never bound), one call."""
        if not tokens:
            return []
        found = await self.store.mget([_k("token", t) for t in tokens])
        return [str(u) if u else None for u in found]

    async def token_user(self, token: str) -> str | None:
        user = await self.store.get(_k("token", token))
        return str(user) if user else None

    # -- agents and assignment ---------------------------------------------------------

    async def agents(self) -> list[str]:
        return sorted(str(a) for a in await self.store.smembers(_k("agents")))

    async def is_agent(self, user: str) -> bool:
        return bool(await self.store.sismember(_k("agents"), user))

    async def assigned(self, visitor: str) -> str | None:
        agent = await self.store.get(_k("assign", visitor))
        return str(agent) if agent else None

    async def open_counts(self, agents: list[str], oldest_ms: int) -> dict[str, int]:
        if not agents:
            return {}
        counts = await OPEN_COUNTS(self.store, [_k("open", a) for a in agents], [oldest_ms])
        return {a: int(c) for a, c in zip(agents, counts)}

    async def assign(self, visitor: str, agent: str, previous: str | None, now_ms: int) -> None:
        keys = [_k("assign", visitor), _k("open", agent), _k("contacts", visitor), _k("contacts", agent),
                _k("pending", visitor), _k("pending", agent), _k("open", previous or agent)]
        await ASSIGN(self.store, keys, [now_ms, visitor, agent, previous or "", MAX_CONTACTS])

    # -- chat lists --------------------------------------------------------------------

    async def private_sent(self, sender: str, receiver: str, now_ms: int) -> None:
        keys = [_k("contacts", sender), _k("contacts", receiver), _k("pending", sender), _k("pending", receiver),
                user_key(sender), user_key(receiver), _k("open", sender), _k("open", receiver)]
        await PRIVATE_SENT(self.store, keys, [now_ms, sender, receiver, MAX_CONTACTS])

    async def add_contact(self, owner: str, partner: str, now_ms: int) -> None:
        await ADD_CONTACT(self.store, [_k("contacts", owner), _k("pending", owner)], [now_ms, partner, MAX_CONTACTS])

    async def contacts(self, owner: str, limit: int) -> list[tuple[str, int]]:
        """The chat list, most recent first: (partner, ms of the last activity)."""
        rows = await self.store.zrevrange(_k("contacts", owner), 0, limit - 1, withscores=True)
        return [(str(partner), int(float(score))) for partner, score in rows]

    async def waiting_for_reply(self, owner: str) -> set[str]:
        return {str(p) for p in await self.store.smembers(_k("pending", owner))}

    async def counters(self, owner: str, recent_since_ms: int) -> tuple[int, int, int]:
        """(all contacts, recent contacts, waiting for a reply), one snapshot."""
        values = await COUNTERS(self.store, [_k("contacts", owner), _k("pending", owner)], [recent_since_ms])
        return tuple(int(v) for v in values)  # type: ignore[return-value]

    # -- message locations (recall) ------------------------------------------------------

    async def remember_message(self, msg_id: str, where: dict[str, Any], ttl_s: float,
                               sender: str, client_id: str | None) -> None:
        value = orjson.dumps(where).decode("utf-8")
        expire = max(1, int(ttl_s)) if ttl_s > 0 else None
        await self.store.set(_k("msg", msg_id), value, expire=expire)
        if client_id:
            await self.store.set(_k("cmsg", sender, client_id), msg_id, expire=expire)

    async def locate(self, msg_id: str) -> dict[str, Any] | None:
        value = await self.store.get(_k("msg", msg_id))
        return orjson.loads(value) if value else None

    async def message_of_client_id(self, sender: str, client_id: str) -> str | None:
        value = await self.store.get(_k("cmsg", sender, client_id))
        return str(value) if value else None

    async def forget_message(self, msg_id: str) -> None:
        await self.store.delete(_k("msg", msg_id))
