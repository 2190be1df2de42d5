"""
A group's messages stored once, in the group's ordered log, and a read cursor per member.

Why (issue 15): copying every group message into every member's inbox made a
5,000-member message cost a third of a second of node and Redis CPU. Large IM
systems use read diffusion instead, and so do we for the realms that opt in
(`Hub.use_group_log`):

- **the log** is the group conversation's history (`hist:<realm>:g:<group>`,
  `heihei.core.history`): one entry per message, ordered by server id, which
  the store step assigns strictly increasing per conversation. History queries
  (`records_`, J-IM cmd 19 type 1) read the same log. Its length and age are
  bounded per group by `GroupRetention` (`[messaging] group_log_max_count`,
  `group_log_max_age_s`).
- **a cursor per member**: `gcur:<realm>:<user>` HASH group -> the server id up
  to which the member's client confirmed receipt (a pong after the frames,
  `heihei.net.websocket.confirm_written`). A login replays the log after the
  cursor, so an offline member gets every message kept in the log, once, in
  order. Cursors only move forward (`ADVANCE_CURSORS`), in batches.
- **membership** (`heihei.core.groups`' script) sets a new member's cursor to
  the group's last id (an added member gets what is sent after the adding, not
  the history before it; `records_` still shows that) and removes a leaving
  member's cursor in the same step, and announces the removal on the group's
  channel, in order with the group's messages, so no node sends a removed
  member anything stored after the removal.
- **unread** for a group is the number of log entries after the cursor
  (`ZCOUNT`), not a per-member counter.

The store step (`STORE_TO_GROUP`) checks that the group exists and the sender
is a member, stores the message with the client-id dedupe of
`heihei.core.history` in one atomic step, and publishes it on the group's
channel: one PUBLISH whatever the group's size. Every node with members of the
group online listens on that channel (`heihei.core.groupfeed`).
"""

from __future__ import annotations

from dataclasses import dataclass

from heihei.core.history import STORE_MESSAGE_LUA, History, Stored, history_key
from heihei.core.model import Message, group_conversation
from heihei.store.keys import key
from heihei.store.scripts import Script


@dataclass(frozen=True)
class GroupRetention:
    """How much of a group's log is kept: the newest `max_count` entries, none older than
    `max_age_s` (0: no age limit). A member offline for longer than that gets what is left."""

    max_count: int = 10000
    max_age_s: float = 0.0


def group_channel(realm: str, group: str) -> str:
    """The bus channel of a group's messages and removals."""
    return key("bus", "group", realm, group)


def cursor_key(realm: str, user: str) -> str:
    """The user's cursors: HASH group -> last confirmed server id."""
    return key("gcur", realm, user)


def log_key(realm: str, group: str) -> str:
    return history_key(realm, group_conversation(group))


def last_id_key(realm: str, group: str) -> str:
    return key("lastid", realm, group_conversation(group))


#: refusals of the store step
NO_SUCH_GROUP = -1
NOT_A_MEMBER = -2

STORE_TO_GROUP = Script("store_to_group", "local function store_message()\n" + STORE_MESSAGE_LUA + r"""
end
-- KEYS: the store step's 3, then 4 the group hash, 5 its member set.
-- ARGV: the store step's 9 (no inboxes), then 10 sender, 11 the group's channel, 12 realm, 13 group,
-- 14 (optional) a token naming the sending connection, which its node leaves out.
-- Returns {-1} (no such group), {-2} (sender not a member) or the store step's answer; a new
-- message is published on the channel (no origin node: every node delivers it from there, in
-- order with removals).
if redis.call('EXISTS', KEYS[4]) == 0 then return {-1} end
if redis.call('SISMEMBER', KEYS[5], ARGV[10]) == 0 then return {-2} end
local stored = store_message()
if stored[1] == 1 then
  local skip = ''
  if ARGV[14] and ARGV[14] ~= '' then skip = ',"x":' .. cjson.encode(ARGV[14]) end
  redis.call('PUBLISH', ARGV[11], '{"k":"g","r":' .. cjson.encode(ARGV[12]) .. ',"g":' .. cjson.encode(ARGV[13])
    .. ',"e":' .. cjson.encode(stored[3]) .. skip .. '}')
end
return stored
""")

