"""Recharges and withdrawals end to end: nodes configured with the loopback fakes of WeChat Pay,
Alipay and Apple (tests/outbound/payments/fakes.py). create-order's `data` for each channel; the
providers' callbacks — a genuine one ten times over two nodes credits once, forged / replayed /
stale / wrong-amount / wrong-merchant ones credit nothing and are logged; order-notify asks the
provider and never credits on the client's word; Apple receipts credit one order per transaction;
withdrawals held, rejected, approved and paid through the Alipay transfer API."""

from __future__ import annotations

import base64
import json
import time
from urllib.parse import parse_qsl

import pytest_twisted
import treq
from alipay import AliPay
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from heihei.heihei.ledger import ledger_key
from heihei.heihei.payments import account_key
from tests.conftest import http_url
from tests.heihei.helpers import api, ok
from tests.heihei.livehelpers import start_live, user
from tests.heihei.test_money_gifts import extra as gift_extra, grant
from tests.live.test_admin import admin
from tests.outbound.payments.conftest import (  # noqa: F401 - fixtures
    ALIPAY_APP_ID, ALIPAY_SELLER_ID, APIV3_KEY, APPLE_BUNDLE, APPLE_SECRET, WECHAT_APPID, WECHAT_MCHID,
    WECHAT_MERCHANT_SERIAL, WECHAT_PUBLIC_KEY_ID, alipay_fake, apple_fake, keys, wechat_fake)
from tests.outbound.payments.fakes import beijing_now, pem_private, pem_public
from tests.outbound.payments.test_wechatpay import LogCapture

IDENTITY_KEY = base64.b64encode(b"k" * 32).decode()
ID_CARD = "11010519491231002X"


def pay_extra(outside, keys, *, wechat=None, alipay=None, apple=None) -> dict:
    e = gift_extra(outside)
    p: dict = {"identity_key": IDENTITY_KEY, "timeout_s": 5.0}
    if wechat is not None:
        p.update(wechat_appid=WECHAT_APPID, wechat_mchid=WECHAT_MCHID, wechat_merchant_serial_no=WECHAT_MERCHANT_SERIAL,
                 wechat_merchant_private_key=pem_private(keys.wechat_merchant), wechat_apiv3_key=APIV3_KEY,
                 wechat_platform_public_key=pem_public(keys.wechat_platform),
                 wechat_platform_public_key_id=WECHAT_PUBLIC_KEY_ID, wechat_api_url=wechat.url,
                 wechat_notify_url="https://api.heihei.example/api/payment/wepaycallback")
    if alipay is not None:
        p.update(alipay_app_id=ALIPAY_APP_ID, alipay_app_private_key=pem_private(keys.alipay_app),
                 alipay_public_key=pem_public(keys.alipay), alipay_seller_id=ALIPAY_SELLER_ID,
                 alipay_gateway_url=alipay.url + "/gateway.do",
                 alipay_notify_url="https://api.heihei.example/api/payment/alipaycallback")
    if apple is not None:
        p.update(iap_enabled=True, iap_shared_secret=APPLE_SECRET, iap_bundle_id=APPLE_BUNDLE,
                 iap_production_url=apple.url + "/verifyReceipt", iap_sandbox_url=apple.url + "/sandbox/verifyReceipt")
    e["payment"] = p
    return e


async def wepay(node, headers: dict[str, str], body: bytes) -> tuple[int, dict]:
    r = await treq.post(http_url(node, "/api/payment/wepaycallback"), data=body,
                        headers={k: [v] for k, v in headers.items()})
    return r.code, json.loads(await r.text("utf-8"))


async def alipay_notify(node, form: dict[str, str]) -> str:
    r = await treq.post(http_url(node, "/api/payment/alipaycallback"), data=form)
    return await r.text("utf-8")


async def gold_of(node, token: str) -> int:
    return (await ok(node, "/api/user/user-gold", {"token": token}))["user"]["gold"]


