"""
One HTTP exchange with a payment provider, with a deadline and a bounded read.

    exchange(http, method, url, ...) -> Answer(code, headers, body)

Every way of not getting a usable answer is `ProviderUnavailable` with a reason
for the logs: connection failure, the whole exchange (headers *and* body)
taking longer than `timeout_s` on the injected clock, a body larger than
`max_bytes` (`read_bounded` closes the connection). The HTTP status is the
caller's to judge: each provider answers errors differently.

Redirects are not followed: a payment API that redirects is misconfigured, and
a signed request must not be replayed at another address. Reasons carry the
`what` label, never the URL: Alipay's URLs carry the request signature.
"""

from __future__ import annotations

from dataclasses import dataclass

from treq.client import HTTPClient
from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.http_headers import Headers

from heihei.outbound.http import BodyTooLarge, read_bounded
from heihei.outbound.payments.errors import ProviderUnavailable

USER_AGENT = "heihei-payments/1"


@dataclass(frozen=True)
class Answer:
    code: int
    headers: Headers
    body: bytes

    def header(self, name: str) -> str | None:
        """The header's only value as text; None when absent or repeated (ambiguous)."""
        values = self.headers.getRawHeaders(name)
        if not values or len(values) != 1:
            return None
        return values[0].decode("latin-1") if isinstance(values[0], bytes) else values[0]


def make_http_client(reactor, *, connect_timeout_s: float, persistent: bool = True) -> HTTPClient:
    """A treq client for the payment providers.

    Persistent connections save a TLS handshake per payment; whoever makes the
    client owns its pool and must `closeCachedConnections()` at shutdown."""
    pool = HTTPConnectionPool(reactor, persistent=persistent)
    return HTTPClient(Agent(reactor, pool=pool, connectTimeout=connect_timeout_s))


def make_http_client_with_pool(reactor, *, connect_timeout_s: float) -> tuple[HTTPClient, HTTPConnectionPool]:
    """`make_http_client` with its pool, for an owner that closes it at stop."""
    pool = HTTPConnectionPool(reactor, persistent=True)
    return HTTPClient(Agent(reactor, pool=pool, connectTimeout=connect_timeout_s)), pool


async def exchange(http: HTTPClient, method: str, url: str, *, headers: dict[str, str], body: bytes | None,
                   clock, timeout_s: float, max_bytes: int, what: str) -> Answer:
    """The provider's answer, or ProviderUnavailable. Cancelling it closes the connection."""
    d = defer.Deferred.fromCoroutine(_exchange(http, method, url, headers, body, max_bytes))
    # cancelling treq mid-request surfaces as ResponseNeverReceived, not CancelledError: name it by what happened
    d.addTimeout(timeout_s, clock, onTimeoutCancel=lambda _result, _timeout: Failure(defer.TimeoutError()))
    try:
        return await d
    except defer.TimeoutError:
        raise ProviderUnavailable(f"{what}: no answer within {timeout_s} s") from None
    except BodyTooLarge as e:
        raise ProviderUnavailable(f"{what}: answer larger than {e.limit} bytes") from None
    except defer.CancelledError:
        raise
    except Exception as e:
        raise ProviderUnavailable(f"{what}: {type(e).__name__}: {_first_line(e)}") from None


async def _exchange(http: HTTPClient, method: str, url: str, headers: dict[str, str], body: bytes | None,
                    max_bytes: int) -> Answer:
    sent = Headers({k: [v] for k, v in headers.items()})
    if not sent.hasHeader("user-agent"):
        sent.setRawHeaders("user-agent", [USER_AGENT])
    response = await http.request(method, url, headers=sent, data=body, allow_redirects=False, unbuffered=True)
    data = await read_bounded(response, max_bytes)
    return Answer(response.code, response.headers, data)


def _first_line(e: Exception) -> str:
    text = str(e)
    return text.splitlines()[0][:160] if text else ""
