"""
Domain refusals: what the core or a realm says when it will not do what a
client asked, without knowing any wire format.

A refusal is `Refused(reason, detail)`. `reason` is a short name: the shared
ones below, or a realm's own (each realm module lists its reasons next to the
code that raises them). Every adapter (a WebSocket protocol or an HTTP
surface) maps reasons to its wire format with one table, so the same
"not a member" is `error_403_...` for boss, `10002` for J-IM and `711` for the
heihei app. `detail` is safe to show to the client; it never carries secrets.

A Redis that does not answer is not a refusal: it is
`heihei.store.client.StoreUnavailable`, which every adapter maps too.
"""

from __future__ import annotations

#: the sender is not a member of the group it addressed
NOT_A_MEMBER = "not-a-member"
#: the group (or room) does not exist
NO_SUCH_GROUP = "no-such-group"
#: a rate limit refused it
TOO_FAST = "too-fast"
#: a text is over its length cap
TOO_LONG = "too-long"
#: the sender is muted where it spoke
MUTED = "muted"
#: the input is malformed or out of range (the detail says which part)
BAD_REQUEST = "bad-request"
#: the caller may not do this (someone else's message, group ...)
FORBIDDEN = "forbidden"
#: a thing the request names does not exist (user, message ...)
NOT_FOUND = "not-found"
#: a group is full (its member cap)
FULL = "full"

SHARED_REASONS = (NOT_A_MEMBER, NO_SUCH_GROUP, TOO_FAST, TOO_LONG, MUTED, BAD_REQUEST, FORBIDDEN, NOT_FOUND, FULL)


class Refused(Exception):
    """The domain will not do it; `reason` names why, `detail` says more to the client."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
