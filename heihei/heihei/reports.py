"""
Reports of users (`/api/user/report-user`, also at the seed's `/api/usr/report-user`)
and what operators do with them: list, resolve, ban.

- `reportType` is the seed's 1 性别不符, 2 广告欺诈, 3 骚扰谩骂, 4 淫秽色情.
- A reporter has at most one open report per reported user: reporting the
  same user again while it is open changes nothing and is a success (a
  client retry is not a second report). A reporter files at most
  `[social] reports_per_day` reports per day (UTC), else 400.
- Reports are kept newest first, at most `MAX_REPORTS`; the oldest (and
  their records) drop off.
- A ban marks the account (`banned` in the profile, `user_status` "Banned"),
  ends every session on every node (its tokens are deleted, its channel
  connections closed), takes the user off the discovery lists and refuses
  new sign-ins (711). Unbanning lifts the mark; the user signs in again.

Redis (realm id "heihei"):
- `report:heihei:<id>` HASH {id, reporter, target, type, liveId, created,
  status open|resolved, resolution, resolved}
- `reports:heihei:all`, `reports:heihei:open` ZSET id -> created ms
- `reported:heihei:<reporter>:<target>` -> the open report's id (kept 30 days)
- `rptday:heihei:<reporter>:<yyyymmdd>` -> reports filed that day
- `seq:heihei:report` the id counter
"""

from __future__ import annotations

import time
from typing import Any, Awaitable, Callable

from heihei.core.errors import NOT_FOUND, Refused
from heihei.heihei.accounts import REALM
from heihei.heihei.errors import BAD_PARAMETER, BUSINESS_FAILED, NO_SUCH_USER
from heihei.heihei.people import active_key, new_users_key, recommended_key
from heihei.store.keys import key
from heihei.store.scripts import Script

REPORT_TYPES = {1: "性别不符", 2: "广告欺诈", 3: "骚扰谩骂", 4: "淫秽色情"}
MAX_REPORTS = 100_000
MAX_RESOLUTION_CHARS = 500
DAY_S = 86400
#: a report is "still open" for the dedupe at most this long (the key then goes, the report stays)
DEDUPE_S = 30 * DAY_S

FILE_REPORT = Script("heihei_file_report", r"""
-- KEYS: 1 dedupe key, 2 day counter, 3 id seq, 4 all zset, 5 open zset
-- ARGV: 1 reporter, 2 target, 3 type, 4 live id, 5 now ms, 6 max per day, 7 report key prefix, 8 max reports,
--       9 seconds the dedupe key lives
-- Returns {id, 1 new | 0 already open | -1 too many today}
local existing = redis.call('GET', KEYS[1])
if existing and redis.call('HGET', ARGV[7] .. existing, 'status') == 'open' then return {existing, 0} end
local today = tonumber(redis.call('GET', KEYS[2]) or '0')
if today >= tonumber(ARGV[6]) then return {'', -1} end
redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], 172800)
local id = tostring(redis.call('INCR', KEYS[3]))
redis.call('HSET', ARGV[7] .. id, 'id', id, 'reporter', ARGV[1], 'target', ARGV[2], 'type', ARGV[3],
           'liveId', ARGV[4], 'created', ARGV[5], 'status', 'open')
redis.call('ZADD', KEYS[4], ARGV[5], id)
redis.call('ZADD', KEYS[5], ARGV[5], id)
redis.call('SET', KEYS[1], id, 'EX', ARGV[9])
local extra = redis.call('ZCARD', KEYS[4]) - tonumber(ARGV[8])
if extra > 0 then
  local old = redis.call('ZRANGE', KEYS[4], 0, extra - 1)
  for i = 1, #old do
    redis.call('DEL', ARGV[7] .. old[i])
    redis.call('ZREM', KEYS[4], old[i])
    redis.call('ZREM', KEYS[5], old[i])
  end
end
return {id, 1}
""")

RESOLVE = Script("heihei_resolve_report", r"""
-- KEYS: 1 report hash, 2 open zset. ARGV: 1 id, 2 resolution, 3 now ms. Returns 0 if unknown.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'status', 'resolved', 'resolution', ARGV[2], 'resolved', ARGV[3])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
""")


def _report_key(report_id: str) -> str:
    return key("report", REALM, report_id)


