"""
Seed 001 push channel: `ws://host:8082/ws/channel?token=<session token>`.

Handshake
    A missing, unknown, expired or signed-out token is refused in the
    handshake with HTTP 401 (503 if Redis cannot be asked). One user may hold
    any number of connections; each gets every message. If Redis fails while
    the connection registers, it is closed with 4503 (reconnect later).
    `apiVersion` (query parameter, e.g. `&apiVersion=2`) says which items the
    app understands; without it, what `/api/init` declared for the token
    (`apiVersion`), else 1. Version 1 apps (the shipped Android client) get
    no v2 IM items: they would show them as blank bubbles in the open room.
    An app that sends an IM frame speaks v2 from then on.

Server → client: every frame is a JSON array of items
    [{"msg": {...client message structure...}, "timeStamp": <seconds>}, ...]
    v2 IM items are {"msgType": "IM", "msg": {...}, "users": {...}, "timeStamp"}.
    The client dispatches on msg.msgType (and msg.action for "action").
    On connect: the messages stored while the user had no connection (oldest
    first, one item per frame), then
    [{"msg": {"msgType": "action", "action": "message-unread-count",
              "comment": "未读消息数", "count": <n>}, "timeStamp": <s>}];
    the same item again whenever the count changes.

Client → server: a v2 IM object, or a JSON array of up to 20 of them
    {"msgType": "IM", "msg": {"toUserId": 10034, "msgType": "text",
     "content": {"text": "hi"}, "clientMsgId": "optional, echoed, dedupes"}}
    The stored message goes to every connection of both users (the sender's
    copy is the acknowledgement: it carries the new msgId and createTime).
    A refused one is answered on this connection only with
    [{"msg": {"msgType": "action", "action": "im-error", "comment": "消息发送失败",
              "errorcode": <seed code>, "errormsg": "...", "toUserId"?, "clientMsgId"?},
      "timeStamp": <s>}]
    (700 bad frame or content, 710 no such user, 711 blocked either way,
    400 too fast). Binary frames and non-JSON get 700 the same way.

Heartbeat
    WebSocket pings are answered (Autobahn); the server pings every
    `[channel] auto_ping_interval_s` and drops a client that does not answer
    within `auto_ping_timeout_s`.

Domain work is in `heihei.heihei` (`node.social`); this module parses, maps
refusals to the frame above and hands over.
"""

from __future__ import annotations

from autobahn.websocket.types import ConnectionDeny
from twisted.internet import defer
from twisted.logger import Logger

from heihei.core.hub import Notice
from heihei.heihei import im
from heihei.core.errors import Refused
from heihei.web.api.errors import BAD_PARAMETER, BUSINESS_FAILED, ApiError, of_refusal
from heihei.heihei.accounts import token_hash
from heihei.heihei.messages import ITEM
from heihei.heihei.service import NOTICE_KICK, SESSION_REVOKED
from heihei.heihei.rooms import CHANNEL, NOTICE_CLOSE, NOTICE_JOIN, NOTICE_LEAVE, hub_room
from heihei.incidents import STORE
from heihei.jsonsafe import BadJSON, decode_json, encode_json
from heihei.net.websocket import BaseProtocol
from heihei.store.client import StoreUnavailable

_log = Logger()
#: close code when the connection cannot be registered (Redis unavailable): reconnect later
CLOSE_UNAVAILABLE = 4503
#: close code when an operator ended the user's sessions (a ban): the token is no longer valid
CLOSE_SIGNED_OUT = 4401


def error_item(code: int, detail: str, now_s: int, *, to=None, client_msg_id=None) -> dict:
    msg = {"msgType": "action", "action": "im-error", "comment": "消息发送失败", "errorcode": code,
           "errormsg": ApiError(code, detail).errormsg}
    if to is not None:
        msg["toUserId"] = to
    if client_msg_id is not None:
        msg["clientMsgId"] = client_msg_id
    return {"msg": msg, "timeStamp": now_s}


def is_v2_item(item: dict) -> bool:
    """A v2 IM envelope (`{"msgType": "IM", "msg": ...}`), which version 1 apps must not get."""
    return item.get("msgType") == "IM"


def wants_v2(client) -> bool:
    return getattr(client, "api_version", 1) >= 2


class ChannelRenderer:
    """Stored channel messages → frames (one item, or a live room's batch of items); IM `users`
    differ for sender and receiver; v2 IM items only to connections of version 2 apps."""

    def variant(self, message, client):
        return ("s" if client.user == message.sender else "r", wants_v2(client))

    @staticmethod
    def renders_alike(message) -> bool:
        """A live room's batch of items reads the same to sender and receivers, and to every app
        version when it holds no v2 IM item: one frame for the room, no call per viewer (at 10,000
        viewers the per-viewer `variant` was a tenth of the node's CPU)."""
        body = message.body
        return body.get("t") == "items" and not any(
            is_v2_item(item) for item in body.get("items") or () if isinstance(item, dict))

    @staticmethod
    def urgent(message) -> bool:
        """A live room's priority batch (gifts, system and moderation items: heihei.heihei.lanes)."""
        return message.body.get("p") == 1

    def render(self, message, variant):
        side, v2 = variant
        items = im.items_of(message.body, message.created_ms, side == "s")
        if not v2:
            items = [item for item in items if not is_v2_item(item)]
        return encode_json(items) if items else None


