"""
SMS providers: how a verification code reaches a phone (`[sms] provider`).

- `log`: the code is written to the server log (development, tests).
- `http`: POST `{"phoneNo", "code", "text"}` as JSON to `[sms] url`; any 2xx
  answer is success, anything else (or no answer within `[sms] timeout_s`)
  raises. The answer is read, at most `MAX_ANSWER_BYTES`, and thrown away. An
  adapter for a commercial SMS gateway is a small service at that URL.

The codes themselves (making, limiting, checking) are the domain's:
`heihei.heihei.sms.SmsCodes`.
"""

from __future__ import annotations

from typing import Protocol

from twisted.logger import Logger

from heihei.config import ConfigError
from heihei.jsonsafe import encode_json
from heihei.outbound.http import HttpClient, OutboundError

#: a gateway's answer is read (so the connection can be reused) and ignored: it is small
MAX_ANSWER_BYTES = 64 * 1024


class SmsProvider(Protocol):
    async def send(self, phone: str, code: str, text: str) -> None:
        """Deliver or raise."""


class LogSms:
    _log = Logger()

    async def send(self, phone: str, code: str, text: str) -> None:
        self._log.info("SMS to {phone}: code {code} ({text})", phone=phone, code=code, text=text)


class HttpSmsError(Exception):
    pass


class HttpSms:
    def __init__(self, http: HttpClient, url: str, *, timeout_s: float) -> None:
        self.http = http
        self.url = url
        self.timeout_s = timeout_s

    async def send(self, phone: str, code: str, text: str) -> None:
        try:
            answer = await self.http.post(self.url, encode_json({"phoneNo": phone, "code": code, "text": text}),
                                          headers={b"Content-Type": [b"application/json; charset=utf-8"]},
                                          timeout_s=self.timeout_s, max_bytes=MAX_ANSWER_BYTES)
        except OutboundError as e:
            raise HttpSmsError(f"SMS gateway: {e.reason}") from None
        if not 200 <= answer.status < 300:
            raise HttpSmsError(f"SMS gateway answered HTTP {answer.status}")


def make_sms_provider(settings, http: HttpClient) -> SmsProvider:
    """The provider `[sms]` asks for (`settings` is the `[sms]` section)."""
    if settings.provider == "log":
        return LogSms()
    if settings.provider == "http":
        if not settings.url:
            raise ConfigError("[sms] provider = \"http\" needs [sms] url")
        return HttpSms(http, settings.url, timeout_s=settings.timeout_s)
    raise ConfigError(f"[sms] provider must be \"log\" or \"http\", not {settings.provider!r}")
