"""
What boss users do over the socket (seed 002), whatever the frames look like:
log in with a ticket, send to a user or a group, list a group's members, read
records. `heihei/protocols/boss.py` parses frames, calls these and maps the
refusals (`Refused` reasons) to `error_<code>_<reason>`.

A boss message is stored in the hub with the body `{"k": kind, "c": content,
"y": "unicast"|"group", "x": extension}`; `parts_of` reads it back.
"""

from __future__ import annotations

from dataclasses import dataclass

from heihei.boss.tickets import TicketError, check_ticket
from heihei.core import errors
from heihei.core.errors import Refused
from heihei.core.model import Message, group_conversation, pair_conversation
from heihei.core.policy import Rate

REALM = "boss"
#: the ticket was missing, forged or expired, or logins are not configured
LOGIN_REFUSED = "login-refused"


@dataclass(frozen=True)
class Parts:
    """A stored boss message as the wire needs it."""

    kind: str
    content: str
    type: str  # unicast | group
    extension: str


def parts_of(message: Message) -> Parts | None:
    """The parts of a stored boss chat message (None: not one)."""
    body = message.body
    try:
        return Parts(body["k"], body["c"], body["y"], body.get("x", ""))
    except (KeyError, TypeError):
        return None


class BossChat:
    def __init__(self, hub, settings, *, clock) -> None:
        self.hub = hub
        self.settings = settings
        self.clock = clock
        self.rate = Rate(per_second=settings.rate_per_second, burst=settings.rate_burst)

    def allow(self, scope: tuple) -> bool:
        """One more frame from this user (or anonymous connection) within its rate?"""
        return self.hub.rates.allow((REALM, *scope), self.rate)

    def check_login(self, user: str, ticket: str | None) -> None:
        """A ticket login, or a plain one where `insecure_login` allows it; else `LOGIN_REFUSED`."""
        s = self.settings
        if ticket is not None:
            try:
                check_ticket(s.login_secret, user, ticket, self.clock.seconds())
            except TicketError as e:
                raise Refused(LOGIN_REFUSED, str(e)) from None
        elif not s.insecure_login:
            raise Refused(LOGIN_REFUSED,
                          "login ticket required" if s.login_secret else "login not configured on this server")

    async def send(self, sender: str, kind: str, to: str, content: str, type_: str, extension: str) -> None:
        """Store and deliver a message to a user (`unicast`) or a group the sender is in."""
        if kind == "text":
            content = self.hub.moderation.clean(content)
        body = {"k": kind, "c": content, "y": type_, "x": extension}
        if type_ == "unicast":
            await self.hub.send_to_user(REALM, sender, to, body)
        else:
            await self.hub.send_to_group(REALM, sender, to, body)

    async def members(self, user: str, group: str) -> list[str]:
        """The members of a group `user` is in (`no-such-group` / `not-a-member` otherwise)."""
        members = await self.hub.groups.members(REALM, group)
        if user in members:
            return members
        if not members and not await self.hub.groups.exists(REALM, group):
            raise Refused(errors.NO_SUCH_GROUP, f"no such group {group}")
        raise Refused(errors.NOT_A_MEMBER, f"not a member of group {group}")

    async def records(self, user: str, target: str, after_s: int, type_: str | None) -> list[Message]:
        """Messages newer than `after_s` with a group the user is in, or with a user; newest first,
        at most `records_max_count`. Without a type, a group the user is in wins."""
        if type_ == "group" or (type_ is None and await self.hub.groups.is_member(REALM, target, user)):
            await self.members(user, target)
            conversation = group_conversation(target)
        else:
            conversation = pair_conversation(user, target)
        return await self.hub.history.page(REALM, conversation, begin_ms=(after_s + 1) * 1000,
                                           count=self.settings.records_max_count, newest_first=True)
