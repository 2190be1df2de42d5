"""
Push providers: how one push reaches one device (`[push] provider`), behind
the `PushProvider` interface so Getui or APNs adapters can be added here.

- `log`: the push is written to the server log.
- (Getui, APNs and FCM: heihei/outbound/push_getui.py, push_apns.py, push_fcm.py,
  routed per device by heihei/outbound/push_factory.py)
- `webhook`: POST the push as JSON to `[push] webhook_url`; with
  `[push] webhook_secret` set, the header `X-Heihei-Signature` carries the hex
  HMAC-SHA256 of the body. Any 2xx answer is success; the answer is read, at
  most `MAX_ANSWER_BYTES`, and thrown away.

What a push contains and who gets one is the domain's: `heihei.heihei.push`.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, Protocol

from twisted.logger import Logger

from heihei.config import ConfigError
from heihei.jsonsafe import encode_json
from heihei.outbound.http import HttpClient, OutboundError
from heihei.outbound.push_errors import short_token

#: a webhook's answer is read (so the connection can be reused) and ignored: it is small
MAX_ANSWER_BYTES = 64 * 1024


class PushProvider(Protocol):
    async def send(self, push: dict[str, Any]) -> None:
        """Deliver one push to one device, or raise."""


class LogPush:
    """Writes the push to the server log; the device token shortened (a token never goes to a log)."""

    _log = Logger()

    async def send(self, push: dict[str, Any]) -> None:
        self._log.info("push to {deviceType} device {clientid}: {title} / {text} ({link})",
                       deviceType=push.get("deviceType"), clientid=short_token(str(push.get("clientid", ""))),
                       title=push.get("title"), text=push.get("text"), link=push.get("link"))


class WebhookError(Exception):
    pass


class WebhookPush:
    def __init__(self, http: HttpClient, url: str, *, secret: str = "", timeout_s: float) -> None:
        self.http = http
        self.url = url
        self.secret = secret.encode("utf-8")
        self.timeout_s = timeout_s

    async def send(self, push: dict[str, Any]) -> None:
        body = encode_json(push)
        headers = {b"Content-Type": [b"application/json; charset=utf-8"]}
        if self.secret:
            headers[b"X-Heihei-Signature"] = [hmac.new(self.secret, body, hashlib.sha256).hexdigest().encode()]
        try:
            answer = await self.http.post(self.url, body, headers=headers, timeout_s=self.timeout_s,
                                          max_bytes=MAX_ANSWER_BYTES)
        except OutboundError as e:
            raise WebhookError(f"push webhook: {e.reason}") from None
        if not 200 <= answer.status < 300:
            raise WebhookError(f"push webhook answered HTTP {answer.status}")


def make_push_provider(settings, http: HttpClient, kind: str | None = None) -> PushProvider:
    """The log or webhook provider (`kind`, default `[push] provider`; `settings` is the `[push]`
    section). The Getui, APNs and FCM adapters and the routing per device are
    heihei.outbound.push_factory's."""
    kind = settings.provider if kind is None else kind
    if kind == "log":
        return LogPush()
    if kind == "webhook":
        if not settings.webhook_url:
            raise ConfigError("[push] provider \"webhook\" needs [push] webhook_url")
        return WebhookPush(http, settings.webhook_url, secret=settings.webhook_secret, timeout_s=settings.timeout_s)
    raise ConfigError(f"[push] a provider must be one of log, webhook, getui, apns, fcm, none; not {kind!r}")
