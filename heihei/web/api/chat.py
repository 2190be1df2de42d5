"""`/api/chat/...`: the heihei app's 1:1 video chats (seed 001's 匹配, 约聊, 对聊; docs/heihei.md).

Every endpoint takes `token` and answers `{errorcode, errormsg, ...}`. Domain
work is in heihei.heihei.chats (`social.chats`); this module declares
parameters and hands over; `chat/buy-gift` goes to heihei.heihei.chatgifts
(the ledger's gifts, delivered as an IM of type gift).
"""

from __future__ import annotations

from heihei.core.errors import Refused
from heihei.heihei.errors import BUSINESS_FAILED
from heihei.web.api.base import HEIHEI, ApiModule
from heihei.heihei.chatgifts import ChatGifts
from heihei.web.kit.params import integer, long, string
from heihei.web.kit.routes import endpoint, new_app

CHAT_ERRORS = (732,)


def chat_id(**kw):
    return long("chatId", minimum=1, **kw)


def user_id(**kw):
    return long("userId", minimum=1, **kw)


class ChatApi(ApiModule):
    app = new_app(HEIHEI)
    prefix = "/api/chat"

    def __init__(self, social) -> None:
        super().__init__(social)
        # once per node: the composition root builds the money before the API sections
        self.gifts = ChatGifts(social.chats.chats, social.money, social.messaging)

    @property
    def chats(self):
        return self.social.chats.chats

    @endpoint(app, "/buy-gift", "Send a gift to the other person of your open chat (740: not enough diamonds); "
              "the same gift_uuid and amount again is a retry and charges nothing",
              long("giftId", minimum=1, maximum=2 ** 31 - 1), chat_id(), user_id(),
              integer("amount", required=False, default=1, minimum=1, maximum=100000, description="the combo count"),
              string("gift_uuid", required=False, max_length=64, description="the combo's id (the client's)"),
              errors=(730, 740, 732, 710, 721), returns=("gold",))
    async def buy_gift(self, call, a):
        return await self.gifts.buy_gift(call.user, str(a["chatId"]), str(a["userId"]), a["giftId"], a["amount"],
                                    a["gift_uuid"])

    @endpoint(app, "/match-chat", "Enter the match queue (or meet the longest-waiting user at once: a join-chat "
              "push to both)", errors=(742,), returns=("expireTime", "tips"))
    async def match_chat(self, call, a):
        return await self.chats.match(call.user)

    @endpoint(app, "/stop-match-chat", "Leave the match queue")
    async def stop_match_chat(self, call, a):
        await self.chats.stop_match(call.user)

    @endpoint(app, "/due-chat", "Invite a user to a chat (a due-chat-notify to them); mutual invitations join "
              "at once", user_id(), errors=(710, 711, 738, 739, 742), returns=("expireTime", "chatId"))
    async def due_chat(self, call, a):
        return await self.chats.invite(call.user, str(a["userId"]))

    @endpoint(app, "/cancel-due-chat", "Withdraw your invitation (a cancel-due-chat push to the invitee)",
              chat_id(), errors=(732, 711))
    async def cancel_due_chat(self, call, a):
        await self.chats.cancel_invite(call.user, str(a["chatId"]))

    @endpoint(app, "/accept-chat", "Take an invitation: both get join-chat", user_id(), chat_id(),
              integer("type", required=False, minimum=0, maximum=1, default=0),
              long("msgId", required=False, minimum=0), errors=CHAT_ERRORS, returns=("expireTime",))
    async def accept_chat(self, call, a):
        return await self.chats.accept(call.user, str(a["userId"]), str(a["chatId"]))

    @endpoint(app, "/join-chat", "Enter the chat after its join-chat push: the chat with both users and the "
              "video room's credential (qiniu{roomName, roomToken})", chat_id(), errors=CHAT_ERRORS,
              returns=("chat",))
    async def join_chat(self, call, a):
        return await self.chats.join(call.user, str(a["chatId"]))

    @endpoint(app, "/get-chat", "A chat of yours and its state (v1.4.1)", chat_id(), errors=(732, 733),
              returns=("chat",))
    async def get_chat(self, call, a):
        return await self.chats.get(call.user, str(a["chatId"]))

    @endpoint(app, "/heart-beat", "I am still in the chat; nextTimeout says when to beat again", chat_id(),
              errors=CHAT_ERRORS, returns=("nextTimeout",))
    async def heart_beat(self, call, a):
        return await self.chats.heart_beat(call.user, str(a["chatId"]))

    @endpoint(app, "/change-topic", "A new topic for the chat (a chat-topic push to both)", chat_id(),
              errors=CHAT_ERRORS)
    async def change_topic(self, call, a):
        await self.chats.change_topic(call.user, str(a["chatId"]))

    @endpoint(app, "/pause-chat", "Step away for a moment (a pause-chat push to the other)", chat_id(),
              errors=CHAT_ERRORS)
    async def pause_chat(self, call, a):
        await self.chats.pause(call.user, str(a["chatId"]), True)

    @endpoint(app, "/continue-chat", "Back again (a goon-chat push to the other)", chat_id(), errors=CHAT_ERRORS)
    async def continue_chat(self, call, a):
        await self.chats.pause(call.user, str(a["chatId"]), False)

    @endpoint(app, "/stop-chat", "End the chat (a chat-user-status push to the other)", chat_id(),
              errors=CHAT_ERRORS)
    async def stop_chat(self, call, a):
        await self.chats.stop(call.user, str(a["chatId"]))

    @endpoint(app, "/get-user-sig", "A Tencent TRTC UserSig for you (with the chat's room when chatId is given)",
              chat_id(required=False), errors=(400, 732), returns=("sdkAppId", "userId", "userSig", "expireTime"))
    async def get_user_sig(self, call, a):
        chat = None
        if a["chatId"] is not None:
            chat = str(a["chatId"])
            await self.chats.get(call.user, chat)
        sig = self.social.chats.rtc.user_sig(call.user, chat)
        if sig is None:
            raise Refused(BUSINESS_FAILED, "no TRTC app is configured ([rtc] trtc_sdk_app_id)")
        return sig