def entries(redis, uid: str) -> list[dict]:
    return [json.loads(e) for e in redis["client"].lrange(ledger_key(uid), 0, -1)]


@pytest_twisted.ensureDeferred
async def test_wechat_pay_order_credited_once_and_forgeries_credit_nothing(nodes, outside, keys, wechat_fake, redis):
    a = await nodes.start("a", pay_extra(outside, keys, wechat=wechat_fake))
    b = await nodes.start("b", pay_extra(outside, keys, wechat=wechat_fake))
    token, uid = await user(a, outside, "13600000001", "甲")
    packages = (await ok(a, "/api/payment/list-package", {"token": token, "channel": "wechat"}))["packages"]
    assert [p["id"] for p in packages] == [120, 121, 122]
    assert packages[2] == {"id": 122, "channel": "wechat", "productId": "productId_980", "desc": "送10钻",
                           "gold": 980, "payMoney": 9700, "originMoney": 9800}
    assert (await ok(a, "/api/payment/list-package", {"token": token, "channel": "alipay"}))["packages"] == []

    made = await ok(a, "/api/payment/create-order", {"token": token, "packageId": 120, "channel": "wechat"})
    order, data = made["order"], made["data"]
    assert made["productId"] == "productId_60" and len(order) == 32
    assert set(data) == {"appid", "partnerid", "prepayid", "package", "noncestr", "timestamp", "sign"}
    assert data["appid"] == WECHAT_APPID and data["partnerid"] == WECHAT_MCHID and data["package"] == "Sign=WXPay"
    message = f"{data['appid']}\n{data['timestamp']}\n{data['noncestr']}\n{data['prepayid']}\n".encode()
    keys.wechat_merchant.public_key().verify(base64.b64decode(data["sign"]), message, padding.PKCS1v15(),
                                             hashes.SHA256())
    assert wechat_fake.orders[order]["request"]["amount"]["total"] == 600
    # the client's word alone credits nothing: WeChat says NOTPAY
    r = await ok(a, "/api/payment/order-notify", {"token": token, "order": order, "status": "1", "data": "ok"})
    assert r["status"] == 0 and r["gold"] == 0

    # an operator raises the package's price: the order keeps the price it was made with
    code, doc = await admin(a, "GET", "/heihei/money")
    doc["packages"][0].update(payMoney=700, gold=70)
    assert (await admin(a, "PUT", "/heihei/money", doc))[0] == 200
    wechat_fake.pay(order)
    headers, body = wechat_fake.notification(wechat_fake.transaction(order))
    with LogCapture() as logs:
        # forged: the body changed after signing, or signed by a stranger
        assert (await wepay(a, headers, body.replace(b'"id"', b'"Id"', 1)))[0] == 400
        h2, b2 = wechat_fake.notification(wechat_fake.transaction(order), signing_key=keys.stranger)
        assert (await wepay(a, h2, b2))[0] == 400
        # stale: a genuine notification captured an hour ago and replayed
        h3, b3 = wechat_fake.notification(wechat_fake.transaction(order), timestamp=int(time.time()) - 3600)
        assert (await wepay(b, h3, b3))[0] == 400
        # wrong amount and wrong merchant, genuinely signed
        h4, b4 = wechat_fake.notification(wechat_fake.transaction(order, amount={"total": 1, "currency": "CNY",
                                                                                  "payer_total": 1}))
        assert (await wepay(a, h4, b4))[0] == 400
        h5, b5 = wechat_fake.notification(wechat_fake.transaction(order, mchid="1999999999"))
        assert (await wepay(b, h5, b5))[0] == 400
        # encrypted with another API v3 key
        h6, b6 = wechat_fake.notification(wechat_fake.transaction(order), apiv3_key="b" * 32)
        assert (await wepay(a, h6, b6))[0] == 400
        assert (await wepay(a, {"Content-Type": "application/json"}, b"{}"))[0] == 400
        assert await gold_of(a, token) == 0
        # the genuine one, ten times over two nodes: credited once
        for i in range(10):
            code, answer = await wepay((a, b)[i % 2], headers, body)
            assert code == 200 and answer == {"code": "SUCCESS", "message": "成功"}
    text = "\n".join(logs.lines)
    assert "wepaycallback refused" in text and "does not match" in text
    assert APIV3_KEY not in text and pem_private(keys.wechat_merchant).splitlines()[1] not in text
    assert await gold_of(b, token) == 60
    r = await ok(b, "/api/payment/order-notify", {"token": token, "order": order, "status": "1", "data": ""})
    assert r == {"errorcode": 0, "errormsg": "success", "order": order, "status": 1, "gold": 60}
    assert [(e["delta"], e["cause"], e["ref"]) for e in entries(redis, uid)] == [(60, "order", order)]

    # no notification came: order-notify asks WeChat, which says paid; credited once for two clients' calls
    second = (await ok(a, "/api/payment/create-order", {"token": token, "packageId": 121,
                                                         "channel": "wechat"}))["order"]
    wechat_fake.pay(second)
    for node in (a, b):
        r = await ok(node, "/api/payment/order-notify", {"token": token, "order": second, "status": "1", "data": ""})
        assert r["status"] == 1 and r["gold"] == 440
    # another user's order is 727
    other_token, _ = await user(b, outside, "13600000002", "乙")
    r = await api(b, "/api/payment/order-notify", {"token": other_token, "order": second, "status": "1", "data": ""})
    assert r["errorcode"] == 727
    code, found = await admin(a, "GET", f"/heihei/orders/{second}")
    assert code == 200 and found["order"]["status"] == "credited" and found["order"]["gold"] == "380"
    code, listed = await admin(a, "GET", f"/heihei/users/{uid}/orders")
    assert [o["id"] for o in listed["orders"]] == [second, order]
    # an operator's look-up credits a paid order no one told us about
    third = (await ok(a, "/api/payment/create-order", {"token": token, "packageId": 120,
                                                        "channel": "wechat"}))["order"]
    wechat_fake.pay(third)
    code, found = await admin(b, "GET", f"/heihei/orders/{third}?check=1")
    assert found["order"]["status"] == "credited" and await gold_of(a, token) == 510  # the new price: 70
    assert (await admin(b, "GET", "/heihei/orders/nope"))[0] == 404
    report = (await admin(a, "POST", "/heihei/reconcile"))[1]
    assert report["ok"] and report["entries"] == 3


