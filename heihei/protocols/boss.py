"""
Seed 002 "boss": underscore-separated text frames over WebSocket.

Endpoint: `ws://<boss listener>/entry` (also `/wsim/entry`). Text frames only;
one request per frame; fields are separated by `_`. docs/boss.md has the
reasoning behind every rule below.

Client -> server
    login_<userid>                       plain login (only with [boss] insecure_login)
    login_<userid>_<expiry>.<hex>        ticket login: hex = HMAC-SHA256(login_secret, "<userid>:<expiry>")
        -> ok                            then every stored message, oldest first
    logout_<userid>                      -> the server closes the connection (1000 "logout")
    <kind>_<toid>_<content>_<type>[_<extension>]
        kind: emotion | video | picture | text | audio;  type: unicast | group
        content may contain `_`; the extension is opaque (JSON with `_` inside
        strings is fine) and passed through unchanged. No answer on success.
    members_<groupid>                    -> members_<groupid>_<JSON list of member ids>
    records_<id>_<timet>[_unicast|_group]
        -> records_<id>_<timet>_<JSON list of frames as delivered, newer than timet>
           (the newest [boss] records_max_count, oldest first; id is a group the
           user is in, else a user; a trailing type says which)

Server -> client
    <kind>_<fromuserid>_<content>_<type>_<fromgroupid>_<timet>_<extension>
        unicast: fromgroupid == fromuserid; timet = Unix seconds; the extension
        part is empty when none was sent
    heartbeat_<n>                        every [boss] heartbeat_interval s; needs no answer
    error_<code>_<reason>                the frame was refused, the connection stays usable:
        400 malformed / unknown kind / binary frame   401 not logged in / bad ticket
        403 not a member, other user                  404 no such group
        413 frame over [boss] max_frame_bytes          429 too fast
        500 internal error                             503 store unavailable, try again

A WebSocket message over [boss] max_message_bytes closes the connection (1009);
invalid UTF-8 closes it (1007). A connection silent (no frame, no pong) for
[boss] dead_after seconds is closed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from twisted.logger import Logger

from heihei.boss.chat import LOGIN_REFUSED, BossChat, parts_of
from heihei.boss.tickets import make_ticket
from heihei.core import errors
from heihei.core.errors import Refused
from heihei.core.heartbeat import BEAT_PING_PREFIX
from heihei.core.model import Message
from heihei.net.websocket import BaseProtocol
from heihei.protocols import boss_frames as wire
from heihei.protocols.boss_frames import FrameError
from heihei.store.client import StoreUnavailable

REALM = "boss"
#: a records answer stops growing here (the send queue is 1 MiB by default)
RECORDS_MAX_BYTES = 256 * 1024
#: domain refusal -> error code (the reason's detail is the frame's text)
REFUSALS = {
    LOGIN_REFUSED: wire.NOT_LOGGED_IN,
    errors.NOT_A_MEMBER: wire.FORBIDDEN,
    errors.FORBIDDEN: wire.FORBIDDEN,
    errors.NO_SUCH_GROUP: wire.NOT_FOUND,
    errors.NOT_FOUND: wire.NOT_FOUND,
    errors.TOO_FAST: wire.TOO_FAST,
    errors.TOO_LONG: wire.TOO_LARGE,
    errors.BAD_REQUEST: wire.MALFORMED,
}


def render(message: Message) -> str | None:
    """A stored boss message as its receivers see it (None: not a boss chat message)."""
    parts = parts_of(message)
    if parts is None:
        return None
    group = message.target if parts.type == "group" else message.sender
    return wire.format_delivery(parts.kind, message.sender, parts.content, parts.type, group,
                                message.created_ms // 1000, parts.extension)


class BossRenderer:
    """Every receiver gets the same bytes."""

    def variant(self, message, client):
        return None

    @staticmethod
    def renders_alike(message) -> bool:
        """Always: the hub renders once for a whole group without asking per receiver."""
        return True

    def render(self, message, variant):
        text = render(message)
        return text.encode("utf-8") if text is not None else None


def beat(connections: Iterable, n: int) -> None:
    """Every `[boss] heartbeat_interval`: `heartbeat_<n>` (clients ignore it, as the seed says)
    and a WebSocket ping, which every client answers."""
    payload = wire.format_heartbeat(n).encode("ascii")
    ping = BEAT_PING_PREFIX + b"%d" % n
    frame = None
    for conn in connections:
        if not conn.connection_open:
            continue
        if frame is None:
            frame = conn.prepare(payload)
        if conn.send_frame(frame):
            conn.sendPing(ping)


class BossProtocol(BaseProtocol):
    _log = Logger()

    @property
    def chat(self) -> BossChat:
        return self.factory.context

    # -- Autobahn callbacks ------------------------------------------------------------------------

    def onMessage(self, payload: bytes, is_binary: bool) -> None:
        chat = self.chat
        scope = ("user", self.user) if self.user is not None else ("conn", self.session.id)
        if not chat.allow(scope):
            self._error(wire.TOO_FAST, "too fast, slow down")
            return
        if is_binary:
            self._error(wire.MALFORMED, "binary frames are not supported, send text")
            return
        max_frame = chat.settings.max_frame_bytes
        if len(payload) > max_frame:
            self._error(wire.TOO_LARGE, f"frame larger than {max_frame} bytes")
            return
        try:
            text = payload.decode("utf-8")  # Autobahn normally refuses invalid UTF-8 first (1007)
        except UnicodeDecodeError:
            self._error(wire.MALFORMED, "frame is not UTF-8 text")
            return
        if not self.run_in_order(lambda: self._handle(text), "boss frame"):
            self._error(wire.TOO_FAST, "too many frames waiting, slow down")

    # -- frames ------------------------------------------------------------------------------------

    def login_timed_out(self) -> None:
        self._error(wire.NOT_LOGGED_IN, f"no login within {self.chat.settings.login_timeout_s:g} s")
        super().login_timed_out()

    def _error(self, code: int, reason: str) -> None:
        if self.connection_open:
            self.send_text(wire.format_error(code, reason))

    async def _handle(self, text: str) -> None:
        if not self.connection_open:
            return
        try:
            frame = wire.parse(text)
            if isinstance(frame, wire.Login):
                await self._login(frame)
            elif self.user is None:
                raise FrameError(wire.NOT_LOGGED_IN, "not logged in")
            elif isinstance(frame, wire.Send):
                await self.chat.send(self.user, frame.kind, frame.to, frame.content, frame.type, frame.extension)
            elif isinstance(frame, wire.Members):
                members = await self.chat.members(self.user, frame.group)
                self._answer(wire.format_members(frame.group, members))
            elif isinstance(frame, wire.Records):
                await self._records(frame)
            elif isinstance(frame, wire.Logout):
                self._logout(frame)
        except FrameError as e:
            self._error(e.code, e.reason)
        except Refused as e:
            self._error(REFUSALS.get(e.reason, wire.INTERNAL), e.detail or e.reason)
        except StoreUnavailable:
            self._error(wire.UNAVAILABLE, "service unavailable, try again")
        except Exception:
            self._log.failure("boss frame from {peer} failed", peer=self.peer)
            self._error(wire.INTERNAL, "internal error")

    def _answer(self, text: str) -> None:
        if self.connection_open:
            self.send_text(text)

    async def _login(self, frame: wire.Login) -> None:
        if self.user is not None:
            if frame.user != self.user:
                raise FrameError(wire.FORBIDDEN, "already logged in as another user on this connection")
            self.send_text("ok")
            return
        self.chat.check_login(frame.user, frame.ticket)
        # replay=True: live messages wait until the stored ones are out (order, no duplicates)
        if not await self.session.login(frame.user, replay=True):
            return
        self.send_text("ok")
        sent = await self.session.replay()
        self._log.debug("boss user {user} logged in from {peer}, {n} stored messages sent",
                        user=self.user, peer=self.peer, n=sent)

    def _logout(self, frame: wire.Logout) -> None:
        if frame.user != self.user:
            raise FrameError(wire.FORBIDDEN, "cannot log out another user")
        self.close(1000, "logout")

    async def _records(self, frame: wire.Records) -> None:
        newest_first = await self.chat.records(self.user, frame.target, frame.timet, frame.type)
        shown: list[str] = []
        size = 0
        for message in newest_first:
            text = render(message)
            if text is None:
                continue
            size += len(text.encode("utf-8")) + 4
            if size > RECORDS_MAX_BYTES:
                break
            shown.append(text)
        shown.reverse()
        self._answer(wire.format_records(frame.target, frame.timet, shown))


@dataclass(frozen=True)
class BossOperators:
    """Manhole helpers: `operators["boss"].ticket("42")` gives a login ticket for tests by hand."""

    settings: object
    clock: object
    groups: object
    profiles: object
    media: object

    def ticket(self, user: str, valid_s: float = 86400) -> str:
        if not self.settings.login_secret:
            raise ValueError("[boss] login_secret is not set")
        return make_ticket(self.settings.login_secret, user, int(self.clock.seconds() + valid_s))
