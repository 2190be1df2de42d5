"""
Accounts of seed 001: numeric user ids and heiNums, profiles, sign-in
identities (phone, WeChat, Weibo), session tokens and block lists.

Redis layout (realm id "heihei", every key from `heihei.store.keys.key`):
- `seq:heihei:user`, `seq:heihei:heinum` counters; ids are `first_user_id +
  n - 1`, heiNums `first_hei_num + n - 1`
- `user:heihei:<id>` HASH profile (id, heiNum, displayName, coverUrl, gender,
  birthDay, description, address, latlng, region, level, userType, phone,
  source, registered, push_enable, created, lastModified)
- `phone:heihei:<phone>`, `extid:heihei:<source>:<openid>`, `heinum:heihei:<n>`
  -> user id (identity indexes; an account is created atomically with its index)
- `tok:heihei:<sha256(token)>` -> `"<user>|<expires ms>"`; `utok:heihei:<user>`
  ZSET of the user's token hashes (a bounded number per user)
- `blk:heihei:<user>` ZSET of the users they blocked (score: when)
- `apiv:heihei:<sha256(token)>` -> the API version the session's app declared in
  `/api/init` (kept only when it is 2 or more)

The user search index (`heihei.heihei.search`, optional here) follows the
profiles: a new account is indexed once created, and a change of displayName
is written together with its index change in one script.

Tokens are random (256 bits), stored only as hashes, expire `token_ttl_s`
after their last use (checked against the injected clock, so tests drive it
with task.Clock; Redis expiry only collects the garbage), are valid on every
node, and die at sign-out.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from heihei.core.errors import Refused
from heihei.heihei.errors import BAD_TOKEN, BUSINESS_FAILED
from heihei.store.keys import key
from heihei.store.scripts import Script
from heihei.textnum import is_digits

REALM = "heihei"
#: Redis keeps a key this much longer than its logical expiry (the clock decides)
GC_SLACK_MS = 3_600_000
#: most users one user may block
MAX_BLOCKED = 5000

CREATE_ACCOUNT = Script("heihei_create_account", r"""
-- KEYS: 1 identity index, 2 user seq, 3 heinum seq
-- ARGV: 1 first user id, 2 first heinum, 3 user key prefix, 4 heinum index prefix, 5 now ms,
--       then field, value pairs. Returns {user id, 1 if created}.
local existing = redis.call('GET', KEYS[1])
if existing then return {existing, 0} end
local uid = string.format('%d', tonumber(ARGV[1]) + redis.call('INCR', KEYS[2]) - 1)
local hei = string.format('%d', tonumber(ARGV[2]) + redis.call('INCR', KEYS[3]) - 1)
local ukey = ARGV[3] .. uid
redis.call('HSET', ukey, 'id', uid, 'heiNum', hei, 'created', ARGV[5], 'lastModified', ARGV[5])
for i = 6, #ARGV, 2 do redis.call('HSET', ukey, ARGV[i], ARGV[i + 1]) end
redis.call('SET', KEYS[1], uid)
redis.call('SET', ARGV[4] .. hei, uid)
return {uid, 1}
""")

BIND_PHONE = Script("heihei_bind_phone", r"""
-- KEYS: 1 new phone index, 2 user hash, 3 old phone index (or a dummy key)
-- ARGV: 1 user id, 2 phone, 3 now ms. Returns 1 bound, 0 taken by another user.
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[1] then return 0 end
if KEYS[3] ~= KEYS[1] and redis.call('GET', KEYS[3]) == ARGV[1] then redis.call('DEL', KEYS[3]) end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], 'phone', ARGV[2], 'lastModified', ARGV[3])
return 1
""")

ISSUE_TOKEN = Script("heihei_issue_token", r"""
-- KEYS: 1 token key, 2 user's token zset. ARGV: 1 value, 2 px, 3 token hash, 4 now ms, 5 max tokens,
-- 6 token key prefix. Drops the user's oldest tokens beyond the maximum.
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
local extra = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[5])
if extra > 0 then
  local old = redis.call('ZRANGE', KEYS[2], 0, extra - 1)
  for i = 1, #old do
    redis.call('DEL', ARGV[6] .. old[i])
    redis.call('ZREM', KEYS[2], old[i])
  end