@pytest_twisted.ensureDeferred
async def test_alipay_order_callbacks(nodes, outside, keys, alipay_fake):
    a = await nodes.start("a", pay_extra(outside, keys, alipay=alipay_fake))
    b = await nodes.start("b", pay_extra(outside, keys, alipay=alipay_fake))
    token, uid = await user(a, outside, "13600000011", "甲")
    made = await ok(a, "/api/payment/create-order", {"token": token, "packageId": 131, "channel": "alipay"})
    order, data = made["order"], made["data"]
    assert isinstance(data, str)
    fields = dict(parse_qsl(data))
    assert fields["app_id"] == ALIPAY_APP_ID and fields["sign_type"] == "RSA2" and fields["sign"]
    biz = json.loads(fields["biz_content"])
    assert biz["out_trade_no"] == order and biz["total_amount"] == "38.00"
    assert fields["notify_url"] == "https://api.heihei.example/api/payment/alipaycallback"

    stranger = AliPay(appid=ALIPAY_APP_ID, app_private_key_string=pem_private(keys.stranger),
                      alipay_public_key_string=pem_public(keys.alipay), sign_type="RSA2")
    with LogCapture() as logs:
        assert await alipay_notify(a, alipay_fake.notification(order, "38.00", signer=stranger)) == "failure"
        forged = alipay_fake.notification(order, "38.00")
        forged["total_amount"] = "0.01"
        assert await alipay_notify(a, forged) == "failure"
        assert await alipay_notify(b, alipay_fake.notification(order, "0.01")) == "failure"  # wrong amount, signed
        assert await alipay_notify(a, alipay_fake.notification(order, "38.00", seller_id="2088000000000000")) \
            == "failure"
        assert await alipay_notify(a, alipay_fake.notification(order, "38.00", app_id="2016000000000000")) \
            == "failure"
        assert await alipay_notify(b, alipay_fake.notification(order, "38.00",
                                                               notify_time=beijing_now(-3 * 86400))) == "failure"
        assert await alipay_notify(b, alipay_fake.notification("0" * 32, "38.00")) == "failure"  # no such order
        assert await alipay_notify(b, {"a": "b"}) == "failure"
        assert await gold_of(a, token) == 0
        genuine = alipay_fake.notification(order, "38.00")
        assert [await alipay_notify((a, b)[i % 2], genuine) for i in range(10)] == ["success"] * 10
    text = "\n".join(logs.lines)
    assert "alipaycallback refused" in text and "does not match" in text
    assert await gold_of(a, token) == 380
    # a closed trade's notification is taken and credits nothing
    other = (await ok(a, "/api/payment/create-order", {"token": token, "packageId": 130, "channel": "alipay"}))["order"]
    assert await alipay_notify(a, alipay_fake.notification(other, "6.00", trade_status="TRADE_CLOSED")) == "success"
    assert await gold_of(a, token) == 380
    # order-notify asks Alipay
    r = await ok(b, "/api/payment/order-notify", {"token": token, "order": other, "status": "1", "data": "{}"})
    assert r["status"] == 0
    alipay_fake.pay(other, "6.00")
    r = await ok(b, "/api/payment/order-notify", {"token": token, "order": other, "status": "1", "data": "{}"})
    assert r["status"] == 1 and r["gold"] == 440
    r = await ok(b, "/api/payment/order-notify", {"token": token, "order": other, "status": "2", "data": ""})
    assert r["gold"] == 440


