"""
Group logs for realms whose clients *pull* what they missed (J-IM, seed 003): the member's cursor
advances only over a contiguous prefix of the log the client received, live or pulled.

Why: a boss client is sent the log after its cursor at login, so everything it confirms is
contiguous from the cursor and the cursor can simply move to the newest id confirmed
(heihei.core.grouplog). A J-IM client is sent nothing at login: it is pushed only what arrives
while it is online and pulls the rest when it likes (cmd 19 type 0, with filters, time windows,
offset and count). A confirmed live push of id 120 must not move the cursor past ids 101..119
that arrived while the member was away and were not pulled yet: they would be lost.

The model, per member and group:

- **cursor** (`gcur:<realm>:<user>`, shared with the boss path): every log entry up to it reached
  one of the member's clients (or is the member's own message).
- **seen ranges above the cursor** (`gseen:<realm>:<user>` HASH group -> "lo:hi,lo:hi,..."):
  every log entry with lo < id <= hi reached a client. A connection's live stream is one range:
  at attach it takes the log's head as its *live floor* (nothing older is pushed to it), so what
  it confirms is (floor, newest confirmed]. A type 0 pull adds one range per returned message.
- **compaction** (`MARK_SEEN`, one Lua step per batch): ranges are merged when no entry lies
  between them but the member's own; the cursor absorbs the first range when nothing but the
  member's own messages (or nothing left by retention) lies between. With no backlog (the usual
  case: nothing arrived while away, or it was pulled) a live confirmation moves the cursor
  straight on and no range is kept, so the steady state costs what boss's cursor writes cost.
- **waiting** (what cmd 19 type 0/2 return): log entries after the cursor, not in a seen range,
  not the member's own, and not newer than the asking connection's live floor (those were pushed
  to it, or are on their way).

Bounds: at most SEEN_MAX_RANGES ranges per member and group (only a member who never pulls and
keeps coming and going makes more: the oldest go, so their messages are handed out again by
a pull, a duplicate rather than a loss); a range below the log's oldest entry vanishes at the next
compaction (retention trimmed what it covered).
"""

from __future__ import annotations

from heihei.core.grouplog import GroupLog, cursor_key, log_key
from heihei.core.model import Message
from heihei.store.keys import key
from heihei.store.scripts import Script

#: seen ranges kept per member and group (beyond, the oldest go: duplicates at a pull, never a loss)
SEEN_MAX_RANGES = 256
#: own messages looked at between two ranges before they count as not contiguous
OWN_SCAN = 64
#: log entries read per call while collecting waiting messages
PAGE = 500


def seen_key(realm: str, user: str) -> str:
    """The user's seen ranges above each group cursor: HASH group -> "lo:hi,lo:hi"."""
    return key("gseen", realm, user)


MARK_SEEN = Script("group_mark_seen", r"""
-- KEYS: per (user, group) 3 keys: the user's cursor hash, the user's seen hash, the group's log.
-- ARGV: 1 max ranges, 2 own-scan limit, then per (user, group): user, group, n, then n (lo, hi).
-- Adds the ranges (lo, hi] as received, merges them, and moves the cursor over the contiguous
-- prefix. Nothing happens for a member without a cursor (removed meanwhile).
local maxr, scan = tonumber(ARGV[1]), tonumber(ARGV[2])
local function fmt(x) return string.format('%d', x) end
-- true when every log entry in (a, b] is the user's own message (or there is none)
local function own_or_none(log, user, a, b)
  if b <= a then return true end
  local entries = redis.call('ZRANGEBYSCORE', log, '(' .. fmt(a), fmt(b), 'LIMIT', 0, scan)
  if #entries >= scan then return false end
  for _, e in ipairs(entries) do
    local bar = string.find(e, '|', 1, true)
    local ok, d = pcall(cjson.decode, string.sub(e, bar + 1))
    if not ok or d.s ~= user then return false end
  end
  return true
end
local at = 3
for k = 1, #KEYS, 3 do
  local curk, seenk, log = KEYS[k], KEYS[k + 1], KEYS[k + 2]
  local user, group, n = ARGV[at], ARGV[at + 1], tonumber(ARGV[at + 2])
  local first = at + 3
  at = first + 2 * n
  local cur = redis.call('HGET', curk, group)
  if cur then
    cur = tonumber(cur)
    local start = cur
    local ranges = {}
    local old = redis.call('HGET', seenk, group)
    if old then
      for lo, hi in string.gmatch(old, '(%d+):(%d+)') do table.insert(ranges, {tonumber(lo), tonumber(hi)}) end
    end
    for i = 0, n - 1 do
      table.insert(ranges, {tonumber(ARGV[first + 2 * i]), tonumber(ARGV[first + 2 * i + 1])})
    end
    table.sort(ranges, function(x, y) return x[1] < y[1] end)
    local kept = {}
    for _, r in ipairs(ranges) do
      local lo, hi = r[1], r[2]
      if hi > cur then
        local last = kept[#kept]
        if last == nil then
          if lo <= cur or own_or_none(log, user, cur, lo) then cur = hi else table.insert(kept, {lo, hi}) end
        elseif lo <= last[2] or own_or_none(log, user, last[2], lo) then
          if hi > last[2] then last[2] = hi end
        else
          table.insert(kept, {lo, hi})
        end
      end
    end
    while #kept > maxr do table.remove(kept, 1) end
    if cur > start then redis.call('HSET', curk, group, fmt(cur)) end
    if #kept == 0 then
      if old then redis.call('HDEL', seenk, group) end
    else
      local parts = {}
      for i, r in ipairs(kept) do parts[i] = fmt(r[1]) .. ':' .. fmt(r[2]) end
      redis.call('HSET', seenk, group, table.concat(parts, ','))
    end
  end
end
return 1
""")


