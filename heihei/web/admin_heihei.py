"""
The heihei app's operator routes under `/admin/heihei/` (bearer token, JSON;
see heihei/web/admin.py for the conventions), all backed by
`heihei.heihei.operators.HeiheiOperators`, which the manhole exposes too as
`operators["channel"]`:

    GET    /admin/heihei/users/{uid}                    any user: profile, counts, sessions, devices
    PUT    /admin/heihei/users/{uid}/type               {"userType": "Anchor" | "Normal"}
    PUT    /admin/heihei/users/{uid}/recommend          {"weight": n}: on list-user-byType's recommended list
    DELETE /admin/heihei/users/{uid}/recommend          off it
    PUT    /admin/heihei/bans/{uid}                     ban: sessions end, no sign-in; {"reason": "..."} optional
    DELETE /admin/heihei/bans/{uid}                     unban
    GET    /admin/heihei/reports?status=open|all&offset=0&limit=50
    POST   /admin/heihei/reports/{id}/resolve           {"resolution": "...", "ban": true|false}
    GET    /admin/heihei/banners                        PUT the same document to replace them
    GET    /admin/heihei/gift-resources                 PUT the same document to replace them
    GET    /admin/heihei/topics                         every topic with its counters
    PUT    /admin/heihei/topics/{id}                    create or change: {name, img, content, catName, isTop, type, order}
    DELETE /admin/heihei/topics/{id}
    DELETE /admin/heihei/subjects/{id}                  moderation: a subject (and its thread) goes
    GET    /admin/heihei/lives?limit=50                 the rooms live now: liveId, title, anchor, status, onlineUsers, muted
    GET    /admin/heihei/lives/{liveId}                 one room with its viewers and kicked users
    PUT    /admin/heihei/lives/{liveId}/mutes/{uid}     mute in that room (the room sees shutup-user)
    DELETE /admin/heihei/lives/{liveId}/mutes/{uid}     unmute (shutup-open-user)
    PUT    /admin/heihei/lives/{liveId}/kicks/{uid}     out of the room for this live (quit-live)
    PUT    /admin/heihei/lives/{liveId}/ban             status 3: stopped for everyone (stop-live, reason banned), listed nowhere
    POST   /admin/heihei/lives/{liveId}/notice          {"text": "..."}: a system item in that room
    POST   /admin/heihei/notice                         {"text": "..."}: the system item in every room live now
    POST   /admin/heihei/users/{uid}/gold               {"delta": n, "reason": "..."}: diamonds in or out (money below)
    PUT    /admin/heihei/users/{uid}/money-freeze       {"frozen": true|false, "reason": "..."}: spending held (721)
"""

from __future__ import annotations

from typing import Any

from heihei.core import errors
from heihei.core.errors import Refused
from heihei.heihei.errors import NO_SUCH_LIVE, NO_SUCH_USER
from heihei.heihei.operators import HeiheiOperators
from heihei.web.admin import ADMIN, AdminRoutes
from heihei.web import admin_bodies as bodies
from heihei.web.kit.params import integer, path, string
from heihei.web.kit.routes import endpoint, new_app

UID = path("uid", pattern=r"[0-9]{1,19}", max_length=19)
LID = path("lid", pattern=r"[0-9]{1,19}", max_length=19)


def _fields(body: dict[str, Any] | None, allowed: tuple[str, ...]) -> dict[str, Any]:
    body = body or {}
    unknown = set(body) - set(allowed)
    if unknown:
        raise Refused(errors.BAD_REQUEST, f"unknown fields: {', '.join(sorted(unknown))}")
    return body