@pytest_twisted.ensureDeferred
async def test_apple_receipts_credit_one_order_per_transaction(nodes, outside, keys, apple_fake):
    node = await nodes.start("a", pay_extra(outside, keys, apple=apple_fake))
    token, _ = await user(node, outside, "13600000021", "甲")
    [package] = (await ok(node, "/api/payment/list-package", {"token": token, "channel": "iap"}))["packages"]
    made = await ok(node, "/api/payment/create-order", {"token": token, "packageId": 140, "channel": "iap"})
    assert made["productId"] == package["productId"] and "payMoney=600" in made["data"]
    receipt = apple_fake.add("Production", APPLE_BUNDLE, [(package["productId"], "1000000401234567")])
    bad = await ok(node, "/api/payment/order-notify", {"token": token, "order": made["order"], "status": "1",
                                                        "data": "bm9wZQ=="})
    assert bad["status"] == 0 and bad["gold"] == 0
    good = await ok(node, "/api/payment/order-notify", {"token": token, "order": made["order"], "status": "1",
                                                         "data": receipt})
    assert good["status"] == 1 and good["gold"] == 60
    again = await ok(node, "/api/payment/create-order", {"token": token, "packageId": 140, "channel": "iap"})
    r = await ok(node, "/api/payment/order-notify", {"token": token, "order": again["order"], "status": "1",
                                                      "data": receipt})
    assert r["status"] == 0 and r["gold"] == 60  # the same purchase cannot pay for a second order
    other_app = apple_fake.add("Production", "com.example.cheap", [(package["productId"], "1000000409999999")])
    r = await ok(node, "/api/payment/order-notify", {"token": token, "order": again["order"], "status": "1",
                                                      "data": other_app})
    assert r["status"] == 0