ADVANCE_CURSORS = Script("group_cursors_advance", r"""
-- KEYS: cursor hashes. ARGV: per key how many pairs, then all (group, id) pairs in that order.
-- A cursor only moves forward, and only while it exists (a removed member's is gone).
local at = #KEYS + 1
for k = 1, #KEYS do
  for _ = 1, tonumber(ARGV[k]) do
    local group, id = ARGV[at], tonumber(ARGV[at + 1])
    local cur = redis.call('HGET', KEYS[k], group)
    if cur and tonumber(cur) < id then redis.call('HSET', KEYS[k], group, string.format('%d', id)) end
    at = at + 2
  end
end
return 1
""")

START_CURSOR = Script("group_cursor_start", r"""
-- KEYS: 1 the user's cursor hash, 2 the group's member set, 3 the group's last id.
-- ARGV: 1 group, 2 user. A member without a cursor (one added before cursors existed) starts
-- at the group's last id. Returns the cursor, or false for a non-member.
if redis.call('SISMEMBER', KEYS[2], ARGV[2]) == 0 then return false end
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then return cur end
cur = redis.call('GET', KEYS[3]) or '0'
redis.call('HSET', KEYS[1], ARGV[1], cur)
return cur
""")


class GroupLog:
    """The Redis side: store a group message, read the log after a cursor, move cursors."""

    def __init__(self, store, history: History, retention: GroupRetention | None = None) -> None:
        self.store = store
        self.history = history
        self.retention = retention or GroupRetention()

    async def store_message(self, message: Message, group_key: str, members_key: str, *,
                            skip_token: str | None = None) -> Stored | int:
        """Store and publish a group message; a `Stored`, or NO_SUCH_GROUP / NOT_A_MEMBER.
        `skip_token` (GroupFeed.skip_token) leaves the sending connection out."""
        keys, args = self.history.store_call(message)
        r = self.retention
        args[3], args[4] = r.max_count, int(r.max_age_s * 1000)
        keys += [group_key, members_key]
        args += [message.sender, group_channel(message.realm, message.target), message.realm, message.target]
        if skip_token:
            args.append(skip_token)
        reply = await STORE_TO_GROUP(self.store, keys, args)
        if int(reply[0]) < 0:
            return int(reply[0])
        return self.history.stored(message, reply)

    async def cursors(self, realm: str, user: str) -> dict[str, int]:
        raw = await self.store.hgetall(cursor_key(realm, user))
        return {g: int(v) for g, v in raw.items()}

    async def start_cursor(self, realm: str, user: str, group: str, members_key: str) -> int | None:
        """The member's cursor (created at the group's last id if missing); None: not a member."""
        cur = await START_CURSOR(self.store, [cursor_key(realm, user), members_key, last_id_key(realm, group)],
                                 [group, user])
        return None if cur is None else int(cur)

    async def after(self, realm: str, group: str, after_id: int, count: int) -> list[Message]:
        """Up to `count` log entries newer than `after_id`, oldest first."""
        entries = await self.store.zrangebyscore(log_key(realm, group), f"({after_id}", "+inf", offset=0, count=count)
        return [Message.from_entry(realm, e) for e in entries]

    async def unread(self, realm: str, user: str, groups: list[str], *, exclude_own: bool = True) -> dict[str, int]:
        """Group -> log entries after the member's cursor (the member's own messages not counted
        when `exclude_own`, which costs reading them; without it, one ZCOUNT per group)."""
        cursors = await self.cursors(realm, user)
        out = {}
        for group in groups:
            cur = cursors.get(group)
            if cur is None:
                continue
            if exclude_own:
                newer = await self.after(realm, group, cur, self.retention.max_count or 10000)
                n = sum(1 for m in newer if m.sender != user)
            else:
                n = int(await self.store.zcount(log_key(realm, group), f"({cur}", "+inf"))
            if n:
                out[group] = n
        return out

    async def advance(self, realm: str, by_user: dict[str, dict[str, int]]) -> None:
        """Move cursors forward (never back), for many users in one Redis call."""
        users = [u for u, groups in by_user.items() if groups]
        if not users:
            return
        counts, pairs = [], []
        for user in users:
            groups = by_user[user]
            counts.append(len(groups))
            for group, server_id in groups.items():
                pairs += [group, server_id]
        await ADVANCE_CURSORS(self.store, [cursor_key(realm, u) for u in users], counts + pairs)
