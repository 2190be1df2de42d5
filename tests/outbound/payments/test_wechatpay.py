"""WeChat Pay API v3: orders and queries against the fake on loopback, notifications refused and accepted.

`wechatpayv3` (the maintained synchronous SDK) is the independent check: it must
compute the same app-pay `sign` and Authorization signature we do, and accept the
fake's callbacks as genuine."""

from __future__ import annotations

import base64
import time

import pytest
import pytest_twisted
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from twisted.internet import reactor, task
from twisted.logger import formatEvent, globalLogPublisher
from twisted.web.http_headers import Headers
from wechatpayv3 import WeChatPay as LibWeChatPay, WeChatPayType
from wechatpayv3.utils import build_authorization

from heihei.outbound.payments import keys as k
from heihei.outbound.payments.errors import (
    AnswerNotGenuine, ConfigError, ForgedNotification, MalformedNotification, NotificationRefused, OrderMismatch,
    OrderNotFound,
    ProviderRejected, ProviderUnavailable, StaleNotification, UndecryptableNotification, UnknownSerial, WrongMerchant)
from heihei.outbound.payments.wechatpay import WeChatPay, WeChatPayConfig
from heihei.store.embedded import free_loopback_port
from tests.outbound.payments.conftest import (
    APIV3_KEY, WECHAT_APPID, WECHAT_MCHID, WECHAT_MERCHANT_SERIAL, WECHAT_PUBLIC_KEY_ID, pem)
from tests.outbound.payments.fakes import pem_private, pem_public

NOTIFY_URL = "https://api.heihei.example/api/payment/wepaycallback"


def config(keys, url: str = "http://127.0.0.1:1", **changes) -> WeChatPayConfig:
    values = dict(appid=WECHAT_APPID, mchid=WECHAT_MCHID, merchant_serial_no=WECHAT_MERCHANT_SERIAL,
                  merchant_private_key=pem_private(keys.wechat_merchant), apiv3_key=APIV3_KEY,
                  platform_public_key=pem_public(keys.wechat_platform), platform_public_key_id=WECHAT_PUBLIC_KEY_ID,
                  api_url=url, timeout_s=5.0)
    values.update(changes)
    return WeChatPayConfig(**values)


def provider(keys, http, url: str = "http://127.0.0.1:1", clock=reactor, **changes) -> WeChatPay:
    return WeChatPay(config(keys, url, **changes), http, clock=clock)


def library(keys) -> LibWeChatPay:
    """wechatpayv3 configured as the same merchant (public-key mode: it makes no call when built)."""
    return LibWeChatPay(wechatpay_type=WeChatPayType.APP, mchid=WECHAT_MCHID,
                        private_key=pem_private(keys.wechat_merchant), cert_serial_no=WECHAT_MERCHANT_SERIAL,
                        appid=WECHAT_APPID, apiv3_key=APIV3_KEY, public_key=pem_public(keys.wechat_platform),
                        public_key_id=WECHAT_PUBLIC_KEY_ID)


