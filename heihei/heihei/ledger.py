"""
The heihei app's money: diamonds (`gold`) and 黑票 (`point`), and the
append-only ledger that explains every change of them (issue 19;
docs/heihei.md, "Money").

Balances live in the user's profile hash (`goldCount`, `point`, with the
running totals `allOutlayGold` and `allEarnPoint`, and `heldPoint`, the
points a pending withdrawal holds), so `user/info` shows them with no extra
read. Every change is one Lua script that, in one step, checks that no
balance goes below zero, changes the balances and appends one entry per
changed balance to the user's ledger list:

    {"id": n, "at": ms, "uid": "...", "cur": "gold"|"point", "delta": n, "after": n,
     "cause": "order"|"gift"|"bullet"|"p2g"|"withdrawal"|"withdrawal-return"|"operator",
     "ref": "...", "peer": "...", "note": "..."}

`id` is one sequence for the whole ledger (the order of the changes),
`after` the balance after this entry, so the ledger alone replays every
balance (`reconcile_user`). A change and its entry cannot be separated by a
crash: Redis runs the script whole or not at all (and the AOF replays it
whole).

Idempotence lives in the same scripts: a gift with a `gift_uuid` is done
once per (sender, gift_uuid, amount) (`gift_once_s` remembers it); an order
is credited once (its hash's status moves from `pending` to `credited` in the
script that adds the gold; an Apple transaction id can credit one order only);
a withdrawal is settled once.

A money freeze (heihei.heihei.moneyfreeze) is checked in the same scripts
too: the spending ones (a gift's or barrage's charge, p2g, a withdrawal's
hold) refuse a frozen user in the step that would charge them; credits never
look at it.

`send_gift(sender, receiver, price, points, gift_uuid=..., amount=..., live_id=...)`
is the API the live room (`live/buy-gift`) and the 1:1 chat (`chat/buy-gift`)
call; it knows nothing of rooms or wire formats.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from heihei.core.errors import Refused
from heihei.heihei.accounts import REALM, user_key
from heihei.heihei.livecore import live_key
from heihei.heihei.errors import ACCOUNT_PROBLEM, BAD_ORDER, BAD_PARAMETER, NO_GOLD, NO_POINT, NO_SUCH_USER
from heihei.heihei.moneyfreeze import money_freeze_key
from heihei.store.keys import key
from heihei.store.scripts import Script

GOLD = "gold"
POINT = "point"
#: the profile fields that hold each currency's balance
BALANCE_FIELD = {GOLD: "goldCount", POINT: "point"}
#: at most this much in one change (a mistyped operator grant should not overflow anything)
MAX_DELTA = 10 ** 12
#: entries of one user read per LRANGE when paging or reconciling
PAGE_MAX = 200


def ledger_key(uid: str) -> str:
    return key("ledger", REALM, uid)


def ledger_users_key() -> str:
    """Every user with a ledger (a sorted set: the time of their first entry)."""
    return key("ledgerusers", REALM)


def seq_key() -> str:
    return key("ledgerseq", REALM)


def gift_once_key(sender: str, gift_uuid: str, amount: int) -> str:
    return key("giftonce", REALM, sender, gift_uuid, amount)


def order_key(order_id: str) -> str:
    return key("order", REALM, order_id)


def user_orders_key(uid: str) -> str:
    return key("uorders", REALM, uid)


def iap_txn_key(txn: str) -> str:
    return key("iaptxn", REALM, txn)


def withdrawal_key(wid: str) -> str:
    return key("withdrawal", REALM, wid)


def withdrawals_key(status: str) -> str:
    """Withdrawals by status (`pending`, `paying`, `paid`, `rejected`, `failed`): sorted by request time."""
    return key("withdrawals", REALM, status)


#: the Lua that every money script starts with: `post` checks and applies one change and appends its
#: entry; `can` says whether a change would leave the balance at or above zero.
_POST = r"""
local function field_of(cur) if cur == 'gold' then return 'goldCount' else return 'point' end end
local function balance(profile, cur) return tonumber(redis.call('HGET', profile, field_of(cur)) or '0') end
local function can(profile, cur, delta) return balance(profile, cur) + delta >= 0 end
local function frozen(freeze) return redis.call('HGET', freeze, 'frozen') == '1' end
local function post(profile, ledger, uid, cur, delta, cause, ref, peer, note, now, seq, users)
  local after = redis.call('HINCRBY', profile, field_of(cur), delta)
  local id = redis.call('INCR', seq)
  redis.call('RPUSH', ledger, cjson.encode({id = id, at = tonumber(now), uid = uid, cur = cur,
    delta = delta, after = after, cause = cause, ref = ref, peer = peer, note = note}))
  redis.call('ZADD', users, 'NX', now, uid)
  return after
