"""
Alipay open platform (RSA2) for app payments, trade queries and withdrawals.

Wire format. Every call is a form POST to the gateway (`gateway_url`,
https://openapi.alipay.com/gateway.do in production) of the common parameters

    app_id, method, format=JSON, charset=utf-8, sign_type=RSA2,
    timestamp="yyyy-MM-dd HH:mm:ss" (Beijing time), version=1.0,
    [app_cert_sn, alipay_root_cert_sn]   (public-key-certificate mode)
    biz_content=<JSON of the call's own parameters>, sign

where `sign` is RSA-SHA256 with the app private key over the other non-empty
parameters sorted by name, joined as `k=v&k=v` with raw (not URL-encoded) values.

    alipay.trade.query            {"out_trade_no"}                  query_trade
    alipay.fund.trans.uni.transfer {"out_biz_no","trans_amount",
                                    "product_code":"TRANS_ACCOUNT_NO_PWD",
                                    "biz_scene":"DIRECT_TRANSFER","order_title",
                                    "payee_info":{"identity","identity_type","name"}}   transfer
    alipay.fund.trans.common.query {"out_biz_no",...}               query_transfer
    -> 200 {"<method with _>_response": {"code":"10000","msg":"Success",...},
            "sign": "...", ["alipay_cert_sn": "..."]}

The answer's `sign` covers the *raw text* of the `..._response` member (see
rawjson.py); `code` 10000 is success, anything else a business error with
`sub_code`/`sub_msg`. A success whose signature does not verify is
`AnswerNotGenuine`; code 20000 or a SYSTEM_ERROR sub_code means the outcome is
unknown (`ProviderUnavailable`).

The app order (`alipay.trade.app.pay`) makes no call: the same signed parameters,
each value URL-encoded, are the string the app hands to the Alipay SDK
(`PayTask.payV2`). Alipay then POSTs a notification form to `notify_url`,
signed with Alipay's key over all parameters but `sign` and `sign_type`.

Two key modes, as Alipay's console offers them: "public key" (`alipay_public_key`)
or "public key certificate" (`app_public_cert`, `alipay_public_cert`,
`alipay_root_cert`); withdrawals (alipay.fund.trans.uni.transfer) need the
certificate mode.

Why not `python-alipay-sdk` (or Alipay's own `alipay-sdk-python`): both call
the gateway synchronously (urlopen), which would block the reactor, and read
answers unbounded. The tests use python-alipay-sdk as the independent signer and
verifier of the same format.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping
from urllib.parse import quote_plus, urlencode

from cryptography import x509
from treq.client import HTTPClient
from twisted.logger import Logger

from heihei.jsonsafe import BadJSON, decode_json, decode_json_object
from heihei.outbound.payments import keys
from heihei.outbound.payments.errors import (
    AnswerNotGenuine, ConfigError, ForgedNotification, MalformedNotification, NotificationRefused, OrderMismatch,
    OrderNotFound, ProviderRejected, ProviderUnavailable, StaleNotification, WrongMerchant)
from heihei.outbound.payments.rawjson import member_spans
from heihei.outbound.payments.transport import exchange

ALIPAY_GATEWAY_URL = "https://openapi.alipay.com/gateway.do"
ALIPAY_SANDBOX_GATEWAY_URL = "https://openapi-sandbox.dl.alipaydev.com/gateway.do"
TIMEOUT_S = 10.0
#: Alipay retries a notification for about 25 hours (4m, 10m, 10m, 1h, 2h, 6h, 15h); older is a replay
NOTIFICATION_MAX_AGE_S = 48 * 3600.0
#: a notify_time this far in our future means a wrong clock somewhere, or a made-up notification
NOTIFICATION_FUTURE_S = 600.0
MAX_ANSWER_BYTES = 64 * 1024
MAX_NOTIFICATION_PARAMS = 100
MAX_NOTIFICATION_VALUE_CHARS = 4096
BEIJING = timezone(timedelta(hours=8))
PAID_STATUSES = ("TRADE_SUCCESS", "TRADE_FINISHED")
#: Alipay: at most 100,000,000.00 yuan, at least 0.01
MAX_FEN = 100_000_000_00
_YUAN = re.compile(r"^(0|[1-9][0-9]{0,8})(\.[0-9]{1,2})?$")
_OUT_NO = re.compile(r"^[0-9A-Za-z_]{1,64}$")
_RSA_SIGNATURE_OID = "1.2.840.113549.1.1."


def fen_from_yuan(text: str) -> int:
    """"12.3" -> 1230; ValueError for anything that is not a plain yuan amount."""
    if not isinstance(text, str):
        raise ValueError("amount is not text")
    match = _YUAN.match(text)
    if not match:
        raise ValueError(f"not a yuan amount: {text[:20]!r}")
    whole, cents = match.group(1), (match.group(2) or ".")[1:]
    return int(whole) * 100 + int(cents.ljust(2, "0"))


def yuan_from_fen(fen: int) -> str:
    """1230 -> "12.30", Alipay's notation."""
    if isinstance(fen, bool) or not isinstance(fen, int) or fen < 0:
        raise ValueError("fen must be a non-negative int")
    return f"{fen // 100}.{fen % 100:02d}"


