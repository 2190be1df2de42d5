"""
SMS verification codes; a provider delivers them (`heihei.outbound.sms`:
`[sms] provider` log or http, injected).

A code is 6 random digits, valid `code_ttl_s` (5 minutes), usable once; a
phone gets at most one code per `resend_interval_s` (60 s, else 400); after
`max_attempts` (5) wrong tries the code is burnt. Times come from the injected
clock and are checked inside Lua scripts, so concurrent requests on several
nodes cannot get around a limit.

Redis: `sms:heihei:<phone>` HASH {code, expires, tries};
`smsgap:heihei:<phone>` the time (ms) before which no new code is sent.

A provider that fails (raises) means the user never got the code: the
limits are lifted so they can ask again at once, and the answer is 400.
"""

from __future__ import annotations

import secrets

from twisted.logger import Logger

from heihei.heihei.accounts import GC_SLACK_MS, REALM
from heihei.core.errors import Refused
from heihei.heihei.errors import SMS_FAILED, SMS_TOO_FREQUENT, WRONG_CODE
from heihei.outbound.sms import SmsProvider
from heihei.store.keys import key
from heihei.store.scripts import Script

SEND_GUARD = Script("heihei_sms_guard", r"""
-- KEYS: 1 gap key, 2 code hash. ARGV: 1 now ms, 2 interval ms, 3 code, 4 expires ms, 5 px.
-- Returns 1 and stores the code, or 0 when the phone asked too recently.
local gap = redis.call('GET', KEYS[1])
if gap and tonumber(gap) > tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], string.format('%d', tonumber(ARGV[1]) + tonumber(ARGV[2])), 'PX', ARGV[5])
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'code', ARGV[3], 'expires', ARGV[4], 'tries', 0)
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return 1
""")

CHECK_CODE = Script("heihei_sms_check", r"""
-- KEYS: 1 code hash. ARGV: 1 code, 2 now ms, 3 max attempts.
-- Returns 1 right (the code is used up), 0 wrong, -1 no valid code.
local h = redis.call('HMGET', KEYS[1], 'code', 'expires')
if not h[1] then return -1 end
if tonumber(h[2]) <= tonumber(ARGV[2]) then redis.call('DEL', KEYS[1]); return -1 end
if h[1] == ARGV[1] then redis.call('DEL', KEYS[1]); return 1 end
local tries = redis.call('HINCRBY', KEYS[1], 'tries', 1)
if tries >= tonumber(ARGV[3]) then redis.call('DEL', KEYS[1]) end
return 0
""")

CODE_DIGITS = 6


class SmsCodes:
    _log = Logger()

    def __init__(self, store, clock, provider: SmsProvider, settings) -> None:
        self.store = store
        self.clock = clock
        self.provider = provider
        self.settings = settings

    def now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    async def send_code(self, phone: str) -> int:
        """Create and send a code; returns the seconds before another may be asked for."""
        s = self.settings
        code = f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"
        now = self.now_ms()
        ttl_ms = int(s.code_ttl_s * 1000)
        ok = await SEND_GUARD(self.store, [key("smsgap", REALM, phone), key("sms", REALM, phone)],
                              [now, int(s.resend_interval_s * 1000), code, now + ttl_ms,
                               max(ttl_ms, int(s.resend_interval_s * 1000)) + GC_SLACK_MS])
        if int(ok) != 1:
            raise Refused(SMS_TOO_FREQUENT)
        text = s.text.replace("{code}", code).replace("{minutes}", str(max(1, round(s.code_ttl_s / 60))))
        try:
            await self.provider.send(phone, code, text)
        except Exception as e:
            self._log.failure("sending the SMS code to {phone} failed", phone=phone)
            # the user never got it: let them ask again at once
            await self.store.delete([key("smsgap", REALM, phone), key("sms", REALM, phone)])
            raise Refused(SMS_FAILED) from e
        return int(s.resend_interval_s)

    async def check(self, phone: str, code: str) -> None:
        """Use up a right code or raise 401."""
        result = await CHECK_CODE(self.store, [key("sms", REALM, phone)],
                                  [code, self.now_ms(), self.settings.max_attempts])
        if int(result) != 1:
            raise Refused(WRONG_CODE)