end
"""

SEND_GIFT = Script("heihei_ledger_gift", _POST + r"""
-- KEYS: 1 sender profile, 2 receiver profile, 3 sender ledger, 4 receiver ledger, 5 once key,
--       6 live hash, 7 seq, 8 users, 9 the price's catalog version key, 10 a counter to INCR once charged
--       (the room item's message id), 11 the sender's money freeze hash.
-- ARGV: 1 sender, 2 receiver, 3 price (gold), 4 points, 5 now ms, 6 cause, 7 ref, 8 note,
--       9 once ttl s ('' = no once key), 10 '1' add the points to the live's totalTickets,
--       11 the catalog version the price was read from ('' = not checked), 12 '1' INCR KEYS[10] once charged,
--       13.. sender profile fields to return once charged.
-- Returns {status, gold after, live tickets, point after, counter, fields...}: 1 done, 2 done before (the first
-- answer), -1 no sender, -2 not enough gold, -3 no receiver, -5 the catalog changed since the price was read,
-- -6 the sender's money is frozen (after the once check: a gift charged before the freeze answers as before).
if ARGV[9] ~= '' then
  local before = redis.call('GET', KEYS[5])
  if before then
    local g, t, p = string.match(before, '^(%-?%d+)|(%-?%d+)|(%-?%d+)$')
    return {2, tonumber(g), tonumber(t), tonumber(p)}
  end
end
if ARGV[11] ~= '' and (redis.call('GET', KEYS[9]) or '0') ~= ARGV[11] then return {-5, 0, 0, 0} end
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, 0, 0, 0} end
if redis.call('EXISTS', KEYS[2]) == 0 then return {-3, 0, 0, 0} end
if frozen(KEYS[11]) then return {-6, 0, 0, 0} end
local price, points = tonumber(ARGV[3]), tonumber(ARGV[4])
if not can(KEYS[1], 'gold', 0 - price) then return {-2, balance(KEYS[1], 'gold'), 0, 0} end
local gold = post(KEYS[1], KEYS[3], ARGV[1], 'gold', 0 - price, ARGV[6], ARGV[7], ARGV[2], ARGV[8], ARGV[5],
                  KEYS[7], KEYS[8])
redis.call('HINCRBY', KEYS[1], 'allOutlayGold', price)
local point = 0
if points > 0 then
  point = post(KEYS[2], KEYS[4], ARGV[2], 'point', points, ARGV[6], ARGV[7], ARGV[1], ARGV[8], ARGV[5],
               KEYS[7], KEYS[8])
  redis.call('HINCRBY', KEYS[2], 'allEarnPoint', points)
else
  point = balance(KEYS[2], 'point')
end
local tickets = 0
if ARGV[10] == '1' and redis.call('EXISTS', KEYS[6]) == 1 then
  tickets = redis.call('HINCRBY', KEYS[6], 'totalTickets', points)
end
if ARGV[9] ~= '' then
  redis.call('SET', KEYS[5], gold .. '|' .. tickets .. '|' .. point, 'EX', tonumber(ARGV[9]))
end
local out = {1, gold, tickets, point, 0}
if ARGV[12] == '1' then out[5] = redis.call('INCR', KEYS[10]) end
for i = 13, #ARGV do out[#out + 1] = redis.call('HGET', KEYS[1], ARGV[i]) end  -- false: a nil reply
return out
""")

ADJUST = Script("heihei_ledger_adjust", _POST + r"""
-- One user, up to two changes at once (p2g: points out, gold in; an operator grant: one).
-- KEYS: 1 profile, 2 ledger, 3 seq, 4 users, 5 the user's money freeze hash.
-- ARGV: 1 uid, 2 now ms, 3 cause, 4 ref, 5 note, 6 '1' the user's own spending (refused while frozen),
--       then (cur, delta) pairs.
-- Returns {status, after of each change...}: 1 done, -1 no such user, -2 gold short, -3 points short,
-- -6 the user's money is frozen.
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1} end
if ARGV[6] == '1' and frozen(KEYS[5]) then return {-6} end
for i = 7, #ARGV, 2 do
  if not can(KEYS[1], ARGV[i], tonumber(ARGV[i + 1])) then
    if ARGV[i] == 'gold' then return {-2} else return {-3} end
  end
