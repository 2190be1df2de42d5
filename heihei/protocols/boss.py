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

import itertools
import os
from dataclasses import dataclass

from twisted.logger import Logger

from heihei.protocols import boss_frames as wire
from heihei.protocols.boss_frames import FrameError
from heihei.boss.groups import GroupService
from heihei.boss.mediastore import MediaStore
from heihei.boss.profiles import Profiles
from heihei.boss.service import BossService
from heihei.boss.tickets import TicketError, check_ticket, make_ticket
from heihei.web.boss import BossWeb
from heihei.core.model import Message, group_conversation, pair_conversation
from heihei.core.policy import Rate
from heihei.net.websocket import BaseProtocol
from heihei.store.client import StoreUnavailable
from heihei.web.root import RootResource

REALM = "boss"
#: a records answer stops growing here (the send queue is 1 MiB by default)
RECORDS_MAX_BYTES = 256 * 1024
#: room for the multipart envelope around an upload of max_upload_bytes
UPLOAD_ENVELOPE_BYTES = 64 * 1024

_connection_numbers = itertools.count(1)


def render(message: Message) -> str | None:
    """A stored boss message as its receivers see it (None: not a boss chat message)."""
    body = message.body
    try:
        kind, content, type_, extension = body["k"], body["c"], body["y"], body.get("x", "")
    except (KeyError, TypeError):
        return None
    group = message.target if type_ == "group" else message.sender
    return wire.format_delivery(kind, message.sender, content, type_, group, message.created_ms // 1000, extension)


class BossRenderer:
    """Every receiver gets the same bytes."""

    def variant(self, message, client):
        return None

    def render(self, message, variant):
        text = render(message)
        return text.encode("utf-8") if text is not None else None


@dataclass(frozen=True)
class BossContext:
    """What the connections of one node share (hung on the factory as `factory.boss`)."""

    settings: object
    clock: object
    service: BossService
    rate: Rate


class BossProtocol(BaseProtocol):
    _log = Logger()

    def __init__(self) -> None:
        super().__init__()
        self.number = next(_connection_numbers)

    @property
    def boss(self) -> BossContext:
        return self.factory.boss

    # -- Autobahn callbacks ------------------------------------------------------------------------

    def onOpen(self) -> None:
        super().onOpen()
        self.boss.service.seen(self)

    def onPing(self, payload: bytes) -> None:
        self.boss.service.seen(self)
        super().onPing(payload)

    def onPong(self, payload: bytes) -> None:
        self.boss.service.seen(self)
        super().onPong(payload)  # delivery confirmations ride on pongs

    def onMessage(self, payload: bytes, is_binary: bool) -> None:
        boss = self.boss
        boss.service.seen(self)
        scope = (REALM, "user", self.user) if self.user is not None else (REALM, "conn", self.number)
        if not self.factory.hub.rates.allow(scope, boss.rate):
            self._error(wire.TOO_FAST, "too fast, slow down")
            return
        if is_binary:
            self._error(wire.MALFORMED, "binary frames are not supported, send text")
            return
        if len(payload) > boss.settings.max_frame_bytes:
            self._error(wire.TOO_LARGE, f"frame larger than {boss.settings.max_frame_bytes} bytes")
            return
        try:
            text = payload.decode("utf-8")  # Autobahn normally refuses invalid UTF-8 first (1007)
        except UnicodeDecodeError:
            self._error(wire.MALFORMED, "frame is not UTF-8 text")
            return
        if not self.run_in_order(lambda: self._handle(text), "boss frame"):
            self._error(wire.TOO_FAST, "too many frames waiting, slow down")

    def connectionLost(self, reason) -> None:
        self.boss.service.forget(self)
        super().connectionLost(reason)
        if self.user is not None:
            self.spawn(self.factory.hub.disconnect(self), "boss disconnect")

    # -- frames ------------------------------------------------------------------------------------

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
                await self._send(frame)
            elif isinstance(frame, wire.Members):
                await self._members(frame)
            elif isinstance(frame, wire.Records):
                await self._records(frame)
            elif isinstance(frame, wire.Logout):
                self._logout(frame)
        except FrameError as e:
            self._error(e.code, e.reason)
        except StoreUnavailable:
            self._error(wire.UNAVAILABLE, "service unavailable, try again")
        except Exception:
            self._log.failure("boss frame from {peer} failed", peer=self.peer)
            self._error(wire.INTERNAL, "internal error")

    def _authenticate(self, frame: wire.Login) -> None:
        s = self.boss.settings
        if frame.ticket is not None:
            try:
                check_ticket(s.login_secret, frame.user, frame.ticket, self.boss.clock.seconds())
            except TicketError as e:
                raise FrameError(wire.NOT_LOGGED_IN, str(e)) from None
        elif not s.insecure_login:
            raise FrameError(wire.NOT_LOGGED_IN,
                             "login ticket required" if s.login_secret else "login not configured on this server")

    async def _login(self, frame: wire.Login) -> None:
        if self.user is not None:
            if frame.user != self.user:
                raise FrameError(wire.FORBIDDEN, "already logged in as another user on this connection")
            self.send_text("ok")
            return
        self._authenticate(frame)
        if not self.connection_open:
            return
        hub = self.factory.hub
        self.user = frame.user
        # replay=True: live messages wait until the stored ones are out (order, no duplicates)
        await hub.connect(self, replay=True)
        if not self.connection_open:
            return
        self.send_text("ok")
        sent = await hub.deliver_pending(self)
        self._log.debug("boss user {user} logged in from {peer}, {n} stored messages sent",
                        user=self.user, peer=self.peer, n=sent)

    def _logout(self, frame: wire.Logout) -> None:
        if frame.user != self.user:
            raise FrameError(wire.FORBIDDEN, "cannot log out another user")
        self.close(1000, "logout")

    async def _send(self, frame: wire.Send) -> None:
        hub = self.factory.hub
        content = hub.moderation.clean(frame.content) if frame.kind == "text" else frame.content
        body = {"k": frame.kind, "c": content, "y": frame.type, "x": frame.extension}
        if frame.type == "unicast":
            await hub.send_to_user(REALM, self.user, frame.to, body)
            return
        members = await self._group_members(frame.to)
        await hub.send_to_group(REALM, self.user, frame.to, members, body)

    async def _group_members(self, group: str) -> list[str]:
        """The members of a group the user is in (404 / 403 otherwise)."""
        groups = self.factory.hub.groups
        members = await groups.members(REALM, group)
        if self.user in members:
            return members
        if not members and not await groups.exists(REALM, group):
            raise FrameError(wire.NOT_FOUND, f"no such group {group}")
        raise FrameError(wire.FORBIDDEN, f"not a member of group {group}")

    async def _members(self, frame: wire.Members) -> None:
        members = await self._group_members(frame.group)
        if self.connection_open:
            self.send_text(wire.format_members(frame.group, members))

    async def _records(self, frame: wire.Records) -> None:
        hub = self.factory.hub
        if frame.type == "group" or (frame.type is None and await hub.groups.is_member(REALM, frame.target,
                                                                                         self.user)):
            await self._group_members(frame.target)
            conversation = group_conversation(frame.target)
        else:
            conversation = pair_conversation(self.user, frame.target)
        newest_first = await hub.history.page(REALM, conversation, begin_ms=(frame.timet + 1) * 1000,
                                              count=self.boss.settings.records_max_count, newest_first=True)
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
        if self.connection_open:
            self.send_text(wire.format_records(frame.target, frame.timet, shown))


class BossOperators:
    """Manhole helpers: `operators["boss"].ticket("42")` gives a login ticket for tests by hand."""

    def __init__(self, settings, clock, groups: GroupService, profiles: Profiles, media: MediaStore) -> None:
        self.settings = settings
        self.clock = clock
        self.groups = groups
        self.profiles = profiles
        self.media = media

    def ticket(self, user: str, valid_s: float = 86400) -> str:
        if not self.settings.login_secret:
            raise ValueError("[boss] login_secret is not set")
        return make_ticket(self.settings.login_secret, user, int(self.clock.seconds() + valid_s))


def install(node) -> None:
    """Speak seed 002 on the node's `--boss` site: /entry, the group API, uploads, media."""
    s = node.settings.boss
    factory = node.factories[REALM]
    media = MediaStore(s.media_dir or os.path.join(node.data_dir, "boss-media"), reactor=node.reactor,
                       max_upload_bytes=s.max_upload_bytes, max_media_seconds=s.max_media_seconds)
    service = BossService(factory, s, clock=node.clock, media=media)
    service.setServiceParent(node)
    factory.protocol = BossProtocol
    factory.boss = BossContext(settings=s, clock=node.clock, service=service,
                               rate=Rate(per_second=s.rate_per_second, burst=s.rate_burst))
    node.hub.register_realm(REALM, BossRenderer())

    profiles = Profiles(node.store, node.outbound.profiles, cache_s=s.profile_cache_s)
    groups = GroupService(node.hub, profiles, media, max_members=s.max_group_members)
    web = BossWeb(s, clock=node.clock, groups=groups, profiles=profiles, media=media).resource()

    # every HTTP route answers at /<route> and at /wsim/<route>; /entry and /wsim/entry stay WebSockets
    root = node.boss_root
    root.fallback = web
    wsim = RootResource(fallback=web)
    old = root.children.get(b"wsim")
    for name, child in (getattr(old, "children", None) or {}).items():
        wsim.putChild(name, child)
    root.putChild(b"wsim", wsim)

    # uploads need a larger body cap than the site default (node.py may set this itself)
    listener = node.listeners.get(REALM)
    site = getattr(listener, "factory", None)
    needed = s.max_upload_bytes + UPLOAD_ENVELOPE_BYTES
    if site is not None and getattr(site, "max_body_bytes", needed) < needed:
        site.max_body_bytes = needed

    node.operators[REALM] = BossOperators(s, node.clock, groups, profiles, media)