def cert_sn(cert: x509.Certificate) -> str:
    """Alipay's certificate "SN": MD5 of the issuer (RFC 2253/4514 order, CN first) and the decimal serial."""
    return hashlib.md5((cert.issuer.rfc4514_string() + str(cert.serial_number)).encode("utf-8"),
                       usedforsecurity=False).hexdigest()


def root_cert_sn(certs: list[x509.Certificate]) -> str:
    """Alipay's root certificate "SN": the SNs of the RSA-signed certificates of the chain, joined by "_"."""
    return "_".join(cert_sn(c) for c in certs if c.signature_algorithm_oid.dotted_string.startswith(_RSA_SIGNATURE_OID))


@dataclass(frozen=True)
class AlipayConfig:
    """What an app gets from open.alipay.com (see docs/providers-payments.md).

    Keys and certificates are PEM text, bare base64, or file paths. Give either
    `alipay_public_key`, or the three certificates."""

    app_id: str
    app_private_key: str = field(repr=False)
    alipay_public_key: str = ""
    app_public_cert: str = ""
    alipay_public_cert: str = ""
    alipay_root_cert: str = ""
    #: the merchant's PID (2088...); when set, notifications for another seller are refused
    seller_id: str = ""
    gateway_url: str = ALIPAY_GATEWAY_URL
    timeout_s: float = TIMEOUT_S
    notification_max_age_s: float = NOTIFICATION_MAX_AGE_S


@dataclass(frozen=True)
class _Paid:
    out_trade_no: str
    total_amount: str  # yuan, as Alipay wrote it
    total_fen: int

    def require(self, out_trade_no: str, amount_fen: int) -> None:
        """OrderMismatch unless this is about `out_trade_no` for exactly `amount_fen`."""
        if self.out_trade_no != out_trade_no:
            raise OrderMismatch(f"trade is for order {self.out_trade_no!r}, not {out_trade_no!r}",
                                field="out_trade_no")
        if self.total_fen != amount_fen:
            raise OrderMismatch(f"order {out_trade_no}: {self.total_amount} yuan, expected {yuan_from_fen(amount_fen)}",
                                field="amount")


@dataclass(frozen=True)
class AlipayNotification(_Paid):
    app_id: str
    trade_no: str
    trade_status: str  # WAIT_BUYER_PAY, TRADE_CLOSED, TRADE_SUCCESS, TRADE_FINISHED
    notify_id: str
    notify_time: str
    seller_id: str
    buyer_id: str

    @property
    def paid(self) -> bool:
        return self.trade_status in PAID_STATUSES


@dataclass(frozen=True)
class AlipayTrade(_Paid):
    trade_no: str
    trade_status: str

    @property
    def paid(self) -> bool:
        return self.trade_status in PAID_STATUSES


@dataclass(frozen=True)
class AlipayTransfer:
    out_biz_no: str
    order_id: str
    pay_fund_order_id: str
    status: str  # SUCCESS; query_transfer may also say DEALING, FAIL, REFUND
    trans_date: str
    fail_reason: str = ""

    @property
    def succeeded(self) -> bool:
        return self.status == "SUCCESS"