end
local out = {1}
for i = 7, #ARGV, 2 do
  local d = tonumber(ARGV[i + 1])
  out[#out + 1] = post(KEYS[1], KEYS[2], ARGV[1], ARGV[i], d, ARGV[3], ARGV[4], '', ARGV[5], ARGV[2],
                       KEYS[3], KEYS[4])
end
return out
""")

CREDIT_ORDER = Script("heihei_ledger_credit_order", _POST + r"""
-- KEYS: 1 order hash, 2 profile, 3 ledger, 4 seq, 5 users, 6 the provider transaction's key.
-- ARGV: 1 order id, 2 now ms, 3 provider transaction id, 4 '1' when the transaction may credit one order only.
-- Returns {status, gold after}: 1 credited now, 2 credited before, -1 no such order, -4 the transaction
-- already credited another order.
local o = KEYS[1]
if redis.call('EXISTS', o) == 0 then return {-1, 0} end
if redis.call('HGET', o, 'status') == 'credited' then
  redis.call('PERSIST', o)
  return {2, tonumber(redis.call('HGET', KEYS[2], 'goldCount') or '0')}
end
if ARGV[4] == '1' then
  local owner = redis.call('GET', KEYS[6])
  if owner and owner ~= ARGV[1] then return {-4, 0} end
  redis.call('SET', KEYS[6], ARGV[1])
end
local uid = redis.call('HGET', o, 'uid')
local gold = tonumber(redis.call('HGET', o, 'gold'))
local after = post(KEYS[2], KEYS[3], uid, 'gold', gold, 'order', ARGV[1], '', redis.call('HGET', o, 'channel'),
                   ARGV[2], KEYS[4], KEYS[5])
redis.call('HSET', o, 'status', 'credited', 'creditedAt', ARGV[2], 'txn', ARGV[3])
redis.call('PERSIST', o)
return {1, after}
""")

HOLD_WITHDRAWAL = Script("heihei_ledger_hold_withdrawal", _POST + r"""
-- KEYS: 1 profile, 2 ledger, 3 seq, 4 users, 5 withdrawal hash, 6 pending set, 7 the user's money freeze hash.
-- ARGV: 1 uid, 2 now ms, 3 withdrawal id, 4 points, 5 fen, 6 account, 7 name (encrypted).
-- Returns {status, point after}: 1 held, -1 no such user, -3 points short, -6 the user's money is frozen.
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, 0} end
if frozen(KEYS[7]) then return {-6, 0} end
local points = tonumber(ARGV[4])
if not can(KEYS[1], 'point', -points) then return {-3, 0} end
local after = post(KEYS[1], KEYS[2], ARGV[1], 'point', -points, 'withdrawal', ARGV[3], '', ARGV[5] .. ' fen',
                   ARGV[2], KEYS[3], KEYS[4])
redis.call('HINCRBY', KEYS[1], 'heldPoint', points)
redis.call('HSET', KEYS[5], 'id', ARGV[3], 'uid', ARGV[1], 'points', points, 'fen', ARGV[5], 'account', ARGV[6],
           'name', ARGV[7], 'status', 'pending', 'createdAt', ARGV[2])
redis.call('ZADD', KEYS[6], ARGV[2], ARGV[3])
return {1, after}
""")

SETTLE_WITHDRAWAL = Script("heihei_ledger_settle_withdrawal", _POST + r"""
-- Move a withdrawal from one status to the next, once; returning its points when it is rejected or failed.
-- KEYS: 1 withdrawal hash, 2 profile, 3 ledger, 4 seq, 5 users, 6 set of the status it leaves,
--       7 set of the status it enters.
-- ARGV: 1 withdrawal id, 2 now ms, 3 expected status, 4 new status, 5 '1' return the points, 6 note.
-- Returns {status, current status}: 1 moved, 0 it was not in the expected status, -1 no such withdrawal.
local w = KEYS[1]
if redis.call('EXISTS', w) == 0 then return {-1, ''} end
local now_status = redis.call('HGET', w, 'status')
if now_status ~= ARGV[3] then return {0, now_status} end
local uid = redis.call('HGET', w, 'uid')
local points = tonumber(redis.call('HGET', w, 'points'))
if ARGV[5] == '1' then
  post(KEYS[2], KEYS[3], uid, 'point', points, 'withdrawal-return', ARGV[1], '', ARGV[6], ARGV[2], KEYS[4], KEYS[5])
