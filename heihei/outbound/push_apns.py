"""
APNs (iOS devices, `apnsType=apns`): Apple's provider API over HTTP/2 with
token-based authentication (a .p8 signing key).

Wire format (one request per push, multiplexed on one connection):

    POST {base}/3/device/<hex device token>
    authorization: bearer <JWT, ES256, header {kid: key id}, claims {iss: team id, iat}>
    apns-topic: <bundle id>     apns-push-type: alert
    apns-priority: 10 (or 5)    apns-expiration: <unix seconds; 0 = no storing>
    {"aps": {"alert": {"title": ..., "body": ...}, "sound": "default"}, "link": ...}
        at most 4096 bytes; a long body text is shortened to fit, a push that
        does not fit even so is refused before sending (PayloadTooLarge)

    200                                         -> delivered to Apple
    410 (Unregistered, ExpiredToken)            -> DeviceGone
    400 BadDeviceToken                          -> DeviceGone
    403 ExpiredProviderToken                    -> a new provider token, sent once more
    403 InvalidProviderToken, MissingProviderToken, Forbidden, ...;
    400 BadTopic, TopicDisallowed, MissingTopic, BadCertificateEnvironment
                                                -> CredentialsRejected
    400 DeviceTokenNotForTopic                  -> PermanentPushError (see below)
    413 PayloadTooLarge                         -> PayloadTooLarge
    429, 5xx, connection trouble, no answer in time -> RetryablePushError
    other 4xx                                   -> PermanentPushError

Provider tokens: Apple refuses tokens older than an hour and answers
TooManyProviderTokenUpdates to a new token more often than every 20 minutes,
so one token is signed and reused for 50 minutes. After ExpiredProviderToken
a token at least 20 minutes old is replaced at once; a younger one points at
a wrong server clock and fails (retryable) instead of hammering Apple.

DeviceTokenNotForTopic is not DeviceGone on purpose: a wrong `apns_topic`
(bundle id) in our settings makes Apple answer it for *every* device, and
unregistering every iOS device for a configuration typo is worse than keeping
one foreign token. For the same reason the sandbox/production choice of
`apns_base_url` must match the app build: a development build's token sent to
production is answered with BadDeviceToken, i.e. DeviceGone.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from heihei.jsonsafe import BadJSON, decode_json_object, encode_json
from heihei.outbound.h2client import H2Client, H2Unavailable, ResponseTooLarge
from heihei.outbound.push_auth import load_ec_p256_key, sign_es256
from heihei.outbound.push_errors import (
    CredentialsRejected, DeviceGone, PayloadTooLarge, PermanentPushError, RetryablePushError, fit_text,
    retry_after_seconds, short_token)

SERVICE = "apns"
PRODUCTION_URL = "https://api.push.apple.com"
SANDBOX_URL = "https://api.sandbox.push.apple.com"
MAX_PAYLOAD_BYTES = 4096
#: a provider token is reused this long (Apple: at most 60 min old)
PROVIDER_TOKEN_RENEW_S = 50 * 60
#: Apple answers TooManyProviderTokenUpdates to new tokens more often than this
PROVIDER_TOKEN_MIN_AGE_S = 20 * 60
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_EXPIRATION_S = 24 * 3600

_HEX_TOKEN = re.compile(r"[0-9a-fA-F]{16,200}")

_GONE_REASONS = {"BadDeviceToken", "Unregistered", "ExpiredToken"}
_CONFIG_REASONS = {"BadTopic", "TopicDisallowed", "MissingTopic", "BadCertificate", "BadCertificateEnvironment",
                   "InvalidProviderToken", "MissingProviderToken", "Forbidden", "UnrelatedKeyIdInToken",
                   "InvalidPushType"}


class ApnsPush:
    """`PushProvider` for APNs. `close()` closes its HTTP/2 connection."""

    _log = Logger()

    def __init__(self, *, team_id: str, key_id: str, private_key_pem: bytes, topic: str,
                 base_url: str = PRODUCTION_URL, reactor, clock=None, now_s: Callable[[], float] | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S, expiration_s: int = DEFAULT_EXPIRATION_S,
                 priority: int = 10, trust_root=None, client: H2Client | None = None) -> None:
        if not (team_id and key_id and topic):
            raise ValueError("APNs needs a team id, a key id and a topic (the app's bundle id)")
        if priority not in (5, 10):
            raise ValueError(f"apns-priority is 5 or 10, not {priority!r}")
        self.team_id = team_id
        self.key_id = key_id
        self._key = load_ec_p256_key(private_key_pem, "the APNs .p8 key")
        self.topic = topic
        self.clock = clock if clock is not None else reactor
        self.now_s = now_s if now_s is not None else self.clock.seconds
        self.timeout_s = timeout_s
        self.expiration_s = expiration_s
        self.priority = priority
        self.client = client if client is not None else H2Client(
            reactor, base_url, clock=self.clock, trust_root=trust_root, connect_timeout_s=timeout_s)
        self._token: str | None = None
        self._token_iat = 0
        self.tokens_signed = 0

    # --- PushProvider

    async def send(self, push: dict[str, Any]) -> None:
        device = str(push.get("clientid") or "")
        if not _HEX_TOKEN.fullmatch(device):
            raise DeviceGone(SERVICE, device, "not a hex APNs device token")
        payload = self.payload(push)
        d = defer.Deferred.fromCoroutine(self._send(device, payload))
        d.addTimeout(self.timeout_s, self.clock)
        try:
            await d
        except defer.TimeoutError:
            raise RetryablePushError(SERVICE, f"no answer within {self.timeout_s} s") from None

    async def close(self) -> None:
        await self.client.close()

    # --- building

    @staticmethod
    def payload(push: dict[str, Any]) -> bytes:
        title, link = str(push.get("title") or ""), str(push.get("link") or "")

        def encode(body: str) -> bytes:
            return encode_json({"aps": {"alert": {"title": title, "body": body}, "sound": "default"},
                                "link": link})

        return fit_text(encode, str(push.get("text") or ""), MAX_PAYLOAD_BYTES, SERVICE)

    def provider_token(self) -> str:
        """The current provider token, signed anew when it is 50 minutes old."""
        now = int(self.now_s())
        if self._token is None or now - self._token_iat >= PROVIDER_TOKEN_RENEW_S:
            self._sign(now)
        return self._token

    def _sign(self, now: int) -> None:
        self._token = sign_es256(self._key, {"kid": self.key_id}, {"iss": self.team_id, "iat": now})
        self._token_iat = now
        self.tokens_signed += 1

    # --- sending

    async def _send(self, device: str, payload: bytes) -> None:
        for attempt in (1, 2):
            token = self.provider_token()
            headers = [(b"authorization", b"bearer " + token.encode("ascii")),
                       (b"apns-topic", self.topic.encode("utf-8")),
                       (b"apns-push-type", b"alert"),
                       (b"apns-priority", str(self.priority).encode()),
                       (b"apns-expiration", str(self._expiration()).encode()),
                       (b"content-type", b"application/json")]
            try:
                response = await self.client.request(b"POST", b"/3/device/" + device.encode("ascii"), headers,
                                                     payload)
            except (H2Unavailable, ResponseTooLarge) as e:
                raise RetryablePushError(SERVICE, str(e)) from None
            if response.status == 200:
                return
            reason = _reason(response.body)
            if response.status == 403 and reason == "ExpiredProviderToken" and attempt == 1:
                age = int(self.now_s()) - self._token_iat
                if age >= PROVIDER_TOKEN_MIN_AGE_S:
                    self._log.info("APNs says our provider token expired after {age} s: signing a new one", age=age)
                    self._sign(int(self.now_s()))
                    continue
                raise RetryablePushError(
                    SERVICE, f"APNs says a provider token only {age} s old expired: is this server's clock right?")
            raise _error(device, response.status, reason, response.headers.get(b"retry-after"), len(payload))

    def _expiration(self) -> int:
        return 0 if self.expiration_s <= 0 else int(self.now_s()) + self.expiration_s


def _reason(body: bytes) -> str:
    try:
        reason = decode_json_object(body, max_bytes=64 * 1024).get("reason", "")
    except BadJSON:
        return ""
    return reason if isinstance(reason, str) else ""


def _error(device: str, status: int, reason: str, retry_after: bytes | None, size: int) -> Exception:
    said = f"HTTP {status} {reason}".strip()
    if status == 410 or reason in _GONE_REASONS:
        return DeviceGone(SERVICE, device, said)
    if status == 413 or reason == "PayloadTooLarge":
        return PayloadTooLarge(SERVICE, size, MAX_PAYLOAD_BYTES)
    if status == 429 or status >= 500:
        return RetryablePushError(SERVICE, said, retry_after_s=retry_after_seconds(retry_after))
    if reason == "DeviceTokenNotForTopic":
        return PermanentPushError(SERVICE, f"{said}: device {short_token(device)} belongs to another app, "
                                           "or [push] apns_topic is not the app's bundle id")
    if status == 403 or reason in _CONFIG_REASONS:
        return CredentialsRejected(SERVICE, f"APNs refused our credentials or settings: {said}")
    return PermanentPushError(SERVICE, said)
