"""
`chat/buy-gift`: a catalog gift to the other person of an open 1:1 chat.

Charged through the ledger (heihei.heihei.money.Money.send_gift) once per
(sender, gift_uuid, amount), as a live gift is: each call is one gift,
`amount` the combo's counter; the client retries a call with the same
`gift_uuid` and `amount`, and a retry answers the first call's `gold`
without charging or delivering again. The receiver gets the seed's IM of
type `gift` (`content {text, giftId}`, stored like any IM, so a receiver
whose connection dropped finds it at the next sign-in). A gift is charged
even when it cannot be delivered any more (the receiver blocked the sender
in between): the ledger entry stands, and the miss is logged.
"""

from __future__ import annotations

import hashlib
from typing import Any

from twisted.logger import Logger

from heihei.core.errors import Refused
from heihei.heihei import im
from heihei.heihei.errors import NO_SUCH_CHAT
from heihei.heihei.money import check_combo


class ChatGifts:
    _log = Logger()

    def __init__(self, chats, money, messaging) -> None:
        self.chats = chats
        self.money = money
        self.messaging = messaging

    async def buy_gift(self, uid: str, chat_id: str, receiver: str, gift_id: int, amount: int,
                       gift_uuid: str | None) -> dict[str, Any]:
        check_combo(amount)
        partner = await self.chats.partner_in_open_chat(uid, chat_id)
        if partner != receiver:
            raise Refused(NO_SUCH_CHAT, f"user {receiver} is not in chat {chat_id}")
        gift, done = await self.money.send_gift(uid, partner, gift_id, gift_uuid=gift_uuid or None, amount=amount,
                                                cause="chat-gift")
        if done.charged:
            await self._deliver(uid, partner, gift_id, gift, amount, gift_uuid)
        return {"gold": done.gold}

    async def _deliver(self, uid: str, partner: str, gift_id: int, gift: dict[str, Any], amount: int,
                       gift_uuid: str | None) -> None:
        text = f"送你{gift.get('name') or '礼物'}"
        message = im.ClientIm(to=partner, msg_type="gift", content={"text": text, "giftId": gift_id}, jump=None,
                              client_msg_id=_client_msg_id(gift_uuid, amount) if gift_uuid else None)
        try:
            await self.messaging.send_im(uid, message)
        except im.ImError as e:
            self._log.warn("chat gift {gift} from {sender} to {receiver} charged, not delivered: {why}",
                           gift=gift_id, sender=uid, receiver=partner, why=str(e))


def _client_msg_id(gift_uuid: str, amount: int) -> str:
    """The IM's clientMsgId for one step of a combo (the same gift_uuid with a growing amount), bounded."""
    return "gift-" + hashlib.sha256(f"{gift_uuid}|{amount}".encode()).hexdigest()[:32]
