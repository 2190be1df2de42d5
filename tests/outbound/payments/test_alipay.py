"""Alipay (RSA2): the app order string, notifications, and gateway calls against the fake on loopback.

`python-alipay-sdk` is the independent check: it must produce the very same signed
order string from the same parameters, sign the fake's notifications and answers,
and accept what the fake sends as genuine."""

from __future__ import annotations

import json
import time
from datetime import datetime
from urllib.parse import parse_qsl

import pytest
import pytest_twisted
from alipay import AliPay as LibAliPay
from twisted.internet import reactor, task

from heihei.outbound.payments.alipay import BEIJING, Alipay, AlipayConfig
from heihei.outbound.payments.errors import (
    AnswerNotGenuine, ConfigError, ForgedNotification, MalformedNotification, NotificationRefused, OrderMismatch,
    OrderNotFound, ProviderRejected, ProviderUnavailable, StaleNotification, WrongMerchant)
from tests.outbound.payments.conftest import ALIPAY_APP_ID, ALIPAY_SELLER_ID, pem
from tests.outbound.payments.fakes import pem_private, pem_public
from tests.outbound.payments.test_wechatpay import LogCapture

NOTIFY_URL = "https://api.heihei.example/api/payment/alipaycallback"


def config(keys, url: str = "http://127.0.0.1:1/gateway.do", **changes) -> AlipayConfig:
    values = dict(app_id=ALIPAY_APP_ID, app_private_key=pem_private(keys.alipay_app),
                  alipay_public_key=pem_public(keys.alipay), seller_id=ALIPAY_SELLER_ID, gateway_url=url,
                  timeout_s=5.0)
    values.update(changes)
    return AlipayConfig(**values)


def provider(keys, http, url: str = "http://127.0.0.1:1/gateway.do", clock=reactor, **changes) -> Alipay:
    return Alipay(config(keys, url, **changes), http, clock=clock)


def cert_provider(keys, http, url: str, **changes) -> Alipay:
    certificates = dict(alipay_public_key="", app_public_cert=pem(keys.app_cert),
                        alipay_public_cert=pem(keys.alipay_cert), alipay_root_cert=keys.alipay_root_pem)
    return provider(keys, http, url, **{**certificates, **changes})


def library_as_app(keys) -> LibAliPay:
    """python-alipay-sdk configured as our app: signs with the app key, verifies with Alipay's."""
    return LibAliPay(appid=ALIPAY_APP_ID, app_private_key_string=pem_private(keys.alipay_app),
                     alipay_public_key_string=pem_public(keys.alipay), sign_type="RSA2")


# -- the app order string ----------------------------------------------------------------------------


def test_the_order_string_is_what_python_alipay_sdk_signs_from_the_same_parameters(keys, http):
    clock = task.Clock()
    clock.advance(1528425296)  # 2018-06-08 10:34:56 in Beijing
    order = provider(keys, http, clock=clock).app_order_string("HH20180608000001", "6.00", "黑黑 60 金币", NOTIFY_URL,
                                                               timeout_express="30m")
    params = dict(parse_qsl(order, keep_blank_values=True, strict_parsing=True))
    assert order.endswith("&sign=" + order.rsplit("&sign=", 1)[1]) and "+" not in order.rsplit("&sign=", 1)[1]
    sign = params.pop("sign")
    assert params == {
        "app_id": ALIPAY_APP_ID, "method": "alipay.trade.app.pay", "format": "JSON", "charset": "utf-8",
        "sign_type": "RSA2", "timestamp": "2018-06-08 10:34:56", "version": "1.0", "notify_url": NOTIFY_URL,
        "biz_content": '{"out_trade_no":"HH20180608000001","total_amount":"6.00","subject":"黑黑 60 金币",'
                       '"product_code":"QUICK_MSECURITY_PAY","timeout_express":"30m"}'}
    # the SDK builds the same string, byte for byte, from the same parameters (signature included)
    assert library_as_app(keys).sign_data(dict(params)) == order
    content = "&".join(f"{key}={value}" for key, value in sorted(params.items()))
    assert LibAliPay(appid=ALIPAY_APP_ID, app_private_key_string=pem_private(keys.alipay),
                     alipay_public_key_string=pem_public(keys.alipay_app))._verify(content, sign)


