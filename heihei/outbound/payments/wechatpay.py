"""
WeChat Pay API v3 for in-app payments (APP 支付), direct merchant mode.

Wire format (base URL `api_url`, https://api.mch.weixin.qq.com in production):

    POST /v3/pay/transactions/app                      create_app_order
      {"appid","mchid","description","out_trade_no","notify_url",
       "amount":{"total":<fen>,"currency":"CNY"}}
      -> 200 {"prepay_id": "wx..."}
    GET  /v3/pay/transactions/out-trade-no/{no}?mchid=  query_order
      -> 200 {"appid","mchid","out_trade_no","transaction_id","trade_state",
              "amount":{"total","currency",...},...}
      -> 404 {"code":"ORDER_NOT_EXIST","message":...}
    errors: 4xx/5xx {"code": "...", "message": "..."}

Every request carries
`Authorization: WECHATPAY2-SHA256-RSA2048 mchid="..",nonce_str="..",signature="..",timestamp="..",serial_no=".."`
where the signature is RSA-SHA256 with the merchant API private key over
"METHOD\\nURL\\nTIMESTAMP\\nNONCE\\nBODY\\n" (URL = path and query, BODY = the
exact bytes sent, empty for GET). Every 2xx answer is signed back by WeChat Pay
(`Wechatpay-Timestamp/-Nonce/-Signature/-Serial` headers, RSA-SHA256 over
"TIMESTAMP\\nNONCE\\nBODY\\n") with its platform certificate or, for merchants
set up since 2024, the "WeChat Pay public key" whose id (PUB_KEY_ID_...) is the
serial; an answer that does not verify is `AnswerNotGenuine`, never used.

The app then gets the pay parameters the WeChat SDK's `PayReq` takes:
{appid, partnerid (= mchid), prepayid, package "Sign=WXPay", noncestr,
timestamp, sign}, `sign` being RSA-SHA256 over "APPID\\nTIMESTAMP\\nNONCE\\nPREPAYID\\n".

Payment notifications (POSTed by WeChat Pay to the order's notify_url) are
signed like answers and carry the transaction AES-256-GCM-encrypted with the
API v3 key: `verify_notification` checks the signature, the serial, the
timestamp window, decrypts, and checks the transaction is for our mchid/appid.

Why not the `wechatpayv3` package: it is synchronous (requests), so it would
block the reactor, and it reads whole answers into memory. We use it in the
tests instead, as an independent signer/verifier of the same wire format.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import quote, urlencode

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from treq.client import HTTPClient
from twisted.logger import Logger

from heihei.jsonsafe import BadJSON, decode_json_object, encode_json
from heihei.outbound.payments import keys
from heihei.outbound.payments.errors import (
    AnswerNotGenuine, ConfigError, ForgedNotification, MalformedNotification, NotificationRefused, OrderMismatch,
    OrderNotFound, ProviderRejected, ProviderUnavailable, StaleNotification, UndecryptableNotification,
    UnknownSerial, WrongMerchant)
from heihei.outbound.payments.transport import Answer, exchange

WECHATPAY_API_URL = "https://api.mch.weixin.qq.com"
SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"
#: how far a notification's Wechatpay-Timestamp may be from our clock (WeChat's own advice: 5 minutes)
NOTIFICATION_WINDOW_S = 300.0
TIMEOUT_S = 10.0
#: WeChat's answers and notifications are a few KB
MAX_ANSWER_BYTES = 64 * 1024
MAX_NOTIFICATION_BYTES = 64 * 1024
#: WeChat: 6-32 characters of digits, letters, _-|*
_OUT_TRADE_NO = re.compile(r"^[0-9A-Za-z_\-|*]{6,32}$")
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
_SERIAL = re.compile(r"^[0-9A-Fa-f]{1,64}$")
#: the largest single WeChat Pay order is far below this; it only catches unit mistakes (yuan given as fen x 100)
MAX_AMOUNT_FEN = 100_000_000


@dataclass(frozen=True)
class WeChatPayConfig:
    """What a merchant gets from pay.weixin.qq.com (see docs/providers-payments.md).

    Key and certificate settings are PEM text, bare base64, or file paths.
    At least one of `platform_certificates` / `platform_public_key` is needed:
    without it no answer or notification can be believed."""

    appid: str
    mchid: str
    merchant_serial_no: str
    merchant_private_key: str = field(repr=False)
    apiv3_key: str = field(repr=False)
    platform_certificates: tuple[str, ...] = ()
    platform_public_key: str = ""
    platform_public_key_id: str = ""
    api_url: str = WECHATPAY_API_URL
    timeout_s: float = TIMEOUT_S
    notification_window_s: float = NOTIFICATION_WINDOW_S


@dataclass(frozen=True)
class WeChatTransaction:
    """A transaction as WeChat Pay reports it (query answer or decrypted notification)."""

    appid: str
    mchid: str
    out_trade_no: str
    transaction_id: str  # "" until paid
    trade_state: str  # SUCCESS, NOTPAY, CLOSED, REFUND, REVOKED, USERPAYING, PAYERROR
    trade_state_desc: str
    amount_total: int | None  # fen; WeChat may leave it out for unpaid orders
    currency: str
    success_time: str  # RFC 3339, "" until paid

    @property
    def paid(self) -> bool:
        return self.trade_state == "SUCCESS"

    def require(self, out_trade_no: str, amount_fen: int, currency: str = "CNY") -> None:
        """OrderMismatch unless this is about `out_trade_no` for exactly `amount_fen`."""
        if self.out_trade_no != out_trade_no:
            raise OrderMismatch(f"transaction is for order {self.out_trade_no!r}, not {out_trade_no!r}",
                                field="out_trade_no")
        if self.amount_total != amount_fen:
            raise OrderMismatch(f"order {out_trade_no}: paid {self.amount_total} fen, expected {amount_fen}",
                                field="amount")
        if self.currency != currency:
            raise OrderMismatch(f"order {out_trade_no}: currency {self.currency!r}, expected {currency!r}",
                                field="currency")


@dataclass(frozen=True)
class WeChatNotification:
    notification_id: str
    event_type: str  # TRANSACTION.SUCCESS for payments
    create_time: str
    transaction: WeChatTransaction


@dataclass(frozen=True)
class WeChatAppOrder:
    out_trade_no: str
    prepay_id: str
    #: what create-order answers as `data` (all strings, as the client's PayReq reads them)
    pay_params: dict[str, str]


class _Bad(Exception):
    """A transaction field is missing or of the wrong shape (internal)."""


class _Foreign(Exception):
    """A transaction of another merchant or app (internal)."""


class WeChatPay:
    """The WeChat Pay API v3 client for one merchant and one app.

    `clock` gives wall time for timestamps and runs the deadlines (the reactor in
    production). Methods raise the errors of `heihei.outbound.payments.errors`;
    invalid arguments (a caller's bug) raise ValueError before anything is sent."""

    _log = Logger()

    def __init__(self, config: WeChatPayConfig, http: HTTPClient, *, clock) -> None:
        self.config = config
        self.http = http
        self.clock = clock
        self.api_url = config.api_url.rstrip("/")
        for name in ("appid", "mchid", "merchant_serial_no"):
            if not getattr(config, name):
                raise ConfigError(f"wechatpay {name} is not set")
        self._private_key = keys.load_private_key(config.merchant_private_key, what="wechatpay merchant_private_key")
        apiv3_key = (config.apiv3_key or "").encode("utf-8")
        if len(apiv3_key) != 32:
            raise ConfigError("wechatpay apiv3_key must be the 32-character API v3 key")
        self._aead = AESGCM(apiv3_key)
        # serial -> key: certificates by serial number (compared as integers, so leading zeros or
        # case cannot matter), the public key by its id (compared as text)
        self._by_serial: dict[int, RSAPublicKey] = {}
        for i, setting in enumerate(config.platform_certificates):
            cert = keys.load_certificate(setting, what=f"wechatpay platform_certificates[{i}]")
            public = keys.load_public_key(setting, what=f"wechatpay platform_certificates[{i}]")
            self._by_serial[cert.serial_number] = public
        self._public_key_id = config.platform_public_key_id
        self._public_key: RSAPublicKey | None = None
        if config.platform_public_key or config.platform_public_key_id:
            if not (config.platform_public_key and config.platform_public_key_id):
                raise ConfigError("wechatpay platform_public_key and platform_public_key_id go together")
            self._public_key = keys.load_public_key(config.platform_public_key, what="wechatpay platform_public_key")
        if not self._by_serial and self._public_key is None:
            raise ConfigError("wechatpay needs platform_certificates or platform_public_key "
                              "to check WeChat's signatures")

    # -- orders ---------------------------------------------------------------------------------

    async def create_app_order(self, out_trade_no: str, amount_fen: int, description: str,
                               notify_url: str) -> WeChatAppOrder:
        """A prepay order for the app, and the parameters the app pays with.

        Calling it again with the same arguments is safe (WeChat answers the same
        prepay_id while it is valid, about 2 hours); with the same out_trade_no and
        other arguments WeChat refuses (ProviderRejected)."""
        _check_out_trade_no(out_trade_no)
        if isinstance(amount_fen, bool) or not isinstance(amount_fen, int) or not 0 < amount_fen <= MAX_AMOUNT_FEN:
            raise ValueError(f"amount_fen must be an int in 1..{MAX_AMOUNT_FEN}")
        if not isinstance(description, str) or not description or len(description) > 127:
            raise ValueError("description must be 1-127 characters")
        if not isinstance(notify_url, str) or not notify_url.startswith("https://") or len(notify_url) > 255 \
                or "?" in notify_url:
            raise ValueError("notify_url must be an https URL without a query, at most 255 characters")
        payload = {"appid": self.config.appid, "mchid": self.config.mchid, "description": description,
                   "out_trade_no": out_trade_no, "notify_url": notify_url,
                   "amount": {"total": amount_fen, "currency": "CNY"}}
        answer = await self._call("POST", "/v3/pay/transactions/app", payload, what="create_app_order")
        prepay_id = answer.get("prepay_id")
        if not isinstance(prepay_id, str) or not 0 < len(prepay_id) <= 64:
            raise ProviderUnavailable("wechatpay create_app_order: answer without a prepay_id")
        self._log.info("WeChat Pay prepay order {out_trade_no} for {amount} fen", out_trade_no=out_trade_no,
                       amount=amount_fen)
        return WeChatAppOrder(out_trade_no, prepay_id, self.app_pay_params(prepay_id))

    def app_pay_params(self, prepay_id: str) -> dict[str, str]:
        """The app's pay parameters for a prepay_id (fresh timestamp and nonce at each call)."""
        timestamp = str(int(self.clock.seconds()))
        noncestr = keys.nonce()
        message = f"{self.config.appid}\n{timestamp}\n{noncestr}\n{prepay_id}\n".encode("utf-8")
        return {"appid": self.config.appid, "partnerid": self.config.mchid, "prepayid": prepay_id,
                "package": "Sign=WXPay", "noncestr": noncestr, "timestamp": timestamp,
                "sign": keys.sign(self._private_key, message)}

    async def query_order(self, out_trade_no: str) -> WeChatTransaction:
        """The order's transaction as WeChat Pay has it now (the fallback when no notification came).

        OrderNotFound when WeChat has no such order (never created, or created elsewhere)."""
        _check_out_trade_no(out_trade_no)
        path = (f"/v3/pay/transactions/out-trade-no/{quote(out_trade_no, safe='')}?"
                + urlencode({"mchid": self.config.mchid}))
        answer = await self._call("GET", path, None, what="query_order")
        try:
            transaction = self._transaction(answer)
        except _Bad as e:
            raise ProviderUnavailable(f"wechatpay query_order: {e}") from None
        except _Foreign as e:
            raise OrderMismatch(f"wechatpay query_order: {e}", field="merchant") from None
        if transaction.out_trade_no != out_trade_no:
            raise OrderMismatch(f"query_order {out_trade_no}: answer is about {transaction.out_trade_no!r}",
                                field="out_trade_no")
        return transaction

    # -- notifications --------------------------------------------------------------------------

    def verify_notification(self, headers, body: bytes, *, now: float | None = None) -> WeChatNotification:
        """The transaction a payment notification reports, or a NotificationRefused subclass.

        `headers` is the request's twisted `Headers` or a mapping (names compared without
        case); `body` the exact bytes received. The same genuine notification gives the
        same result every time (within the window): acting on it once is the ledger's job."""
        try:
            return self._verify_notification(headers, body, self.clock.seconds() if now is None else now)
        except NotificationRefused as e:
            self._log.warn("WeChat Pay notification refused ({kind}): {reason}", kind=type(e).__name__,
                           reason=e.reason)
            raise

    def _verify_notification(self, headers, body: bytes, now: float) -> WeChatNotification:
        if not isinstance(body, bytes) or len(body) > MAX_NOTIFICATION_BYTES:
            raise MalformedNotification("body missing or too large")
        timestamp, nonce, signature, serial = (_header(headers, f"Wechatpay-{n}")
                                               for n in ("Timestamp", "Nonce", "Signature", "Serial"))
        if not (timestamp and nonce and signature and serial):
            raise ForgedNotification("Wechatpay-Timestamp, -Nonce, -Signature or -Serial missing or repeated")
        signature_type = _header(headers, "Wechatpay-Signature-Type")
        if signature_type not in (None, SIGNATURE_TYPE):
            raise ForgedNotification(f"unsupported Wechatpay-Signature-Type {signature_type[:40]!r}")
        public_key = self._platform_key(serial)
        if public_key is None:
            raise UnknownSerial(f"Wechatpay-Serial {serial[:80]!r} is not a configured platform key")
        if not self._genuine(public_key, timestamp, nonce, signature, body):
            raise ForgedNotification("Wechatpay-Signature does not verify")
        if abs(now - int(timestamp)) > self.config.notification_window_s:
            raise StaleNotification(f"signed at {timestamp}, {int(now - int(timestamp))} s from now")
        try:
            envelope = decode_json_object(body, max_bytes=MAX_NOTIFICATION_BYTES)
        except BadJSON as e:
            raise MalformedNotification(f"body: {e.reason}") from None
        resource = envelope.get("resource")
        if envelope.get("resource_type") != "encrypt-resource" or not isinstance(resource, dict):
            raise MalformedNotification("no encrypt-resource")
        if resource.get("original_type", "transaction") != "transaction":
            raise MalformedNotification(f"resource is a {str(resource.get('original_type'))[:40]!r}, not a transaction")
        plaintext = self._decrypt(resource)
        try:
            transaction = self._transaction(decode_json_object(plaintext, max_bytes=MAX_NOTIFICATION_BYTES))
        except BadJSON as e:
            raise MalformedNotification(f"decrypted resource: {e.reason}") from None
        except _Bad as e:
            raise MalformedNotification(str(e)) from None
        except _Foreign as e:
            raise WrongMerchant(str(e)) from None
        return WeChatNotification(_text(envelope.get("id")), _text(envelope.get("event_type")),
                                  _text(envelope.get("create_time")), transaction)

    def _decrypt(self, resource: dict[str, Any]) -> bytes:
        if resource.get("algorithm") != "AEAD_AES_256_GCM":
            raise UndecryptableNotification(f"algorithm {str(resource.get('algorithm'))[:40]!r}")
        nonce, ciphertext = resource.get("nonce"), resource.get("ciphertext")
        associated = resource.get("associated_data") or ""
        if not (isinstance(nonce, str) and isinstance(ciphertext, str) and isinstance(associated, str)):
            raise UndecryptableNotification("nonce, ciphertext or associated_data missing")
        try:
            return self._aead.decrypt(nonce.encode("utf-8"), base64.b64decode(ciphertext, validate=True),
                                      associated.encode("utf-8"))
        except (InvalidTag, ValueError, binascii.Error):
            raise UndecryptableNotification("does not decrypt with our API v3 key") from None

    # -- signatures -----------------------------------------------------------------------------

    def _platform_key(self, serial: str) -> RSAPublicKey | None:
        if self._public_key is not None and serial == self._public_key_id:
            return self._public_key
        if _SERIAL.match(serial):
            return self._by_serial.get(int(serial, 16))
        return None

    @staticmethod
    def _genuine(public_key: RSAPublicKey, timestamp: str, nonce: str, signature: str, body: bytes) -> bool:
        # a newline inside the timestamp or nonce would let bytes move between the signed fields
        if not _TIMESTAMP.match(timestamp) or not 0 < len(nonce) <= 64 or "\n" in nonce:
            return False
        message = f"{timestamp}\n{nonce}\n".encode("utf-8") + body + b"\n"
        return keys.verify(public_key, message, signature)

    def _answer_verified(self, answer: Answer) -> bool:
        timestamp, nonce, signature, serial = (answer.header(f"Wechatpay-{n}")
                                               for n in ("Timestamp", "Nonce", "Signature", "Serial"))
        if not (timestamp and nonce and signature and serial):
            return False
        public_key = self._platform_key(serial)
        return public_key is not None and self._genuine(public_key, timestamp, nonce, signature, answer.body)

    def authorization(self, method: str, url: str, body: bytes, *, timestamp: int, nonce: str) -> str:
        """The Authorization header for a request (`url` is the path with its query)."""
        message = f"{method}\n{url}\n{timestamp}\n{nonce}\n".encode("utf-8") + body + b"\n"
        signature = keys.sign(self._private_key, message)
        return (f'{SIGNATURE_TYPE} mchid="{self.config.mchid}",nonce_str="{nonce}",signature="{signature}",'
                f'timestamp="{timestamp}",serial_no="{self.config.merchant_serial_no}"')

    # -- the exchange ---------------------------------------------------------------------------

    async def _call(self, method: str, path: str, payload: dict | None, *, what: str) -> dict[str, Any]:
        body = encode_json(payload) if payload is not None else b""
        headers = {"Accept": "application/json",
                   "Authorization": self.authorization(method, path, body, timestamp=int(self.clock.seconds()),
                                                       nonce=keys.nonce())}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        if self._public_key is not None:
            # merchants on the WeChat Pay public key name it, so that WeChat signs answers with it
            headers["Wechatpay-Serial"] = self._public_key_id
        answer = await exchange(self.http, method, self.api_url + path, headers=headers,
                                body=body if payload is not None else None, clock=self.clock,
                                timeout_s=self.config.timeout_s, max_bytes=MAX_ANSWER_BYTES, what=f"wechatpay {what}")
        if 200 <= answer.code < 300:
            if not self._answer_verified(answer):
                self._log.error("WeChat Pay {what}: the answer's signature does not verify", what=what)
                raise AnswerNotGenuine(f"wechatpay {what}: answer signature does not verify")
            try:
                return decode_json_object(answer.body, max_bytes=MAX_ANSWER_BYTES)
            except BadJSON as e:
                raise ProviderUnavailable(f"wechatpay {what}: {e.reason}") from None
        if answer.code >= 500 or answer.code == 429:
            raise ProviderUnavailable(f"wechatpay {what}: HTTP {answer.code}")
        try:
            error = decode_json_object(answer.body, max_bytes=MAX_ANSWER_BYTES)
        except BadJSON:
            error = {}
        code, message = _text(error.get("code"), 64), _text(error.get("message"), 200)
        verified = self._answer_verified(answer)
        reason = f"wechatpay {what}: HTTP {answer.code} {code}: {message}"
        if answer.code == 404 and code in ("ORDER_NOT_EXIST", "RESOURCE_NOT_EXISTS", "NOT_FOUND", ""):
            raise OrderNotFound(reason, code=code, message=message, verified=verified)
        self._log.warn("WeChat Pay {what} refused: HTTP {status} {code}: {message}", what=what, status=answer.code,
                       code=code, message=message)
        raise ProviderRejected(reason, code=code, message=message, verified=verified)

    def _transaction(self, data: dict[str, Any]) -> WeChatTransaction:
        appid, mchid = data.get("appid"), data.get("mchid")
        out_trade_no, trade_state = data.get("out_trade_no"), data.get("trade_state")
        if not all(isinstance(v, str) and v for v in (appid, mchid, out_trade_no, trade_state)):
            raise _Bad("transaction without appid, mchid, out_trade_no or trade_state")
        if mchid != self.config.mchid:
            raise _Foreign(f"transaction of mchid {mchid[:40]!r}, not ours")
        if appid != self.config.appid:
            raise _Foreign(f"transaction of appid {appid[:40]!r}, not ours")
        amount = data.get("amount") or {}
        if not isinstance(amount, dict):
            raise _Bad("amount is not an object")
        total = amount.get("total")
        if total is not None and (isinstance(total, bool) or not isinstance(total, int) or total < 0):
            raise _Bad("amount.total is not a number of fen")
        transaction_id = data.get("transaction_id", "")
        if trade_state == "SUCCESS" and (total is None or not isinstance(transaction_id, str) or not transaction_id):
            raise _Bad("a SUCCESS transaction without amount.total or transaction_id")
        return WeChatTransaction(appid=appid, mchid=mchid, out_trade_no=out_trade_no,
                                 transaction_id=_text(transaction_id), trade_state=trade_state,
                                 trade_state_desc=_text(data.get("trade_state_desc"), 256), amount_total=total,
                                 currency=_text(amount.get("currency"), 16) or "CNY",
                                 success_time=_text(data.get("success_time"), 64))


def _check_out_trade_no(out_trade_no: object) -> None:
    if not isinstance(out_trade_no, str) or not _OUT_TRADE_NO.match(out_trade_no):
        raise ValueError("out_trade_no must be 6-32 characters of 0-9 A-Z a-z _ - | *")


def _header(headers, name: str) -> str | None:
    """The header's only value; None when absent or given more than once."""
    if hasattr(headers, "getRawHeaders"):
        values = headers.getRawHeaders(name) or []
    elif isinstance(headers, Mapping):
        lowered = name.lower()
        values = [v for k, v in headers.items() if isinstance(k, str) and k.lower() == lowered]
    else:
        return None
    if len(values) != 1:
        return None
    value = values[0]
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return value.strip() if isinstance(value, str) else None


def _text(value: object, limit: int = 128) -> str:
    return value[:limit] if isinstance(value, str) else ""
