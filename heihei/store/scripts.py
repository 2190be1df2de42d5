"""
Lua scripts: the way multi-key changes stay atomic without read-modify-write
from Python (see docs/architecture.md). A `Script` is declared once at module
level and called with the store; txredisapi sends EVALSHA once the script is
known to a connection and falls back to EVAL after a Redis restart (NOSCRIPT).

Every script refuses itself when it runs too late. A caller that gave up
waiting (Redis frozen, a full network buffer) has told its client the write
failed; if Redis then ran the queued script after all, a client that retried
as told would create a duplicate, a "ghost write". So each call carries a
deadline in Redis's own clock (the store's estimate of it, `Store.deadline_ms`:
the caller's reply timeout from now, corrected by the measured offset between
this node's clock and Redis's), and the script's first lines compare it with
`TIME` and return the error `HEIHEI_LATE` instead of writing anything. The
deadline is the last ARGV and is removed before the script's own code runs,
which therefore sees exactly the arguments it was called with.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:  # pragma: no cover
    from heihei.store.client import Store

#: the error a script answers when it runs past its caller's deadline
LATE = "HEIHEI_LATE"

_GUARD = r"""
local __deadline = tonumber(table.remove(ARGV))
if __deadline then
  local __t = redis.call('TIME')
  if tonumber(__t[1]) * 1000 + math.floor(tonumber(__t[2]) / 1000) > __deadline then
    return redis.error_reply('""" + LATE + r""" the caller gave up before this ran')
  end
end
"""


class Script:
    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.body = source
        self.source = _GUARD + source
        self.sha = hashlib.sha1(self.source.encode()).hexdigest()

    async def __call__(self, store: "Store", keys: Sequence[str] = (), args: Sequence[Any] = ()) -> Any:
        return await store.eval(self.source, list(keys), [*args, store.deadline_ms()])

    def __repr__(self) -> str:
        return f"<Script {self.name} {self.sha[:8]}>"