def parse_ranges(text: str | bytes | None) -> list[tuple[int, int]]:
    if not text:
        return []
    if isinstance(text, bytes):
        text = text.decode("ascii")
    out = []
    for part in text.split(","):
        lo, _, hi = part.partition(":")
        out.append((int(lo), int(hi)))
    return out


def _seen(server_id: int, ranges: list[tuple[int, int]]) -> bool:
    return any(lo < server_id <= hi for lo, hi in ranges)


class GroupPull:
    """The Redis side of pulled group messages: what waits for a member, and marking what was received."""

    def __init__(self, log: GroupLog) -> None:
        self.log = log
        self.store = log.store

    async def waiting(self, realm: str, user: str, groups: list[str], *, live_floors: dict[str, int],
                      begin_ms: int | None = None, end_ms: int | None = None, limit: int = 10000) -> list[Message]:
        """Up to `limit` messages per group that reached none of the member's clients, oldest first
        (merged across groups by id). `live_floors` is the asking connection's live floor per group:
        anything newer was pushed to it."""
        if not groups:
            return []
        cursors = await self.log.cursors(realm, user)
        raw_seen = await self.store.hgetall(seen_key(realm, user))
        out: list[Message] = []
        for group in groups:
            cur = cursors.get(group)
            if cur is None:
                continue  # not a member (or not since cursors exist: see docs/groups.md)
            ranges = [(lo, hi) for lo, hi in parse_ranges(raw_seen.get(group)) if hi > cur]
            low = cur if begin_ms is None else max(cur, begin_ms * 1024 - 1)
            high = live_floors.get(group)
            if end_ms is not None:
                top = end_ms * 1024 + 1023
                high = top if high is None else min(high, top)
            out += await self._waiting_in(realm, group, user, low, high, ranges, begin_ms, end_ms, limit)
        out.sort(key=lambda m: m.id)
        return out

    async def _waiting_in(self, realm, group, user, low, high, ranges, begin_ms, end_ms, limit) -> list[Message]:
        """Read only the gaps between the seen ranges, (low, lo1], (hi1, lo2], ..., (hiN, high],
        so a long stretch pushed live above an old gap costs nothing here."""
        gaps, start = [], low
        for lo, hi in sorted(ranges):
            if lo > start:
                gaps.append((start, lo if high is None else min(lo, high)))
            start = max(start, hi)
        gaps.append((start, high))
        found: list[Message] = []
        for gap_low, gap_high in gaps:
            if gap_high is not None and gap_high <= gap_low:
                continue
            top = "+inf" if gap_high is None else str(gap_high)
            while len(found) < limit:
                entries = await self.store.zrangebyscore(log_key(realm, group), f"({gap_low}", top, offset=0,
                                                         count=PAGE)
                for entry in entries:
                    m = Message.from_entry(realm, entry)
                    gap_low = m.id
                    if m.sender == user or _seen(m.id, ranges):
                        continue
                    if (begin_ms is not None and m.created_ms < begin_ms) or \
                            (end_ms is not None and m.created_ms > end_ms):
                        continue
                    found.append(m)
                    if len(found) >= limit:
                        break
                if len(entries) < PAGE:
                    break
            if len(found) >= limit:
                break
        return found

    async def mark(self, realm: str, by_user: dict[str, dict[str, list[tuple[int, int]]]]) -> None:
        """Record ranges (lo, hi] as received, for many members in one Redis call; cursors advance
        over what became contiguous."""
        keys: list[str] = []
        args: list = [SEEN_MAX_RANGES, OWN_SCAN]
        for user, groups in by_user.items():
            for group, ranges in groups.items():
                if not ranges:
                    continue
                keys += [cursor_key(realm, user), seen_key(realm, user), log_key(realm, group)]
                args += [user, group, len(ranges)]
                for lo, hi in ranges:
                    args += [lo, hi]
        if keys:
            await MARK_SEEN(self.store, keys, args)

    async def mark_pulled(self, realm: str, user: str, messages: list[Message]) -> None:
        """Messages handed out by a pull reached the client: each is its own range (id - 1, id]."""
        by_group: dict[str, list[tuple[int, int]]] = {}
        for m in messages:
            if m.kind == "group" and m.id:
                by_group.setdefault(m.target, []).append((m.id - 1, m.id))
        if by_group:
            await self.mark(realm, {user: by_group})

    async def ranges(self, realm: str, user: str, group: str) -> list[tuple[int, int]]:
        """The member's seen ranges above the cursor (for tests and the operators' view)."""
        return parse_ranges(await self.store.hget(seen_key(realm, user), group))

    async def unread(self, realm: str, user: str, groups: list[str], *, limit: int = 10000) -> dict[str, int]:
        """Group -> how many messages wait for the member (not pushed to, nor pulled by, any client)."""
        counts = {}
        for m in await self.waiting(realm, user, groups, live_floors={}, limit=limit):
            counts[m.target] = counts.get(m.target, 0) + 1
        return counts
