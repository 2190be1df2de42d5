"""
Persistent groups: members and descriptive fields, per realm.

- `grpseq:<realm>` the last group id (ids are increasing integers)
- `grp:<realm>:<id>` HASH of fields (name, notice, creator, ... per realm)
- `grpm:<realm>:<id>` SET of member ids
- `ugrp:<realm>:<user>` SET of the user's group ids
"""

from __future__ import annotations

from heihei.store.keys import key
from heihei.store.scripts import Script

CHANGE_MEMBERS = Script("group_change_members", r"""
-- KEYS: 1 group hash, 2 member set, then each member's user-groups set.
-- ARGV: 1 group id, 2 '+' or '-', then member ids. Returns members changed (-1: no group).
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local n = #ARGV - 2
local changed = 0
for i = 1, n do
  local member = ARGV[2 + i]
  local ukey = KEYS[2 + i]
  if ARGV[2] == '+' then
    changed = changed + redis.call('SADD', KEYS[2], member)
    redis.call('SADD', ukey, ARGV[1])
  else
    changed = changed + redis.call('SREM', KEYS[2], member)
    redis.call('SREM', ukey, ARGV[1])
  end
end
return changed
""")


class NoSuchGroup(LookupError):
    pass


def _group_key(realm: str, group: str) -> str:
    return key("grp", realm, group)


def _members_key(realm: str, group: str) -> str:
    return key("grpm", realm, group)


class Groups:
    def __init__(self, store) -> None:
        self.store = store

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

    async def _change(self, realm: str, group_id: str, op: str, members: list[str]) -> int:
        members = [str(m) for m in members]
        keys = [_group_key(realm, group_id), _members_key(realm, group_id)] + [key("ugrp", realm, m) for m in members]
        changed = await CHANGE_MEMBERS(self.store, keys, [group_id, op, *members])
        if int(changed) < 0:
            raise NoSuchGroup(group_id)
        return int(changed)


def _natural(value: str):
    return (0, int(value), "") if value.isdecimal() and value.isascii() else (1, 0, value)
