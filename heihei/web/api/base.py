"""
The heihei app's HTTP surface (seed 001): `/api/...` and `/messageserver/...`.

Its conventions, in the kit's terms (heihei.web.kit):
- parameters from the query string, a form or a JSON body, GET and POST alike;
- a user's session `token` by default (720 without a valid one), or the
  messageserver's HMAC `signature` (701);
- answers `{"errorcode": 0, "errormsg": "success", ...}`; API-level errors
  are HTTP 200 with the seed's code (the shipped clients read `errorcode`);
  an unreachable Redis is HTTP 503 / errorcode 503, a bug HTTP 500 /
  errorcode 500 (logged); an unknown path is HTTP 404 / errorcode 404.
"""

from __future__ import annotations

from typing import Any

from heihei.core.errors import Refused
from heihei.jsonsafe import encode_json
from heihei.web.api import errors as E
from heihei.web.kit import auth, readers
from heihei.web.kit.params import BadParameter, TOO_LONG_TEXT
from heihei.web.kit.routes import Routes, Surface, WireError

#: what the heihei strategies read besides the declared parameters (for OpenAPI)
AUTH_PARAMS = {"token": auth.SessionToken(lambda token: None).params, "signature": auth.Signature(str).params}


def _translate(e: Exception) -> WireError:
    if isinstance(e, BadParameter):
        if e.problem == TOO_LONG_TEXT and e.param is not None and e.param.too_long_code is not None:
            return E.ApiError(e.param.too_long_code)
        return E.bad_parameter(e.name, e.why)
    if isinstance(e, auth.Unauthorized):
        if e.reason == auth.BAD_TOKEN:
            return E.ApiError(E.BAD_TOKEN)
        return E.ApiError(E.BAD_SIGNATURE, e.detail)
    if isinstance(e, Refused):
        return E.of_refusal(e.reason, e.detail)
    raise TypeError(e)


def _ok(request, result: Any) -> bytes:
    return encode_json({"errorcode": 0, "errormsg": "success", **(result or {})})


def _error(request, error: WireError) -> bytes:
    if not isinstance(error, E.ApiError):
        error = E.ApiError(error.code, error.detail, error.message)
    return encode_json(error.body())


HEIHEI = Surface(
    name="heihei",
    read=lambda request: readers.query_form_json(request, readers.site_limit(request)),
    ok=_ok, error=_error, translate=_translate,
    not_found=E.ApiError(404, message="not found", status=404),
    method_not_allowed=E.ApiError(405, message="method not allowed", status=405),
    unavailable=E.ApiError(E.UNAVAILABLE, status=503),
    internal=E.ApiError(E.INTERNAL, status=500),
    envelope_schema={
        "type": "object", "required": ["errorcode", "errormsg"], "additionalProperties": True,
        "properties": {
            "errorcode": {"type": "integer", "description": "0 on success, else the seed's error code"},
            "errormsg": {"type": "string", "description": "\"success\", or the seed's error text"}}},
    headers=((b"content-type", b"application/json; charset=utf-8"), (b"cache-control", b"no-store")),
    refusal=lambda status, text: E.ApiError(status, message=text, status=status),
)


class ApiModule(Routes):
    """A group of the heihei app's endpoints; subclasses set `app` (`new_app(HEIHEI)`) and `prefix`."""

    surface = HEIHEI
    default_auth = "token"

    def __init__(self, social) -> None:
        self.social = social
        self.strategies = {"token": auth.SessionToken(social.user_of)}