@pytest_twisted.ensureDeferred
async def test_withdrawals(nodes, outside, keys, alipay_fake, redis):
    a = await nodes.start("a", pay_extra(outside, keys, alipay=alipay_fake))
    b = await nodes.start("b", pay_extra(outside, keys, alipay=alipay_fake))
    a_token, anchor = await user(a, outside, "13600000031", "主播")
    v_token, viewer = await user(b, outside, "13600000032", "观众")
    live = await start_live(a, a_token)
    await ok(b, "/api/live/join-live", {"token": v_token, "liveId": live["liveId"]})
    await grant(a, viewer, 3000)
    await ok(b, "/api/live/buy-gift", {"token": v_token, "liveId": live["liveId"], "giftId": 104, "gift_uuid": "x"})
    assert (await ok(a, "/api/payment/cash-info", {"token": a_token}))["cash"] == 1314 * 5

    assert (await ok(a, "/api/payment/get-alipay-info", {"token": a_token}))["info"] == {}
    account = {"token": a_token, "alipaycode": "anchor@example.com", "username": "张三", "idcard": ID_CARD,
               "phone": "13533221223"}
    r = await api(a, "/api/payment/pay-req", {"token": a_token, "alipaycode": "anchor@example.com", "payamount": 500})
    assert r["errorcode"] == 726
    for bad in ({"idcard": "110105194912310021"}, {"phone": "2353322122"}, {"idcard": "x" * 18}):
        assert (await api(a, "/api/payment/verify-alipay", {**account, **bad}))["errorcode"] == 726, bad
    with LogCapture() as logs:
        assert (await ok(a, "/api/payment/verify-alipay", account))["alipayCode"] == "anchor@example.com"
    assert not any(ID_CARD in line or "13533221223" in line or "张三" in line for line in logs.lines)
    stored = redis["client"].get(account_key(anchor))
    assert ID_CARD.encode() not in stored and "张三".encode() not in stored and b"13533221223" not in stored
    info = (await ok(b, "/api/payment/get-alipay-info", {"token": a_token}))["info"]
    assert info == {"alipaycode": "anchor@example.com", "name": "张三", "idcard": "1101**********002X",
                    "phone": "135******23"}

    req = {"token": a_token, "alipaycode": "anchor@example.com", "payamount": 500}
    assert (await api(a, "/api/payment/pay-req", {**req, "alipaycode": "other@example.com"}))["errorcode"] == 726
    assert (await api(a, "/api/payment/pay-req", {**req, "payamount": 99}))["errorcode"] == 700
    assert (await api(a, "/api/payment/pay-req", {**req, "payamount": 1314 * 5 + 5}))["errorcode"] == 740
    assert (await ok(a, "/api/payment/pay-req", req))["reqmsg"] == "提现申请已提交"
    assert (await ok(a, "/api/payment/cash-info", {"token": a_token}))["point"] == 1214
    code, pending = await admin(a, "GET", "/heihei/withdrawals")
    [w] = pending["withdrawals"]
    assert w["status"] == "pending" and w["fen"] == "500" and w["points"] == "100"
    assert w["payee"] == {"alipaycode": "anc*************om", "name": "张*"}
    # rejected: the points come back; once
    code, done = await admin(b, "POST", f"/heihei/withdrawals/{w['id']}/reject", {"reason": "资料不符"})
    assert code == 200 and done["withdrawal"]["status"] == "rejected"
    assert (await admin(b, "POST", f"/heihei/withdrawals/{w['id']}/reject", {}))[0] == 400
    assert (await admin(b, "POST", f"/heihei/withdrawals/{w['id']}/approve"))[0] == 400
    assert (await ok(a, "/api/payment/cash-info", {"token": a_token}))["point"] == 1314
    # approved: paid through the Alipay transfer API, with the withdrawal id as out_biz_no
    await ok(a, "/api/payment/pay-req", req)
    [w] = (await admin(a, "GET", "/heihei/withdrawals"))[1]["withdrawals"]
    alipay_fake.mode = "http500"  # the outcome is unknown: it stays paying, to be approved again
    code, done = await admin(a, "POST", f"/heihei/withdrawals/{w['id']}/approve")
    assert code == 200 and done["withdrawal"]["status"] == "paying"
    alipay_fake.mode = None
    code, done = await admin(a, "POST", f"/heihei/withdrawals/{w['id']}/approve")
    assert code == 200 and done["withdrawal"]["status"] == "paid"
    transfer = alipay_fake.transfers[w["id"]]
    assert transfer["trans_amount"] == "5.00" and transfer["payee"]["name"] == "张三"
    assert transfer["payee"]["identity"] == "anchor@example.com"
    assert (await admin(a, "POST", f"/heihei/withdrawals/{w['id']}/approve"))[0] == 400
    assert len(alipay_fake.transfers) == 1
    # Alipay refuses the payee: failed, the points come back
    await ok(a, "/api/payment/verify-alipay", {**account, "alipaycode": "nobody@example.com"})
    await ok(a, "/api/payment/pay-req", {**req, "alipaycode": "nobody@example.com"})
    [w] = (await admin(a, "GET", "/heihei/withdrawals"))[1]["withdrawals"]
    code, done = await admin(b, "POST", f"/heihei/withdrawals/{w['id']}/approve")
    assert done["withdrawal"]["status"] == "failed"
    assert (await ok(a, "/api/payment/cash-info", {"token": a_token}))["point"] == 1214
    assert (await admin(a, "GET", "/heihei/withdrawals?status=paid"))[1]["total"] == 1
    assert (await admin(a, "POST", "/heihei/withdrawals/nope/approve"))[0] == 404
    report = (await admin(a, "POST", "/heihei/reconcile"))[1]
    assert report["ok"], report
    causes = [(e["cause"], e["delta"]) for e in entries(redis, anchor)]
    assert causes == [("gift", 1314), ("withdrawal", -100), ("withdrawal-return", 100), ("withdrawal", -100),
                      ("withdrawal", -100), ("withdrawal-return", 100)]


