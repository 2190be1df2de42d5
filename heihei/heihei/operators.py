"""
Operator tools for the heihei app, for both faces: the admin HTTP API
(heihei/web/admin_heihei.py, `/admin/heihei/...`) and the manhole, where this
object is `operators["channel"]`:

    >>> operators["channel"].user("10001")
    >>> operators["channel"].list_reports("open")
    >>> operators["channel"].resolve_report("3", "warned", ban=True)
    >>> operators["channel"].put_topic(3, {"name": "话题", "content": "...", "catName": "生活", "isTop": 0, "type": 0})
    >>> operators["channel"].put_banners({"banners": [...]})
    >>> operators["channel"].live_rooms(); operators["channel"].live_room("1000000001")
    >>> operators["channel"].live_mute("1000000001", "10002", True); operators["channel"].live_kick(...)
    >>> operators["channel"].live_notice("1000000001", "..."); operators["channel"].notice_all_lives("...")

Coroutines: the manhole runs them and prints their result. Everything else of
the app's domain (rooms, devices, messaging ...) is reachable through this
object too (`operators["channel"].rooms`).
"""

from __future__ import annotations

from typing import Any

from heihei.core.errors import BAD_REQUEST, NOT_FOUND, Refused
from heihei.heihei import profiles
from heihei.heihei.errors import NO_SUCH_LIVE
from heihei.heihei.livecore import PLAYING, kick_key, live_key, mute_key, viewers_key

#: the most live rooms one listing shows, and the most viewers one room's page lists
LIVE_ROOMS_MAX = 200
ROOM_VIEWERS_MAX = 200