end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
""")

BLOCK = Script("heihei_block", r"""
-- KEYS: 1 block zset. ARGV: 1 target, 2 now ms, 3 max. Returns 1 ok, 0 list full.
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 1 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return 1
""")

PROFILE_FIELDS = ("displayName", "coverUrl", "gender", "birthDay", "description", "address", "latlng", "region")


def user_key(uid: str) -> str:
    return key("user", REALM, uid)


def _prefix(*parts: str) -> str:
    return key(*parts) + ":"


@dataclass(frozen=True)
class Created:
    user: str
    created: bool


class Accounts:
    """Users and their identities. Ids are decimal strings inside heihei."""

    def __init__(self, store, clock, *, first_user_id: int, first_hei_num: int, default_cover_url: str,
                 search=None) -> None:
        self.store = store
        self.clock = clock
        self.search = search
        self.first_user_id = first_user_id
        self.first_hei_num = first_hei_num
        self.default_cover_url = default_cover_url

    def now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    async def find_or_create(self, identity: tuple[str, ...], fields: dict[str, str]) -> Created:
        """The account behind an identity (`("phone", p)`, `("extid", "Wechat", openid)`), created if new."""
        defaults = {"displayName": "", "coverUrl": self.default_cover_url, "gender": "Unspecified",
                    "birthDay": "", "description": "", "address": "", "latlng": "", "region": "", "level": "0",
                    "userType": "Normal", "registered": "0", "push_enable": "1"}
        defaults.update({k: v for k, v in fields.items() if v is not None})
        args: list = [self.first_user_id, self.first_hei_num, _prefix("user", REALM), _prefix("heinum", REALM),
                      self.now_ms()]
        for name, value in defaults.items():
            args += [name, str(value)]
        uid, created = await CREATE_ACCOUNT(self.store, [key(identity[0], REALM, *identity[1:]),
                                                         key("seq", REALM, "user"), key("seq", REALM, "heinum")],
                                            args)
        if int(created) == 1 and self.search is not None:
            await self.search.sync_user(str(uid))
        return Created(str(uid), int(created) == 1)

    async def get(self, uid: str | int | None) -> dict[str, str] | None:
        if uid is None or not is_digits(str(uid)):
            return None
        profile = await self.store.hgetall(user_key(str(uid)))
        return profile or None

    async def get_many(self, uids) -> dict[str, dict[str, str]]:
        out = {}
        for uid in dict.fromkeys(str(u) for u in uids):
            profile = await self.get(uid)
            if profile:
                out[uid] = profile
        return out

    async def exists(self, uid: str | int) -> bool:
        return is_digits(str(uid)) and bool(await self.store.exists(user_key(str(uid))))

    async def update(self, uid: str, fields: dict[str, str]) -> None:
        fields = {k: str(v) for k, v in fields.items() if v is not None}
        fields["lastModified"] = str(self.now_ms())
        if self.search is not None and "displayName" in fields:
            await self.search.update_profile(uid, fields)  # the profile and its index entry in one step
        else:
            await self.store.hmset(user_key(uid), fields)

    async def phone_owner(self, phone: str) -> str | None:
        return await self.store.get(key("phone", REALM, phone))

    async def bind_phone(self, uid: str, phone: str) -> bool:
        """False if another account has the phone already."""
        old = await self.store.hget(user_key(uid), "phone")
        old_key = key("phone", REALM, old) if old else key("phone", REALM, phone)
        bound = await BIND_PHONE(self.store, [key("phone", REALM, phone), user_key(uid), old_key],
                                 [uid, phone, self.now_ms()])
        return int(bound) == 1


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


TOKENS_VALID = Script("heihei_tokens_valid", r"""
-- KEYS: token keys. ARGV: 1 now ms, then the user each token should belong to.
-- Returns 1/0 per token: still that user's, and not expired (no sliding refresh here).
local out = {}
for i = 1, #KEYS do
  local value = redis.call('GET', KEYS[i])
  local ok = 0
  if value then
    local sep = string.find(value, '|', 1, true)
    if sep and string.sub(value, 1, sep - 1) == ARGV[1 + i] and tonumber(string.sub(value, sep + 1)) > tonumber(ARGV[1]) then
      ok = 1
    end
  end
  out[i] = ok