def test_half_configured_providers_stop_the_start(keys, tmp_path):
    from heihei.config import ConfigError, build_settings
    from heihei.heihei.money import Money

    def build(payment: dict):
        settings = build_settings([{"payment": payment}])
        return Money(settings, store=None, clock=None, reactor=None, accounts=None, img_base="", http=object())

    wechat = dict(wechat_appid=WECHAT_APPID, wechat_mchid=WECHAT_MCHID, wechat_merchant_serial_no=WECHAT_MERCHANT_SERIAL,
                  wechat_merchant_private_key=pem_private(keys.wechat_merchant), wechat_apiv3_key=APIV3_KEY,
                  wechat_platform_public_key=pem_public(keys.wechat_platform),
                  wechat_platform_public_key_id=WECHAT_PUBLIC_KEY_ID,
                  wechat_notify_url="https://api.example/api/payment/wepaycallback")
    assert build(wechat).payments.wechat is not None
    for broken, words in (({"wechat_notify_url": ""}, "wechat_notify_url"), ({"wechat_apiv3_key": "short"}, "apiv3"),
                          ({"wechat_merchant_private_key": "not a key"}, "private_key")):
        try:
            build({**wechat, **broken})
        except ConfigError as e:
            assert words in str(e) and APIV3_KEY not in str(e)
        else:
            raise AssertionError(broken)
    for payment in ({"alipay_app_id": ALIPAY_APP_ID}, {"identity_key": "too short"}, {"gift_once_s": 0},
                    {"money_file": str(tmp_path / "missing.json")}):
        try:
            build(payment)
        except ConfigError:
            pass
        else:
            raise AssertionError(payment)
    money = build({})
    assert money.payments.wechat is None and money.payments.identity is None