def test_the_order_string_in_certificate_mode_names_the_certificates(keys, http):
    from tests.outbound.payments.conftest import alipay_cert_sns

    order = cert_provider(keys, http, "http://127.0.0.1:1/gateway.do").app_order_string(
        "HH20180608000002", "0.01", "1 金币", NOTIFY_URL)
    params = dict(parse_qsl(order))
    expected = alipay_cert_sns(keys)
    assert (params["app_cert_sn"], params["alipay_root_cert_sn"]) == \
        (expected["app_cert_sn"], expected["alipay_root_cert_sn"])
    params.pop("sign")
    assert library_as_app(keys).sign_data(dict(params)) == order


def test_order_string_arguments_are_checked(keys, http):
    alipay = provider(keys, http)
    for args in [("HH-01", "6.00", "s", NOTIFY_URL), ("HH01", "6.001", "s", NOTIFY_URL),
                 ("HH01", "0.00", "s", NOTIFY_URL), ("HH01", 6, "s", NOTIFY_URL), ("HH01", "6.00", "a&b=c", NOTIFY_URL), ("HH01", "6.00", "", NOTIFY_URL),
                 ("HH01", "6.00", "s", "ftp://x"), ("HH01", "100000000.01", "s", NOTIFY_URL)]:
        with pytest.raises(ValueError):
            alipay.app_order_string(*args)
    with pytest.raises(ValueError):
        alipay.app_order_string("HH01", "6.00", "s", NOTIFY_URL, timeout_express="30 minutes")


def test_configuration_errors(keys, http):
    with pytest.raises(ConfigError, match="alipay_public_key, or the three certificates"):
        provider(keys, http, alipay_public_key="")
    with pytest.raises(ConfigError, match="not both"):
        cert_provider(keys, http, "http://x", alipay_public_key=pem_public(keys.alipay))
    with pytest.raises(ConfigError, match="needs app_public_cert"):
        provider(keys, http, alipay_public_key="", app_public_cert=pem(keys.app_cert))
    with pytest.raises(ConfigError, match="app_id"):
        provider(keys, http, app_id="")
    assert "PRIVATE KEY" not in repr(config(keys))


# -- notifications -----------------------------------------------------------------------------------


def test_a_genuine_notification_is_parsed_the_same_every_time(keys, http, alipay_fake):
    alipay = provider(keys, http, alipay_fake.url)
    form = alipay_fake.notification("HH20180608000003", "6.00")
    # the SDK, as our app, agrees the fake's notification is genuine
    unsigned = {key: value for key, value in form.items() if key != "sign"}
    assert library_as_app(keys).verify(dict(unsigned), form["sign"])
    first = alipay.verify_notification(form)
    assert (first.out_trade_no, first.total_amount, first.total_fen, first.trade_status, first.paid, first.app_id,
            first.seller_id) == ("HH20180608000003", "6.00", 600, "TRADE_SUCCESS", True, ALIPAY_APP_ID,
                                 ALIPAY_SELLER_ID)
    first.require("HH20180608000003", 600)
    assert [alipay.verify_notification(dict(form)) for _ in range(9)] == [first] * 9


def test_a_notification_of_an_unpaid_or_closed_trade_is_genuine_but_not_paid(keys, http, alipay_fake):
    alipay = provider(keys, http, alipay_fake.url)
    closed = alipay.verify_notification(
        alipay_fake.notification("HH20180608000004", "6.00", trade_status="TRADE_CLOSED"))
    assert not closed.paid
    finished = alipay.verify_notification(
        alipay_fake.notification("HH20180608000004", "6.00", trade_status="TRADE_FINISHED"))
    assert finished.paid


