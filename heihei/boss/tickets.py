"""
Login tickets: `<expiry>.<hex HMAC-SHA256(secret, "<userid>:<expiry>")>`.

The app back end, which knows who its user is, issues a ticket; the client
presents it in `login_<userid>_<ticket>` (and, on HTTP, as `ticket`). The
server needs no session store: the secret and the clock decide. Pure
functions taking `now_s`, so tests need no clock.
"""

from __future__ import annotations

import hashlib
import hmac
import re

#: `<expiry>.<64 hex>`
TICKET_RE = re.compile(r"([0-9]{1,12})\.([0-9a-f]{64})")


class TicketError(ValueError):
    """The ticket is malformed, forged or expired; the message is safe to show."""


def sign(secret: str, user: str, expiry: int) -> str:
    mac = hmac.new(secret.encode("utf-8"), f"{user}:{int(expiry)}".encode("utf-8"), hashlib.sha256)
    return mac.hexdigest()


def make_ticket(secret: str, user: str, expiry: int) -> str:
    """What the app back end hands its client (valid until `expiry`, Unix seconds)."""
    return f"{int(expiry)}.{sign(secret, user, expiry)}"


def check_ticket(secret: str, user: str, ticket: str, now_s: float) -> None:
    """Raise `TicketError` unless `ticket` was issued for `user` with `secret` and has not expired."""
    if not secret:
        raise TicketError("tickets not configured")
    m = TICKET_RE.fullmatch(ticket or "")
    if m is None:
        raise TicketError("malformed ticket")
    expiry, mac = int(m.group(1)), m.group(2)
    if not hmac.compare_digest(mac, sign(secret, user, expiry)):
        raise TicketError("invalid ticket")
    if now_s > expiry:
        raise TicketError("ticket expired")
