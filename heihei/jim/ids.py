"""
What J-IM ids and tokens may contain, said once for the WebSocket protocol and
the back-end API (and their OpenAPI document): any text but control characters
(C0, DEL, C1) and line or paragraph separators, since ids are shown in lists
and log lines. A rule a JSON-schema pattern can say, unlike `str.isprintable`.
"""

from __future__ import annotations

import re

#: a character an id may contain
ID_CHAR = r"[^\x00-\x1f\x7f-\x9f\u2028\u2029]"
#: a character a token may contain: as an id's, and no space
TOKEN_CHAR = r"[^\x00-\x20\x7f-\x9f\u2028\u2029]"
_ID = re.compile(ID_CHAR + "*")
_TOKEN = re.compile(TOKEN_CHAR + "*")


def is_id_text(text: str) -> bool:
    return _ID.fullmatch(text) is not None


def is_token_text(text: str) -> bool:
    return _TOKEN.fullmatch(text) is not None
