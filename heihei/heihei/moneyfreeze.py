"""
A money freeze: an operator holds one user's spending (error 721 用户账户异常
on `live/buy-gift`, `live/buy-bullet`, `chat/buy-gift`, `payment/p2g` and
`payment/pay-req`) while an account is looked into, without banning it.

The freeze is one hash per user, `frozen` ('1' or '0') with the reason, who
set it and when, and a short list of the last changes (the audit trail of
freezes: the ledger's entries are balance changes only, replayed by the
reconciliation, so a freeze, which moves no money, is not one of them).

The check is not here: the ledger's scripts (heihei.heihei.ledger) read the
`frozen` field inside the same Lua script that checks and changes the
balance, so no spending can slip between an operator's freeze and a charge,
on any node. Only spending is held: credits (a paid order, 黑票 from someone
else's gift, an operator's grant) still land, and a gift charged before the
freeze still answers its retries as before.
"""

from __future__ import annotations

import json
from typing import Any

from heihei.core.errors import BAD_REQUEST, NOT_FOUND, Refused
from heihei.heihei.accounts import REALM, user_key
from heihei.store.keys import key
from heihei.store.scripts import Script

#: the most characters of a freeze's reason
REASON_MAX_CHARS = 200
#: how many of a user's last freezes and unfreezes are kept
HISTORY_MAX = 50


def money_freeze_key(uid: str) -> str:
    """The user's freeze hash (`frozen`, `reason`, `by`, `at`); read by the ledger's spending scripts."""
    return key("moneyfreeze", REALM, uid)


def money_freeze_log_key(uid: str) -> str:
    """The user's last HISTORY_MAX freezes and unfreezes, oldest first (JSON entries)."""
    return key("moneyfreezelog", REALM, uid)


SET_FREEZE = Script("heihei_money_freeze", r"""
-- KEYS: 1 profile, 2 freeze hash, 3 freeze log. ARGV: 1 '1' freeze / '0' unfreeze, 2 reason, 3 by, 4 now ms,
-- 5 history max. Returns 1 done, -1 no such user.
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
redis.call('HSET', KEYS[2], 'frozen', ARGV[1], 'reason', ARGV[2], 'by', ARGV[3], 'at', ARGV[4])
redis.call('RPUSH', KEYS[3], cjson.encode({frozen = ARGV[1] == '1', reason = ARGV[2], by = ARGV[3],
                                           at = tonumber(ARGV[4])}))
redis.call('LTRIM', KEYS[3], -tonumber(ARGV[5]), -1)
return 1
""")


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class MoneyFreezes:
    """Setting and reading freezes; the ledger's scripts enforce them (see the module's docstring)."""

    def __init__(self, store, clock) -> None:
        self.store = store
        self.clock = clock

    async def set(self, uid: str, frozen: Any, reason: Any, *, by: str) -> dict[str, Any]:
        """Freeze (`frozen` True) or unfreeze one user's spending, with a reason (1 to REASON_MAX_CHARS
        characters): the state after. BAD_REQUEST for a bad value, NOT_FOUND for no such user."""
        if not isinstance(frozen, bool):
            raise Refused(BAD_REQUEST, "frozen must be true or false")
        if not isinstance(reason, str) or not reason.strip() or len(reason) > REASON_MAX_CHARS:
            raise Refused(BAD_REQUEST, f"reason must be 1 to {REASON_MAX_CHARS} characters")
        done = await SET_FREEZE(self.store, [user_key(uid), money_freeze_key(uid), money_freeze_log_key(uid)],
                                ["1" if frozen else "0", reason.strip(), by, int(self.clock.seconds() * 1000),
                                 HISTORY_MAX])
        if int(done) == -1:
            raise Refused(NOT_FOUND, "no such user")
        return await self.state(uid)

    async def state(self, uid: str) -> dict[str, Any]:
        """{userId, frozen, reason, by, at, history}: the last change's reason, who and when ('' and 0 when
        the user was never frozen), and the last changes, oldest first."""
        raw = await self.store.hgetall(money_freeze_key(uid)) or {}
        h = {_s(k): _s(v) for k, v in raw.items()}
        history = [json.loads(e) for e in await self.store.lrange(money_freeze_log_key(uid), 0, -1)]
        return {"userId": str(uid), "frozen": h.get("frozen") == "1", "reason": h.get("reason", ""),
                "by": h.get("by", ""), "at": int(h.get("at") or 0), "history": history}

    async def is_frozen(self, uid: str) -> bool:
        return _s(await self.store.hget(money_freeze_key(uid), "frozen") or "") == "1"