def test_forged_notifications_are_refused(keys, http, alipay_fake):
    alipay = provider(keys, http, alipay_fake.url)
    form = alipay_fake.notification("HH20180608000005", "6.00")
    stranger = LibAliPay(appid=ALIPAY_APP_ID, app_private_key_string=pem_private(keys.stranger),
                         alipay_public_key_string=pem_public(keys.alipay))
    cases = {
        "raised amount": {**form, "total_amount": "600.00"},
        "added parameter": {**form, "passback_params": "x"},
        "signed by a stranger": alipay_fake.notification("HH20180608000005", "6.00", signer=stranger),
        "signed with the app's own key": alipay_fake.notification("HH20180608000005", "6.00",
                                                                   signer=library_as_app(keys)),
        "RSA (SHA-1) claimed": {**form, "sign_type": "RSA"},
        "no sign_type": {k: v for k, v in form.items() if k != "sign_type"},
        "no sign": {k: v for k, v in form.items() if k != "sign"},
        "sign mangled by a + to space decoding": {**form, "sign": form["sign"].replace("+", " ")} if "+" in form["sign"]
        else {**form, "sign": form["sign"][:-2] + "=="},
    }
    for case, forged in cases.items():
        with pytest.raises(ForgedNotification):
            alipay.verify_notification(forged)
        assert case


def test_stale_and_replayed_notifications_are_refused(keys, http, alipay_fake):
    alipay = provider(keys, http, alipay_fake.url)
    three_days_ago = datetime.fromtimestamp(time.time() - 3 * 86400, BEIJING).strftime("%Y-%m-%d %H:%M:%S")
    with pytest.raises(StaleNotification):
        alipay.verify_notification(alipay_fake.notification("HH20180608000006", "6.00", notify_time=three_days_ago))
    tomorrow = datetime.fromtimestamp(time.time() + 86400, BEIJING).strftime("%Y-%m-%d %H:%M:%S")
    with pytest.raises(StaleNotification):
        alipay.verify_notification(alipay_fake.notification("HH20180608000006", "6.00", notify_time=tomorrow))
    # Alipay retries for about 25 hours: a day-old notification is still good, a captured one replayed later is not
    form = alipay_fake.notification("HH20180608000006", "6.00")
    alipay.verify_notification(form, now=time.time() + 25 * 3600)
    with pytest.raises(StaleNotification):
        alipay.verify_notification(form, now=time.time() + 49 * 3600)
    # a notify_time read as UTC instead of Beijing time would be 8 hours off: it is Beijing time
    assert alipay.verify_notification(form, now=time.time() + 60).notify_time == form["notify_time"]


def test_wrong_merchant_wrong_amount_and_malformed_notifications(keys, http, alipay_fake):
    alipay = provider(keys, http, alipay_fake.url)
    with pytest.raises(WrongMerchant):
        alipay.verify_notification(alipay_fake.notification("HH20180608000007", "6.00", app_id="2016000000000001"))
    with pytest.raises(WrongMerchant):
        alipay.verify_notification(alipay_fake.notification("HH20180608000007", "6.00", seller_id="2088000000000001"))
    # without a configured seller_id the seller is not checked (the app_id still is)
    provider(keys, http, alipay_fake.url, seller_id="").verify_notification(
        alipay_fake.notification("HH20180608000007", "6.00", seller_id="2088000000000001"))
    cheap = alipay.verify_notification(alipay_fake.notification("HH20180608000007", "0.01"))
    with pytest.raises(OrderMismatch) as info:
        cheap.require("HH20180608000007", 600)
    assert info.value.field == "amount"
    with pytest.raises(OrderMismatch) as info:
        cheap.require("HH20180608000008", 1)
    assert info.value.field == "out_trade_no"
    for amount, changes in (("6,00", {}), ("6.00", {"notify_time": "2018/06/08"}), ("6.00", {"out_trade_no": ""}),
                            ("6.00", {"charset": "gbk"})):
        with pytest.raises(MalformedNotification):
            alipay.verify_notification(alipay_fake.notification("HH20180608000007", amount, **changes))
    with pytest.raises(MalformedNotification):
        alipay.verify_notification({**alipay_fake.notification("HH20180608000007", "6.00"), "subject": ["a", "b"]})


