"""
`/messageserver/api/msg/*.action`: the server API for trusted back ends.

Every call carries `signature`, the lowercase hex HMAC-SHA256 with
`[heihei] server_secret` of all the other parameters sorted by name and joined
as `k=v&k=v` (values exactly as sent: the decoded text of a query or form
value; in a JSON body, strings as they are, numbers in decimal and objects or
arrays as compact JSON with sorted keys). A wrong or missing signature, or an
empty server_secret, is 701.

A request that carries a `timeStamp` (ms; `send-msg.action` must, inside
`data`) is refused (701) when it is more than `signature_window_s` (5 min)
away from the server's clock, and a second request with the same signature
inside that window is refused as a replay (701).

    send-msg.action             data = {timeStamp, type: tosingle|toChat|toLive,
                                        targetUserId | chatId | liveId, msg}
    open-room.action            roomId, liveId?, chatId?, timeStamp?
    close-room.action           roomId, timeStamp?
    start-live-broadcast.action liveId, roomId, timeStamp?
    stop-live-broadcast.action  liveId, roomId, timeStamp?

`msg` is a client message structure, delivered as is: `tosingle` to every
channel connection of the user (stored and counted unread when
`msg.needstore` is true or it is a v2 IM envelope), `toChat`/`toLive` to
every member connection of the chat's/live's room (733 if none is open);
`toLive` through the live room's lanes (heihei.heihei.lanes: gift, system and
action items at once and never dropped, text and barrage within the room's
budget, likes coalesced).
"""

from __future__ import annotations

from heihei.heihei.accounts import REALM
from heihei.store.keys import key
from heihei.web.api import errors as E
from heihei.web.api.base import HEIHEI, ApiModule
from heihei.web.api.errors import ApiError
from heihei.web.kit.auth import Signature, canonical, sign  # noqa: F401 (canonical, sign: what back ends compute)
from heihei.web.kit.params import BadParameter, Endpoint, json_object, long, string, validate
from heihei.web.kit.routes import Call, endpoint, new_app

ROOM = r"[0-9A-Za-z_.-]{1,64}"
MAX_DATA_BYTES = 64 * 1024

DATA = Endpoint("data", "send-msg.action data", (
    long("timeStamp", description="ms since the epoch"),
    string("type", enum=("tosingle", "toChat", "toLive")),
    long("targetUserId", required=False, required_if=("type", "tosingle"), minimum=0),
    string("chatId", required=False, required_if=("type", "toChat"), pattern=ROOM, max_length=64),
    string("liveId", required=False, required_if=("type", "toLive"), pattern=ROOM, max_length=64),
    json_object("msg", max_length=MAX_DATA_BYTES),
))


class MessageServerApi(ApiModule):
    app = new_app(HEIHEI)
    prefix = "/messageserver/api/msg"

    default_auth = "signature"

    def __init__(self, social) -> None:
        super().__init__(social)
        self.strategies["signature"] = Signature(lambda: social.settings.server_secret)

    async def _fresh(self, call: Call, stamp_ms: int | None) -> None:
        """Refuse a timeStamp outside the window, and a replay inside it."""
        if stamp_ms is None:
            return
        window_ms = int(self.social.settings.signature_window_s * 1000)
        now_ms = int(self.social.clock.seconds() * 1000)
        if abs(now_ms - stamp_ms) > window_ms:
            raise ApiError(E.BAD_SIGNATURE, "timeStamp outside the replay window")
        first = await self.social.store.set(key("msgsig", REALM, call.caller.proof), "1",
                                            pexpire=2 * window_ms, only_if_not_exists=True)
        if not first:
            raise ApiError(E.BAD_SIGNATURE, "replayed request")

    @endpoint(app, "/send-msg.action", "Deliver a client message to a user, a chat or a live room",
              json_object("data", max_length=MAX_DATA_BYTES, fields=DATA.params,
                          description="{timeStamp, type: tosingle|toChat|toLive, targetUserId|chatId|liveId, msg}"),
              auth="signature", errors=(710, 733), tag="messageserver")
    async def send_msg(self, call, a):
        try:
            d = validate(DATA, a["data"])
        except BadParameter as e:
            raise BadParameter("data." + e.name, e.problem, e.why, e.param) from None
        await self._fresh(call, d["timeStamp"])
        social = self.social
        if d["type"] == "tosingle":
            await social.messaging.send_to_user(str(d["targetUserId"]), d["msg"])
            return None
        room = (await social.rooms.room_of_chat(d["chatId"]) if d["type"] == "toChat"
                else await social.rooms.room_of_live(d["liveId"]))
        if room is None or not await social.rooms.is_open(room):
            raise ApiError(E.BAD_ROOM, "no open room for " + ("chatId" if d["type"] == "toChat" else "liveId"))
        if d["type"] == "toLive" and social.lives is not None:
            await social.lives.lanes.send(room, d["msg"])  # a live room's lanes: gifts and system at once
            return None
        await social.rooms.broadcast(room, d["msg"])

    @endpoint(app, "/open-room.action", "Open a room (and bind a live or chat to it)",
              string("roomId", pattern=ROOM, max_length=64),
              string("liveId", required=False, pattern=ROOM, max_length=64),
              string("chatId", required=False, pattern=ROOM, max_length=64),
              long("timeStamp", required=False), auth="signature", tag="messageserver")
    async def open_room(self, call, a):
        await self._fresh(call, a["timeStamp"])
        await self.social.rooms.open(a["roomId"], live_id=a["liveId"], chat_id=a["chatId"])

    @endpoint(app, "/close-room.action", "Close a room: its members leave it",
              string("roomId", pattern=ROOM, max_length=64), long("timeStamp", required=False),
              auth="signature", tag="messageserver")
    async def close_room(self, call, a):
        await self._fresh(call, a["timeStamp"])
        await self.social.rooms.close(a["roomId"])

    @endpoint(app, "/start-live-broadcast.action", "A live starts in a room (opened if needed)",
              string("liveId", pattern=ROOM, max_length=64), string("roomId", pattern=ROOM, max_length=64),
              long("timeStamp", required=False), auth="signature", tag="messageserver")
    async def start_live(self, call, a):
        await self._fresh(call, a["timeStamp"])
        await self.social.rooms.start_broadcast(a["liveId"], a["roomId"])

    @endpoint(app, "/stop-live-broadcast.action", "A live stops being shown in its room",
              string("liveId", pattern=ROOM, max_length=64), string("roomId", pattern=ROOM, max_length=64),
              long("timeStamp", required=False), auth="signature", errors=(733,), tag="messageserver")
    async def stop_live(self, call, a):
        await self._fresh(call, a["timeStamp"])
        if not await self.social.rooms.stop_broadcast(a["liveId"], a["roomId"]):
            raise ApiError(E.BAD_ROOM, "that live is not in that room")
