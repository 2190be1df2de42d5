"""
The REST plumbing shared by `/api/...` and `/messageserver/...`: an endpoint
is a Klein route (GET and POST) plus its `Endpoint` declaration; one wrapper
collects and validates the parameters, authenticates (session token or HMAC
signature), calls the handler with the converted values and renders the
seed's envelope `{"errorcode": 0, "errormsg": "success", ...}`.

API-level errors are HTTP 200 with the seed's code (the shipped clients read
`errorcode`); an unreachable Redis is HTTP 503 / errorcode 503, a bug HTTP
500 / errorcode 500 (logged); an unknown path is HTTP 404 / errorcode 404.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from klein import Klein
from twisted.logger import Logger
from werkzeug.exceptions import HTTPException

from heihei.jsonsafe import encode_json
from heihei.heihei.errors import INTERNAL, UNAVAILABLE, ApiError
from heihei.web.api.params import Endpoint, Param, collect, validate
from heihei.store.client import StoreUnavailable

_log = Logger()


@dataclass
class Call:
    """One request as a handler sees it."""

    request: Any
    raw: dict[str, Any]
    user: str | None = None
    token: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


Handler = Callable[[Any, Call, dict[str, Any]], Awaitable[dict[str, Any] | None]]


def new_app() -> Klein:
    """A Klein app whose routing errors are JSON envelopes too."""
    app = Klein()

    @app.handle_errors(HTTPException)
    def routing_error(*args):
        request, failure = args[-2], args[-1]
        code = getattr(failure.value, "code", 404) or 404
        request.setResponseCode(code)
        request.setHeader(b"content-type", b"application/json; charset=utf-8")
        return encode_json({"errorcode": code, "errormsg": getattr(failure.value, "name", "error")})

    return app


def endpoint(app: Klein, path: str, summary: str, *params: Param, auth: str | None = "token",
             errors: tuple[int, ...] = (), deprecated: bool = False, returns: tuple[str, ...] = (),
             tag: str = "") -> Callable[[Handler], Handler]:
    """Declare and route an endpoint (`path` relative to the owning class's `prefix`)."""
    spec = Endpoint(path, summary, tuple(params), auth, tuple(errors), deprecated, tag, tuple(returns))

    def decorate(handler: Handler):
        async def route(self, request):
            return await handle(self, spec, handler, request)

        route.__name__ = handler.__name__
        route.__endpoint__ = spec
        app.route(path, methods=["GET", "POST"], endpoint=handler.__name__)(route)
        return route

    return decorate


async def handle(owner, spec: Endpoint, handler: Handler, request) -> bytes:
    social = owner.social
    request.setHeader(b"content-type", b"application/json; charset=utf-8")
    request.setHeader(b"cache-control", b"no-store")
    try:
        raw = collect(request, social.http_settings.max_body_bytes)
        call = Call(request=request, raw=raw)
        if spec.auth == "token":
            token = raw.get("token")
            call.token = token if isinstance(token, str) else None
            call.user = await social.tokens.require(call.token)
        elif spec.auth == "signature":
            await owner.verify_signature(call)
        args = validate(spec, raw)
        result = await handler(owner, call, args)
        body = {"errorcode": 0, "errormsg": "success", **(result or {})}
    except ApiError as e:
        body = e.body()
    except StoreUnavailable as e:
        _log.warn("{path}: store unavailable: {why}", path=spec.path, why=str(e))
        request.setResponseCode(503)
        body = ApiError(UNAVAILABLE).body()
    except Exception:
        _log.failure("{path} failed", path=spec.path)
        request.setResponseCode(500)
        body = ApiError(INTERNAL).body()
    return encode_json(body)


class ApiModule:
    """A Klein app for one module of the API; subclasses set `app` and `prefix`."""

    app: Klein
    prefix: str = ""

    def __init__(self, social) -> None:
        self.social = social

    def resource(self):
        return self.app.resource()

    @classmethod
    def endpoints(cls) -> list[Endpoint]:
        """This module's declarations with their full paths (for the OpenAPI document)."""
        out = []
        for value in vars(cls).values():
            spec = getattr(value, "__endpoint__", None)
            if spec is not None:
                out.append(dataclasses.replace(spec, path=cls.prefix + spec.path))
        return out