class Reports:
    def __init__(self, store, clock, *, accounts, tokens, settings,
                 kick: Callable[[str], Awaitable[None]]) -> None:
        self.store = store
        self.clock = clock
        self.accounts = accounts
        self.tokens = tokens
        self.settings = settings
        #: closes every channel connection of a user, on every node
        self.kick = kick

    def now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    async def report(self, reporter: str, target: str, report_type: int, live_id: str | None = None) -> str:
        """File a report (700 yourself or an unknown type, 710 unknown user, 400 too many today);
        returns its id."""
        if report_type not in REPORT_TYPES:
            raise Refused(BAD_PARAMETER, "reportType (one of 1, 2, 3, 4)")
        if reporter == target:
            raise Refused(BAD_PARAMETER, "userId (cannot report yourself)")
        if not await self.accounts.exists(target):
            raise Refused(NO_SUCH_USER)
        now_ms = self.now_ms()
        day = time.strftime("%Y%m%d", time.gmtime(now_ms // 1000))
        report_id, status = await FILE_REPORT(
            self.store,
            [key("reported", REALM, reporter, target), key("rptday", REALM, reporter, day), key("seq", REALM, "report"),
             key("reports", REALM, "all"), key("reports", REALM, "open")],
            [reporter, target, report_type, live_id or "", now_ms, self.settings.reports_per_day,
             key("report", REALM) + ":", MAX_REPORTS, DEDUPE_S])
        if int(status) < 0:
            raise Refused(BUSINESS_FAILED, f"at most {self.settings.reports_per_day} reports a day")
        return str(report_id)

    # -- operators ---------------------------------------------------------------------------

    async def get(self, report_id: str) -> dict[str, Any] | None:
        raw = await self.store.hgetall(_report_key(str(report_id)))
        return _shown(raw) if raw else None

    async def page(self, status: str = "open", offset: int = 0, limit: int = 50) -> tuple[int, list[dict]]:
        """(total, reports newest first); `status` "open" or "all"."""
        if status not in ("open", "all"):
            raise Refused(BAD_PARAMETER, "status (open or all)")
        if offset < 0 or not 0 < limit <= 500:
            raise Refused(BAD_PARAMETER, "offset/limit (limit 1 to 500)")
        k = key("reports", REALM, status)
        total = int(await self.store.zcard(k))
        ids = await self.store.zrevrange(k, offset, offset + limit - 1) if offset < total else []
        out = []
        for report_id in ids:
            report = await self.get(report_id)
            if report is not None:
                out.append(report)
        return total, out

    async def resolve(self, report_id: str, resolution: str = "") -> dict[str, Any]:
        if len(resolution) > MAX_RESOLUTION_CHARS:
            raise Refused(BAD_PARAMETER, f"resolution (at most {MAX_RESOLUTION_CHARS} characters)")
        done = await RESOLVE(self.store, [_report_key(str(report_id)), key("reports", REALM, "open")],
                             [str(report_id), resolution, self.now_ms()])
        if int(done) != 1:
            raise Refused(NOT_FOUND, "no such report")
        return await self.get(report_id)

    async def ban(self, uid: str, reason: str = "") -> None:
        """Ban an account: no sessions, no sign-in, off the discovery lists."""
        if len(reason) > MAX_RESOLUTION_CHARS:
            raise Refused(BAD_PARAMETER, f"reason (at most {MAX_RESOLUTION_CHARS} characters)")
        if not await self.accounts.exists(uid):
            raise Refused(NOT_FOUND, "no such user")
        await self.accounts.update(uid, {"banned": "1", "bannedReason": reason, "bannedAt": self.now_ms()})
        await self.tokens.revoke_all(uid)
        for k in (active_key(), new_users_key(), recommended_key()):
            await self.store.zrem(k, uid)
        await self.kick(uid)

    async def unban(self, uid: str) -> None:
        if not await self.accounts.exists(uid):
            raise Refused(NOT_FOUND, "no such user")
        await self.accounts.update(uid, {"banned": "0"})


def _shown(raw: dict[str, str]) -> dict[str, Any]:
    report_type = int(raw.get("type", "0") or 0)
    out: dict[str, Any] = {"id": int(raw["id"]), "reporter": raw.get("reporter", ""), "target": raw.get("target", ""),
                           "reportType": report_type, "reportTypeText": REPORT_TYPES.get(report_type, ""),
                           "liveId": raw.get("liveId", ""), "created": int(raw.get("created", "0") or 0),
                           "status": raw.get("status", "open")}
    if out["status"] == "resolved":
        out["resolution"] = raw.get("resolution", "")
        out["resolved"] = int(raw.get("resolved", "0") or 0)
    return out