end
return out
""")


class Tokens:
    def __init__(self, store, clock, *, ttl_s: float, max_per_user: int) -> None:
        self.store = store
        self.clock = clock
        self.ttl_ms = int(ttl_s * 1000)
        self.max_per_user = max_per_user

    def now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    async def issue(self, uid: str) -> str:
        token = secrets.token_urlsafe(32)
        h = token_hash(token)
        now = self.now_ms()
        await ISSUE_TOKEN(self.store, [key("tok", REALM, h), key("utok", REALM, uid)],
                          [f"{uid}|{now + self.ttl_ms}", self.ttl_ms + GC_SLACK_MS, h, now, self.max_per_user,
                           _prefix("tok", REALM)])
        return token

    async def user_of(self, token) -> str | None:
        """The user a token belongs to, or None (unknown, expired, signed out, malformed)."""
        if not isinstance(token, str) or not token or len(token) > 128:
            return None
        k = key("tok", REALM, token_hash(token))
        value = await self.store.get(k)
        if not value:
            return None
        uid, _, expires_text = value.partition("|")
        now = self.now_ms()
        expires = int(expires_text or 0)
        if expires <= now:
            await self.store.delete(k)
            return None
        if expires - now < self.ttl_ms // 2:  # sliding expiry, refreshed at most twice per TTL
            await self.store.set(k, f"{uid}|{now + self.ttl_ms}", pexpire=self.ttl_ms + GC_SLACK_MS, only_if_exists=True)
        return uid

    async def require(self, token) -> str:
        uid = await self.user_of(token)
        if uid is None:
            raise Refused(BAD_TOKEN)
        return uid

    async def valid_many(self, pairs) -> list[bool]:
        """For each (token, user): is the token still that user's session (connections check theirs)."""
        pairs = list(pairs)
        if not pairs:
            return []
        found = await TOKENS_VALID(self.store, [key("tok", REALM, token_hash(t)) for t, _ in pairs],
                                  [self.now_ms(), *(u for _, u in pairs)])
        return [bool(int(f)) for f in found]

    async def revoke(self, token: str) -> str | None:
        uid = await self.user_of(token)
        if uid is None:
            return None
        h = token_hash(token)
        await self.store.delete(key("tok", REALM, h))
        await self.store.zrem(key("utok", REALM, uid), h)
        return uid


    async def remember_api_version(self, token: str, version: int) -> None:
        """What `/api/init` said this session's app speaks (`apiVersion`): the push channel sends v2
        IM items only to apps of version 2 or later (docs/heihei-social.md)."""
        k = key("apiv", REALM, token_hash(token))
        if version >= 2:
            await self.store.set(k, str(version), pexpire=self.ttl_ms + GC_SLACK_MS)
        else:
            await self.store.delete(k)

    async def api_version(self, token: str) -> int:
        value = await self.store.get(key("apiv", REALM, token_hash(token)))
        return int(value) if value and is_digits(value) else 1

    async def count(self, uid: str) -> int:
        """How many sessions the user has (some may have expired by the clock, not yet collected)."""
        return int(await self.store.zcard(key("utok", REALM, uid)))

    async def revoke_all(self, uid: str) -> int:
        """End every session of a user (a ban); returns how many there were."""
        k = key("utok", REALM, uid)
        hashes = list(await self.store.zrange(k, 0, -1))
        if hashes:
            await self.store.delete([key("tok", REALM, h) for h in hashes])
        await self.store.delete(k)
        return len(hashes)


class Blocks:
    """Who blocked whom. A block works both ways for messaging."""

    def __init__(self, store, clock) -> None:
        self.store = store
        self.clock = clock

    async def block(self, uid: str, target: str) -> None:
        ok = await BLOCK(self.store, [key("blk", REALM, uid)], [target, int(self.clock.seconds() * 1000), MAX_BLOCKED])
        if int(ok) != 1:
            raise Refused(BUSINESS_FAILED, f"at most {MAX_BLOCKED} blocked users")

    async def unblock(self, uid: str, target: str) -> None:
        await self.store.zrem(key("blk", REALM, uid), target)

    async def has_blocked(self, uid: str, target: str) -> bool:
        return await self.store.zscore(key("blk", REALM, uid), str(target)) is not None

    async def either_blocked(self, a: str, b: str) -> bool:
        return await self.has_blocked(a, b) or await self.has_blocked(b, a)

    async def page(self, uid: str, offset: int, limit: int) -> tuple[int, list[str]]:
        """(total, the blocked ids, most recent first)."""
        k = key("blk", REALM, uid)
        total = int(await self.store.zcard(k))
        ids = await self.store.zrevrange(k, offset, offset + limit - 1) if limit > 0 else []
        return total, list(ids)