end
if ARGV[4] ~= 'paying' then redis.call('HINCRBY', KEYS[2], 'heldPoint', -points) end
redis.call('HSET', w, 'status', ARGV[4], 'updatedAt', ARGV[2], 'note', ARGV[6])
redis.call('ZREM', KEYS[6], ARGV[1])
redis.call('ZADD', KEYS[7], ARGV[2], ARGV[1])
return {1, ARGV[4]}
""")

RECONCILE_USER = Script("heihei_ledger_reconcile_user", r"""
-- Replay one user's ledger against their balances, atomically (no change can slip in between).
-- KEYS: 1 profile, 2 ledger. Returns {entries, gold balance, gold sum, point balance, point sum,
-- broken (entries whose `after` is not the running sum or is negative), last id}.
local sums = {gold = 0, point = 0}
local broken, last, n = 0, 0, redis.call('LLEN', KEYS[2])
for start = 0, n - 1, 500 do
  local batch = redis.call('LRANGE', KEYS[2], start, start + 499)
  for _, raw in ipairs(batch) do
    local e = cjson.decode(raw)
    sums[e.cur] = (sums[e.cur] or 0) + e.delta
    if e.after ~= sums[e.cur] or e.after < 0 or e.id <= last then broken = broken + 1 end
    last = e.id
  end
end
local gold = tonumber(redis.call('HGET', KEYS[1], 'goldCount') or '0')
local point = tonumber(redis.call('HGET', KEYS[1], 'point') or '0')
return {n, gold, sums.gold, point, sums.point, broken, last}
""")


@dataclass(frozen=True)
class GiftResult:
    """What a gift did: the sender's gold left, the live's totalTickets (0 without a live), the
    receiver's points, and whether this call did it (False: a retry answered as the first time)."""

    gold: int
    total_tickets: int
    receiver_point: int
    charged: bool
    #: the counter asked for with `count`, INCRed once charged (else 0)
    counted: int = 0
    #: the sender's profile fields asked for with `sender_fields`, read once charged (else empty)
    sender: dict[str, str] | None = None


class StaleCatalog(Exception):
    """The catalog changed between reading a price and charging it: nothing was charged, read it again."""


@dataclass(frozen=True)
class Mismatch:
    uid: str
    entries: int
    gold: int
    gold_sum: int
    point: int
    point_sum: int
    broken: int

    def as_dict(self) -> dict[str, Any]:
        return {"userId": self.uid, "entries": self.entries, "gold": self.gold, "goldFromLedger": self.gold_sum,
                "point": self.point, "pointFromLedger": self.point_sum, "brokenEntries": self.broken}


def _check_amount(name: str, value: int, *, zero_ok: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) > MAX_DELTA:
        raise Refused(BAD_PARAMETER, f"{name} (an integer up to {MAX_DELTA})")
    if value < 0 or (value == 0 and not zero_ok):
        raise Refused(BAD_PARAMETER, f"{name} (positive)")
    return value


