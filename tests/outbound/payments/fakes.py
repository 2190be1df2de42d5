"""
Fake WeChat Pay, Alipay and Apple verifyReceipt servers: real twisted.web
servers on 127.0.0.1:0 that check what the real services check and answer the
way they do.

The fakes never use heihei's own signing code: WeChat requests are checked with
`cryptography` directly and answers/callbacks signed with `wechatpayv3`'s
helper; Alipay requests are checked and answers/notifications signed with
`python-alipay-sdk`. So a test passing means two independent implementations
agree on the wire format.

Each fake has `mode` (None for normal service) to misbehave on purpose:
    "hang"      never answer
    "http500"   HTTP 500 (Apple: 503) with an HTML body
    "unsigned"  a 2xx answer without its signature             (WeChat, Alipay)
    "forged"    a 2xx answer whose content was changed after signing (WeChat, Alipay)
and a few provider-specific ones, documented on each class.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl

from alipay import AliPay
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from twisted.internet import reactor
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site
from wechatpayv3.utils import rsa_sign

BEIJING = timezone(timedelta(hours=8))
#: what WeChat Pay allows between a request's timestamp and its clock
WECHAT_REQUEST_WINDOW_S = 300


def listen(resource: Resource):
    """(port, base URL) of `resource` served on 127.0.0.1 at an ephemeral port."""
    site = Site(resource)
    site.timeOut = None  # no idle-timeout timers left behind for the leak check
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    return port, f"http://127.0.0.1:{port.getHost().port}"


class _Fake(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.mode: str | None = None
        self.requests: list[tuple[str, str]] = []
        self.hanging: list = []
        self.aborted: list = []

    def _hang(self, request):
        self.hanging.append(request)
        request.notifyFinish().addErrback(lambda _: self.aborted.append(request))
        return NOT_DONE_YET


# -- WeChat Pay API v3 -------------------------------------------------------------------------------

_AUTH = re.compile(r'^WECHATPAY2-SHA256-RSA2048 (.+)$')
_AUTH_ITEM = re.compile(r'(\w+)="([^"]*)"')


class FakeWeChatPay(_Fake):
    """WeChat Pay API v3 for one merchant: app orders and queries.

    Checks the Authorization header as WeChat does (schema, mchid, the merchant
    certificate serial, a 5-minute timestamp window, the RSA-SHA256 signature
    over method, URI, timestamp, nonce and body with the merchant's public key),
    then the request body. Answers are signed with the platform key under
    `platform_serial` (a certificate serial in hex, or a PUB_KEY_ID_...).
    Orders stay NOTPAY until `pay(out_trade_no)`.

    Extra mode: "wrong-serial" signs answers under a serial nobody configured."""

    def __init__(self, *, appid: str, mchid: str, merchant_serial: str, merchant_public_key,
                 platform_private_key, platform_serial: str, apiv3_key: str) -> None:
        super().__init__()
        self.appid, self.mchid = appid, mchid
        self.merchant_serial = merchant_serial
        self.merchant_public_key = merchant_public_key
        self.platform_private_key = platform_private_key
        self.platform_serial = platform_serial
        self.apiv3_key = apiv3_key
        self.orders: dict[str, dict] = {}
        self.authorizations: list[str] = []

    # the HTTP side

    def render(self, request):
        method = request.method.decode()
        uri = request.uri.decode()
        body = request.content.read()
        self.requests.append((method, uri))
        if self.mode == "hang":
            return self._hang(request)
        if self.mode == "http500":
            request.setResponseCode(500)
            return b"<html>500 Internal Server Error</html>"
        refusal = self._check_authorization(request, method, uri, body)
        if refusal:
            return self._answer(request, 401, {"code": "SIGN_ERROR", "message": refusal})
        path, _, query = uri.partition("?")
        if method == "POST" and path == "/v3/pay/transactions/app":
            return self._create(request, body)
        if method == "GET" and path.startswith("/v3/pay/transactions/out-trade-no/"):
            return self._query(request, path.rsplit("/", 1)[1], dict(parse_qsl(query)))
        return self._answer(request, 404, {"code": "NOT_FOUND", "message": "no such API"})

    def _check_authorization(self, request, method: str, uri: str, body: bytes) -> str | None:
        header = (request.getHeader("authorization") or "")
        match = _AUTH.match(header)
        if not match:
            return "Authorization is not WECHATPAY2-SHA256-RSA2048"
        self.authorizations.append(header)
        items = dict(_AUTH_ITEM.findall(match.group(1)))
        if items.get("mchid") != self.mchid:
            return "mchid does not match"
        if items.get("serial_no") != self.merchant_serial:
            return "serial_no is not the merchant certificate"
        timestamp, nonce, signature = items.get("timestamp", ""), items.get("nonce_str", ""), items.get("signature", "")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > WECHAT_REQUEST_WINDOW_S:
            return "timestamp out of window"
        if not nonce or len(nonce) > 32:
            return "bad nonce_str"
        if not request.getHeader("user-agent"):
            return "no User-Agent"
        message = f"{method}\n{uri}\n{timestamp}\n{nonce}\n".encode() + body + b"\n"
        try:
            self.merchant_public_key.verify(base64.b64decode(signature), message, padding.PKCS1v15(),
                                            hashes.SHA256())
        except (InvalidSignature, ValueError):
            return "signature does not verify"
        return None

    def _create(self, request, body: bytes):
        if request.getHeader("content-type") != "application/json":
            return self._answer(request, 400, {"code": "PARAM_ERROR", "message": "Content-Type"})
        try:
            order = json.loads(body)
        except ValueError:
            return self._answer(request, 400, {"code": "PARAM_ERROR", "message": "not JSON"})
        amount = order.get("amount") or {}
        problems = [
            order.get("appid") != self.appid and "appid",
            order.get("mchid") != self.mchid and "mchid",
            not (isinstance(order.get("description"), str) and 0 < len(order["description"]) <= 127) and "description",
            not re.match(r"^[0-9A-Za-z_\-|*]{6,32}$", str(order.get("out_trade_no"))) and "out_trade_no",
            not str(order.get("notify_url", "")).startswith("https://") and "notify_url",
            not (type(amount.get("total")) is int and amount["total"] > 0) and "amount.total",
            amount.get("currency", "CNY") != "CNY" and "amount.currency",
        ]
        problems = [p for p in problems if p]
        if problems:
            return self._answer(request, 400, {"code": "PARAM_ERROR", "message": f"bad {', '.join(problems)}"})
        existing = self.orders.get(order["out_trade_no"])
        if existing is not None:
            if existing["request"] != order:
                return self._answer(request, 400, {"code": "INVALID_REQUEST",
                                                   "message": "参数与首次请求时不一致"})
            return self._answer(request, 200, {"prepay_id": existing["prepay_id"]})
        prepay_id = "wx" + os.urandom(14).hex()
        self.orders[order["out_trade_no"]] = {"request": order, "prepay_id": prepay_id, "state": "NOTPAY",
                                              "transaction_id": ""}
        return self._answer(request, 200, {"prepay_id": prepay_id})

    def _query(self, request, out_trade_no: str, query: dict):
        if query.get("mchid") != self.mchid:
            return self._answer(request, 400, {"code": "PARAM_ERROR", "message": "mchid"})
        if out_trade_no not in self.orders:
            return self._answer(request, 404, {"code": "ORDER_NOT_EXIST", "message": "订单不存在"})
        return self._answer(request, 200, self.transaction(out_trade_no))

    def _answer(self, request, code: int, value: dict):
        body = json.dumps(value, ensure_ascii=False).encode()
        request.setResponseCode(code)
        request.setHeader("content-type", "application/json; charset=utf-8")
        if self.mode == "unsigned" and code == 200:
            return body
        timestamp, nonce = str(int(time.time())), os.urandom(16).hex()
        signature = rsa_sign(self.platform_private_key, f"{timestamp}\n{nonce}\n{body.decode()}\n")
        request.setHeader("Wechatpay-Timestamp", timestamp)
        request.setHeader("Wechatpay-Nonce", nonce)
        request.setHeader("Wechatpay-Signature", signature)
        request.setHeader("Wechatpay-Serial", "DEADBEEF" if self.mode == "wrong-serial" else self.platform_serial)
        request.setHeader("Wechatpay-Signature-Type", "WECHATPAY2-SHA256-RSA2048")
        if self.mode == "forged" and code == 200:
            return body.replace(b"}", b',"x":1}', 1)
        return body

    # the payment side

    def pay(self, out_trade_no: str) -> str:
        order = self.orders[out_trade_no]
        order["state"] = "SUCCESS"
        order["transaction_id"] = "4200" + os.urandom(12).hex()
        return order["transaction_id"]

    def transaction(self, out_trade_no: str, **changes) -> dict:
        order = self.orders[out_trade_no]
        request = order["request"]
        value = {"appid": request["appid"], "mchid": request["mchid"], "out_trade_no": out_trade_no,
                 "trade_type": "APP", "trade_state": order["state"],
                 "trade_state_desc": "支付成功" if order["state"] == "SUCCESS" else "订单未支付",
                 "amount": {"total": request["amount"]["total"], "currency": "CNY",
                            "payer_total": request["amount"]["total"], "payer_currency": "CNY"},
                 "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}}
        if order["state"] == "SUCCESS":
            value.update(transaction_id=order["transaction_id"], bank_type="OTHERS",
                         success_time="2018-06-08T10:34:56+08:00")
        value.update(changes)
        return value

    def notification(self, transaction: dict, *, timestamp: int | None = None, nonce: str | None = None,
                     serial: str | None = None, signing_key=None, apiv3_key: str | None = None,
                     signature_type: str = "WECHATPAY2-SHA256-RSA2048") -> tuple[dict[str, str], bytes]:
        """(headers, body) of the callback WeChat Pay would POST for `transaction`."""
        aes_nonce = os.urandom(6).hex()
        ciphertext = AESGCM((apiv3_key or self.apiv3_key).encode()).encrypt(
            aes_nonce.encode(), json.dumps(transaction, ensure_ascii=False).encode(), b"transaction")
        envelope = {"id": "EV-" + os.urandom(8).hex(), "create_time": "2018-06-08T10:34:56+08:00",
                    "resource_type": "encrypt-resource", "event_type": "TRANSACTION.SUCCESS", "summary": "支付成功",
                    "resource": {"original_type": "transaction", "algorithm": "AEAD_AES_256_GCM",
                                 "ciphertext": base64.b64encode(ciphertext).decode(), "associated_data": "transaction",
                                 "nonce": aes_nonce}}
        body = json.dumps(envelope, ensure_ascii=False).encode()
        return self.sign_callback(body, timestamp=timestamp, nonce=nonce, serial=serial, signing_key=signing_key,
                                  signature_type=signature_type), body

    def sign_callback(self, body: bytes, *, timestamp: int | None = None, nonce: str | None = None,
                      serial: str | None = None, signing_key=None,
                      signature_type: str = "WECHATPAY2-SHA256-RSA2048") -> dict[str, str]:
        timestamp = str(int(time.time()) if timestamp is None else timestamp)
        nonce = nonce or os.urandom(16).hex()
        signature = rsa_sign(signing_key or self.platform_private_key, f"{timestamp}\n{nonce}\n{body.decode()}\n")
        return {"Wechatpay-Timestamp": timestamp, "Wechatpay-Nonce": nonce, "Wechatpay-Signature": signature,
                "Wechatpay-Serial": serial or self.platform_serial, "Wechatpay-Signature-Type": signature_type,
                "Content-Type": "application/json"}


# -- Alipay ------------------------------------------------------------------------------------------


def beijing_now(offset_s: float = 0) -> str:
    return datetime.fromtimestamp(time.time() + offset_s, BEIJING).strftime("%Y-%m-%d %H:%M:%S")


class FakeAlipay(_Fake):
    """Alipay's gateway for one app: trade query, transfer and transfer query.

    Checks, as the gateway does: the app id, RSA2, utf-8, version 1.0, a Beijing-time
    timestamp within 10 minutes, in certificate mode the app_cert_sn and
    alipay_root_cert_sn, and the request signature with the app's public key.
    Answers `{"<method>_response": {...}, "sign": ...}` signed over the member's
    text with Alipay's key (and `alipay_cert_sn` in certificate mode).

    Extra modes: "pretty" writes answers indented, with a tricky string
    ('}{"\\\\'), to catch brace-counting verifiers; "escaped-slash" sends "\\/" where
    it signed "/"; "system-error" answers code 20000; "other-cert" names another
    alipay_cert_sn."""

    def __init__(self, *, app_id: str, app_public_key_pem: str, alipay_private_key_pem: str,
                 alipay_public_key_pem: str, seller_id: str, cert_sns: dict[str, str] | None = None) -> None:
        super().__init__()
        self.app_id = app_id
        self.seller_id = seller_id
        self.cert_sns = cert_sns  # {"app_cert_sn", "alipay_root_cert_sn", "alipay_cert_sn"} in certificate mode
        # python-alipay-sdk seen from Alipay's side: it signs with Alipay's key and checks the app's
        self.signer = AliPay(appid=app_id, app_private_key_string=alipay_private_key_pem,
                             alipay_public_key_string=app_public_key_pem, sign_type="RSA2")
        self.alipay_public_key_pem = alipay_public_key_pem
        self.trades: dict[str, dict] = {}
        self.transfers: dict[str, dict] = {}
        self.params: list[dict[str, str]] = []

    def render_POST(self, request):
        self.requests.append(("POST", request.uri.decode()))
        if self.mode == "hang":
            return self._hang(request)
        if self.mode == "http500":
            request.setResponseCode(500)
            return b"<html>500</html>"
        if any(len(v) != 1 for v in request.args.values()):
            return self._unsigned_error(request, "40002", "isv.invalid-parameter")
        params = {k.decode(): v[0].decode() for k, v in request.args.items()}
        self.params.append(params)
        if params.get("app_id") != self.app_id:
            return self._unsigned_error(request, "40002", "isv.invalid-app-id")
        method = params.get("method", "")
        node_key = method.replace(".", "_") + "_response"
        problem = self._check(params)
        if problem:
            return self._answer(request, node_key, {"code": "40002", "msg": "Invalid Arguments",
                                                    "sub_code": problem, "sub_msg": problem})
        if self.mode == "system-error":
            return self._answer(request, node_key, {"code": "20000", "msg": "Service Currently Unavailable",
                                                    "sub_code": "isp.unknow-error", "sub_msg": "系统繁忙"})
        biz = json.loads(params["biz_content"])
        if method == "alipay.trade.query":
            trade = self.trades.get(biz.get("out_trade_no"))
            if trade is None:
                return self._answer(request, node_key, {"code": "40004", "msg": "Business Failed",
                                                        "sub_code": "ACQ.TRADE_NOT_EXIST", "sub_msg": "交易不存在"})
            return self._answer(request, node_key, {"code": "10000", "msg": "Success", **trade})
        if method == "alipay.fund.trans.uni.transfer":
            return self._answer(request, node_key, self._transfer(biz))
        if method == "alipay.fund.trans.common.query":
            transfer = self.transfers.get(biz.get("out_biz_no"))
            if transfer is None:
                return self._answer(request, node_key, {"code": "40004", "msg": "Business Failed",
                                                        "sub_code": "ORDER_NOT_EXIST", "sub_msg": "转账订单不存在"})
            return self._answer(request, node_key, {"code": "10000", "msg": "Success", **transfer,
                                                    "pay_date": transfer["trans_date"]})
        return self._answer(request, node_key, {"code": "40004", "msg": "Business Failed",
                                                "sub_code": "isv.invalid-method", "sub_msg": method})

    def _check(self, params: dict[str, str]) -> str | None:
        if params.get("sign_type") != "RSA2" or params.get("charset") != "utf-8" or params.get("version") != "1.0":
            return "isv.invalid-parameter"
        try:
            sent = datetime.strptime(params.get("timestamp", ""), "%Y-%m-%d %H:%M:%S").replace(tzinfo=BEIJING)
        except ValueError:
            return "isv.invalid-timestamp"
        if abs(sent.timestamp() - time.time()) > 600:
            return "isv.invalid-timestamp"
        if self.cert_sns is not None:
            if params.get("app_cert_sn") != self.cert_sns["app_cert_sn"]:
                return "isv.app-cert-sn-not-match"
            if params.get("alipay_root_cert_sn") != self.cert_sns["alipay_root_cert_sn"]:
                return "isv.alipay-root-cert-sn-not-match"
        content = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "sign" and v)
        try:
            genuine = self.signer._verify(content, params.get("sign", ""))
        except ValueError:  # binascii.Error: not base64
            genuine = False
        if not genuine:
            return "isv.invalid-signature"
        return None

    def _transfer(self, biz: dict) -> dict:
        payee = biz.get("payee_info") or {}
        if biz.get("product_code") != "TRANS_ACCOUNT_NO_PWD" or biz.get("biz_scene") != "DIRECT_TRANSFER" \
                or payee.get("identity_type") != "ALIPAY_LOGON_ID" or not payee.get("name"):
            return {"code": "40004", "msg": "Business Failed", "sub_code": "INVALID_PARAMETER", "sub_msg": "参数有误"}
        if payee.get("identity") == "nobody@example.com":
            return {"code": "40004", "msg": "Business Failed", "sub_code": "PAYEE_NOT_EXIST",
                    "sub_msg": "收款账号不存在"}
        existing = self.transfers.get(biz["out_biz_no"])
        if existing is None:
            existing = self.transfers[biz["out_biz_no"]] = {
                "out_biz_no": biz["out_biz_no"], "order_id": "2018" + os.urandom(8).hex(),
                "pay_fund_order_id": "2018" + os.urandom(8).hex(), "status": "SUCCESS",
                "trans_date": beijing_now(), "trans_amount": biz["trans_amount"], "payee": payee}
        node = {k: v for k, v in existing.items() if k not in ("payee", "trans_amount")}
        return {"code": "10000", "msg": "Success", **node}

    def _answer(self, request, node_key: str, node: dict):
        request.setHeader("content-type", "text/html;charset=utf-8")  # as Alipay's gateway does
        if self.mode == "pretty":
            node = {**node, "remark": 'a "}{" and \\ inside'}
            text = json.dumps(node, ensure_ascii=False, indent=2)
        else:
            text = json.dumps(node, ensure_ascii=False, separators=(",", ":"))
        if self.mode == "escaped-slash":
            text = json.dumps({**node, "remark": "6/8"}, ensure_ascii=False, separators=(",", ":"))
        sign = self.signer._sign(text)
        if self.mode == "escaped-slash":
            text = text.replace("/", "\\/")  # signed before escaping, as some Alipay answers are
        if self.mode == "forged" and node.get("code") == "10000":
            text = text.replace('"10000"', '"10000","x":1', 1)
        parts = [f'"{node_key}":{text}']
        if not (self.mode == "unsigned" and node.get("code") == "10000"):
            parts.append(f'"sign":"{sign}"')
        if self.cert_sns is not None:
            sn = "0" * 32 if self.mode == "other-cert" else self.cert_sns["alipay_cert_sn"]
            parts.append(f'"alipay_cert_sn":"{sn}"')
        return ("{" + ",".join(parts) + "}").encode()

    def _unsigned_error(self, request, code: str, sub_code: str):
        request.setHeader("content-type", "text/html;charset=utf-8")
        return json.dumps({"error_response": {"code": code, "msg": "Invalid Arguments", "sub_code": sub_code,
                                              "sub_msg": sub_code}}).encode()

    # the payment side

    def pay(self, out_trade_no: str, total_amount: str, *, status: str = "TRADE_SUCCESS") -> str:
        trade_no = "2018" + os.urandom(10).hex()
        self.trades[out_trade_no] = {"trade_no": trade_no, "out_trade_no": out_trade_no,
                                     "buyer_logon_id": "159****5620", "trade_status": status,
                                     "total_amount": total_amount, "receipt_amount": total_amount,
                                     "send_pay_date": beijing_now()}
        return trade_no

    def notification(self, out_trade_no: str, total_amount: str, /, *, signer: AliPay | None = None,
                     **changes: str) -> dict[str, str]:
        """The form Alipay would POST to notify_url, signed by python-alipay-sdk (Alipay's key
        unless `signer` says otherwise). `changes` override fields before signing."""
        form = {"notify_time": beijing_now(), "notify_type": "trade_status_sync",
                "notify_id": "ac05099524730693a8b330c5ecf72da9786", "app_id": self.app_id, "charset": "utf-8",
                "version": "1.0", "trade_no": "2018" + out_trade_no.rjust(20, "0")[-20:],
                "out_trade_no": out_trade_no, "buyer_id": "2088102122524333", "seller_id": self.seller_id,
                "trade_status": "TRADE_SUCCESS", "total_amount": total_amount, "receipt_amount": total_amount,
                "buyer_pay_amount": total_amount, "subject": "60 金币", "gmt_create": beijing_now(-30),
                "gmt_payment": beijing_now(-5),
                "fund_bill_list": json.dumps([{"amount": total_amount, "fundChannel": "ALIPAYACCOUNT"}])}
        form.update(changes)
        # sign_type is not covered by a notification's signature: sign without it, then add it
        signed = dict(parse_qsl((signer or self.signer).sign_data(dict(form)), keep_blank_values=True))
        signed["sign_type"] = "RSA2"
        return signed


# -- Apple verifyReceipt -----------------------------------------------------------------------------


class FakeAppleVerifyReceipt(_Fake):
    """Apple's verifyReceipt, production at /verifyReceipt and sandbox at /sandbox/verifyReceipt.

    `receipts` maps receipt-data to (environment, receipt object); a sandbox
    receipt sent to production is 21007, a production one sent to the sandbox
    21008, an unknown one 21002, a wrong shared secret 21004.

    Extra mode: "retryable" answers 21100 with is-retryable."""

    def __init__(self, *, shared_secret: str) -> None:
        super().__init__()
        self.shared_secret = shared_secret
        self.receipts: dict[str, tuple[str, dict]] = {}

    def render_POST(self, request):
        path = request.path.decode()
        self.requests.append(("POST", path))
        if self.mode == "hang":
            return self._hang(request)
        if self.mode == "http500":
            request.setResponseCode(503)
            return b"<html>503 Service Unavailable</html>"
        request.setHeader("content-type", "application/json")
        environment = "Sandbox" if path == "/sandbox/verifyReceipt" else "Production"
        if self.mode == "retryable":
            return self._json({"status": 21100, "is-retryable": True, "environment": environment})
        try:
            asked = json.loads(request.content.read())
        except ValueError:
            return self._json({"status": 21000})
        if asked.get("password") != self.shared_secret:
            return self._json({"status": 21004, "environment": environment})
        known = self.receipts.get(asked.get("receipt-data"))
        if known is None:
            return self._json({"status": 21002})
        if known[0] != environment:
            return self._json({"status": 21007 if known[0] == "Sandbox" else 21008})
        return self._json({"status": 0, "environment": environment, "receipt": known[1]})

    @staticmethod
    def _json(value: dict) -> bytes:
        return json.dumps(value).encode()

    def add(self, environment: str, bundle_id: str, purchases: list[tuple[str, str]], *,
            ios6: bool = False) -> str:
        """A receipt of `purchases` [(product_id, transaction_id)]; returns its receipt-data."""
        receipt_data = base64.b64encode(os.urandom(48)).decode()
        entries = [{"quantity": "1", "product_id": product, "transaction_id": tx, "original_transaction_id": tx,
                    "purchase_date_ms": "1528425296000", "is_trial_period": "false"} for product, tx in purchases]
        if ios6:
            receipt = {"bid": bundle_id, "bvrs": "1.0", **entries[0]}
        else:
            receipt = {"receipt_type": "ProductionSandbox" if environment == "Sandbox" else "Production",
                       "bundle_id": bundle_id, "application_version": "1", "in_app": entries}
        self.receipts[receipt_data] = (environment, receipt)
        return receipt_data


def pem_public(key) -> str:
    """The PEM public key of a key pair or public key."""
    key = key.public_key() if hasattr(key, "public_key") else key
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def pem_private(key) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()