class HeiheiAdmin(AdminRoutes):
    app = new_app(ADMIN, check_auth_first=True)
    prefix = "/admin/heihei"

    def __init__(self, token: str, operators: HeiheiOperators) -> None:
        super().__init__(token)
        self.ops = operators

    @endpoint(app, "/users/<uid>", "Any user: profile, follower/following counts, sessions, devices", UID,
              methods=("GET",))
    async def user(self, call, a):
        return await self.ops.user(a["uid"])

    @endpoint(app, "/users/<uid>/type", "Set a user's type (Anchor users are list-user-byType's anchors)", UID,
              bodies.USER_TYPE, methods=("PUT",))
    async def user_type(self, call, a):
        body = _fields(a["body"], ("userType",))
        return await self.ops.set_user_type(a["uid"], body.get("userType"))

    @endpoint(app, "/users/<uid>/recommend", "Put a user on the recommended list (highest weight first)", UID,
              bodies.RECOMMEND, methods=("PUT",))
    async def recommend(self, call, a):
        weight = _fields(a["body"], ("weight",)).get("weight")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise Refused(errors.BAD_REQUEST, "weight must be a number")
        return await self.ops.recommend(a["uid"], float(weight))

    @endpoint(app, "/users/<uid>/recommend", "Take a user off the recommended list", UID, methods=("DELETE",))
    async def unrecommend(self, call, a):
        return await self.ops.recommend(a["uid"], None)

    @endpoint(app, "/bans/<uid>", "Ban a user: every session ends, sign-in is refused", UID, bodies.BAN,
              methods=("PUT",))
    async def ban(self, call, a):
        reason = _fields(a["body"], ("reason",)).get("reason", "")
        if not isinstance(reason, str):
            raise Refused(errors.BAD_REQUEST, "reason must be a string")
        return await self.ops.ban(a["uid"], reason)

    @endpoint(app, "/bans/<uid>", "Lift a ban", UID, methods=("DELETE",))
    async def unban(self, call, a):
        return await self.ops.unban(a["uid"])

    @endpoint(app, "/reports", "Reports of users, newest first",
              string("status", required=False, default="open", enum=("open", "all")),
              integer("offset", required=False, default=0, minimum=0, maximum=1_000_000),
              integer("limit", required=False, default=50, minimum=1, maximum=500), methods=("GET",))
    async def reports(self, call, a):
        return await self.ops.list_reports(a["status"], a["offset"], a["limit"])

    @endpoint(app, "/reports/<rid>/resolve", "Close a report (and, with ban, ban the reported user)",
              path("rid", pattern=r"[0-9]{1,19}", max_length=19), bodies.RESOLVE, methods=("POST",))
    async def resolve(self, call, a):
        body = _fields(a["body"], ("resolution", "ban"))
        resolution, ban = body.get("resolution", ""), body.get("ban", False)
        if not isinstance(resolution, str) or not isinstance(ban, bool):
            raise Refused(errors.BAD_REQUEST, "resolution must be a string, ban true or false")
        return await self.ops.resolve_report(a["rid"], resolution, ban)

    @endpoint(app, "/banners", "The home page's banners", methods=("GET",))
    async def banners(self, call, a):
        return await self.ops.banners()

    @endpoint(app, "/banners", "Replace the banners: {\"banners\": [{desc, cover, type, link}]}", bodies.BANNERS,
              methods=("PUT",))
    async def put_banners(self, call, a):
        return await self.ops.put_banners(a["body"])

    @endpoint(app, "/gift-resources", "The gifts' downloadable resources (current and history)", methods=("GET",))
    async def gift_resources(self, call, a):
        return await self.ops.gift_resources()

    @endpoint(app, "/gift-resources", "Replace them: {\"resources\": [...], \"history\": [...]}", bodies.GIFT_RESOURCES,
              methods=("PUT",))
    async def put_gift_resources(self, call, a):
        return await self.ops.put_gift_resources(a["body"])

    @endpoint(app, "/topics", "Every topic, in list order, with its counters", methods=("GET",))
    async def topics(self, call, a):
        return await self.ops.list_topics()

    @endpoint(app, "/topics/<tid>", "Create or change a topic", path("tid", pattern=r"[1-9][0-9]{0,8}", max_length=9),
              bodies.TOPIC, methods=("PUT",))
    async def put_topic(self, call, a):
        return await self.ops.put_topic(a["tid"], a["body"])

    @endpoint(app, "/topics/<tid>", "Remove a topic from the lists", path("tid", pattern=r"[1-9][0-9]{0,8}", max_length=9),
              methods=("DELETE",))
    async def remove_topic(self, call, a):
        return await self.ops.remove_topic(a["tid"])

    @endpoint(app, "/subjects/<sid>", "Remove a subject (a main subject with its thread)",
              path("sid", pattern=r"[0-9]{1,19}", max_length=19), methods=("DELETE",))
    async def remove_subject(self, call, a):
        return await self.ops.remove_subject(a["sid"])

    # -- live rooms: an operator has the anchor's powers in every room -------------------------------

    @endpoint(app, "/lives", "The rooms live now, most recently started first",
              integer("limit", required=False, default=50, minimum=1, maximum=200), methods=("GET",))
    async def lives(self, call, a):
        return await self.ops.live_rooms(a["limit"])

    @endpoint(app, "/lives/<lid>", "One room with its viewers, muted and kicked users", LID, methods=("GET",))
    async def live(self, call, a):
        return await _found(self.ops.live_room(a["lid"]))

    @endpoint(app, "/lives/<lid>/mutes/<uid>", "Mute a user in a room (the room sees shutup-user)", LID, UID,
              methods=("PUT",))
    async def live_mute(self, call, a):
        return await _found(self.ops.live_mute(a["lid"], a["uid"], True))

    @endpoint(app, "/lives/<lid>/mutes/<uid>", "Unmute a user in a room", LID, UID, methods=("DELETE",))
    async def live_unmute(self, call, a):
        return await _found(self.ops.live_mute(a["lid"], a["uid"], False))

    @endpoint(app, "/lives/<lid>/ban", "Ban a live (status 3, 客服禁播): a live on now stops (stop-live, reason "
              "banned); it leaves the playing list and the replays", LID, methods=("PUT",))
    async def live_ban(self, call, a):
        return await _found(self.ops.live_ban(a["lid"]))

    @endpoint(app, "/lives/<lid>/kicks/<uid>", "Kick a user out of a room for the rest of this live", LID, UID,
              methods=("PUT",))
    async def live_kick(self, call, a):
        return await _found(self.ops.live_kick(a["lid"], a["uid"]))

    @endpoint(app, "/lives/<lid>/notice", "A system notice in one room: {\"text\"}", LID, bodies.NOTICE,
              methods=("POST",))
    async def live_notice(self, call, a):
        return await _found(self.ops.live_notice(a["lid"], _text(a["body"])))

    @endpoint(app, "/notice", "A system notice in every room live now: {\"text\"}", bodies.NOTICE,
              methods=("POST",))
    async def notice(self, call, a):
        return await self.ops.notice_all_lives(_text(a["body"]))


    # -- money (issue 19) ----------------------------------------------------------------------------
    #   POST /admin/heihei/users/{uid}/gold              {"delta": n, "reason": "..."}: the new balance
    #   GET  /admin/heihei/users/{uid}/ledger?offset&limit   balances and entries, newest first
    #   GET  /admin/heihei/users/{uid}/orders            the user's last 200 orders
    #   GET  /admin/heihei/orders/{id}?check=1           an order (check: ask its provider if pending)
    #   GET  /admin/heihei/withdrawals?status=pending|paying|paid|rejected|failed
    #   POST /admin/heihei/withdrawals/{id}/approve      pay it through the Alipay transfer API
    #   POST /admin/heihei/withdrawals/{id}/reject       {"reason": "..."}: its 黑票 come back
    #   GET  /admin/heihei/money                         the money catalog; PUT the same document to replace it
    #   POST /admin/heihei/reconcile                     replay every ledger against the balances
    #   PUT  /admin/heihei/users/{uid}/money-freeze      {"frozen": bool, "reason": "..."}: spending held (721)
    #   GET  /admin/heihei/users/{uid}/money-freeze      the state, reason, who and when, the last changes

    @endpoint(app, "/users/<uid>/gold", "Grant (delta > 0) or remove (delta < 0) diamonds; a ledger entry",
              UID, bodies.GOLD, methods=("POST",))
    async def grant_gold(self, call, a):
        body = _fields(a["body"], ("delta", "reason"))
        return await self.ops.grant_gold(a["uid"], body.get("delta"), body.get("reason", ""))

    @endpoint(app, "/users/<uid>/money-freeze", "Freeze (frozen true) or unfreeze a user's money: while frozen "
              "their gifts, barrages, p2g and withdrawal requests are refused with 721; credits still land",
              UID, bodies.MONEY_FREEZE, methods=("PUT",))
    async def put_money_freeze(self, call, a):
        if a["body"] is not None and not isinstance(a["body"], dict):
            raise Refused(errors.BAD_REQUEST, "the body must be a JSON object {frozen, reason}")
        body = _fields(a["body"], ("frozen", "reason"))
        return await self.ops.set_money_freeze(a["uid"], body.get("frozen"), body.get("reason"), by="admin-api")

    @endpoint(app, "/users/<uid>/money-freeze", "A user's money freeze: frozen, reason, by, at and the last changes",
              UID, methods=("GET",))
    async def money_freeze(self, call, a):
        return await self.ops.money_freeze(a["uid"])

    @endpoint(app, "/users/<uid>/ledger", "A user's balances and ledger entries, newest first", UID,
              integer("offset", required=False, default=0, minimum=0, maximum=10 ** 9),
              integer("limit", required=False, default=50, minimum=1, maximum=200), methods=("GET",))
    async def user_ledger(self, call, a):
        return await self.ops.ledger(a["uid"], a["offset"], a["limit"])

    @endpoint(app, "/users/<uid>/orders", "A user's last 200 orders, newest first", UID, methods=("GET",))
    async def user_orders(self, call, a):
        return await self.ops.orders_of(a["uid"])

    @endpoint(app, "/orders/<oid>", "An order; check=1 asks its provider about a pending one (and credits it)",
              path("oid", pattern=r"[0-9A-Za-z]{1,64}", max_length=64),
              integer("check", required=False, default=0, minimum=0, maximum=1), methods=("GET",))
    async def order(self, call, a):
        return await self.ops.order(a["oid"], a["check"] == 1)

    @endpoint(app, "/withdrawals", "Withdrawals of one status, oldest first",
              string("status", required=False, default="pending",
                     enum=("pending", "paying", "paid", "rejected", "failed")),
              integer("offset", required=False, default=0, minimum=0, maximum=10 ** 9),
              integer("limit", required=False, default=50, minimum=1, maximum=200), methods=("GET",))
    async def withdrawals(self, call, a):
        return await self.ops.withdrawals(a["status"], a["offset"], a["limit"])

    @endpoint(app, "/withdrawals/<wid>/approve", "Pay a pending withdrawal through the Alipay transfer API "
              "(again for one left paying by an unknown outcome)",
              path("wid", pattern=r"[0-9A-Za-z]{1,64}", max_length=64), methods=("POST",))
    async def approve_withdrawal(self, call, a):
        return await self.ops.approve_withdrawal(a["wid"])

    @endpoint(app, "/withdrawals/<wid>/reject", "Reject a pending withdrawal; its 黑票 come back",
              path("wid", pattern=r"[0-9A-Za-z]{1,64}", max_length=64), bodies.REJECT, methods=("POST",))
    async def reject_withdrawal(self, call, a):
        reason = _fields(a["body"], ("reason",)).get("reason", "")
        if not isinstance(reason, str):
            raise Refused(errors.BAD_REQUEST, "reason must be a string")
        return await self.ops.reject_withdrawal(a["wid"], reason)

    @endpoint(app, "/money", "The money catalog: gifts, barrage price, packages, p2g, cash rate", methods=("GET",))
    async def money_catalog(self, call, a):
        return await self.ops.money_catalog()

    @endpoint(app, "/money", "Replace the money catalog (orders keep the price they were made with)",
              bodies.MONEY_CATALOG,
              methods=("PUT",))
    async def put_money_catalog(self, call, a):
        return await self.ops.put_money_catalog(a["body"])

    @endpoint(app, "/reconcile", "Replay every user's ledger against their balances", methods=("POST",))
    async def reconcile(self, call, a):
        return await self.ops.reconcile()

def _text(body: dict[str, Any] | None) -> str:
    text = _fields(body, ("text",)).get("text")
    if not isinstance(text, str):
        raise Refused(errors.BAD_REQUEST, "text must be a string")
    return text


async def _found(pending):
    """The live domain's "no such live/user" as the admin API's 404."""
    try:
        return await pending
    except Refused as e:
        if e.reason in (NO_SUCH_LIVE, NO_SUCH_USER):
            raise Refused(errors.NOT_FOUND, e.detail or e.reason) from None
        raise
