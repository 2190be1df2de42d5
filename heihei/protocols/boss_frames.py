"""
Parsing and formatting of the boss underscore frames (seed 002), kept pure:
no I/O, no clock, so every rule here is unit-tested on its own.

Client frames (see heihei/protocols/boss.py for the whole wire format):

    login_<userid>[_<ticket>]            logout_<userid>
    <kind>_<toid>_<content>_<type>[_<extension>]
    members_<groupid>                    records_<id>_<timet>[_unicast|_group]

A send frame is parsed from both ends: kind and target from the left, the type
from the right. The content may contain `_`, and so may a JSON extension
inside its strings, so the type cannot simply be "the last `_unicast_`": the
rightmost separator whose extension is empty or a whole JSON document wins;
if there is none (an opaque extension such as base64), the rightmost
separator does, as docs/boss.md explains.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import orjson

from heihei.boss.ids import ID_RE
from heihei.boss.tickets import TICKET_RE

KINDS = ("emotion", "video", "picture", "text", "audio")
TYPES = ("unicast", "group")

TIMET_RE = re.compile(r"[0-9]{1,12}")
#: how many candidate separators may be tried as "the extension is JSON from here"
MAX_JSON_TRIES = 16

# error codes (protocols.md)
MALFORMED = 400
NOT_LOGGED_IN = 401
FORBIDDEN = 403
NOT_FOUND = 404
TOO_LARGE = 413
TOO_FAST = 429
INTERNAL = 500
UNAVAILABLE = 503


class FrameError(ValueError):
    """A frame the server refuses; becomes `error_<code>_<reason>`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code} {reason}")
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Login:
    user: str
    ticket: str | None  # "<expiry>.<hex>" or None for a plain login


@dataclass(frozen=True)
class Logout:
    user: str


@dataclass(frozen=True)
class Send:
    kind: str
    to: str
    content: str
    type: str  # unicast | group
    extension: str


@dataclass(frozen=True)
class Members:
    group: str


@dataclass(frozen=True)
class Records:
    target: str
    timet: int
    type: str | None  # None: a group the user is in, else the 1:1 conversation


Frame = Login | Logout | Send | Members | Records


def _check_id(value: str, what: str) -> str:
    if not ID_RE.fullmatch(value):
        raise FrameError(MALFORMED, f"bad {what} id")
    return value


def parse(text: str) -> Frame:
    """One client frame -> a frame object, or `FrameError`."""
    head, sep, rest = text.partition("_")
    if not sep:
        if head in KINDS or head in ("login", "logout", "members", "records"):
            raise FrameError(MALFORMED, f"malformed {head} frame")
        raise FrameError(MALFORMED, "unknown kind" if head else "malformed frame")
    if head == "login":
        user, _, ticket = rest.partition("_")
        _check_id(user, "user")
        if ticket and not TICKET_RE.fullmatch(ticket):
            raise FrameError(NOT_LOGGED_IN, "malformed ticket")
        return Login(user, ticket or None)
    if head == "logout":
        return Logout(_check_id(rest, "user"))
    if head == "members":
        return Members(_check_id(rest, "group"))
    if head == "records":
        parts = rest.split("_")
        if len(parts) not in (2, 3) or not TIMET_RE.fullmatch(parts[1]):
            raise FrameError(MALFORMED, "malformed records frame, expected id and timet")
        kind = parts[2] if len(parts) == 3 else None
        if kind is not None and kind not in TYPES:
            raise FrameError(MALFORMED, "records type must be unicast or group")
        return Records(_check_id(parts[0], "target"), int(parts[1]), kind)
    if head in KINDS:
        return _parse_send(head, rest)
    raise FrameError(MALFORMED, "unknown kind")


def _parse_send(kind: str, rest: str) -> Send:
    to, sep, body = rest.partition("_")
    if not sep:
        raise FrameError(MALFORMED, f"malformed {kind} frame, no content")
    _check_id(to, "target")
    content, type_, extension = split_type(body)
    if not content:
        raise FrameError(MALFORMED, "empty content")
    return Send(kind, to, content, type_, extension)


def _candidates(body: str) -> list[tuple[int, int, str]]:
    """Every place the type could be: (start of `_type`, start of extension, type), left to right."""
    found = []
    for type_ in TYPES:
        marker = f"_{type_}_"
        start = body.find(marker)
        while start != -1:
            found.append((start, start + len(marker), type_))
            start = body.find(marker, start + 1)
        if body.endswith(f"_{type_}"):
            found.append((len(body) - len(type_) - 1, len(body), type_))
    # a content that is just the type word with nothing before it has no `_` in front
    return sorted(found)


def split_type(body: str) -> tuple[str, str, str]:
    """`<content>_<type>[_<extension>]` -> (content, type, extension)."""
    candidates = _candidates(body)
    if not candidates:
        raise FrameError(MALFORMED, "missing type, expected unicast or group")
    tries = 0
    for start, ext_start, type_ in reversed(candidates):
        extension = body[ext_start:]
        if not extension:
            return body[:start], type_, ""
        if extension[0] in "{[\"" and tries < MAX_JSON_TRIES:
            tries += 1
            try:
                orjson.loads(extension)
            except orjson.JSONDecodeError:
                continue
            return body[:start], type_, extension
    start, ext_start, type_ = candidates[-1]
    return body[:start], type_, body[ext_start:]


# -- server frames -------------------------------------------------------------------


def format_error(code: int, reason: str) -> str:
    """`error_<code>_<reason>`; the reason never holds `_`, so the frame splits cleanly."""
    return f"error_{code}_{reason.replace('_', ' ')}"


def format_delivery(kind: str, sender: str, content: str, type_: str, group: str, timet: int,
                    extension: str) -> str:
    """What a receiver gets: `kind_fromuserid_content_type_fromgroupid_timet_extension`.

    For unicast `group` is the sender. The extension part is always present
    (empty when none was sent) so every frame has the same number of fields.
    """
    return f"{kind}_{sender}_{content}_{type_}_{group}_{timet}_{extension}"


def format_members(group: str, members: list[str]) -> str:
    return f"members_{group}_" + orjson.dumps(members).decode("utf-8")


def format_records(target: str, timet: int, frames: list[str]) -> str:
    return f"records_{target}_{timet}_" + orjson.dumps(frames).decode("utf-8")


def format_heartbeat(n: int) -> str:
    return f"heartbeat_{n}"