class Ledger:
    """Balances and their entries; every method is one atomic script (see the module's docstring)."""

    def __init__(self, store, clock, *, gift_once_s: int = 3600) -> None:
        self.store = store
        self.clock = clock
        self.gift_once_s = gift_once_s

    def now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    async def send_gift(self, sender: str, receiver: str, price: int, points: int, *, gift_uuid: str | None = None,
                        amount: int = 1, live_id: str | None = None, cause: str = "gift",
                        note: str = "", price_version: tuple[str, int] | None = None, count: str | None = None,
                        sender_fields: tuple[str, ...] = ()) -> GiftResult:
        """Move `price` gold from `sender` and `points` 黑票 to `receiver` (and to the live's
        totalTickets). With a `gift_uuid`, the same (sender, gift_uuid, amount) is done once: a retry
        answers what the first call answered. 740 (NO_GOLD) when the sender has too little gold, 710
        when either user does not exist, 721 (ACCOUNT_PROBLEM) while the sender's money is frozen
        (heihei.heihei.moneyfreeze; a retry of a gift charged before the freeze answers as before).

        The same round trip can do what a gift's caller would otherwise ask Redis for apart:
        `price_version` (the catalog's version key, the version the price was read from) charges only
        if the catalog has not changed since (else `StaleCatalog`, nothing charged: a price cached in
        memory is never charged once an operator changed it); once charged, `count` (a counter key) is
        INCRed into `GiftResult.counted` and `sender_fields` of the sender's profile are read into
        `GiftResult.sender`."""
        _check_amount("price", price, zero_ok=True)
        _check_amount("points", points, zero_ok=True)
        if sender == receiver:
            raise Refused(BAD_PARAMETER, "a gift to yourself")
        once = gift_once_key(sender, gift_uuid, amount) if gift_uuid else seq_key()
        live = live_key(live_id) if live_id else seq_key()
        ref = f"{gift_uuid}:{amount}" if gift_uuid else ""
        out = await SEND_GIFT(
            self.store, [user_key(sender), user_key(receiver), ledger_key(sender), ledger_key(receiver), once, live,
                         seq_key(), ledger_users_key(), price_version[0] if price_version else seq_key(),
                         count or seq_key(), money_freeze_key(sender)],
            [sender, receiver, price, points, self.now_ms(), cause, ref, note,
             self.gift_once_s if gift_uuid else "", "1" if live_id else "0",
             str(price_version[1]) if price_version else "", "1" if count else "0", *sender_fields])
        status, gold, tickets, point = (int(v) for v in out[:4])
        if status == -1 or status == -3:
            raise Refused(NO_SUCH_USER, f"userId {sender if status == -1 else receiver}")
        if status == -2:
            raise Refused(NO_GOLD, f"{price} gold needed, {gold} left")
        if status == -5:
            raise StaleCatalog()
        if status == -6:
            raise Refused(ACCOUNT_PROBLEM)
        if status != 1:
            return GiftResult(gold=gold, total_tickets=tickets, receiver_point=point, charged=False)
        fields = {name: v.decode() if isinstance(v, bytes) else str(v)
                  for name, v in zip(sender_fields, out[5:]) if v is not None}
        return GiftResult(gold=gold, total_tickets=tickets, receiver_point=point, charged=True,
                          counted=int(out[4]), sender=fields if sender_fields else None)

    async def adjust(self, uid: str, changes: list[tuple[str, int]], *, cause: str, ref: str = "",
                     note: str = "", spending: bool = False) -> list[int]:
        """Change one user's balances at once (all or none); the balances after, in order. 710 for no
        such user, 740 / 741 when a balance would go below zero. `spending`: the user's own purchase
        (p2g, a barrage), refused with 721 (ACCOUNT_PROBLEM) while their money is frozen; an operator's
        grant or removal is not the user spending and goes through."""
        if not changes or len(changes) > 2:
            raise ValueError("one or two changes")
        args: list[Any] = [uid, self.now_ms(), cause, ref, note, "1" if spending else "0"]
        for cur, delta in changes:
            if cur not in BALANCE_FIELD:
                raise ValueError(cur)
            if isinstance(delta, bool) or not isinstance(delta, int) or not 0 < abs(delta) <= MAX_DELTA:
                raise Refused(BAD_PARAMETER, f"delta (a non-zero integer, at most {MAX_DELTA} either way)")
            args += [cur, delta]
        out = await ADJUST(self.store, [user_key(uid), ledger_key(uid), seq_key(), ledger_users_key(),
                                        money_freeze_key(uid)], args)
        status = int(out[0])
        if status == -1:
            raise Refused(NO_SUCH_USER, f"userId {uid}")
        if status == -6:
            raise Refused(ACCOUNT_PROBLEM)
        if status == -2:
            raise Refused(NO_GOLD, "not enough gold")
        if status == -3:
            raise Refused(NO_POINT, "not enough points")
        return [int(v) for v in out[1:]]

    async def credit_order(self, order_id: str, *, txn: str = "", txn_unique: bool = False) -> tuple[bool, int]:
        """Credit a paid order's gold once: (credited by this call, gold after). 727 for no such
        order, or for an Apple transaction that already credited another order."""
        status, gold = await CREDIT_ORDER(
            self.store, await self._order_keys(order_id, txn, txn_unique),
            [order_id, self.now_ms(), txn, "1" if txn_unique else "0"])
        status = int(status)
        if status == -1:
            raise Refused(BAD_ORDER, f"order {order_id}")
        if status == -4:
            raise Refused(BAD_ORDER, "this purchase already credited another order")
        return status == 1, int(gold)

    async def _order_keys(self, order_id: str, txn: str, txn_unique: bool) -> list[str]:
        uid = await self.store.hget(order_key(order_id), "uid")
        uid = uid or ""
        return [order_key(order_id), user_key(uid), ledger_key(uid), seq_key(), ledger_users_key(),
                iap_txn_key(txn) if txn_unique else seq_key()]

    async def hold_withdrawal(self, uid: str, wid: str, points: int, fen: int, account: str, name: str) -> int:
        """Take `points` out of `uid`'s balance for withdrawal `wid` (pending); the points after. 740
        when the balance is short (the seed's pay-req code), 710 for no such user, 721 (ACCOUNT_PROBLEM)
        while the user's money is frozen."""
        status, after = await HOLD_WITHDRAWAL(
            self.store, [user_key(uid), ledger_key(uid), seq_key(), ledger_users_key(), withdrawal_key(wid),
                         withdrawals_key("pending"), money_freeze_key(uid)],
            [uid, self.now_ms(), wid, points, fen, account, name])
        status = int(status)
        if status == -1:
            raise Refused(NO_SUCH_USER, f"userId {uid}")
        if status == -3:
            raise Refused(NO_GOLD, "not enough points")
        if status == -6:
            raise Refused(ACCOUNT_PROBLEM)
        return int(after)

    async def move_withdrawal(self, wid: str, expected: str, new: str, *, give_back: bool,
                              note: str = "") -> tuple[bool, str]:
        """Move withdrawal `wid` from `expected` to `new` once (returning its points with `give_back`):
        (moved by this call, its status now); the status is '' when it does not exist."""
        uid = await self.store.hget(withdrawal_key(wid), "uid") or ""
        status, current = await SETTLE_WITHDRAWAL(
            self.store, [withdrawal_key(wid), user_key(uid), ledger_key(uid), seq_key(), ledger_users_key(),
                         withdrawals_key(expected), withdrawals_key(new)],
            [wid, self.now_ms(), expected, new, "1" if give_back else "0", note])
        current = current.decode() if isinstance(current, bytes) else str(current)
        return int(status) == 1, ("" if int(status) == -1 else current)

    # -- reading -----------------------------------------------------------------------------------

    async def balances(self, uid: str) -> dict[str, int]:
        values = await self.store.hmget(user_key(uid), ["goldCount", "point", "allOutlayGold", "allEarnPoint",
                                                        "heldPoint"])
        gold, point, outlay, earned, held = (int(v or 0) for v in values)
        return {"gold": gold, "point": point, "allOutlayGold": outlay, "allEarnPoint": earned, "heldPoint": held}

    async def entries(self, uid: str, *, offset: int = 0, limit: int = 50) -> tuple[int, list[dict[str, Any]]]:
        """(how many entries `uid` has, a page of them newest first)."""
        limit = max(1, min(limit, PAGE_MAX))
        total = int(await self.store.llen(ledger_key(uid)))
        end = total - 1 - offset
        if end < 0:
            return total, []
        start = max(0, end - limit + 1)
        raw = await self.store.lrange(ledger_key(uid), start, end)
        return total, [json.loads(r) for r in reversed(raw)]

    async def reconcile_user(self, uid: str) -> Mismatch | None:
        n, gold, gold_sum, point, point_sum, broken, _ = (
            int(v) for v in await RECONCILE_USER(self.store, [user_key(uid), ledger_key(uid)]))
        if gold == gold_sum and point == point_sum and broken == 0:
            return None
        return Mismatch(uid, n, gold, gold_sum, point, point_sum, broken)

    async def reconcile(self) -> dict[str, Any]:
        """Replay every user's ledger against their balances (each user atomically): how many users and
        entries were checked and the users whose balances the ledger does not explain."""
        users = entries = 0
        mismatches: list[dict[str, Any]] = []
        start = 0
        while True:
            page = await self.store.zrange(ledger_users_key(), start, start + PAGE_MAX - 1)
            for uid in page:
                uid = uid.decode() if isinstance(uid, bytes) else str(uid)
                users += 1
                entries += int(await self.store.llen(ledger_key(uid)))
                bad = await self.reconcile_user(uid)
                if bad is not None:
                    mismatches.append(bad.as_dict())
            if len(page) < PAGE_MAX:
                break
            start += PAGE_MAX
        return {"users": users, "entries": entries, "mismatches": mismatches, "ok": not mismatches}
