"""`/api/payment/...`: recharge packages and orders, the providers' callbacks, point-to-gold, the
account's figures and withdrawals (seed 001; docs/heihei.md, "Money").

The app's endpoints take `token` and answer `{errorcode, errormsg, ...}`
like every other section. The two callbacks are the providers' server-to-
server notifications, in the providers' own formats:

    POST /api/payment/wepaycallback   WeChat Pay v3 JSON + Wechatpay-* headers
        -> 200 {"code": "SUCCESS", "message": "成功"} | 400 {"code": "FAIL", "message": "..."}
    POST /api/payment/alipaycallback  Alipay form (RSA2 signed)
        -> text "success" | "failure"

A failure answer makes the provider send the notification again later, so
only what is genuine and credited (now or before) is answered with success.
Domain work is in heihei.heihei.payments (`social.money.payments`).
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from heihei.jsonsafe import encode_json
from heihei.web.api.base import HEIHEI, ApiModule
from heihei.web.kit.params import integer, long, string
from heihei.web.kit.routes import endpoint, new_app

CHANNEL = string("channel", enum=("wechat", "alipay", "iap"))
#: a provider notification is a few KB
MAX_CALLBACK_BYTES = 64 * 1024


class PaymentApi(ApiModule):
    app = new_app(HEIHEI)
    prefix = "/api/payment"

    @property
    def payments(self):
        return self.social.money.payments

    @endpoint(app, "/list-package", "Recharge packages of a channel (none for a channel not configured)", CHANNEL,
              returns=("packages",))
    async def list_package(self, call, a):
        return {"packages": await self.payments.list_packages(a["channel"])}

    @endpoint(app, "/create-order", "An order for a package: WeChat's app-pay parameters (data object) or "
              "Alipay's signed order string (data string)", long("packageId", minimum=1, maximum=2 ** 31 - 1),
              CHANNEL, errors=(726, 400), returns=("order", "data", "productId"))
    async def create_order(self, call, a):
        return await self.payments.create_order(call.user, a["packageId"], a["channel"])

    @endpoint(app, "/order-notify", "The app says it paid: the provider is asked (Apple: the receipt in data "
              "is verified) and the order credited once", string("order", max_length=64),
              string("status", enum=("1", "2")),
              string("data", required=False, max_length=1024 * 1024, default="",
                     description="the payment SDK's answer; for iap the receipt (base64)"),
              errors=(727,), returns=("order", "status", "gold"))
    async def order_notify(self, call, a):
        return await self.payments.order_notify(call.user, a["order"], a["status"], a["data"])

    @endpoint(app, "/statistic", "The caller's diamonds and 黑票", returns=("gold", "point", "pointWorth",
                                                                          "allOutlayGold", "allEarnPoint"))
    async def statistic(self, call, a):
        return await self.payments.statistic(call.user)

    @endpoint(app, "/list-p2g-package", "Packages exchanging 黑票 for diamonds", returns=("packages",))
    async def list_p2g_package(self, call, a):
        return {"packages": (await self.payments.catalog.get())["p2g"]}

    @endpoint(app, "/p2g", "Exchange 黑票 for diamonds (741: not enough 黑票)",
              long("packageId", minimum=1, maximum=2 ** 31 - 1), errors=(726, 741, 721), returns=("order", "point"))
    async def p2g(self, call, a):
        return await self.payments.p2g(call.user, a["packageId"])

    @endpoint(app, "/cash-info", "What the caller's 黑票 are worth in cash (fen), and the rule",
              returns=("point", "cash", "rule"))
    async def cash_info(self, call, a):
        return await self.payments.cash_info(call.user)

    @endpoint(app, "/get-alipay-info", "The caller's withdrawal account (ID card and phone masked)",
              returns=("info",))
    async def get_alipay_info(self, call, a):
        return await self.payments.alipay_info(call.user)

    @endpoint(app, "/verify-alipay", "Set the caller's withdrawal account (stored encrypted; 726 when it "
              "does not check out)", string("alipaycode", max_length=100), string("username", max_length=64),
              string("idcard", max_length=18), string("phone", max_length=20), errors=(726, 400),
              returns=("alipayCode",))
    async def verify_alipay(self, call, a):
        return await self.payments.verify_alipay(call.user, a["alipaycode"], a["username"], a["idcard"],
                                                 a["phone"])

    @endpoint(app, "/pay-req", "Ask to withdraw payamount fen (the 黑票 are held until an operator decides)",
              string("alipaycode", max_length=100), integer("payamount", minimum=1, maximum=10 ** 9),
              errors=(726, 740, 721, 400), returns=("reqmsg",))
    async def pay_req(self, call, a):
        return await self.payments.pay_req(call.user, a["alipaycode"], a["payamount"])

    # -- the providers' notifications (their formats, not the app's) ------------------------------

    @app.route("/wepaycallback", methods=["POST"])
    async def wepaycallback(self, request):
        body = request.content.read(MAX_CALLBACK_BYTES + 1)
        request.setHeader(b"content-type", b"application/json; charset=utf-8")
        ok = len(body) <= MAX_CALLBACK_BYTES and await self.payments.wechat_callback(request.requestHeaders, body)
        if ok:
            return encode_json({"code": "SUCCESS", "message": "成功"})
        request.setResponseCode(400)
        return encode_json({"code": "FAIL", "message": "not accepted"})

    @app.route("/alipaycallback", methods=["POST"])
    async def alipaycallback(self, request):
        body = request.content.read(MAX_CALLBACK_BYTES + 1)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        if len(body) > MAX_CALLBACK_BYTES:
            return b"failure"
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            return b"failure"
        form: dict[str, str] = {}
        for k, v in pairs:
            if k in form:  # a repeated field is not Alipay's
                return b"failure"
            form[k] = v
        return b"success" if await self.payments.alipay_callback(form) else b"failure"