class HeiheiOperators:
    def __init__(self, social) -> None:
        self.social = social

    def __getattr__(self, name: str):
        # the domain's parts (rooms, devices, people, topics ...) for the manhole
        return getattr(self.social, name)

    # -- users -----------------------------------------------------------------------------------

    async def user(self, uid: str) -> dict[str, Any]:
        """Any user: the profile as stored, the graph's counts, devices and sessions."""
        s = self.social
        profile = await s.accounts.get(str(uid))
        if profile is None:
            raise Refused(NOT_FOUND, "no such user")
        followers, following = (await s.follows.counts_many([str(uid)]))[str(uid)]
        devices = await s.devices.of(str(uid))
        sessions = await s.tokens.count(str(uid))
        return {"profile": profile, "user_status": profiles.user_status(profile), "followerCount": followers,
                "followingCount": following, "sessions": sessions,
                "devices": [{"uuid": u, "apnsType": d.get("apnsType", ""), "deviceType": d.get("deviceType", "")}
                            for u, d in devices.items()]}

    async def ban(self, uid: str, reason: str = "") -> dict[str, Any]:
        await self.social.reports.ban(str(uid), reason)
        return await self.user(uid)

    async def unban(self, uid: str) -> dict[str, Any]:
        await self.social.reports.unban(str(uid))
        return await self.user(uid)

    async def set_user_type(self, uid: str, user_type: str) -> dict[str, Any]:
        await self._existing(uid)
        await self.social.people.set_user_type(str(uid), user_type)
        return await self.user(uid)

    async def recommend(self, uid: str, weight: float | None) -> dict[str, Any]:
        await self._existing(uid)
        await self.social.people.recommend(str(uid), weight)
        return {"user": str(uid), "recommended": weight is not None, "weight": weight}

    async def _existing(self, uid: str) -> None:
        if not await self.social.accounts.exists(str(uid)):
            raise Refused(NOT_FOUND, "no such user")

    # -- reports ---------------------------------------------------------------------------------

    async def list_reports(self, status: str = "open", offset: int = 0, limit: int = 50) -> dict[str, Any]:
        total, reports = await self.social.reports.page(status, offset, limit)
        return {"total": total, "reports": reports}

    async def resolve_report(self, report_id: str, resolution: str = "", ban: bool = False) -> dict[str, Any]:
        """Close a report; with `ban`, the reported user is banned too."""
        report = await self.social.reports.get(str(report_id))
        if report is None:
            raise Refused(NOT_FOUND, "no such report")
        if ban:
            await self.social.reports.ban(report["target"], resolution)
        return await self.social.reports.resolve(str(report_id), resolution)

    # -- catalogs ----------------------------------------------------------------------------------

    async def banners(self) -> dict[str, Any]:
        return {"banners": await self.social.catalogs.banners.get()}

    async def put_banners(self, doc: Any) -> dict[str, Any]:
        return {"banners": await self.social.catalogs.put_banners(doc)}

    async def gift_resources(self) -> dict[str, Any]:
        return await self.social.catalogs.gifts.get()

    async def put_gift_resources(self, doc: Any) -> dict[str, Any]:
        return await self.social.catalogs.put_gift_resources(doc)

    async def list_topics(self) -> dict[str, Any]:
        return {"topics": await self.social.topics.topics()}

    async def put_topic(self, topic_id: Any, fields: dict[str, Any] | None = None, **more: Any) -> dict[str, Any]:
        return await self.social.topics.put_topic(topic_id, {**(fields or {}), **more})

    async def remove_topic(self, topic_id: Any) -> dict[str, Any]:
        await self.social.topics.remove_topic(topic_id)
        return {"removed": str(topic_id)}

    async def remove_subject(self, subject_id: Any) -> dict[str, Any]:
        return {"removed": await self.social.topics.remove_subject(subject_id)}

    # -- the app's live rooms (docs/heihei-live.md) --------------------------------------------------
    # An operator acts with the anchor's powers in any room: the same mute, kick and system notice
    # the anchor's app sends, so the room's members see the seed's own items.

    @property
    def _live_rooms(self):
        return self.social.people.live

    async def live_rooms(self, limit: int = 50) -> dict[str, Any]:
        """The rooms live now, most recently started first: id, title, anchor, viewers, muted."""
        core = self._live_rooms.core
        ids = await core.store.zrevrange(PLAYING, 0, max(1, min(limit, LIVE_ROOMS_MAX)) - 1)
        rooms = [await self._room(core, str(live_id)) for live_id in ids]
        return {"lives": [room for room in rooms if room is not None]}

    async def live_room(self, live_id: str) -> dict[str, Any]:
        """One room (any status) with its viewers (newest first) and kicked users."""
        core = self._live_rooms.core
        room = await self._room(core, live_id)
        if room is None:
            raise Refused(NOT_FOUND, f"no live {live_id}")
        viewers = await core.store.zrevrange(viewers_key(live_id), 0, ROOM_VIEWERS_MAX - 1)
        room["viewers"] = [str(v) for v in viewers]
        room["kicked"] = sorted(str(k) for k in await core.store.smembers(kick_key(live_id)))
        return room

    async def _room(self, core, live_id: str) -> dict[str, Any] | None:
        if not live_id.isdigit() or len(live_id) > 19:
            return None
        live = await core.store.hgetall(live_key(live_id))
        if not live:
            return None
        return {"liveId": live_id, "title": live.get("title", ""), "anchor": live.get("userId", ""),
                "status": int(live.get("status", 0)), "onlineUsers": int(await core.store.zcard(viewers_key(live_id))),
                "muted": sorted(str(m) for m in await core.store.smembers(mute_key(live_id)))}

    async def live_mute(self, live_id: str, uid: str, muted: bool = True) -> dict[str, Any]:
        await self._live_rooms.moderation.mute(None, live_id, uid, muted)
        return {"liveId": live_id, "userId": uid, "muted": muted}

    async def live_ban(self, live_id: str) -> dict[str, Any]:
        """Ban a live (status 3): on now, it stops for everyone in it; it is listed nowhere after."""
        return await self._live_rooms.lives.ban(live_id)

    async def live_kick(self, live_id: str, uid: str) -> dict[str, Any]:
        await self._live_rooms.moderation.kick(None, live_id, uid)
        return {"liveId": live_id, "userId": uid, "kicked": True}

    async def live_notice(self, live_id: str, text: str) -> dict[str, Any]:
        await self._live_rooms.moderation.system_notice(None, live_id, text)
        return {"liveId": live_id, "sent": True}

    async def notice_all_lives(self, text: str) -> dict[str, Any]:
        """The system notice in every room live now (each room's members see a `system` item)."""
        sent = []
        for room in (await self.live_rooms(LIVE_ROOMS_MAX))["lives"]:
            try:
                await self._live_rooms.moderation.system_notice(None, room["liveId"], text)
            except Refused as e:
                if e.reason != NO_SUCH_LIVE:
                    raise
                continue  # it ended in between
            sent.append(room["liveId"])
        return {"sent": sent}
    # -- money (issue 19; heihei.heihei.ledger, heihei.heihei.payments) ------------------------------
    #
    #   >>> operators["channel"].grant_gold("10001", 100, "compensation for ticket 42")
    #   >>> operators["channel"].ledger("10001")
    #   >>> operators["channel"].reconcile()
    #   >>> operators["channel"].approve_withdrawal("<id>")
    #   >>> operators["channel"].freeze_money("10001", "chargeback under review")
    #   >>> operators["channel"].unfreeze_money("10001", "cleared"); operators["channel"].money_freeze("10001")

    @property
    def _money(self):
        return self.social.money

    async def grant_gold(self, uid: str, delta: Any, reason: str = "") -> dict[str, Any]:
        """Give (delta > 0) or take (delta < 0) diamonds: a ledger entry with the reason; never below zero."""
        from heihei.heihei.errors import NO_SUCH_USER
        if isinstance(delta, bool) or not isinstance(delta, int) or delta == 0:
            raise Refused(BAD_REQUEST, "delta must be a non-zero integer")
        if not isinstance(reason, str) or not reason.strip() or len(reason) > 200:
            raise Refused(BAD_REQUEST, "reason must be 1 to 200 characters")
        try:
            (gold,) = await self._money.ledger.adjust(str(uid), [("gold", delta)], cause="operator",
                                                      note=reason.strip())
        except Refused as e:
            if e.reason == NO_SUCH_USER:
                raise Refused(NOT_FOUND, "no such user") from None
            raise
        return {"userId": str(uid), "delta": delta, "gold": gold}

    async def set_money_freeze(self, uid: str, frozen: Any, reason: Any, by: str = "manhole") -> dict[str, Any]:
        """Hold (frozen true) or release a user's spending (721 on gifts, barrages, p2g and withdrawals;
        credits still land); the reason, who and when are kept (heihei.heihei.moneyfreeze)."""
        return await self._money.freezes.set(str(uid), frozen, reason, by=by)

    async def freeze_money(self, uid: str, reason: str) -> dict[str, Any]:
        return await self.set_money_freeze(uid, True, reason)

    async def unfreeze_money(self, uid: str, reason: str) -> dict[str, Any]:
        return await self.set_money_freeze(uid, False, reason)

    async def money_freeze(self, uid: str) -> dict[str, Any]:
        """A user's freeze state with its last changes."""
        await self._existing(uid)
        return await self._money.freezes.state(str(uid))

    async def ledger(self, uid: str, offset: int = 0, limit: int = 50) -> dict[str, Any]:
        await self._existing(uid)
        total, entries = await self._money.ledger.entries(str(uid), offset=offset, limit=limit)
        return {"userId": str(uid), "balances": await self._money.ledger.balances(str(uid)), "total": total,
                "entries": entries}

    async def order(self, order_id: str, check: bool = False) -> dict[str, Any]:
        """An order; with `check`, a pending one is looked up at its provider (and credited if paid)."""
        payments = self._money.payments
        o = await payments.order(order_id)
        if o is None:
            raise Refused(NOT_FOUND, "no such order")
        if check and o.get("status") == "pending":
            await payments.check_order(o)
            o = await payments.order(order_id)
        return {"order": o}

    async def orders_of(self, uid: str) -> dict[str, Any]:
        from heihei.heihei.ledger import user_orders_key
        payments = self._money.payments
        ids = await self.social.store.zrevrange(user_orders_key(str(uid)), 0, 199)
        orders = [await payments.order(i.decode() if isinstance(i, bytes) else i) for i in ids]
        return {"userId": str(uid), "orders": [o for o in orders if o is not None]}

    async def withdrawals(self, status: str = "pending", offset: int = 0, limit: int = 50) -> dict[str, Any]:
        return await self._money.payments.withdrawals(status, offset, limit)

    async def approve_withdrawal(self, wid: str) -> dict[str, Any]:
        return {"withdrawal": await self._not_found(self._money.payments.approve_withdrawal(str(wid)))}

    async def reject_withdrawal(self, wid: str, reason: str = "") -> dict[str, Any]:
        return {"withdrawal": await self._not_found(self._money.payments.reject_withdrawal(str(wid), reason))}

    async def _not_found(self, work):
        from heihei.heihei.errors import NO_SUCH_USER
        try:
            return await work
        except Refused as e:
            if e.reason == NO_SUCH_USER:
                raise Refused(NOT_FOUND, e.detail) from None
            raise

    async def money_catalog(self) -> dict[str, Any]:
        return await self._money.catalog.get()

    async def put_money_catalog(self, doc: Any) -> dict[str, Any]:
        from heihei.heihei.catalogs import CatalogError
        try:
            return await self._money.catalog.put(doc)
        except CatalogError as e:
            raise Refused(BAD_REQUEST, str(e)) from None

    async def reconcile(self) -> dict[str, Any]:
        """Replay every ledger against the balances; `ok` false lists the users it does not explain."""
        return await self._money.ledger.reconcile()