# -- gateway calls -----------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_query_trade(keys, http, alipay_fake):
    alipay = provider(keys, http, alipay_fake.url + "/gateway.do")
    with pytest.raises(OrderNotFound) as info:
        await alipay.query_trade("HH20180608000009")
    assert (info.value.code, info.value.verified) == ("ACQ.TRADE_NOT_EXIST", True)
    trade_no = alipay_fake.pay("HH20180608000009", "970.00")
    trade = await alipay.query_trade("HH20180608000009")
    assert (trade.trade_no, trade.trade_status, trade.paid, trade.total_fen) == \
        (trade_no, "TRADE_SUCCESS", True, 97000)
    trade.require("HH20180608000009", 97000)
    sent = alipay_fake.params[-1]
    assert sent["method"] == "alipay.trade.query" and json.loads(sent["biz_content"]) == \
        {"out_trade_no": "HH20180608000009"}
    assert abs(datetime.strptime(sent["timestamp"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=BEIJING).timestamp()
               - time.time()) < 60


@pytest_twisted.ensureDeferred
async def test_the_signed_member_is_found_despite_braces_in_strings_indents_or_escaped_slashes(keys, http,
                                                                                                alipay_fake):
    alipay = provider(keys, http, alipay_fake.url)
    alipay_fake.pay("HH20180608000010", "6.00")
    alipay_fake.mode = "pretty"
    assert (await alipay.query_trade("HH20180608000010")).paid
    alipay_fake.mode = "escaped-slash"
    assert (await alipay.query_trade("HH20180608000010")).paid


@pytest.mark.parametrize("mode, error", [("unsigned", AnswerNotGenuine), ("forged", AnswerNotGenuine),
                                         ("system-error", ProviderUnavailable), ("http500", ProviderUnavailable)])
@pytest_twisted.ensureDeferred
async def test_answers_that_cannot_be_believed(keys, http, alipay_fake, mode, error):
    alipay = provider(keys, http, alipay_fake.url)
    alipay_fake.pay("HH20180608000011", "6.00")
    alipay_fake.mode = mode
    with pytest.raises(error):
        await alipay.query_trade("HH20180608000011")


@pytest_twisted.ensureDeferred
async def test_an_answer_signed_by_a_key_we_do_not_have_is_not_genuine(keys, http, alipay_fake):
    alipay = provider(keys, http, alipay_fake.url, alipay_public_key=pem_public(keys.stranger))
    alipay_fake.pay("HH20180608000012", "6.00")
    with pytest.raises(AnswerNotGenuine):
        await alipay.query_trade("HH20180608000012")


@pytest_twisted.ensureDeferred
async def test_requests_signed_with_a_key_alipay_does_not_know_are_refused(keys, http, alipay_fake):
    alipay = provider(keys, http, alipay_fake.url, app_private_key=pem_private(keys.stranger))
    with pytest.raises(ProviderRejected) as info:
        await alipay.query_trade("HH20180608000013")
    assert (info.value.code, info.value.verified) == ("isv.invalid-signature", True)
    with pytest.raises(ProviderRejected) as info:
        await provider(keys, http, alipay_fake.url, app_id="2016000000000001").query_trade("HH20180608000013")
    assert (info.value.code, info.value.verified) == ("isv.invalid-app-id", False)  # Alipay does not sign these


@pytest_twisted.ensureDeferred
async def test_a_silent_gateway_is_unavailable_after_the_deadline(keys, http, alipay_fake):
    alipay = provider(keys, http, alipay_fake.url, timeout_s=0.3)
    alipay_fake.mode = "hang"
    with pytest.raises(ProviderUnavailable, match="no answer within"):
        await alipay.query_trade("HH20180608000014")
    for _ in range(100):
        if alipay_fake.aborted:
            break
        await task.deferLater(reactor, 0.02, lambda: None)
    assert alipay_fake.aborted


@pytest_twisted.ensureDeferred
async def test_transfer_in_certificate_mode_is_idempotent_per_out_biz_no(keys, http, alipay_cert_fake):
    alipay = cert_provider(keys, http, alipay_cert_fake.url)
    with pytest.raises(OrderNotFound):
        await alipay.query_transfer("W20180608000001")
    done = await alipay.transfer("W20180608000001", "13800138000", "张三", "10.00")
    assert done.succeeded and done.order_id and done.out_biz_no == "W20180608000001"
    biz = json.loads(alipay_cert_fake.params[-1]["biz_content"])
    assert biz == {"out_biz_no": "W20180608000001", "trans_amount": "10.00", "product_code": "TRANS_ACCOUNT_NO_PWD",
                   "biz_scene": "DIRECT_TRANSFER", "order_title": "提现",
                   "payee_info": {"identity": "13800138000", "identity_type": "ALIPAY_LOGON_ID", "name": "张三"}}
    # the same out_biz_no again (after a lost answer, say) is the same transfer, not a second one
    again = await alipay.transfer("W20180608000001", "13800138000", "张三", "10.00")
    assert again.order_id == done.order_id and len(alipay_cert_fake.transfers) == 1
    queried = await alipay.query_transfer("W20180608000001")
    assert (queried.status, queried.order_id) == ("SUCCESS", done.order_id)
    with pytest.raises(ProviderRejected) as info:
        await alipay.transfer("W20180608000002", "nobody@example.com", "李四", "1.00")
    assert (info.value.code, info.value.verified) == ("PAYEE_NOT_EXIST", True)


@pytest_twisted.ensureDeferred
async def test_certificate_mode_refuses_answers_from_another_alipay_certificate(keys, http, alipay_cert_fake):
    alipay = cert_provider(keys, http, alipay_cert_fake.url)
    alipay_cert_fake.mode = "other-cert"
    with pytest.raises(AnswerNotGenuine):
        await alipay.transfer("W20180608000003", "13800138000", "张三", "10.00")
    # and a public-key-mode request (no certificate SNs) is refused by a certificate-mode gateway
    with pytest.raises(ProviderRejected) as info:
        await provider(keys, http, alipay_cert_fake.url).query_transfer("W20180608000003")
    assert info.value.code == "isv.app-cert-sn-not-match"


@pytest_twisted.ensureDeferred
async def test_transfer_arguments_are_checked_before_anything_is_sent(keys, http, alipay_fake):
    alipay = provider(keys, http, alipay_fake.url)
    for args in [("W-1", "a", "n", "1.00"), ("W1", "", "n", "1.00"), ("W1", "a", "", "1.00"), ("W1", "a", "n", "0"),
                 ("W1", "a", "n", "1.005"), ("W1", "a", "n" * 65, "1.00")]:
        with pytest.raises(ValueError):
            await alipay.transfer(*args)
    with pytest.raises(ValueError):
        await alipay.transfer("W1", "a", "n", "1.00", identity_type="BANKCARD_ACCOUNT")
    assert alipay_fake.requests == []


@pytest_twisted.ensureDeferred
async def test_no_private_key_or_full_signature_reaches_the_logs(keys, http, alipay_fake):
    alipay = provider(keys, http, alipay_fake.url)
    with LogCapture() as logs:
        form = alipay_fake.notification("HH20180608000015", "6.00")
        with pytest.raises(NotificationRefused):
            alipay.verify_notification({**form, "total_amount": "600.00"})
        alipay_fake.pay("HH20180608000015", "6.00")
        alipay_fake.mode = "forged"
        with pytest.raises(AnswerNotGenuine):
            await alipay.query_trade("HH20180608000015")
        alipay_fake.mode = None
        with pytest.raises(ProviderRejected):
            await provider(keys, http, alipay_fake.url, app_private_key=pem_private(keys.stranger)) \
                .query_trade("HH20180608000015")
    text = "\n".join(logs.lines)
    assert "refused" in text and "does not verify" in text
    private_body = "".join(pem_private(keys.alipay_app).splitlines()[1:-1])
    for secret in [form["sign"][:24], private_body[:40], private_body[-40:],
                   *(p["sign"][:24] for p in alipay_fake.params)]:
        assert secret not in text