class Alipay:
    """The Alipay open API client for one app. `clock` gives wall time and runs deadlines.

    Invalid arguments (a caller's bug) raise ValueError before anything is signed or sent."""

    _log = Logger()

    def __init__(self, config: AlipayConfig, http: HTTPClient, *, clock) -> None:
        self.config = config
        self.http = http
        self.clock = clock
        if not config.app_id:
            raise ConfigError("alipay app_id is not set")
        self._private_key = keys.load_private_key(config.app_private_key, what="alipay app_private_key")
        certs = (config.app_public_cert, config.alipay_public_cert, config.alipay_root_cert)
        self._cert_params: dict[str, str] = {}
        self._alipay_cert_sn = ""
        if any(certs):
            if not all(certs):
                raise ConfigError("alipay certificate mode needs app_public_cert, alipay_public_cert "
                                  "and alipay_root_cert")
            if config.alipay_public_key:
                raise ConfigError("alipay: give alipay_public_key or the certificates, not both")
            alipay_cert = keys.load_certificate(config.alipay_public_cert, what="alipay alipay_public_cert")
            self._alipay_key = keys.load_public_key(config.alipay_public_cert, what="alipay alipay_public_cert")
            self._alipay_cert_sn = cert_sn(alipay_cert)
            # Alipay's root file also holds an SM2 (Chinese national algorithm) certificate: skip what we cannot parse
            root = root_cert_sn(keys.load_certificates(config.alipay_root_cert, what="alipay alipay_root_cert",
                                                       skip_unparseable=True))
            if not root:
                raise ConfigError("alipay alipay_root_cert: no RSA-signed certificate in it")
            self._cert_params = {
                "app_cert_sn": cert_sn(keys.load_certificate(config.app_public_cert, what="alipay app_public_cert")),
                "alipay_root_cert_sn": root}
        elif config.alipay_public_key:
            self._alipay_key = keys.load_public_key(config.alipay_public_key, what="alipay alipay_public_key")
        else:
            raise ConfigError("alipay needs alipay_public_key, or the three certificates, to check Alipay's signatures")

    # -- signing --------------------------------------------------------------------------------

    def _common(self, method: str) -> dict[str, str]:
        now = datetime.fromtimestamp(self.clock.seconds(), BEIJING)
        return {"app_id": self.config.app_id, "method": method, "format": "JSON", "charset": "utf-8",
                "sign_type": "RSA2", "timestamp": now.strftime("%Y-%m-%d %H:%M:%S"), "version": "1.0",
                **self._cert_params}

    def _signed(self, params: dict[str, str]) -> dict[str, str]:
        content = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if v)
        return {**params, "sign": keys.sign(self._private_key, content.encode("utf-8"))}

    def app_order_string(self, out_trade_no: str, amount_yuan: str, subject: str, notify_url: str, *,
                         timeout_express: str = "") -> str:
        """The signed order string the app passes to the Alipay SDK (create-order's `data`).

        `amount_yuan` is Alipay's notation ("6.00"; see yuan_from_fen); `timeout_express`
        optionally bounds how long the order can be paid ("30m", "2h", "1d")."""
        _check_out_no(out_trade_no, "out_trade_no")
        if fen_from_yuan(amount_yuan) <= 0 or fen_from_yuan(amount_yuan) > MAX_FEN:
            raise ValueError("amount_yuan must be 0.01 .. 100000000.00")
        if not isinstance(subject, str) or not 0 < len(subject) <= 256 or any(c in subject for c in "/=&"):
            raise ValueError("subject must be 1-256 characters without / = &")
        if not isinstance(notify_url, str) or not notify_url.startswith(("https://", "http://")) \
                or len(notify_url) > 256:
            raise ValueError("notify_url must be an http(s) URL of at most 256 characters")
        if timeout_express and not re.match(r"^[0-9]{1,4}[mhd]$", timeout_express):
            raise ValueError("timeout_express must look like 30m, 2h or 1d")
        biz = {"out_trade_no": out_trade_no, "total_amount": amount_yuan, "subject": subject,
               "product_code": "QUICK_MSECURITY_PAY"}
        if timeout_express:
            biz["timeout_express"] = timeout_express
        params = self._signed({**self._common("alipay.trade.app.pay"), "notify_url": notify_url,
                               "biz_content": _json(biz)})
        sign = params.pop("sign")
        return "&".join(f"{k}={quote_plus(v)}" for k, v in [*sorted(params.items()), ("sign", sign)] if v)

    # -- notifications --------------------------------------------------------------------------

    def verify_notification(self, form: Mapping[str, str], *, now: float | None = None) -> AlipayNotification:
        """What a payment notification says, or a NotificationRefused subclass.

        `form` is the POSTed form, decoded (one string per name). The caller checks
        the result against its order (`require`) and answers Alipay "success"."""
        try:
            return self._verify_notification(form, self.clock.seconds() if now is None else now)
        except NotificationRefused as e:
            self._log.warn("Alipay notification refused ({kind}): {reason}", kind=type(e).__name__, reason=e.reason)
            raise

    def _verify_notification(self, form: Mapping[str, str], now: float) -> AlipayNotification:
        if not isinstance(form, Mapping) or len(form) > MAX_NOTIFICATION_PARAMS:
            raise MalformedNotification("not a form, or too many parameters")
        if not all(isinstance(k, str) and isinstance(v, str) and len(v) <= MAX_NOTIFICATION_VALUE_CHARS
                   for k, v in form.items()):
            raise MalformedNotification("every parameter must be one string")
        if form.get("sign_type") != "RSA2":
            raise ForgedNotification(f"sign_type {str(form.get('sign_type'))[:20]!r}, only RSA2 is accepted")
        if form.get("charset", "utf-8").lower() not in ("utf-8", "utf8"):
            raise MalformedNotification(f"charset {form.get('charset', '')[:20]!r}, we only ask for utf-8")
        content = "&".join(f"{k}={form[k]}" for k in sorted(form) if k not in ("sign", "sign_type"))
        if not keys.verify(self._alipay_key, content.encode("utf-8"), form.get("sign")):
            raise ForgedNotification("sign does not verify with Alipay's key")
        if form.get("app_id") != self.config.app_id:
            raise WrongMerchant(f"app_id {form.get('app_id', '')[:40]!r} is not ours")
        if self.config.seller_id and form.get("seller_id") != self.config.seller_id:
            raise WrongMerchant(f"seller_id {form.get('seller_id', '')[:40]!r} is not ours")
        notify_time = form.get("notify_time", "")
        try:
            sent = datetime.strptime(notify_time, "%Y-%m-%d %H:%M:%S").replace(tzinfo=BEIJING).timestamp()
        except ValueError:
            raise MalformedNotification(f"notify_time {notify_time[:30]!r}") from None
        if now - sent > self.config.notification_max_age_s or sent - now > NOTIFICATION_FUTURE_S:
            raise StaleNotification(f"notify_time {notify_time} is {int(now - sent)} s before now")
        out_trade_no, trade_no, trade_status = (form.get(k, "") for k in ("out_trade_no", "trade_no", "trade_status"))
        if not (out_trade_no and trade_no and trade_status):
            raise MalformedNotification("out_trade_no, trade_no or trade_status missing")
        total_amount = form.get("total_amount", "")
        try:
            total_fen = fen_from_yuan(total_amount)
        except ValueError as e:
            raise MalformedNotification(f"total_amount: {e}") from None
        return AlipayNotification(out_trade_no=out_trade_no, total_amount=total_amount, total_fen=total_fen,
                                  app_id=form["app_id"], trade_no=trade_no, trade_status=trade_status,
                                  notify_id=form.get("notify_id", ""), notify_time=notify_time,
                                  seller_id=form.get("seller_id", ""), buyer_id=form.get("buyer_id", ""))

    # -- gateway calls --------------------------------------------------------------------------

    async def query_trade(self, out_trade_no: str) -> AlipayTrade:
        """The trade as Alipay has it now (the fallback when no notification came).

        OrderNotFound while the buyer has not opened the order in Alipay (Alipay only
        creates the trade then), or if it never existed."""
        _check_out_no(out_trade_no, "out_trade_no")
        node = await self._call("alipay.trade.query", {"out_trade_no": out_trade_no}, what="query_trade",
                                not_found=("ACQ.TRADE_NOT_EXIST",))
        if node.get("out_trade_no") != out_trade_no:
            raise OrderMismatch(f"query_trade {out_trade_no}: answer is about {str(node.get('out_trade_no'))[:40]!r}",
                                field="out_trade_no")
        total_amount = node.get("total_amount")
        try:
            total_fen = fen_from_yuan(total_amount)
        except ValueError as e:
            raise ProviderUnavailable(f"alipay query_trade: total_amount: {e}") from None
        trade_no, status = node.get("trade_no"), node.get("trade_status")
        if not (isinstance(trade_no, str) and isinstance(status, str) and status):
            raise ProviderUnavailable("alipay query_trade: answer without trade_no or trade_status")
        return AlipayTrade(out_trade_no=out_trade_no, total_amount=total_amount, total_fen=total_fen,
                           trade_no=trade_no, trade_status=status)

    async def transfer(self, out_biz_no: str, account: str, name: str, amount_yuan: str, *,
                       title: str = "提现", identity_type: str = "ALIPAY_LOGON_ID") -> AlipayTransfer:
        """Pay `amount_yuan` to the Alipay account `account` held by `name` (a withdrawal).

        Alipay makes one transfer per out_biz_no: after OutcomeUnknown, call again
        with the same out_biz_no (or query_transfer), never with a new one."""
        _check_out_no(out_biz_no, "out_biz_no")
        if not 0 < fen_from_yuan(amount_yuan) <= MAX_FEN:
            raise ValueError("amount_yuan must be 0.01 .. 100000000.00")
        for label, value, limit in (("account", account, 100), ("name", name, 64), ("title", title, 64)):
            if not isinstance(value, str) or not 0 < len(value) <= limit:
                raise ValueError(f"{label} must be 1-{limit} characters")
        if identity_type not in ("ALIPAY_LOGON_ID", "ALIPAY_USER_ID", "ALIPAY_OPEN_ID"):
            raise ValueError("identity_type must be ALIPAY_LOGON_ID, ALIPAY_USER_ID or ALIPAY_OPEN_ID")
        biz = {"out_biz_no": out_biz_no, "trans_amount": amount_yuan, "product_code": "TRANS_ACCOUNT_NO_PWD",
               "biz_scene": "DIRECT_TRANSFER", "order_title": title,
               "payee_info": {"identity": account, "identity_type": identity_type, "name": name}}
        node = await self._call("alipay.fund.trans.uni.transfer", biz, what="transfer")
        transfer = self._transfer(node, out_biz_no, "transfer")
        self._log.info("Alipay transfer {out_biz_no}: {status}", out_biz_no=out_biz_no, status=transfer.status)
        return transfer

    async def query_transfer(self, out_biz_no: str) -> AlipayTransfer:
        """What became of the transfer `out_biz_no` (after a transfer's outcome was unknown)."""
        _check_out_no(out_biz_no, "out_biz_no")
        biz = {"out_biz_no": out_biz_no, "product_code": "TRANS_ACCOUNT_NO_PWD", "biz_scene": "DIRECT_TRANSFER"}
        node = await self._call("alipay.fund.trans.common.query", biz, what="query_transfer",
                                not_found=("ORDER_NOT_EXIST",))
        return self._transfer(node, out_biz_no, "query_transfer")

    @staticmethod
    def _transfer(node: dict[str, Any], out_biz_no: str, what: str) -> AlipayTransfer:
        if node.get("out_biz_no", out_biz_no) != out_biz_no:
            raise OrderMismatch(f"alipay {what} {out_biz_no}: answer is about {str(node.get('out_biz_no'))[:40]!r}",
                                field="out_biz_no")
        status = node.get("status")
        if not isinstance(status, str) or not status:
            raise ProviderUnavailable(f"alipay {what}: answer without status")
        return AlipayTransfer(out_biz_no=out_biz_no, order_id=_text(node.get("order_id")),
                              pay_fund_order_id=_text(node.get("pay_fund_order_id")), status=status,
                              trans_date=_text(node.get("trans_date") or node.get("pay_date")),
                              fail_reason=_text(node.get("fail_reason"), 256))

    async def _call(self, method: str, biz: dict[str, Any], *, what: str,
                    not_found: tuple[str, ...] = ()) -> dict[str, Any]:
        """The verified `..._response` member of a successful answer."""
        params = self._signed({**self._common(method), "biz_content": _json(biz)})
        answer = await exchange(self.http, "POST", self.config.gateway_url,
                                headers={"Content-Type": "application/x-www-form-urlencoded;charset=utf-8",
                                         "Accept": "application/json"},
                                body=urlencode(params).encode("ascii"), clock=self.clock,
                                timeout_s=self.config.timeout_s, max_bytes=MAX_ANSWER_BYTES, what=f"alipay {what}")
        if answer.code != 200:
            raise ProviderUnavailable(f"alipay {what}: HTTP {answer.code}")
        try:
            spans = member_spans(answer.body, max_bytes=MAX_ANSWER_BYTES)
            span = spans.get(method.replace(".", "_") + "_response") or spans.get("error_response")
            if span is None:
                raise BadJSON("no response member")
            node_raw = answer.body[span[0]:span[1]]
            node = decode_json_object(node_raw, max_bytes=MAX_ANSWER_BYTES)
            sign = decode_json(answer.body[slice(*spans["sign"])], max_bytes=MAX_ANSWER_BYTES) \
                if "sign" in spans else None
            cert_sn_ = decode_json(answer.body[slice(*spans["alipay_cert_sn"])], max_bytes=MAX_ANSWER_BYTES) \
                if "alipay_cert_sn" in spans else None
        except BadJSON as e:
            raise ProviderUnavailable(f"alipay {what}: {e.reason}") from None
        verified = keys.verify(self._alipay_key, node_raw, sign)
        if not verified and b"\\/" in node_raw:
            # Alipay's own SDKs retry with "\/" unescaped: some answers are signed before that escaping
            verified = keys.verify(self._alipay_key, node_raw.replace(b"\\/", b"/"), sign)
        if verified and self._alipay_cert_sn and cert_sn_ not in (None, self._alipay_cert_sn):
            self._log.error("Alipay {what}: answer signed with certificate {sn}, not the configured "
                            "alipay_public_cert (Alipay renewed it? download the new one)",
                            what=what, sn=str(cert_sn_)[:40])
            verified = False
        code = node.get("code")
        # a success must be signed; a rejection may come unsigned, but if signed it must verify
        if not verified and (sign is not None or code == "10000"):
            self._log.error("Alipay {what}: the answer's signature does not verify", what=what)
            raise AnswerNotGenuine(f"alipay {what}: answer signature does not verify")
        if code == "10000":
            return node
        sub_code, sub_msg = _text(node.get("sub_code"), 64), _text(node.get("sub_msg"), 200)
        reason = f"alipay {what}: {_text(code, 16)} {sub_code}: {sub_msg}"
        if code == "20000" or sub_code.endswith("SYSTEM_ERROR") or sub_code.endswith("UNKNOWN_ERROR"):
            raise ProviderUnavailable(reason)
        if sub_code in not_found:
            raise OrderNotFound(reason, code=sub_code, message=sub_msg, verified=verified)
        self._log.warn("Alipay {what} refused: {code} {sub_code}: {sub_msg}", what=what, code=_text(code, 16),
                       sub_code=sub_code, sub_msg=sub_msg)
        raise ProviderRejected(reason, code=sub_code or _text(code, 16), message=sub_msg, verified=verified)


def _check_out_no(value: object, label: str) -> None:
    if not isinstance(value, str) or not _OUT_NO.match(value):
        raise ValueError(f"{label} must be 1-64 characters of 0-9 A-Z a-z _")


def _json(value: dict[str, Any]) -> str:
    """Compact JSON, non-ASCII kept (what Alipay's own SDKs send and sign)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _text(value: object, limit: int = 128) -> str:
    return value[:limit] if isinstance(value, str) else ""
