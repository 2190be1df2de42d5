"""
`Payments`: recharges, point-to-gold exchanges and withdrawals of the heihei
app (`/api/payment/...`, the providers' callbacks, the operators' approvals),
on top of the ledger (heihei.heihei.ledger) and the provider clients
(heihei.outbound.payments).

An order is a hash `{uid, channel, packageId, productId, gold, payMoney,
status, createdAt}` made by `create-order` with the package's price and gold
of that moment (a later catalog change does not touch it). It is credited
once, by whichever proof arrives first: the provider's signed callback, the
client's `order-notify` (which is only a hint: it makes us ask the provider,
never credits by itself), or an operator's look-up. Every proof is checked
against the order (its id and exact amount, our merchant and app) before the
ledger sees it; what does not check out credits nothing and is logged.

Withdrawals: `pay-req` holds the points (a ledger entry) in a `pending`
withdrawal; an operator rejects it (the points come back) or approves it:
`pending` -> `paying` (one operator wins), then the Alipay transfer with the
withdrawal id as `out_biz_no` (Alipay pays one transfer per id, so calling
again after an unknown outcome is safe) -> `paid`, or on a verified refusal
-> `failed` with the points back. An unknown outcome leaves it `paying`; the
operator approves again later.
"""

from __future__ import annotations

import math
import secrets
from typing import Any

from twisted.logger import Logger

from heihei.core.errors import Refused
from heihei.heihei.errors import BAD_ORDER, BAD_PACKAGE, BAD_PARAMETER, BUSINESS_FAILED, NO_SUCH_USER
from heihei.heihei.identity import mask, valid_id_card, valid_phone
from heihei.heihei.ledger import GOLD, POINT, Ledger, order_key, user_orders_key, withdrawal_key, withdrawals_key
from heihei.heihei.accounts import REALM
from heihei.outbound.payments.alipay import yuan_from_fen
from heihei.outbound.payments.errors import (NotificationRefused, OrderMismatch, OrderNotFound, OutcomeUnknown,
                                             PaymentError, ProviderRejected)
from heihei.store.keys import key

WITHDRAWAL_STATUSES = ("pending", "paying", "paid", "rejected", "failed")
#: at most this many orders of one user are listed for operators
ORDERS_LISTED = 200


def account_key(uid: str) -> str:
    return key("alipayacct", REALM, uid)


def new_id() -> str:
    """32 letters and digits: valid as a WeChat out_trade_no, an Alipay out_trade_no and out_biz_no."""
    return secrets.token_hex(16)


