"""`/api/msg/...`: room text, the conversation list with unread counts, and the read/delete operations."""

from __future__ import annotations

from heihei.web.kit.params import long, string
from heihei.web.api.base import HEIHEI, ApiModule
from heihei.web.kit.routes import endpoint, new_app

ROOM = r"[0-9A-Za-z_.-]{1,64}"


class MsgApi(ApiModule):
    app = new_app(HEIHEI)
    prefix = "/api/msg"

    @endpoint(app, "/send-msg", "Send a text to a room the user is in (a `text` item to the whole room)",
              string("text", max_length=2000), string("roomId", pattern=ROOM, max_length=64),
              string("liveId", required=False, pattern=ROOM, max_length=64,
                     description="if given, must be the live shown in that room"),
              errors=(733, 400))
    async def send_msg(self, call, a):
        await self.social.messaging.send_room_text(call.user, a["roomId"], a["text"], a["liveId"])

    @endpoint(app, "/message-list", "The user's conversations with their unread counts",
              returns=("messages", "unreadMsgCount"))
    async def message_list(self, call, a):
        items, total = await self.social.messaging.message_list(call.user)
        return {"messages": items, "unreadMsgCount": total}

    @endpoint(app, "/message-del", "Remove the conversation with a user from this user's list",
              long("userId", minimum=0))
    async def message_del(self, call, a):
        await self.social.messaging.delete_conversation(call.user, str(a["userId"]))

    @endpoint(app, "/message-read-all", "Mark every message read")
    async def message_read_all(self, call, a):
        await self.social.messaging.read_all(call.user)

    @endpoint(app, "/history-msg", "Unread messages and up to 100 read ones (deprecated: use message-list)",
              deprecated=True, returns=("unReadCount", "unReadMsg", "readMsg"))
    async def history_msg(self, call, a):
        unread, read, total = await self.social.messaging.history(call.user)
        return {"unReadCount": total, "unReadMsg": unread, "readMsg": read}

    @endpoint(app, "/delete-msg", "Delete one message from this user's history (deprecated)",
              long("msgId", minimum=0), deprecated=True)
    async def delete_msg(self, call, a):
        await self.social.messaging.delete_one(call.user, a["msgId"])

    @endpoint(app, "/read-one-msg", "Mark a message, and the older ones of its conversation, read (deprecated)",
              long("msgId", minimum=0), deprecated=True)
    async def read_one_msg(self, call, a):
        await self.social.messaging.read_one(call.user, a["msgId"])

    @endpoint(app, "/read-all-msg", "Mark every message read (deprecated: use message-read-all)", deprecated=True)
    async def read_all_msg(self, call, a):
        await self.social.messaging.read_all(call.user)
