"""
Who may call an endpoint: pluggable strategies, one per kind of credential.

An endpoint names its strategy (or its surface's default); the strategy
reads the request and the raw parameters and returns a `Caller`, or raises
`Unauthorized(reason)`. Each surface words the refusal in its own format
(the heihei app's 720 / 701, boss's `{"code": 403, ...}`, J-IM's 401, the
admin API's 401 with `WWW-Authenticate`).

- `SessionToken`: a user's session token (`token` parameter) → that user.
- `Signature`: an HMAC-SHA256 over the other parameters with a shared secret
  (trusted back ends; `/messageserver`).
- `ApiKey`: a shared key in a header (or a parameter) → a trusted caller.
- `Bearer`: `Authorization: Bearer <token>` (operators).
- `Either`: the first of several that the request carries credentials for
  (boss: an API key, or a user's login ticket, or neither in insecure mode).

Every comparison of a secret is constant-time and done on bytes, so a
non-ASCII credential is a refusal, never an error.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import orjson

from heihei.web.kit.params import Param, string

# why a caller was refused (each surface maps these to its wire format)
NO_CREDENTIALS = "no-credentials"
BAD_TOKEN = "bad-token"
BAD_SIGNATURE = "bad-signature"
BAD_API_KEY = "bad-api-key"
BAD_TICKET = "bad-ticket"
NOT_CONFIGURED = "not-configured"


class Unauthorized(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Caller:
    """Who is calling: a proven user, a trusted back end or operator, or nobody in particular."""

    user: str | None = None
    trusted: bool = False
    #: the session token or signature that proved it (sign-out, replay protection)
    token: str | None = None
    proof: str | None = None


ANONYMOUS = Caller()


def same_secret(given: str | bytes | None, expected: str) -> bool:
    """Constant-time comparison on bytes (hmac.compare_digest refuses non-ASCII str)."""
    if given is None or not expected:
        return False
    if isinstance(given, str):
        given = given.encode("utf-8", "surrogateescape")
    return hmac.compare_digest(given, expected.encode("utf-8"))


class Open:
    """No credentials needed."""

    params: tuple[Param, ...] = ()
    scheme = None

    async def authenticate(self, request, raw: dict[str, Any]) -> Caller:
        return ANONYMOUS


OPEN = Open()


class SessionToken:
    """`token` (a parameter) names a signed-in user: `user_of(token)` returns them or None."""

    scheme = "token"

    def __init__(self, user_of: Callable[[str], Awaitable[str | None]], *, name: str = "token",
                 description: str = "the session token from sign-in") -> None:
        self.user_of = user_of
        self.name = name
        self.params = (string(name, description=description, max_length=128),)

    async def authenticate(self, request, raw: dict[str, Any]) -> Caller:
        token = raw.get(self.name)
        token = token if isinstance(token, str) else None
        user = await self.user_of(token) if token else None
        if user is None:
            raise Unauthorized(BAD_TOKEN)
        return Caller(user=user, token=token)


def canonical(value: Any) -> str:
    """A parameter value as it is signed: text as is, numbers in decimal, booleans as true/false,
    objects and arrays as compact JSON with sorted keys."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode("utf-8")


def sign(secret: str, params: dict[str, Any], *, field: str = "signature") -> str:
    """Lowercase hex HMAC-SHA256 of every parameter but `field`, sorted by name, as `k=v&k=v`."""
    text = "&".join(f"{k}={canonical(params[k])}" for k in sorted(params) if k != field)
    return hmac.new(secret.encode("utf-8"), text.encode("utf-8"), hashlib.sha256).hexdigest()


class Signature:
    """A trusted back end: `signature` is `sign(secret, the other parameters)`."""

    scheme = "signature"

    def __init__(self, secret: Callable[[], str], *, field: str = "signature") -> None:
        self.secret = secret
        self.field = field
        self.params = (string(field, description="hex HMAC-SHA256 of the other parameters", max_length=128),)

    async def authenticate(self, request, raw: dict[str, Any]) -> Caller:
        secret = self.secret()
        if not secret:
            raise Unauthorized(NOT_CONFIGURED, "no server_secret configured")
        given = raw.get(self.field)
        if not isinstance(given, str) or not given:
            raise Unauthorized(BAD_SIGNATURE, "missing")
        expected = sign(secret, raw, field=self.field)
        if not same_secret(given.strip().lower(), expected):
            raise Unauthorized(BAD_SIGNATURE)
        return Caller(trusted=True, proof=expected)


class ApiKey:
    """A trusted back end: the key in `header` (or, if `param` is set, in that parameter)."""

    scheme = "api-key"

    def __init__(self, key: Callable[[], str], *, header: bytes = b"x-api-key", param: str | None = None,
                 insecure: Callable[[], bool] = lambda: False) -> None:
        self.key = key
        self.header = header
        self.param = param
        self.insecure = insecure
        self.params = ()
        #: a key only in a header is checked before the body is read
        self.headers_only = param is None

    def given(self, request, raw: dict[str, Any]) -> str | bytes | None:
        value = request.getHeader(self.header)
        if value is None and self.param is not None:
            value = raw.get(self.param)
        return value

    async def authenticate(self, request, raw: dict[str, Any]) -> Caller:
        return self.check(self.given(request, raw))

    def check(self, given: str | bytes | None) -> Caller:
        key = self.key()
        if not key:
            if self.insecure():
                return Caller(trusted=True)
            raise Unauthorized(NOT_CONFIGURED)
        if given is None:
            raise Unauthorized(NO_CREDENTIALS)
        if not same_secret(given, key):
            raise Unauthorized(BAD_API_KEY)
        return Caller(trusted=True)

    def check_headers(self, headers) -> Caller:
        """The same from a request's raw headers (a site's gate, before the body)."""
        return self.check(headers.getRawHeaders(self.header, [None])[0])


class Bearer:
    """An operator: `Authorization: Bearer <token>`."""

    scheme = "bearer"
    params: tuple[Param, ...] = ()
    headers_only = True

    def __init__(self, token: str) -> None:
        self._token = token

    async def authenticate(self, request, raw: dict[str, Any]) -> Caller:
        return self.check(request.getHeader(b"authorization"))

    def check(self, header: bytes | None) -> Caller:
        header = header or b""
        scheme, _, given = header.partition(b" ")
        if scheme.lower() != b"bearer" or not same_secret(given.strip(), self._token):
            raise Unauthorized(NO_CREDENTIALS if not header else BAD_API_KEY)
        return Caller(trusted=True)

    def check_headers(self, headers) -> Caller:
        return self.check(headers.getRawHeaders(b"authorization", [None])[0])


def header_gate(prefix: bytes, strategy, refusal: Callable[["Unauthorized"], Any]):
    """A site gate (heihei.web.limits.Gate) for the paths under `prefix` whose credentials are
    headers: a caller `strategy` refuses is answered `refusal(error)` before its body is read."""

    def gate(method: bytes, uri: bytes, headers):
        if not uri.startswith(prefix):
            return None
        try:
            strategy.check_headers(headers)
        except Unauthorized as e:
            return refusal(e)
        return None

    return gate
