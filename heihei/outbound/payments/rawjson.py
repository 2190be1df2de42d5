"""
The exact bytes of each member of a JSON object, as sent.

Alipay signs the *text* of the `xxx_response` member of its answers, not a
canonical form of it, so a verifier needs that member's bytes exactly as they
came. Counting braces (as some SDKs do) breaks on a `}` inside a string value
(a subject, a user's name); this scanner follows strings and escapes.

    member_spans(b'{"a_response":{"x":"}"},"sign":"..."}')
    -> {"a_response": (14, 23), "sign": (31, 36)}      # raw[start:end]

The document is parsed first (`decode_json_object`), so the scanner only runs on
valid JSON and can be simple. A member name given twice is refused: which of the
two a signature covers would be ambiguous.
"""

from __future__ import annotations

import json

from heihei.jsonsafe import BadJSON, decode_json_object

_WHITESPACE = b" \t\r\n"


def member_spans(raw: bytes, *, max_bytes: int) -> dict[str, tuple[int, int]]:
    """Name -> (start, end) of each top-level member's value in `raw`; BadJSON if not an object."""
    decode_json_object(raw, max_bytes=max_bytes)
    spans: dict[str, tuple[int, int]] = {}
    i = _skip(raw, 0)
    i = _skip(raw, i + 1)  # past "{"
    while raw[i:i + 1] != b"}":
        key_end = _string_end(raw, i)
        key = json.loads(raw[i:key_end])
        i = _skip(raw, key_end)
        i = _skip(raw, i + 1)  # past ":"
        start = i
        i = _value_end(raw, i)
        if key in spans:
            raise BadJSON(f"member {key[:40]!r} given twice")
        spans[key] = (start, i)
        i = _skip(raw, i)
        if raw[i:i + 1] == b",":
            i = _skip(raw, i + 1)
    return spans


def _skip(raw: bytes, i: int) -> int:
    while i < len(raw) and raw[i] in _WHITESPACE:
        i += 1
    return i


def _string_end(raw: bytes, i: int) -> int:
    """Index just past the string starting at raw[i] == '"'."""
    i += 1
    while True:
        quote = raw.index(b'"', i)
        backslashes = 0
        j = quote - 1
        while raw[j] == 0x5C:  # "\\"
            backslashes += 1
            j -= 1
        if backslashes % 2 == 0:
            return quote + 1
        i = quote + 1


def _value_end(raw: bytes, i: int) -> int:
    """Index just past the value starting at raw[i]."""
    first = raw[i:i + 1]
    if first == b'"':
        return _string_end(raw, i)
    if first in (b"{", b"["):
        depth = 0
        while True:
            c = raw[i:i + 1]
            if c == b'"':
                i = _string_end(raw, i)
                continue
            if c in (b"{", b"["):
                depth += 1
            elif c in (b"}", b"]"):
                depth -= 1
                if depth == 0:
                    return i + 1
            i += 1
    while i < len(raw) and raw[i:i + 1] not in (b",", b"}", b"]") and raw[i] not in _WHITESPACE:
        i += 1
    return i
