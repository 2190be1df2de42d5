"""
What a payment provider client can fail with, by what the caller must do next.

    ConfigError            a setting or key cannot be used: fix the configuration
                           (raised at construction, never mid-payment)
    OutcomeUnknown         we do not know what happened at the provider: keep the
                           order/withdrawal pending, retry with the *same* ids, or
                           ask again later (query_order / query_trade / query_transfer)
      ProviderUnavailable    no usable answer: connection failure, deadline, HTTP 5xx,
                             oversized or unparseable body
      AnswerNotGenuine       an answer whose signature does not verify (or is signed
                             by a key we do not know): never act on it, and alert
    ProviderRejected       the provider answered with a business error (`code`,
                           `message`); `verified` says whether that answer was signed
                           by the provider, so only a verified rejection may end a
                           withdrawal as failed
      OrderNotFound          the provider has no such order / trade / transfer
      ReceiptRejected        Apple refused a receipt (`code` is the status)
    NotificationRefused    a callback that must not be acted on; `reason` names
                           the check that failed (one subclass per check)
    OrderMismatch          a genuine answer or notification about another order,
                           amount or product than the caller's (from `require`)

`str(error)` is for logs: it never carries keys, secrets or signatures.
"""

from __future__ import annotations


class PaymentError(Exception):
    """Base of everything the payment provider clients raise on purpose."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ConfigError(PaymentError):
    """A setting or key cannot be used."""


class OutcomeUnknown(PaymentError):
    """We do not know what the provider did: retry with the same ids, or query."""


class ProviderUnavailable(OutcomeUnknown):
    """No usable answer (network, deadline, HTTP 5xx, oversized or garbage body)."""


class AnswerNotGenuine(OutcomeUnknown):
    """The answer's signature does not verify: never act on it."""


class ProviderRejected(PaymentError):
    """A business error from the provider."""

    def __init__(self, reason: str, *, code: str = "", message: str = "", verified: bool = False) -> None:
        super().__init__(reason)
        self.code = code
        self.message = message
        self.verified = verified


class OrderNotFound(ProviderRejected):
    """The provider has no such order, trade or transfer."""


class ReceiptRejected(ProviderRejected):
    """Apple refused the receipt; `code` is Apple's status as a string."""


class NotificationRefused(PaymentError):
    """A provider callback that must not be acted on."""


class ForgedNotification(NotificationRefused):
    """Signature missing, malformed, of another algorithm, or not verifying."""


class StaleNotification(NotificationRefused):
    """Signed too long ago (or too far in the future): a replay, or a badly wrong clock."""


class UnknownSerial(NotificationRefused):
    """Signed with a key we do not have (WeChat's `Wechatpay-Serial` is not configured)."""


class UndecryptableNotification(NotificationRefused):
    """The encrypted resource does not decrypt with our API v3 key."""


class WrongMerchant(NotificationRefused):
    """Genuine, but for another merchant or app (mchid / appid / app_id / seller_id / bundle id)."""


class MalformedNotification(NotificationRefused):
    """Verified, but a field we need is missing or of the wrong shape."""


class OrderMismatch(PaymentError):
    """A genuine answer about another order, amount, currency or product than expected."""

    def __init__(self, reason: str, *, field: str) -> None:
        super().__init__(reason)
        self.field = field