class LogCapture:
    """Every log line formatted, to check what never appears in logs."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, event) -> None:
        self.lines.append(formatEvent(event) or "")
        failure = event.get("log_failure")
        if failure is not None:
            self.lines.append(failure.getTraceback())

    def __enter__(self):
        globalLogPublisher.addObserver(self)
        return self

    def __exit__(self, *exc) -> None:
        globalLogPublisher.removeObserver(self)


# -- orders ------------------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_create_app_order_gives_the_apps_pay_params_signed_as_wechatpayv3_signs_them(keys, http, wechat_fake):
    pay = provider(keys, http, wechat_fake.url)
    order = await pay.create_app_order("HH20180608000001", 600, "黑黑 60 金币", NOTIFY_URL)
    # the fake checked the Authorization signature with the merchant's public key, and the body
    assert wechat_fake.orders["HH20180608000001"]["request"] == {
        "appid": WECHAT_APPID, "mchid": WECHAT_MCHID, "description": "黑黑 60 金币", "out_trade_no": "HH20180608000001",
        "notify_url": NOTIFY_URL, "amount": {"total": 600, "currency": "CNY"}}
    assert order.prepay_id == wechat_fake.orders["HH20180608000001"]["prepay_id"]
    params = order.pay_params
    assert set(params) == {"appid", "partnerid", "prepayid", "package", "noncestr", "timestamp", "sign"}
    assert all(isinstance(v, str) for v in params.values())
    assert (params["appid"], params["partnerid"], params["prepayid"], params["package"]) == \
        (WECHAT_APPID, WECHAT_MCHID, order.prepay_id, "Sign=WXPay")
    assert abs(int(params["timestamp"]) - time.time()) < 60 and len(params["noncestr"]) <= 32
    # RSA PKCS#1 v1.5 is deterministic: the SDK's signature of the same four lines is the same string
    expected = library(keys).sign([params["appid"], params["timestamp"], params["noncestr"], params["prepayid"]])
    assert params["sign"] == expected


@pytest_twisted.ensureDeferred
async def test_the_authorization_header_is_what_wechatpayv3_builds(keys, http):
    pay = provider(keys, http)
    body = b'{"appid":"wx","amount":{"total":1}}'
    lib_key = library(keys)._core._private_key
    for _ in range(3):  # retried only if the second ticks over between the two
        now = int(time.time())
        ours = pay.authorization("POST", "/v3/pay/transactions/app", body, timestamp=now, nonce="N0NCE")
        theirs = build_authorization("/v3/pay/transactions/app", "POST", WECHAT_MCHID, WECHAT_MERCHANT_SERIAL,
                                     lib_key, data=body.decode(), nonce_str="N0NCE")
        if f'timestamp="{now}"' in theirs:
            break
    assert ours == theirs


@pytest_twisted.ensureDeferred
async def test_creating_again_is_idempotent_and_a_changed_order_is_refused(keys, http, wechat_fake):
    pay = provider(keys, http, wechat_fake.url)
    first = await pay.create_app_order("HH20180608000002", 600, "60 金币", NOTIFY_URL)
    again = await pay.create_app_order("HH20180608000002", 600, "60 金币", NOTIFY_URL)
    assert again.prepay_id == first.prepay_id
    with pytest.raises(ProviderRejected) as info:
        await pay.create_app_order("HH20180608000002", 1, "60 金币", NOTIFY_URL)
    assert (info.value.code, info.value.verified) == ("INVALID_REQUEST", True)


@pytest_twisted.ensureDeferred
async def test_query_order_before_and_after_payment(keys, http, wechat_fake):
    pay = provider(keys, http, wechat_fake.url)
    await pay.create_app_order("HH20180608000003", 97000, "980 金币", NOTIFY_URL)
    unpaid = await pay.query_order("HH20180608000003")
    assert (unpaid.trade_state, unpaid.paid, unpaid.transaction_id) == ("NOTPAY", False, "")
    transaction_id = wechat_fake.pay("HH20180608000003")
    paid = await pay.query_order("HH20180608000003")
    assert (paid.trade_state, paid.paid, paid.transaction_id, paid.amount_total, paid.currency) == \
        ("SUCCESS", True, transaction_id, 97000, "CNY")
    paid.require("HH20180608000003", 97000)
    with pytest.raises(OrderMismatch) as info:
        paid.require("HH20180608000003", 98000)
    assert info.value.field == "amount"
    with pytest.raises(OrderNotFound) as info:
        await pay.query_order("HH20180608999999")
    assert info.value.verified
    # the signed URL includes the query string
    assert wechat_fake.requests[-1] == \
        ("GET", f"/v3/pay/transactions/out-trade-no/HH20180608999999?mchid={WECHAT_MCHID}")


@pytest_twisted.ensureDeferred
async def test_platform_certificate_mode_with_a_zero_padded_serial(keys, http, wechat_fake):
    """Merchants from before 2024 verify with platform certificates, named by serial (40 hex digits)."""
    wechat_fake.platform_serial = format(keys.wechat_platform_cert.serial_number, "040X")
    assert wechat_fake.platform_serial.startswith("00")
    pay = provider(keys, http, wechat_fake.url, platform_public_key="", platform_public_key_id="",
                   platform_certificates=(pem(keys.wechat_platform_cert),))
    await pay.create_app_order("HH20180608000004", 600, "60 金币", NOTIFY_URL)
    assert (await pay.query_order("HH20180608000004")).trade_state == "NOTPAY"


@pytest.mark.parametrize("mode, error", [("unsigned", AnswerNotGenuine), ("forged", AnswerNotGenuine),
                                         ("wrong-serial", AnswerNotGenuine), ("http500", ProviderUnavailable)])
@pytest_twisted.ensureDeferred
async def test_answers_that_cannot_be_believed(keys, http, wechat_fake, mode, error):
    pay = provider(keys, http, wechat_fake.url)
    wechat_fake.mode = mode
    with pytest.raises(error):
        await pay.create_app_order("HH20180608000005", 600, "60 金币", NOTIFY_URL)


@pytest_twisted.ensureDeferred
async def test_a_merchant_key_wechat_does_not_know_is_refused_with_sign_error(keys, http, wechat_fake):
    pay = provider(keys, http, wechat_fake.url, merchant_private_key=pem_private(keys.stranger))
    with pytest.raises(ProviderRejected) as info:
        await pay.create_app_order("HH20180608000006", 600, "60 金币", NOTIFY_URL)
    assert info.value.code == "SIGN_ERROR" and wechat_fake.orders == {}


@pytest_twisted.ensureDeferred
async def test_a_silent_wechat_is_unavailable_after_the_deadline_and_the_connection_is_closed(keys, http, wechat_fake):
    pay = provider(keys, http, wechat_fake.url, timeout_s=0.3)
    wechat_fake.mode = "hang"
    with pytest.raises(ProviderUnavailable, match="no answer within 0.3 s"):
        await pay.query_order("HH20180608000007")
    for _ in range(100):
        if wechat_fake.aborted:
            break
        await task.deferLater(reactor, 0.02, lambda: None)
    assert wechat_fake.aborted


@pytest_twisted.ensureDeferred
async def test_an_unreachable_wechat_is_unavailable(keys, http):
    pay = provider(keys, http, f"http://127.0.0.1:{free_loopback_port()}")
    with pytest.raises(ProviderUnavailable):
        await pay.query_order("HH20180608000008")


@pytest_twisted.ensureDeferred
async def test_bad_arguments_are_refused_before_anything_is_sent(keys, http, wechat_fake):
    pay = provider(keys, http, wechat_fake.url)
    for args in [("short", 600, "d", NOTIFY_URL), ("HH2018../../x", 600, "d", NOTIFY_URL),
                 ("HH20180608000009", 0, "d", NOTIFY_URL), ("HH20180608000009", 6.0, "d", NOTIFY_URL),
                 ("HH20180608000009", True, "d", NOTIFY_URL), ("HH20180608000009", 600, "", NOTIFY_URL),
                 ("HH20180608000009", 600, "d", "http://insecure.example/cb"),
                 ("HH20180608000009", 600, "d", NOTIFY_URL + "?a=1")]:
        with pytest.raises(ValueError):
            await pay.create_app_order(*args)
    with pytest.raises(ValueError):
        await pay.query_order("a/b")
    assert wechat_fake.requests == []


def test_configuration_errors(keys, http):
    with pytest.raises(ConfigError, match="32-character"):
        provider(keys, http, apiv3_key="short")
    with pytest.raises(ConfigError, match="platform_certificates or platform_public_key"):
        provider(keys, http, platform_public_key="", platform_public_key_id="")
    with pytest.raises(ConfigError, match="go together"):
        provider(keys, http, platform_public_key_id="")
    with pytest.raises(ConfigError, match="mchid"):
        provider(keys, http, mchid="")
    shown = repr(config(keys))
    assert APIV3_KEY not in shown and "PRIVATE KEY" not in shown


# -- notifications -----------------------------------------------------------------------------------


async def paid_order(pay: WeChatPay, fake, out_trade_no: str = "HH20180608000010", fen: int = 600) -> dict:
    await pay.create_app_order(out_trade_no, fen, "60 金币", NOTIFY_URL)
    fake.pay(out_trade_no)
    return fake.transaction(out_trade_no)


@pytest_twisted.ensureDeferred
async def test_a_genuine_notification_gives_the_transaction_the_same_every_time(keys, http, wechat_fake):
    pay = provider(keys, http, wechat_fake.url)
    transaction = await paid_order(pay, wechat_fake)
    headers, body = wechat_fake.notification(transaction)
    # the SDK agrees the fake's callback is genuine, and decrypts the same transaction
    assert library(keys).callback(headers, body)["resource"] == transaction
    first = pay.verify_notification(headers, body)
    assert first.event_type == "TRANSACTION.SUCCESS" and first.notification_id.startswith("EV-")
    t = first.transaction
    assert (t.out_trade_no, t.transaction_id, t.trade_state, t.amount_total, t.mchid, t.appid, t.paid) == \
        ("HH20180608000010", transaction["transaction_id"], "SUCCESS", 600, WECHAT_MCHID, WECHAT_APPID, True)
    t.require("HH20180608000010", 600)
    twisted_headers = Headers({name: [value] for name, value in headers.items()})
    lower = {name.lower(): value for name, value in headers.items()}
    results = [pay.verify_notification(h, body) for h in [headers] * 8 + [twisted_headers, lower]]
    assert results == [first] * 10


@pytest_twisted.ensureDeferred
async def test_forged_notifications_are_refused(keys, http, wechat_fake):
    pay = provider(keys, http, wechat_fake.url)
    transaction = await paid_order(pay, wechat_fake)
    headers, body = wechat_fake.notification(transaction)
    tampered = body.replace(b'"TRANSACTION.SUCCESS"', b'"TRANSACTION.SUCCES5"')
    cases = {
        "changed body": (headers, tampered),
        "signed by a stranger": wechat_fake.notification(transaction, signing_key=keys.stranger),
        "no signature": ({k: v for k, v in headers.items() if k != "Wechatpay-Signature"}, body),
        "another algorithm": wechat_fake.notification(transaction, signature_type="WECHATPAY2-SM2-WITH-SM3"),
        "WeChat's probe": ({**headers, "Wechatpay-Signature": "WECHATPAY/SIGNTEST/" + headers["Wechatpay-Signature"]},
                           body),
        "nonce swallowing a line": ({**headers, "Wechatpay-Nonce": headers["Wechatpay-Nonce"] + "\n{"}, body),
        "repeated header": ({**headers, "wechatpay-signature": headers["Wechatpay-Signature"]}, body),
    }
    for case, (h, b) in cases.items():
        with pytest.raises(ForgedNotification):
            pay.verify_notification(h, b)
        assert case


@pytest_twisted.ensureDeferred
async def test_stale_and_replayed_notifications_are_refused(keys, http, wechat_fake):
    pay = provider(keys, http, wechat_fake.url)
    transaction = await paid_order(pay, wechat_fake)
    now = time.time()
    for offset in (-301, -3600, +301):
        headers, body = wechat_fake.notification(transaction, timestamp=int(now) + offset)
        with pytest.raises(StaleNotification):
            pay.verify_notification(headers, body, now=now)
    # a genuine notification captured and replayed later
    headers, body = wechat_fake.notification(transaction)
    pay.verify_notification(headers, body, now=now)
    with pytest.raises(StaleNotification):
        pay.verify_notification(headers, body, now=now + 600)


@pytest_twisted.ensureDeferred
async def test_unknown_serial_undecryptable_wrong_merchant_and_malformed_notifications(keys, http, wechat_fake):
    pay = provider(keys, http, wechat_fake.url)
    transaction = await paid_order(pay, wechat_fake)
    with pytest.raises(UnknownSerial):
        pay.verify_notification(*wechat_fake.notification(transaction, serial="PUB_KEY_ID_0199999999"))
    with pytest.raises(UnknownSerial):
        pay.verify_notification(*wechat_fake.notification(transaction,
                                                          serial="5157F09EFDC096DE15EBE81A47057A7232F1B8E1"))
    with pytest.raises(UndecryptableNotification):
        pay.verify_notification(*wechat_fake.notification(transaction, apiv3_key="b" * 32))
    _, body = wechat_fake.notification(transaction)
    flipped = body.replace(b'"ciphertext": "', b'"ciphertext": "AAAA', 1)
    with pytest.raises(UndecryptableNotification):
        pay.verify_notification(wechat_fake.sign_callback(flipped), flipped)
    for field, value in (("mchid", "1900000109"), ("appid", "wx0000000000000000")):
        with pytest.raises(WrongMerchant):
            pay.verify_notification(*wechat_fake.notification({**transaction, field: value}))
    with pytest.raises(MalformedNotification):
        pay.verify_notification(*wechat_fake.notification({**transaction, "transaction_id": ""}))
    with pytest.raises(MalformedNotification):
        not_json = b"<xml><return_code>SUCCESS</return_code></xml>"
        pay.verify_notification(wechat_fake.sign_callback(not_json), not_json)


@pytest_twisted.ensureDeferred
async def test_a_genuine_notification_of_the_wrong_amount_is_caught_by_require(keys, http, wechat_fake):
    pay = provider(keys, http, wechat_fake.url)
    transaction = await paid_order(pay, wechat_fake)
    cheap = {**transaction, "amount": {**transaction["amount"], "total": 1}}
    notification = pay.verify_notification(*wechat_fake.notification(cheap))
    with pytest.raises(OrderMismatch) as info:
        notification.transaction.require("HH20180608000010", 600)
    assert info.value.field == "amount"
    with pytest.raises(OrderMismatch) as info:
        notification.transaction.require("HH20180608000011", 1)
    assert info.value.field == "out_trade_no"


@pytest_twisted.ensureDeferred
async def test_no_secret_key_or_signature_reaches_the_logs(keys, http, wechat_fake):
    pay = provider(keys, http, wechat_fake.url)
    with LogCapture() as logs:
        transaction = await paid_order(pay, wechat_fake)
        headers, body = wechat_fake.notification(transaction)
        for h, b in [(headers, body.replace(b"SUCCESS", b"SUCCES5")), (headers, body)]:
            with pytest.raises(NotificationRefused):
                pay.verify_notification(h, b, now=time.time() + 3600)
        wechat_fake.mode = "forged"
        with pytest.raises(AnswerNotGenuine):
            await pay.query_order("HH20180608000010")
        wechat_fake.mode = None
        with pytest.raises(ProviderRejected):
            await provider(keys, http, wechat_fake.url, merchant_private_key=pem_private(keys.stranger)) \
                .query_order("HH20180608000010")
    text = "\n".join(logs.lines)
    assert "refused" in text and "does not verify" in text
    private_body = "".join(pem_private(keys.wechat_merchant).splitlines()[1:-1])
    for secret in [APIV3_KEY, headers["Wechatpay-Signature"], private_body[:40], private_body[-40:],
                   *wechat_fake.authorizations]:
        assert secret not in text
    signature = wechat_fake.authorizations[0].split('signature="')[1].split('"')[0]
    assert signature[:24] not in text


def test_the_app_pay_sign_verifies_with_the_merchant_public_key(keys, http):
    clock = task.Clock()
    clock.advance(1528425296)
    params = provider(keys, http, clock=clock).app_pay_params("wx201410272009395522657a690389285100")
    assert params["timestamp"] == "1528425296"
    message = f"{WECHAT_APPID}\n1528425296\n{params['noncestr']}\nwx201410272009395522657a690389285100\n".encode()
    keys.wechat_merchant.public_key().verify(base64.b64decode(params["sign"]), message, padding.PKCS1v15(),
                                             hashes.SHA256())
    assert k.verify(keys.wechat_merchant.public_key(), message, params["sign"])
