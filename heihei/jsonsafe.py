"""
The one JSON decoder for everything a client sends.

Why one place: each protocol must turn *every* bad input into its own error
answer, and the ways JSON decoding fails are more than `JSONDecodeError`
(invalid UTF-8, lone surrogates, nesting deep enough to exhaust the stack,
integers too big to be useful). The size is checked before parsing so a huge
document never reaches the parser. orjson is used because it is 5-19x faster
than the standard library on our frames (see bench/README.md) and already
rejects surrogates, >64-bit integers and nesting deeper than 1024; the checks
here make those promises ours rather than a library detail.
"""

from __future__ import annotations

from typing import Any

import orjson

MAX_DEPTH = 64


class BadJSON(ValueError):
    """The input is not acceptable JSON; `reason` is safe to show to a client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def decode_json(data: bytes | str, *, max_bytes: int) -> Any:
    """Parse `data` or raise `BadJSON`; never any other exception."""
    try:
        if isinstance(data, str):
            data = data.encode("utf-8")
    except UnicodeEncodeError:
        raise BadJSON("not valid UTF-8") from None
    if len(data) > max_bytes:
        raise BadJSON(f"document larger than {max_bytes} bytes")
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise BadJSON(f"not valid JSON: {_first_line(e)}") from None
    except Exception as e:  # orjson documents only JSONDecodeError; be sure
        raise BadJSON(f"not valid JSON: {type(e).__name__}") from None
    if _too_deep(value):
        raise BadJSON(f"nesting deeper than {MAX_DEPTH}")
    return value


def decode_json_object(data: bytes | str, *, max_bytes: int) -> dict[str, Any]:
    value = decode_json(data, max_bytes=max_bytes)
    if not isinstance(value, dict):
        raise BadJSON("expected a JSON object")
    return value


def encode_json(value: Any) -> bytes:
    """Compact UTF-8 JSON (non-ASCII kept as is, as the original servers sent it)."""
    return orjson.dumps(value)


def _first_line(e: Exception) -> str:
    return str(e).splitlines()[0][:120] if str(e) else type(e).__name__


def _too_deep(value: Any) -> bool:
    # Iterative so that checking depth cannot itself recurse too deep.
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            if depth > MAX_DEPTH:
                return True
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            if depth > MAX_DEPTH:
                return True
            stack.extend((v, depth + 1) for v in item)
    return False
