"""
Lua scripts: the way multi-key changes stay atomic without read-modify-write
from Python (see docs/architecture.md). A `Script` is declared once at module
level and called with the store; txredisapi sends EVALSHA once the script is
known to a connection and falls back to EVAL after a Redis restart (NOSCRIPT).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:  # pragma: no cover
    from heihei.store.client import Store


class Script:
    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    async def __call__(self, store: "Store", keys: Sequence[str] = (), args: Sequence[Any] = ()) -> Any:
        return await store.eval(self.source, list(keys), list(args))

    def __repr__(self) -> str:
        return f"<Script {self.name} {self.sha[:8]}>"