class Payments:
    _log = Logger()

    def __init__(self, *, store, clock, ledger: Ledger, catalog, accounts, settings, wechat=None, alipay=None,
                 iap=None, identity=None) -> None:
        self.store = store
        self.clock = clock
        self.ledger = ledger
        self.catalog = catalog
        self.accounts = accounts
        self.settings = settings
        self.wechat = wechat
        self.alipay = alipay
        self.iap = iap
        self.identity = identity

    def now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    def provider(self, channel: str):
        return {"wechat": self.wechat, "alipay": self.alipay, "iap": self.iap}.get(channel)

    # -- balances ---------------------------------------------------------------------------------

    async def worth_fen(self, points: int) -> int:
        cash = (await self.catalog.get())["cash"]
        return points * cash["fen"] // cash["point"]

    async def statistic(self, uid: str) -> dict[str, Any]:
        b = await self.ledger.balances(uid)
        return {"gold": b["gold"], "point": b["point"], "pointWorth": await self.worth_fen(b["point"]),
                "allOutlayGold": b["allOutlayGold"], "allEarnPoint": b["allEarnPoint"]}

    async def cash_info(self, uid: str) -> dict[str, Any]:
        b = await self.ledger.balances(uid)
        cash = (await self.catalog.get())["cash"]
        return {"point": b["point"], "cash": await self.worth_fen(b["point"]), "rule": cash["rule"],
                "minCash": cash["minFen"], "maxCash": cash["maxFen"]}

    # -- recharge ---------------------------------------------------------------------------------

    async def list_packages(self, channel: str) -> list[dict[str, Any]]:
        """A channel that is not configured offers nothing."""
        if self.provider(channel) is None:
            return []
        return [dict(p) for p in await self.catalog.packages(channel)]

    async def create_order(self, uid: str, package_id: int, channel: str) -> dict[str, Any]:
        package = await self.catalog.package(package_id)
        if package is None or package["channel"] != channel:
            raise Refused(BAD_PACKAGE, f"packageId {package_id} ({channel})")
        provider = self.provider(channel)
        if provider is None:
            raise Refused(BUSINESS_FAILED, f"{channel} is not available")
        order_id = new_id()
        fields = {"id": order_id, "uid": uid, "channel": channel, "packageId": package["id"],
                  "productId": package["productId"], "gold": package["gold"], "payMoney": package["payMoney"],
                  "status": "pending", "createdAt": self.now_ms()}
        k = order_key(order_id)
        await self.store.hmset(k, fields)
        await self.store.expire(k, self.settings.order_ttl_s)
        await self.store.zadd(user_orders_key(uid), self.now_ms(), order_id)
        await self.store.zremrangebyrank(user_orders_key(uid), 0, -ORDERS_LISTED - 1)
        desc = package["desc"] or f"{package['gold']}钻"
        try:
            if channel == "wechat":
                made = await provider.create_app_order(order_id, package["payMoney"], desc,
                                                       self.settings.wechat_notify_url)
                data: Any = made.pay_params
                await self.store.hset(k, "prepayId", made.prepay_id)
            elif channel == "alipay":
                data = provider.app_order_string(order_id, yuan_from_fen(package["payMoney"]), desc,
                                                 self.settings.alipay_notify_url)
            else:
                data = (f"userId={uid}&packageId={package['id']}&channel={channel}"
                        f"&payMoney={package['payMoney']}")
        except OutcomeUnknown as e:
            self._log.warn("create-order {order} ({channel}): the provider did not answer: {why}", order=order_id,
                           channel=channel, why=str(e))
            raise Refused(BUSINESS_FAILED, f"{channel} did not answer; try again") from None
        except ProviderRejected as e:
            self._log.error("create-order {order} ({channel}): refused by the provider: {why}", order=order_id,
                            channel=channel, why=str(e))
            raise Refused(BUSINESS_FAILED, f"{channel} refused the order") from None
        self._log.info("order {order}: user {user}, {channel} package {package}, {fen} fen for {gold} gold",
                       order=order_id, user=uid, channel=channel, package=package["id"], fen=package["payMoney"],
                       gold=package["gold"])
        return {"order": order_id, "data": data, "productId": package["productId"]}

    async def order(self, order_id: str) -> dict[str, str] | None:
        if not order_id or len(order_id) > 64:
            return None
        o = await self.store.hgetall(order_key(order_id))
        return {_s(k): _s(v) for k, v in o.items()} if o else None

    async def order_notify(self, uid: str, order_id: str, status: str, data: str) -> dict[str, Any]:
        """The client says it paid: ask the provider (Apple: verify the receipt in `data`), credit
        once if it is so. 727 for an order that is not this user's."""
        o = await self.order(order_id)
        if o is None or o.get("uid") != uid:
            raise Refused(BAD_ORDER, f"order {order_id}")
        credited = o.get("status") == "credited"
        if not credited and status == "1":
            credited = await self.check_order(o, receipt=data)
        return {"order": order_id, "status": 1 if credited else 0,
                "gold": (await self.ledger.balances(uid))["gold"]}

    async def check_order(self, o: dict[str, str], *, receipt: str = "") -> bool:
        """Ask the order's provider whether it is paid; credit it if so. True when it is credited."""
        order_id, channel, fen = o["id"], o["channel"], int(o["payMoney"])
        provider = self.provider(channel)
        if provider is None:
            return False
        try:
            if channel == "wechat":
                t = await provider.query_order(order_id)
                if not t.paid:
                    return False
                t.require(order_id, fen)
                txn = t.transaction_id
            elif channel == "alipay":
                t = await provider.query_trade(order_id)
                if not t.paid:
                    return False
                t.require(order_id, fen)
                txn = t.trade_no
            else:
                return await self._credit_receipt(o, receipt)
        except OrderNotFound:
            return False
        except OrderMismatch as e:
            self._log.error("order {order}: the provider's answer does not match it ({field}): {why}", order=order_id,
                            field=e.field, why=str(e))
            return False
        except (OutcomeUnknown, ProviderRejected) as e:
            self._log.warn("order {order}: cannot ask {channel} now: {why}", order=order_id, channel=channel,
                           why=str(e))
            return False
        await self._credit(order_id, txn, how="query")
        return True

    async def _credit_receipt(self, o: dict[str, str], receipt: str) -> bool:
        if not receipt or len(receipt) > 1024 * 1024:
            return False
        try:
            verified = await self.iap.verify_receipt(receipt)
        except (OutcomeUnknown, ProviderRejected) as e:
            self._log.warn("order {order}: receipt not verified: {why}", order=o["id"], why=str(e))
            return False
        for purchase in verified.purchases:
            if purchase.product_id != o["productId"]:
                continue
            try:
                await self._credit(o["id"], purchase.transaction_id, how="receipt", txn_unique=True)
                return True
            except Refused:
                continue  # that transaction paid for another order already
        self._log.warn("order {order}: the receipt holds no unused purchase of {product}", order=o["id"],
                       product=o["productId"])
        return False

    async def _credit(self, order_id: str, txn: str, *, how: str, txn_unique: bool = False) -> None:
        now, gold = await self.ledger.credit_order(order_id, txn=txn, txn_unique=txn_unique)
        if now:
            self._log.info("order {order} credited ({how}, transaction {txn}): gold now {gold}", order=order_id,
                           how=how, txn=txn, gold=gold)

    async def wechat_callback(self, headers, body: bytes) -> bool:
        """A WeChat Pay notification: True when it is genuine and its order is credited (now or before);
        False (logged) for anything else, so WeChat retries a genuine one we could not take."""
        if self.wechat is None:
            return False
        try:
            n = self.wechat.verify_notification(headers, body)
        except NotificationRefused as e:
            self._log.warn("wepaycallback refused ({kind}): {why}", kind=type(e).__name__, why=str(e))
            return False
        t = n.transaction
        return await self._callback("wechat", t.out_trade_no, t.paid, t.require, t.transaction_id)

    async def alipay_callback(self, form: dict[str, str]) -> bool:
        if self.alipay is None:
            return False
        try:
            n = self.alipay.verify_notification(form)
        except NotificationRefused as e:
            self._log.warn("alipaycallback refused ({kind}): {why}", kind=type(e).__name__, why=str(e))
            return False
        return await self._callback("alipay", n.out_trade_no, n.paid, n.require, n.trade_no)

    async def _callback(self, channel: str, order_id: str, paid: bool, require, txn: str) -> bool:
        o = await self.order(order_id)
        if o is None or o.get("channel") != channel:
            self._log.warn("{channel} notification for an unknown order {order}", channel=channel, order=order_id)
            return False
        if not paid:
            return True  # nothing to credit (closed, waiting): the notification itself is taken
        try:
            require(order_id, int(o["payMoney"]))
        except OrderMismatch as e:
            self._log.error("{channel} notification for order {order} does not match it ({field}): {why}",
                            channel=channel, order=order_id, field=e.field, why=str(e))
            return False
        await self._credit(order_id, txn, how=f"{channel} callback")
        return True

    # -- points to gold ----------------------------------------------------------------------------

    async def p2g(self, uid: str, package_id: int) -> dict[str, Any]:
        package = await self.catalog.p2g_package(package_id)
        if package is None:
            raise Refused(BAD_PACKAGE, f"packageId {package_id}")
        order_id = new_id()
        point, _gold = await self.ledger.adjust(uid, [(POINT, -package["point"]), (GOLD, package["gold"])],
                                                cause="p2g", ref=order_id, note=str(package["id"]),
                                                spending=True)
        return {"order": order_id, "point": point}

    # -- withdrawals --------------------------------------------------------------------------------

    def _require_identity(self):
        if self.identity is None:
            raise Refused(BUSINESS_FAILED, "withdrawals are not configured")
        return self.identity

    async def verify_alipay(self, uid: str, alipaycode: str, username: str, idcard: str, phone: str) -> dict:
        box = self._require_identity()
        alipaycode, username, idcard, phone = (v.strip() for v in (alipaycode, username, idcard, phone))
        if not (0 < len(alipaycode) <= 100 and 0 < len(username) <= 64 and valid_id_card(idcard)
                and valid_phone(phone)):
            raise Refused(BAD_PACKAGE, "验证不通过")
        sealed = box.seal(uid, {"alipaycode": alipaycode, "name": username, "idcard": idcard.upper(), "phone": phone})
        await self.store.set(account_key(uid), sealed)
        self._log.info("user {user} set a withdrawal account", user=uid)
        return {"alipayCode": alipaycode}

    async def account(self, uid: str) -> dict[str, str] | None:
        if self.identity is None:
            return None
        sealed = await self.store.get(account_key(uid))
        return self.identity.open(uid, _s(sealed)) if sealed else None

    async def alipay_info(self, uid: str) -> dict[str, Any]:
        """The user's own account; the ID card number and phone masked (the client only shows them)."""
        a = await self.account(uid)
        if a is None:
            return {"info": {}}
        return {"info": {"alipaycode": a["alipaycode"], "name": a["name"], "idcard": mask(a["idcard"], 4, 4),
                         "phone": mask(a["phone"])}}

    async def pay_req(self, uid: str, alipaycode: str, fen: int) -> dict[str, Any]:
        self._require_identity()
        a = await self.account(uid)
        if a is None or a["alipaycode"] != alipaycode.strip():
            raise Refused(BAD_PACKAGE, "invalid alipaycode")
        cash = (await self.catalog.get())["cash"]
        if not cash["minFen"] <= fen <= cash["maxFen"]:
            raise Refused(BAD_PARAMETER, f"payamount ({cash['minFen']} to {cash['maxFen']} fen)")
        points = math.ceil(fen * cash["point"] / cash["fen"])
        wid = new_id()
        await self.ledger.hold_withdrawal(uid, wid, points, fen, "", "")
        self._log.info("withdrawal {wid}: user {user}, {fen} fen for {points} points", wid=wid, user=uid, fen=fen,
                       points=points)
        return {"reqmsg": "提现申请已提交", "id": wid}

    async def withdrawal(self, wid: str) -> dict[str, Any] | None:
        if not wid or len(wid) > 64:
            return None
        w = await self.store.hgetall(withdrawal_key(wid))
        if not w:
            return None
        w = {_s(k): _s(v) for k, v in w.items()}
        a = await self.account(w["uid"])
        w.pop("account", None)
        w.pop("name", None)
        w["payee"] = {"alipaycode": mask(a["alipaycode"]), "name": mask(a["name"], 1, 0)} if a else None
        return w

    async def withdrawals(self, status: str, offset: int = 0, limit: int = 50) -> dict[str, Any]:
        if status not in WITHDRAWAL_STATUSES:
            raise Refused(BAD_PARAMETER, f"status (one of {', '.join(WITHDRAWAL_STATUSES)})")
        limit = max(1, min(limit, 200))
        k = withdrawals_key(status)
        total = int(await self.store.zcard(k))
        ids = await self.store.zrange(k, offset, offset + limit - 1)
        return {"total": total, "withdrawals": [await self.withdrawal(_s(i)) for i in ids]}

    async def reject_withdrawal(self, wid: str, reason: str) -> dict[str, Any]:
        moved, now = await self.ledger.move_withdrawal(wid, "pending", "rejected", give_back=True,
                                                       note=reason[:200])
        if now == "":
            raise Refused(NO_SUCH_USER, "no such withdrawal")
        if not moved:
            raise Refused(BAD_PARAMETER, f"the withdrawal is {now}")
        return await self.withdrawal(wid)

    async def approve_withdrawal(self, wid: str) -> dict[str, Any]:
        """Pay a pending (or still `paying`) withdrawal through the Alipay transfer API."""
        w = await self.store.hgetall(withdrawal_key(wid))
        if not w:
            raise Refused(NO_SUCH_USER, "no such withdrawal")
        if self.alipay is None:
            raise Refused(BUSINESS_FAILED, "alipay is not configured")
        w = {_s(k): _s(v) for k, v in w.items()}
        if w["status"] == "pending":
            moved, now = await self.ledger.move_withdrawal(wid, "pending", "paying", give_back=False,
                                                           note="approved")
            if not moved:
                raise Refused(BAD_PARAMETER, f"the withdrawal is {now}")
        elif w["status"] != "paying":
            raise Refused(BAD_PARAMETER, f"the withdrawal is {w['status']}")
        a = await self.account(w["uid"])
        if a is None:
            await self.ledger.move_withdrawal(wid, "paying", "failed", give_back=True, note="no account")
            return await self.withdrawal(wid)
        try:
            t = await self.alipay.transfer(wid, a["alipaycode"], a["name"], yuan_from_fen(int(w["fen"])))
        except ProviderRejected as e:
            if e.verified:
                self._log.warn("withdrawal {wid}: Alipay refused the transfer: {why}", wid=wid, why=str(e))
                await self.ledger.move_withdrawal(wid, "paying", "failed", give_back=True, note=str(e)[:200])
                return await self.withdrawal(wid)
            self._log.warn("withdrawal {wid}: transfer outcome unknown (unsigned refusal); approve again later",
                           wid=wid)
            return await self.withdrawal(wid)
        except PaymentError as e:
            self._log.warn("withdrawal {wid}: transfer outcome unknown ({why}); approve again later", wid=wid,
                           why=str(e))
            return await self.withdrawal(wid)
        if t.succeeded:
            await self.ledger.move_withdrawal(wid, "paying", "paid", give_back=False, note=t.order_id)
        return await self.withdrawal(wid)


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
