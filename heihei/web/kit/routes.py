"""
Routes in one style for every HTTP surface.

A `Surface` says how one family of endpoints reads parameters, who may call
it by default, how it answers and how it words every failure: the heihei
app's `{"errorcode", "errormsg", ...}`, boss's `{"code": 1, "message": "OK"}`,
J-IM's `{"code": 200, "msg": "success", "data"}`, the admin API's plain JSON.

An endpoint is a method of a `Routes` class (a Klein app per class, routes
as methods, its dependencies injected) declared with `@endpoint`:

    @endpoint(app, "/follow", "Follow a user", long("userId"), errors=(710,))
    async def follow(self, call, a):
        await self.social.follows.follow(call.user, str(a["userId"]))

Its body is: validated arguments in, one service call, a result out; the
kit does the rest, always in this order: read the parameters, authenticate,
validate, call, answer. Whatever goes wrong becomes the surface's error
answer: a `BadParameter`, an `Unauthorized`, a domain `Refused` (through the
surface's table of reasons), a `WireError` the route raised itself, an
unreachable Redis (503) or a bug (500, logged with its traceback, never shown).
A result may be an `Answer(value, status)` when the status is not 200.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from klein import Klein
from twisted.internet import defer
from twisted.logger import Logger
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from heihei.core.errors import Refused
from heihei.incidents import STORE
from heihei.store.client import StoreUnavailable
from heihei.web.kit.auth import OPEN, Caller, Unauthorized
from heihei.web.kit.params import BadParameter, Endpoint, Param, validate
from heihei.web.kit.resource import KitResource

_log = Logger()


class WireError(Exception):
    """An error in a surface's own terms: its code, a detail for the client, the HTTP status."""

    def __init__(self, code: int, detail: str = "", *, status: int = 200, message: str | None = None,
                 headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
        super().__init__(f"{code} {detail}")
        self.code = code
        self.detail = detail
        self.status = status
        self.message = message
        self.headers = headers


@dataclass(frozen=True)
class Answer:
    """A result with a status other than 200 (the admin API's 201)."""

    value: Any
    status: int = 200


@dataclass
class Call:
    """One request as a route sees it."""

    request: Any
    raw: dict[str, Any]
    caller: Caller

    @property
    def user(self) -> str | None:
        return self.caller.user

    @property
    def token(self) -> str | None:
        return self.caller.token


@dataclass
class Surface:
    """One family of endpoints and its wire conventions."""

    name: str
    #: request -> raw parameters (heihei.web.kit.readers)
    read: Callable[[Any], dict[str, Any]]
    #: (request, result) -> body bytes, for a success
    ok: Callable[[Any, Any], bytes]
    #: (request, WireError) -> body bytes; sets the status and headers
    error: Callable[[Any, WireError], bytes]
    #: BadParameter | Unauthorized | Refused -> WireError
    translate: Callable[[Exception], WireError]
    #: unknown path (or a function of the request giving it), wrong method, unreachable Redis, a bug
    not_found: WireError | Callable[[Any], WireError]
    method_not_allowed: WireError
    unavailable: WireError
    internal: WireError
    #: the JSON schema of its answers, for OpenAPI
    envelope_schema: dict[str, Any] = field(default_factory=lambda: {"type": "object"})
    #: response headers every answer carries
    headers: tuple[tuple[bytes, bytes], ...] = ((b"content-type", b"application/json; charset=utf-8"),)
    #: (status, text) -> the error for a refusal of the site itself (413 body too large, 414, 431, 408)
    refusal: Callable[[int, str], WireError] = field(
        default=lambda status, text: WireError(status, text, status=status))


def site_refusal(surface: Surface, status: int, text: str) -> tuple[bytes, tuple[tuple[bytes, bytes], ...]]:
    """A refusal of the site itself (heihei.web.limits), worded in the surface's envelope: (body, headers)."""
    error = surface.refusal(status, text)
    return surface.error(None, error), surface.headers + error.headers


Handler = Callable[[Any, Call, dict[str, Any]], Awaitable[Any]]


def new_app(surface: Surface, *, check_auth_first: bool = False) -> Klein:
    """A Klein app whose routing errors (unknown path, wrong method) answer in the surface's format.

    With `check_auth_first`, an unknown path or method is answered only to a caller the routes'
    default strategy accepts (the admin API gives an unauthenticated caller no hint)."""
    app = Klein()

    @app.handle_errors(HTTPException)
    async def routing_error(*args):
        owner, request, failure = (args[0] if len(args) == 3 else None), args[-2], args[-1]
        if check_auth_first and owner is not None:
            try:
                await owner.strategy(None).authenticate(request, {})
            except Unauthorized as e:
                return _render_error(surface, request, surface.translate(e))
        if isinstance(failure.value, MethodNotAllowed):
            error = surface.method_not_allowed
        else:
            error = surface.not_found(request) if callable(surface.not_found) else surface.not_found
        return _render_error(surface, request, error)

    return app


def endpoint(app: Klein, path: str, summary: str, *params: Param, auth: str | None = None,
             errors: tuple[int, ...] = (),
             deprecated: bool = False, returns: tuple[str, ...] = (), tag: str = "",
             methods: tuple[str, ...] = ("GET", "POST")) -> Callable[[Handler], Handler]:
    """Declare and route an endpoint (`path` relative to the owning class's `prefix`; Klein's
    `<name>` segments become `path(...)` parameters). `auth` names a strategy of the owning routes
    ("open" for none); None: their default."""

    def decorate(handler: Handler):
        spec = Endpoint(path, summary, tuple(params), auth, tuple(errors), deprecated, tag, tuple(returns),
                        tuple(methods))

        async def route(self, request, **segments):
            return await handle(self, spec, handler, request, segments)

        route.__name__ = handler.__name__
        route.__endpoint__ = spec
        app.route(path, methods=list(methods), endpoint=handler.__name__)(route)
        return route

    return decorate


async def handle(owner: "Routes", spec: Endpoint, handler: Handler, request, segments: dict[str, Any]) -> bytes:
    surface = owner.surface
    try:
        strategy = owner.strategy(spec.auth)
        if getattr(strategy, "headers_only", False):
            # decided from the headers before the body is parsed (an unauthenticated caller cannot
            # make the node parse what it sends)
            caller = await strategy.authenticate(request, {})
            raw = await _read(surface, request)
        else:
            raw = await _read(surface, request)
            caller = await strategy.authenticate(request, raw)
        raw.update(segments)
        args = validate(spec, raw)
        result = await handler(owner, Call(request, raw, caller), args)
    except (BadParameter, Unauthorized, Refused) as e:
        return _render_error(surface, request, surface.translate(e))
    except WireError as e:
        return _render_error(surface, request, e)
    except StoreUnavailable as e:
        STORE.happened(str(e), during=f"{surface.name} {spec.path}")
        return _render_error(surface, request, surface.unavailable)
    except Exception:
        _log.failure("{surface} {path} failed", surface=surface.name, path=spec.path)
        return _render_error(surface, request, surface.internal)
    for name, value in surface.headers:
        request.setHeader(name, value)
    if isinstance(result, Answer):
        request.setResponseCode(result.status)
        result = result.value
    return _sized(request, surface.ok(request, result))


async def _read(surface: Surface, request) -> dict[str, Any]:
    raw = surface.read(request)
    if isinstance(raw, defer.Deferred):  # a large multipart body, parsed in a thread
        raw = await raw
    return raw


def _render_error(surface: Surface, request, error: WireError) -> bytes:
    for name, value in surface.headers + error.headers:
        request.setHeader(name, value)
    request.setResponseCode(error.status)
    return _sized(request, surface.error(request, error))


def _sized(request, body: bytes) -> bytes:
    """The answer with its Content-Length: twisted.web would otherwise send an HTTP/1.1 answer chunked,
    its last chunk in a write of its own, which Nagle's algorithm holds until the client's delayed ACK
    (40-200 ms on Linux) on every kept-alive connection."""
    if isinstance(body, bytes):
        request.setHeader(b"content-length", b"%d" % len(body))
    return body


class Routes:
    """A Klein app for one group of endpoints; subclasses set `app`, `prefix`, `surface` and
    `default_auth`, and the instance fills `strategies` (name -> strategy, heihei.web.kit.auth)
    with what its endpoints name (a strategy needs the instance's secrets and services)."""

    app: Klein
    prefix: str = ""
    surface: Surface
    default_auth: str = "open"
    strategies: dict[str, Any]

    def resource(self):
        # Klein's own resource leaves a reference cycle per request (heihei.web.kit.resource)
        return KitResource(self.app)

    def strategy(self, name: str | None):
        name = name or self.default_auth
        if name == "open":
            return OPEN
        return self.strategies[name]

    @classmethod
    def endpoints(cls) -> list[Endpoint]:
        """This group's declarations with their full paths (for the OpenAPI document)."""
        out = []
        for value in vars(cls).values():
            spec = getattr(value, "__endpoint__", None)
            if spec is not None:
                out.append(dataclasses.replace(spec, path=cls.prefix + spec.path, auth=spec.auth or cls.default_auth))
        return out
