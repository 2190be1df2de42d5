"""
Paid things in a live room: `live/buy-gift` (a `gift` item with the combo
fields; the anchor's 黑票 and the live's totalTickets grow) and
`live/buy-bullet` (the 小喇叭: a paid `barrage` item).

The money moves in one ledger script (heihei.heihei.ledger.send_gift) before
anything reaches the room, and only a call that moved money sends the item: a
client retry with the same (gift_uuid, amount) is answered with the first
call's balance and adds no second item to the room.
"""

from __future__ import annotations

from typing import Any

from heihei.core.errors import Refused
from heihei.heihei import liveinfo
from heihei.heihei.accounts import REALM
from heihei.heihei.errors import BAD_PARAMETER, NO_SUCH_LIVE, NOT_IN_ROOM
from heihei.heihei.money import check_combo
from heihei.heihei.livecore import live_key, viewers_key
from heihei.store.keys import key
from heihei.store.scripts import Script


#: the sender fields of a room item (heihei.heihei.livecore.LiveCore.from_fields), read by the ledger script
FROM_FIELDS = ("displayName", "gender", "birthDay", "coverUrl")

#: what buy-gift checks before it charges, in one round trip: is the live there and playing, whose is it,
#: is the sender in its room (the same checks as LiveCore.require + LiveWatching.require_in_room)
GIFT_PLACE = Script("heihei_live_gift_place", r"""
-- KEYS: 1 the live hash, 2 its viewers. ARGV: 1 the sender.
-- Returns {status ('' for no live), anchor, 1 if the sender is in the room}.
local status, anchor = unpack(redis.call('HMGET', KEYS[1], 'status', 'userId'))
if not status then return {'', '', 0} end
local inside = 0
if anchor == ARGV[1] or redis.call('ZSCORE', KEYS[2], ARGV[1]) then inside = 1 end
return {status, anchor or '', inside}
""")


def msg_seq_key() -> str:
    """The counter of room item ids: the one heihei.heihei.messages.Messaging.new_msg_id counts up."""
    return key("seq", REALM, "msg")


class LiveGifts:
    def __init__(self, lives, money) -> None:
        self.money = money
        ledger, catalog = money.ledger, money.catalog
        self.core = lives.core
        self.watching = lives.watching
        self.moderation = lives.moderation
        self.ledger = ledger
        self.catalog = catalog

    async def _playing(self, uid: str, live_id: str) -> dict[str, str]:
        live = await self.core.require(live_id)
        if live.get("status") != str(liveinfo.PLAYING):
            raise Refused(NO_SUCH_LIVE, "the live is not playing")
        await self.watching.require_in_room(live, uid)
        return live

    async def buy_gift(self, uid: str, live_id: str, gift_id: int, amount: int, gift_uuid: str | None) -> dict:
        """Two round trips to Redis besides the caller's token and the room send: the place checks
        (GIFT_PLACE) and the ledger script, which also counts up the item's message id and reads the
        sender's name and picture once it charged (the price comes from the catalog in memory, checked
        by the same script: heihei.heihei.moneycatalog)."""
        check_combo(amount)
        status, anchor, inside = await GIFT_PLACE(self.core.store, [live_key(live_id), viewers_key(live_id)], [uid])
        if status == "" or status == str(liveinfo.DELETED):
            raise Refused(NO_SUCH_LIVE, f"liveId {live_id}")
        if status != str(liveinfo.PLAYING):
            raise Refused(NO_SUCH_LIVE, "the live is not playing")
        if not int(inside):
            raise Refused(NOT_IN_ROOM, f"you are not in live {live_id}")
        if anchor == uid:
            raise Refused(BAD_PARAMETER, "a gift to your own live")
        gift, done = await self.money.send_gift(uid, anchor, gift_id, gift_uuid=gift_uuid or None, amount=amount,
                                                live_id=live_id, count=msg_seq_key(), sender_fields=FROM_FIELDS)
        if done.charged:
            core = self.core
            msg: dict[str, Any] = {
                "msgType": "gift", **core.from_fields(done.sender, uid), "roomId": liveinfo.id_value(live_id),
                "giftId": gift_id, "amount": amount,
                "gift": {"id": gift_id, "name": gift["name"], "type": gift["type"], "desc": gift["desc"]},
                "totalTicket": done.total_tickets, "gift_uuid": gift_uuid or "",
                "msgId": (core.messaging.now_ms() << 20) | (done.counted & 0xFFFFF)}
            await core.to_room(live_id, msg, sender=uid)
        return {"gold": done.gold}

    async def buy_bullet(self, uid: str, live_id: str, text: str) -> dict:
        text = text.strip()
        if not text:
            raise Refused(BAD_PARAMETER, "message (required)")
        live = await self._playing(uid, live_id)
        await self.moderation.speaker(uid, live_id)  # muted users may not buy a voice either
        anchor = live["userId"]
        price = (await self.catalog.get())["bullet"]
        if anchor == uid:
            done_gold = (await self.ledger.adjust(uid, [("gold", -price["gold"])], cause="bullet", ref=live_id,
                                                  spending=True)
                         if price["gold"] else [(await self.ledger.balances(uid))["gold"]])[0]
            tickets = int(live.get("totalTickets") or 0)
        else:
            done = await self.ledger.send_gift(uid, anchor, price["gold"], price["point"], live_id=live_id,
                                               cause="bullet")
            done_gold, tickets = done.gold, done.total_tickets
        await self.moderation.barrage(uid, live_id, text, tickets)
        return {"gold": done_gold}
