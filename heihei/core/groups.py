"""
Persistent groups: members and descriptive fields, per realm.

- `grpseq:<realm>` the last group id (ids are increasing integers)
- `grp:<realm>:<id>` HASH of fields (name, notice, creator, ... per realm)
- `grpm:<realm>:<id>` SET of member ids
- `ugrp:<realm>:<user>` SET of the user's group ids
- `gcur:<realm>:<user>` HASH group id -> read cursor (heihei.core.grouplog), set and removed
  with the membership
- `gseen:<realm>:<user>` HASH group id -> ranges received above the cursor (realms whose clients
  pull, heihei.core.grouppull), removed with the membership
"""

from __future__ import annotations

from heihei.core.grouplog import cursor_key, group_channel, last_id_key
from heihei.core.grouppull import seen_key
from heihei.store.keys import key
from heihei.store.scripts import Script

CHANGE_MEMBERS = Script("group_change_members", r"""
-- KEYS: 1 group hash, 2 member set, 3 the group log's last id, then each member's user-groups
-- set, then each member's cursor hash (heihei.core.grouplog), then each member's seen hash
-- (heihei.core.grouppull).
-- ARGV: 1 group id, 2 '+' or '-', 3 the group's bus channel, 4 realm, then member ids.
-- A new member's cursor starts at the group's last message; a leaving member's cursor goes,
-- and the removal is announced on the group's channel, in order with its messages.
-- Returns members changed (-1: no group).
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local n = #ARGV - 4
local changed = 0
local removed = {}
local last = redis.call('GET', KEYS[3]) or '0'
for i = 1, n do
  local member = ARGV[4 + i]
  local ukey = KEYS[3 + i]
  local ckey = KEYS[3 + n + i]
  local skey = KEYS[3 + 2 * n + i]
  if ARGV[2] == '+' then
    if redis.call('SADD', KEYS[2], member) == 1 then
      changed = changed + 1
      redis.call('HSET', ckey, ARGV[1], last)
      redis.call('HDEL', skey, ARGV[1])
    end
    redis.call('SADD', ukey, ARGV[1])
  else
    if redis.call('SREM', KEYS[2], member) == 1 then
      changed = changed + 1
      table.insert(removed, member)
    end
    redis.call('SREM', ukey, ARGV[1])
    redis.call('HDEL', ckey, ARGV[1])
    redis.call('HDEL', skey, ARGV[1])
  end
end
if #removed > 0 then
  redis.call('PUBLISH', ARGV[3], cjson.encode({k = 'gm', r = ARGV[4], g = ARGV[1], rm = removed}))
end
return changed
""")

COUNT_WITH = Script("group_count_with", r"""
-- KEYS: 1 member set. ARGV: candidate members. Returns the member count if they all joined.
local n = redis.call('SCARD', KEYS[1])
for i = 1, #ARGV do
  if redis.call('SISMEMBER', KEYS[1], ARGV[i]) == 0 then n = n + 1 end
end
return n
""")


class NoSuchGroup(LookupError):
    pass


def _group_key(realm: str, group: str) -> str:
    return key("grp", realm, group)


def _members_key(realm: str, group: str) -> str:
    return key("grpm", realm, group)


#: members changed per script call (a 100,000-member group is created in steps of this)
CHANGE_CHUNK = 1000


class Groups:
    def __init__(self, store) -> None:
        self.store = store
        #: awaited with (realm, group, members) after members were added (the group feed attaches
        #: their open connections)
        self.on_added: list = []

    async def create(self, realm: str, fields: dict[str, str], members: list[str], group_id: str | None = None) -> str:
        """A new group (id allocated unless given) with `fields` and `members`."""
        if group_id is None:
            group_id = str(await self.store.incr(key("grpseq", realm)))
        await self.store.hset(_group_key(realm, group_id), "id", group_id)
        if fields:
            await self.store.hmset(_group_key(realm, group_id), fields)
        if members:
            await self.add_members(realm, group_id, members)
        return group_id

    async def exists(self, realm: str, group_id: str) -> bool:
        return bool(await self.store.exists(_group_key(realm, group_id)))

    async def info(self, realm: str, group_id: str) -> dict[str, str]:
        fields = await self.store.hgetall(_group_key(realm, group_id))
        if not fields:
            raise NoSuchGroup(group_id)
        return fields

    async def update(self, realm: str, group_id: str, fields: dict[str, str]) -> None:
        if not await self.exists(realm, group_id):
            raise NoSuchGroup(group_id)
        if fields:
            await self.store.hmset(_group_key(realm, group_id), fields)

    async def members(self, realm: str, group_id: str) -> list[str]:
        return sorted(await self.store.smembers(_members_key(realm, group_id)), key=_natural)

    async def is_member(self, realm: str, group_id: str, user: str) -> bool:
        return bool(await self.store.sismember(_members_key(realm, group_id), user))

    async def add_members(self, realm: str, group_id: str, members: list[str]) -> int:
        return await self._change(realm, group_id, "+", members)

    async def remove_members(self, realm: str, group_id: str, members: list[str]) -> int:
        return await self._change(realm, group_id, "-", members)

    async def groups_of(self, realm: str, user: str) -> list[str]:
        return sorted(await self.store.smembers(key("ugrp", realm, user)), key=_natural)

    async def count(self, realm: str, group_id: str) -> int:
        return int(await self.store.scard(_members_key(realm, group_id)))

    async def count_with(self, realm: str, group_id: str, members: list[str]) -> int:
        """How many members the group would have with `members` added (no member list read)."""
        members = list(dict.fromkeys(str(m) for m in members))
        base = await self.count(realm, group_id)
        added = 0
        for i in range(0, len(members), CHANGE_CHUNK):
            added += int(await COUNT_WITH(self.store, [_members_key(realm, group_id)],
                                          members[i:i + CHANGE_CHUNK])) - base
        return base + added

    def members_key(self, realm: str, group_id: str) -> str:
        return _members_key(realm, group_id)

    def group_key(self, realm: str, group_id: str) -> str:
        return _group_key(realm, group_id)

    async def _change(self, realm: str, group_id: str, op: str, members: list[str]) -> int:
        members = list(dict.fromkeys(str(m) for m in members))
        changed = 0
        for i in range(0, len(members), CHANGE_CHUNK):  # a large group is changed in steps
            part = members[i:i + CHANGE_CHUNK]
            keys = ([_group_key(realm, group_id), _members_key(realm, group_id), last_id_key(realm, group_id)]
                    + [key("ugrp", realm, m) for m in part] + [cursor_key(realm, m) for m in part]
                    + [seen_key(realm, m) for m in part])
            result = int(await CHANGE_MEMBERS(self.store, keys, [group_id, op, group_channel(realm, group_id),
                                                                realm, *part]))
            if result < 0:
                raise NoSuchGroup(group_id)
            changed += result
        if changed and op == "+":
            for hook in list(self.on_added):
                await hook(realm, group_id, members)
        return changed


def natural_order(value: str):
    """Ids in numeric order where they are numbers, the others after them."""
    return _natural(value)


def _natural(value: str):
    return (0, int(value), "") if value.isdecimal() and value.isascii() else (1, 0, value)
