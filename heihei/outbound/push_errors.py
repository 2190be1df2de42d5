"""
What an offline-push adapter (Getui, APNs, FCM) raises when a push does not go
through, so the caller can act on the kind of failure without knowing the
service:

    DeviceGone            the service says this device token/cid is dead:
                          unregister the device, never retry it
    PayloadTooLarge       refused before sending: the push does not fit the
                          service's size limit (a permanent failure)
    CredentialsRejected   the service refused our credentials or app settings
                          (keys, app ids, topic, project): every push will fail
                          until an operator fixes the settings
    PermanentPushError    this push will not go through as it is (bad request)
    RetryablePushError    try again later (timeouts, connection trouble, 429,
                          5xx); `retry_after_s` when the service said when

`send()` returning normally means the service accepted the push. Messages
never carry a credential; a device token shows only its first characters.

`fit_text` is the size rule every adapter applies before sending: the
notification's body text is shortened (ending in "…") until the payload fits
the service's limit; if even an empty body does not fit (a huge title or
link), the push is refused with `PayloadTooLarge` and nothing is sent.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet import defer
from twisted.web.client import ResponseNeverReceived

ELLIPSIS = "\u2026"


def short_token(token: str) -> str:
    """A device token as logs may show it: enough to tell devices apart, not the whole token."""
    return token if len(token) <= 12 else token[:8] + "..."


class PushError(Exception):
    """A push was not delivered to the service. `service` is "getui", "apns" or "fcm"."""

    retryable = False

    def __init__(self, service: str, message: str) -> None:
        super().__init__(f"{service}: {message}")
        self.service = service


class DeviceGone(PushError):
    """The service says the device token (`clientid`) is no longer valid for our app."""

    def __init__(self, service: str, clientid: str, reason: str) -> None:
        super().__init__(service, f"device {short_token(clientid)} is gone ({reason})")
        self.clientid = clientid
        self.reason = reason


class PermanentPushError(PushError):
    """This push will not be accepted as it is; retrying it does not help."""


class PayloadTooLarge(PermanentPushError):
    def __init__(self, service: str, size: int, limit: int, what: str = "payload", unit: str = "bytes") -> None:
        super().__init__(service, f"{what} is {size} {unit}, more than the {limit} the service accepts")
        self.size = size
        self.limit = limit


class CredentialsRejected(PermanentPushError):
    """The service refused our credentials or app configuration."""


class RetryablePushError(PushError):
    retryable = True

    def __init__(self, service: str, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(service, message)
        self.retry_after_s = retry_after_s


def retry_after_seconds(value: bytes | str | None) -> float | None:
    """The delay of a `Retry-After: <seconds>` header (the HTTP-date form is not used by these services)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if 0 <= seconds < 86400 else None


def fit_text(encode: Callable[[str], bytes], text: str, limit: int, service: str) -> bytes:
    """`encode(text)` if it is at most `limit` bytes, else `encode` of the longest prefix of
    `text` (plus an ellipsis) that fits; `PayloadTooLarge` when nothing fits."""
    whole = encode(text)
    if len(whole) <= limit:
        return whole
    empty = encode("")
    if len(empty) > limit:
        raise PayloadTooLarge(service, len(empty), limit)
    # the longest fitting prefix, by bisection (the encoding grows with the prefix)
    lo, hi, best = 0, len(text) - 1, empty
    while lo <= hi:
        mid = (lo + hi) // 2
        candidate = encode(text[:mid] + ELLIPSIS)
        if len(candidate) <= limit:
            best, lo = candidate, mid + 1
        else:
            hi = mid - 1
    return best


def clip_chars(text: str, max_chars: int) -> str:
    """`text` cut to `max_chars` characters, the last one an ellipsis when it was cut."""
    return text if len(text) <= max_chars else text[:max_chars - 1] + ELLIPSIS


def was_cancelled(error: BaseException) -> bool:
    """Whether `error` is our own cancellation (a deadline), which treq reports wrapped
    in ResponseNeverReceived when the request was still under way."""
    if isinstance(error, defer.CancelledError):
        return True
    if isinstance(error, ResponseNeverReceived):
        return any(reason.check(defer.CancelledError) for reason in error.reasons)
    return False
