"""
Every Redis key and channel name is built here, from escaped parts.

Ids come from clients. Escaping each part (percent-encoding everything but
letters, digits and `-._~`) means an id holding `:` or `*` cannot name another
user's key, and a glob in KEYS/SCAN or PSUBSCRIBE cannot be smuggled in.
"""

import re
from urllib.parse import quote, unquote

PREFIX = "hh"

#: what `quote(..., safe="")` leaves alone; most ids are only that, and skip its per-byte work
_ALREADY_SAFE = re.compile(r"[A-Za-z0-9_.~-]*").fullmatch


def escape(part: object) -> str:
    text = str(part)
    return text if _ALREADY_SAFE(text) else quote(text, safe="")


def unescape(part: str) -> str:
    return unquote(part)


def key(*parts: object) -> str:
    """`key("inbox", "boss", "a:b")` → `hh:inbox:boss:a%3Ab`."""
    if not parts:
        raise ValueError("a key needs at least one part")
    return ":".join([PREFIX, *(escape(p) for p in parts)])


def split(name: str) -> list[str]:
    """The unescaped parts of a key made by `key` (without the prefix)."""
    prefix, _, rest = name.partition(":")
    if prefix != PREFIX:
        raise ValueError(f"not a heihei key: {name!r}")
    return [unescape(p) for p in rest.split(":")]