class ChannelProtocol(BaseProtocol):
    _log = Logger()
    #: the app's API version (handshake `apiVersion`, else what /api/init said for the token)
    api_version = 1

    @property
    def social(self):
        return self.factory.context

    def now_s(self) -> int:
        return int(self.social.clock.seconds())

    # -- handshake -------------------------------------------------------------------

    def onConnect(self, request):
        token = (request.params.get("token") or [None])[0]
        version = (request.params.get("apiVersion") or [None])[0]
        return defer.Deferred.fromCoroutine(self._authenticate(token, version))

    async def _authenticate(self, token, version):
        try:
            uid = await self.social.user_of(token)
            if uid is not None:
                self.api_version = im.api_major(version) if version else await self.social.tokens.api_version(token)
        except StoreUnavailable:
            raise ConnectionDeny(503, "service unavailable") from None
        if uid is None:
            raise ConnectionDeny(401, "invalid token")
        self.user = uid
        self._token = token
        return None

    def onOpen(self) -> None:
        super().onOpen()
        # checked again now and then, and ended at sign-out (heihei.core.sessions)
        self.session.credential = self._token
        # first in this connection's input order: a message sent right after the handshake
        # waits until the connection is registered, so that it gets its own echo
        self.run_in_order(self._opened, "channel open")

    async def _opened(self) -> None:
        try:
            await self._register()
        except StoreUnavailable:
            STORE.happened("Redis unavailable", during="registering a channel connection (closed with 4503)")
            self.close(CLOSE_UNAVAILABLE, "service unavailable, reconnect later")

    async def _register(self) -> None:
        social = self.social
        rooms = [hub_room(room) for room in await social.rooms.rooms_of(self.user)]
        # live messages wait until the stored ones are sent: no overtaking, no duplicates
        if not await self.session.login(self.user, rooms=rooms, replay=True):
            return
        await self.session.replay()
        count = await social.messaging.unread_total(self.user)
        if self.connection_open:
            self.send_text(encode_json([social.messaging.unread_item(count, self.now_s())]))

    # -- client frames ------------------------------------------------------------------

    def _refuse(self, code: int, detail: str, **kw) -> None:
        if self.connection_open:
            self.send_text(encode_json([error_item(code, detail, self.now_s(), **kw)]))

    def onMessage(self, payload: bytes, is_binary: bool) -> None:
        if is_binary:
            self._refuse(BAD_PARAMETER, "binary frames are not supported")
            return
        try:
            value = decode_json(payload, max_bytes=self.factory.settings.max_message_bytes)
        except BadJSON as e:
            self._refuse(BAD_PARAMETER, e.reason)
            return
        items = value if isinstance(value, list) else [value]
        self.api_version = max(self.api_version, 2)  # it sends v2 IM: it shows them
        if not items or len(items) > im.MAX_FRAME_ITEMS:
            self._refuse(BAD_PARAMETER, f"a frame carries 1 to {im.MAX_FRAME_ITEMS} messages")
            return
        for item in items:
            if not self.run_in_order(lambda item=item: self._send_im(item), "channel IM"):
                self._refuse(BUSINESS_FAILED, "too many messages waiting; slow down")
                return

    async def _send_im(self, item) -> None:
        to = cid = None
        if isinstance(item, dict) and isinstance(item.get("msg"), dict):
            to, cid = item["msg"].get("toUserId"), item["msg"].get("clientMsgId")
            to = to if isinstance(to, (int, str)) and not isinstance(to, bool) else None
            cid = cid if isinstance(cid, (int, str)) and not isinstance(cid, bool) else None
        try:
            m = im.parse_client_im(item, self.social.settings.max_text_chars)
            result = await self.social.messaging.send_im(self.user, m)
        except Refused as e:
            error = of_refusal(e.reason, e.detail)
            self._refuse(error.code, e.detail, to=to, client_msg_id=cid)
            return
        except StoreUnavailable:
            self._refuse(503, "service unavailable, try again", to=to, client_msg_id=cid)
            return
        if result.duplicate and self.connection_open:
            # a resend of a stored message: acknowledge with the stored copy, deliver nothing new
            item = im.item_of(result.message.body, result.message.created_ms, viewer_is_sender=True)
            if item is not None:
                self.send_text(encode_json([item]))


def on_notice(notice: Notice, clients: set) -> None:
    """Items to show, and room membership changes, arriving for local channel connections."""
    if notice.kind == ITEM:
        item = notice.data.get("item")
        v1_too = not (isinstance(item, dict) and is_v2_item(item))
        receivers = clients if v1_too else {client for client in clients if wants_v2(client)}
        if receivers:
            # one frame through the broadcast path: a room's count item goes to every viewer
            some = next(iter(receivers))
            some.send_frame_to_many(some.prepare(encode_json([item])), receivers)
    elif notice.kind == SESSION_REVOKED:
        for client in clients:
            credential = client.session.credential if client.session is not None else None
            if credential is not None and token_hash(credential) == notice.data.get("token"):
                client.session.revoked()
    elif notice.kind == NOTICE_KICK:
        for client in list(clients):
            client.close(CLOSE_SIGNED_OUT, "signed out")
    elif notice.kind in (NOTICE_JOIN, NOTICE_LEAVE, NOTICE_CLOSE):
        target = hub_room(notice.data.get("room", ""))
        for client in clients:
            if notice.kind == NOTICE_JOIN and client.connection_open:
                d = defer.Deferred.fromCoroutine(client.session.join(target))
            else:
                d = defer.Deferred.fromCoroutine(client.session.leave(target))
            d.addErrback(lambda f: _log.failure("room {kind} for a {realm} connection failed", failure=f,
                                                kind=notice.kind, realm=CHANNEL))
