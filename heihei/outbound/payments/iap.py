"""
Apple in-app purchase receipts, checked with Apple's verifyReceipt endpoint.

Wire format:

    POST {production_url}   {"receipt-data": <base64 receipt>, "password": <shared secret>}
    -> 200 {"status": 0, "environment": "Production"|"Sandbox",
            "receipt": {"bundle_id", "in_app": [{"product_id", "transaction_id",
                        "original_transaction_id", "quantity", "purchase_date_ms"}, ...]}}
    -> 200 {"status": 21007}   a sandbox receipt: ask {sandbox_url} instead (Apple's
                               documented order: production first, then sandbox)
    -> 200 {"status": 21004}   the shared secret does not match
    -> 200 {"status": 21005 | 21009 | 211xx, "is-retryable": true}   try again later

Receipts of iOS 6 and earlier have no `in_app`: the purchase is the receipt
itself (`product_id`, `transaction_id`, bundle in `bid`); both shapes are read.

Apple's answers are not signed (TLS is the only protection), so `production_url`
and `sandbox_url` must be https in production. Apple has deprecated verifyReceipt
in favour of the App Store Server API (signed JWS transactions); the shipped
clients send receipts, so this is what they need.

A sandbox purchase costs nothing: `accept_sandbox` (Apple's advice for App
Review: on) lets sandbox receipts through, marked `environment == "Sandbox"`,
and the ledger decides what they are worth.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from treq.client import HTTPClient
from twisted.logger import Logger

from heihei.jsonsafe import BadJSON, decode_json_object, encode_json
from heihei.outbound.payments.errors import (
    ConfigError, OrderMismatch, ProviderRejected, ProviderUnavailable, ReceiptRejected)
from heihei.outbound.payments.transport import exchange
from heihei.textnum import is_digits

APPLE_PRODUCTION_URL = "https://buy.itunes.apple.com/verifyReceipt"
APPLE_SANDBOX_URL = "https://sandbox.itunes.apple.com/verifyReceipt"
TIMEOUT_S = 15.0
#: a receipt lists every non-consumable and subscription purchase ever made: they grow
MAX_RECEIPT_CHARS = 512 * 1024
#: the answer repeats the receipt decoded (and latest_receipt for subscriptions)
MAX_ANSWER_BYTES = 4 * 1024 * 1024
SANDBOX_RECEIPT = 21007
SECRET_MISMATCH = 21004
#: Apple's "try again": server not available, internal data access error, 21100-21199 internal errors
_RETRYABLE = {21005, 21009}
_BASE64 = re.compile(r"^[A-Za-z0-9+/\r\n]+={0,2}$")


@dataclass(frozen=True)
class AppleIAPConfig:
    #: the app's shared secret (App Store Connect); needed for auto-renewable subscriptions,
    #: harmless otherwise, and then Apple checks it
    shared_secret: str = field(default="", repr=False)
    #: when set, receipts of another app are refused
    bundle_id: str = ""
    production_url: str = APPLE_PRODUCTION_URL
    sandbox_url: str = APPLE_SANDBOX_URL
    accept_sandbox: bool = True
    timeout_s: float = TIMEOUT_S


@dataclass(frozen=True)
class ApplePurchase:
    product_id: str
    transaction_id: str
    original_transaction_id: str
    quantity: int
    purchase_date_ms: int


@dataclass(frozen=True)
class AppleReceipt:
    environment: str  # "Production" or "Sandbox"
    bundle_id: str
    purchases: tuple[ApplePurchase, ...]

    def purchase(self, transaction_id: str) -> ApplePurchase | None:
        return next((p for p in self.purchases if p.transaction_id == transaction_id), None)

    def require(self, transaction_id: str, product_id: str) -> ApplePurchase:
        """The purchase `transaction_id`, which must be of `product_id`; else OrderMismatch."""
        found = self.purchase(transaction_id)
        if found is None:
            raise OrderMismatch(f"no transaction {transaction_id!r} in the receipt", field="transaction_id")
        if found.product_id != product_id:
            raise OrderMismatch(f"transaction {transaction_id} bought {found.product_id!r}, not {product_id!r}",
                                field="product_id")
        return found


class AppleIAP:
    """verifyReceipt for one app. `clock` runs the deadlines."""

    _log = Logger()

    def __init__(self, config: AppleIAPConfig, http: HTTPClient, *, clock) -> None:
        if not config.production_url:
            raise ConfigError("iap production_url is not set")
        if config.accept_sandbox and not config.sandbox_url:
            raise ConfigError("iap sandbox_url is not set (or set accept_sandbox off)")
        self.config = config
        self.http = http
        self.clock = clock

    async def verify_receipt(self, receipt_data: str) -> AppleReceipt:
        """The purchases in a receipt Apple vouches for.

        ReceiptRejected for a receipt Apple refuses (`code` is its status), or a sandbox
        receipt when sandbox is not accepted; ProviderRejected when the shared secret is
        wrong (a configuration error); ProviderUnavailable when Apple says try again."""
        if isinstance(receipt_data, str):
            # base64 has no spaces: a space is a "+" lost to form decoding (the heihei Android
            # client posts its forms without URL-encoding them)
            receipt_data = receipt_data.replace(" ", "+")
        if not isinstance(receipt_data, str) or not 0 < len(receipt_data) <= MAX_RECEIPT_CHARS \
                or not _BASE64.match(receipt_data):
            raise ReceiptRejected("iap: the receipt is not base64 of a sane size", code="21002")
        request = {"receipt-data": receipt_data}
        if self.config.shared_secret:
            request["password"] = self.config.shared_secret
        body = encode_json(request)
        answer = await self._post(self.config.production_url, body)
        if answer.get("status") == SANDBOX_RECEIPT:
            if not self.config.accept_sandbox:
                raise ReceiptRejected("iap: a sandbox receipt, and sandbox receipts are not accepted",
                                      code=str(SANDBOX_RECEIPT), verified=True)
            answer = await self._post(self.config.sandbox_url, body)
            return self._receipt(answer, default_environment="Sandbox")
        return self._receipt(answer, default_environment="Production")

    async def _post(self, url: str, body: bytes) -> dict[str, Any]:
        answer = await exchange(self.http, "POST", url, headers={"Content-Type": "application/json"}, body=body,
                                clock=self.clock, timeout_s=self.config.timeout_s, max_bytes=MAX_ANSWER_BYTES,
                                what="iap verifyReceipt")
        if answer.code != 200:
            raise ProviderUnavailable(f"iap verifyReceipt: HTTP {answer.code}")
        try:
            return decode_json_object(answer.body, max_bytes=MAX_ANSWER_BYTES)
        except BadJSON as e:
            raise ProviderUnavailable(f"iap verifyReceipt: {e.reason}") from None

    def _receipt(self, answer: dict[str, Any], *, default_environment: str) -> AppleReceipt:
        status = answer.get("status")
        if isinstance(status, bool) or not isinstance(status, int):
            raise ProviderUnavailable("iap verifyReceipt: answer without a status")
        if status != 0:
            if status in _RETRYABLE or 21100 <= status <= 21199 or answer.get("is-retryable") is True:
                raise ProviderUnavailable(f"iap verifyReceipt: status {status} (Apple says try again)")
            if status == SECRET_MISMATCH:
                self._log.error("Apple verifyReceipt: the shared secret does not match the app's (status 21004)")
                raise ProviderRejected("iap: the shared secret does not match", code=str(status), verified=True)
            raise ReceiptRejected(f"iap: Apple refused the receipt: status {status}", code=str(status), verified=True)
        receipt = answer.get("receipt")
        if not isinstance(receipt, dict):
            raise ProviderUnavailable("iap verifyReceipt: status 0 without a receipt")
        environment = answer.get("environment")
        if environment not in ("Production", "Sandbox"):
            environment = default_environment
        if environment == "Sandbox" and not self.config.accept_sandbox:
            raise ReceiptRejected("iap: a sandbox receipt, and sandbox receipts are not accepted",
                                  code=str(SANDBOX_RECEIPT), verified=True)
        bundle_id = receipt.get("bundle_id", receipt.get("bid"))
        if not isinstance(bundle_id, str):
            bundle_id = ""
        if self.config.bundle_id and bundle_id != self.config.bundle_id:
            raise ReceiptRejected(f"iap: a receipt of {bundle_id[:80]!r}, not of our app", code="bundle_id",
                                  verified=True)
        entries = receipt.get("in_app")
        if entries is None and "transaction_id" in receipt:
            entries = [receipt]  # iOS 6 style: the receipt is the purchase
        if not isinstance(entries, list):
            entries = []
        purchases = []
        for entry in entries:
            purchase = _purchase(entry)
            if purchase is None:
                raise ProviderUnavailable("iap verifyReceipt: an in_app entry without product_id or transaction_id")
            purchases.append(purchase)
        return AppleReceipt(environment=environment, bundle_id=bundle_id, purchases=tuple(purchases))


def _purchase(entry: object) -> ApplePurchase | None:
    if not isinstance(entry, dict):
        return None
    product_id, transaction_id = entry.get("product_id"), entry.get("transaction_id")
    if not (isinstance(product_id, str) and product_id and isinstance(transaction_id, str) and transaction_id):
        return None
    original = entry.get("original_transaction_id")
    return ApplePurchase(product_id=product_id[:128], transaction_id=transaction_id[:64],
                         original_transaction_id=original[:64] if isinstance(original, str) else transaction_id[:64],
                         quantity=_int(entry.get("quantity"), 1),
                         purchase_date_ms=_int(entry.get("purchase_date_ms"), 0))


def _int(value: object, default: int) -> int:
    """Apple writes numbers as strings ("1", "1546300800000")."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and is_digits(value) and len(value) <= 18:
        return int(value)
    return default
