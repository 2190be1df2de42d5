"""
Declared parameters: the one place that reads, converts and checks what a
REST client sends, and the source of the OpenAPI 3 document.

Every endpoint of `/api/...` and `/messageserver/...` declares its
parameters (`Param`) instead of parsing them. `collect` gathers the raw
values from the query string, a form body or a JSON object body (GET and POST
alike; the body wins over the query string; the first of repeated values is
used); `validate` converts them (string, long, int, JSON object), applies
`required`, enums, lengths, ranges and patterns, and raises the seed's 700
naming the parameter. `openapi_document` describes the same declarations.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from heihei.jsonsafe import BadJSON, decode_json, decode_json_object
from heihei.heihei.errors import ApiError, bad_parameter

INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1
INT32_MIN, INT32_MAX = -(2 ** 31), 2 ** 31 - 1
#: the most parameters one request may carry (every size is bounded)
MAX_PARAMS = 64
#: a string parameter without its own max_length is cut off here
DEFAULT_MAX_CHARS = 1024
_INT_TEXT = re.compile(r"^-?[0-9]{1,19}$")

KINDS = ("string", "long", "int", "json")


@dataclass(frozen=True)
class Param:
    """One declared parameter. `kind` is string | long | int | json (an object)."""

    name: str
    kind: str = "string"
    required: bool = True
    description: str = ""
    enum: tuple[str, ...] = ()
    min_length: int = 0
    max_length: int = DEFAULT_MAX_CHARS
    minimum: int | None = None
    maximum: int | None = None
    pattern: str | None = None
    default: Any = None
    #: other names clients use for it (the seed's own misspellings)
    aliases: tuple[str, ...] = ()
    #: required only when another parameter has this value: ("accountSource", "Wechat")
    required_if: tuple[str, str] | None = None
    #: the error code for "longer than max_length" when the seed has its own (447)
    too_long_code: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown parameter kind {self.kind!r}")


def string(name: str, **kw) -> Param:
    return Param(name, "string", **kw)


def long(name: str, **kw) -> Param:
    return Param(name, "long", **kw)


def integer(name: str, **kw) -> Param:
    return Param(name, "int", **kw)


def json_object(name: str, **kw) -> Param:
    return Param(name, "json", **kw)


TOKEN = string("token", description="the session token from sign-in", max_length=128)


@dataclass(frozen=True)
class Endpoint:
    """An endpoint's declaration: its full path, how it is authenticated, its parameters."""

    path: str
    summary: str
    params: tuple[Param, ...] = ()
    #: "token" (a user's session token), "signature" (HMAC, messageserver) or None
    auth: str | None = "token"
    #: the seed's error codes for it (documented in the OpenAPI description)
    errors: tuple[int, ...] = ()
    deprecated: bool = False
    tag: str = ""
    #: names of the answer's fields besides errorcode/errormsg (documentation)
    returns: tuple[str, ...] = field(default=())

    def all_params(self) -> tuple[Param, ...]:
        if self.auth == "token":
            return (TOKEN,) + self.params
        if self.auth == "signature":
            return self.params + (string("signature", description="hex HMAC-SHA256 of the other parameters",
                                         max_length=128),)
        return self.params


# -- reading a request ---------------------------------------------------------------


def collect(request, max_body_bytes: int) -> dict[str, Any]:
    """The raw parameters of a twisted.web request: query, then form or JSON body over it.

    Values from the query string and forms are `str`; a JSON body keeps its
    JSON types. Raises 700 for an undecodable body or too many parameters.
    """
    raw: dict[str, Any] = {}
    # twisted.web merges the query string and an urlencoded/multipart form in request.args
    for name, values in (request.args or {}).items():
        if not values:
            continue
        try:
            key = name.decode("utf-8")
            value = values[0].decode("utf-8") if isinstance(values[0], bytes) else str(values[0])
        except UnicodeDecodeError:
            raise bad_parameter(repr(name)[2:-1], "not valid UTF-8") from None
        raw.setdefault(key, value)
    content_type = (request.getHeader("content-type") or "").lower()
    if request.method == b"POST" and "json" in content_type:
        body = request.content.read(max_body_bytes + 1) if request.content is not None else b""
        if body.strip():
            try:
                obj = decode_json_object(body, max_bytes=max_body_bytes)
            except BadJSON as e:
                raise ApiError(700, f"body ({e.reason})") from None
            raw.update(obj)
    if len(raw) > MAX_PARAMS:
        raise ApiError(700, f"more than {MAX_PARAMS} parameters")
    return raw


def validate(endpoint: Endpoint, raw: dict[str, Any]) -> dict[str, Any]:
    """Convert and check every declared parameter; unknown ones are ignored.

    Returns name -> value for every declared parameter (None when absent and
    optional without default). Empty strings count as absent.
    """
    out: dict[str, Any] = {}
    for p in endpoint.params:
        value = _lookup(raw, p)
        needed = p.required
        if p.required_if is not None:
            other, expected = p.required_if
            needed = str(raw.get(other, "")) == expected
        if value is None:
            if needed:
                raise bad_parameter(p.name, "required")
            out[p.name] = p.default
            continue
        out[p.name] = convert(p, value)
    return out


def _lookup(raw: dict[str, Any], p: Param) -> Any:
    for name in (p.name, *p.aliases):
        value = raw.get(name)
        if value is None or (isinstance(value, str) and value == ""):
            continue
        return value
    return None


def convert(p: Param, value: Any) -> Any:
    if p.kind == "string":
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise bad_parameter(p.name, "must be a string")
        text = value if isinstance(value, str) else str(value)
        if len(text) > p.max_length:
            if p.too_long_code is not None:
                raise ApiError(p.too_long_code)
            raise bad_parameter(p.name, f"longer than {p.max_length} characters")
        if len(text) < p.min_length:
            raise bad_parameter(p.name, f"shorter than {p.min_length} characters")
        if p.enum and text not in p.enum:
            raise bad_parameter(p.name, "must be one of " + ", ".join(p.enum))
        if p.pattern is not None and not re.fullmatch(p.pattern, text):
            raise bad_parameter(p.name, "bad format")
        return text
    if p.kind in ("long", "int"):
        low, high = (INT64_MIN, INT64_MAX) if p.kind == "long" else (INT32_MIN, INT32_MAX)
        if isinstance(value, bool):
            raise bad_parameter(p.name, "must be an integer")
        if isinstance(value, str):
            if not _INT_TEXT.match(value.strip()):
                raise bad_parameter(p.name, "must be an integer")
            value = int(value.strip())
        if not isinstance(value, int):
            raise bad_parameter(p.name, "must be an integer")
        if not low <= value <= high:
            raise bad_parameter(p.name, "out of range")
        if p.minimum is not None and value < p.minimum:
            raise bad_parameter(p.name, f"must be at least {p.minimum}")
        if p.maximum is not None and value > p.maximum:
            raise bad_parameter(p.name, f"must be at most {p.maximum}")
        return value
    # json: an object, given as such in a JSON body or as JSON text anywhere
    if isinstance(value, str):
        if len(value.encode("utf-8")) > p.max_length:
            raise bad_parameter(p.name, f"larger than {p.max_length} bytes")
        try:
            value = decode_json(value, max_bytes=p.max_length)
        except BadJSON as e:
            raise bad_parameter(p.name, e.reason) from None
    if not isinstance(value, dict):
        raise bad_parameter(p.name, "must be a JSON object")
    return value


# -- OpenAPI 3 -------------------------------------------------------------------------


def schema_of(p: Param) -> dict[str, Any]:
    if p.kind == "string":
        s: dict[str, Any] = {"type": "string", "maxLength": p.max_length}
        if p.min_length:
            s["minLength"] = p.min_length
        if p.enum:
            s["enum"] = list(p.enum)
        if p.pattern:
            s["pattern"] = p.pattern
    elif p.kind in ("long", "int"):
        s = {"type": "integer", "format": "int64" if p.kind == "long" else "int32"}
        if p.minimum is not None:
            s["minimum"] = p.minimum
        if p.maximum is not None:
            s["maximum"] = p.maximum
    else:
        s = {"type": "object", "additionalProperties": True}
    if p.default is not None:
        s["default"] = p.default
    return s


def _describe(p: Param) -> str:
    text = p.description
    if p.required_if is not None:
        text = (text + " " if text else "") + f"(required when {p.required_if[0]} is {p.required_if[1]})"
    if p.aliases:
        text = (text + " " if text else "") + "(also accepted as " + ", ".join(p.aliases) + ")"
    return text


def _query_parameter(p: Param) -> dict[str, Any]:
    out: dict[str, Any] = {"name": p.name, "in": "query", "required": p.required}
    if p.kind == "json":
        out["content"] = {"application/json": {"schema": schema_of(p)}}
    else:
        out["schema"] = schema_of(p)
    if _describe(p):
        out["description"] = _describe(p)
    return out


def _body_schema(params: tuple[Param, ...], form: bool) -> dict[str, Any]:
    props = {}
    for p in params:
        s = schema_of(p)
        if form and p.kind == "json":
            s = {"type": "string", "description": "a JSON object as text"}
        if _describe(p):
            s = {**s, "description": _describe(p)}
        props[p.name] = s
    schema: dict[str, Any] = {"type": "object", "properties": props}
    required = [p.name for p in params if p.required]
    if required:
        schema["required"] = required
    return schema


ENVELOPE = {
    "type": "object",
    "required": ["errorcode", "errormsg"],
    "properties": {
        "errorcode": {"type": "integer", "description": "0 on success, else the seed's error code"},
        "errormsg": {"type": "string", "description": "\"success\", or the seed's error text"},
    },
    "additionalProperties": True,
}


def openapi_document(endpoints: list[Endpoint], *, server_url: str, version: str) -> dict[str, Any]:
    """An OpenAPI 3.0.3 document for the declared endpoints (GET and POST each)."""
    from heihei.heihei.errors import MESSAGES

    paths: dict[str, Any] = {}
    for ep in sorted(endpoints, key=lambda e: e.path):
        params = ep.all_params()
        codes = sorted(set(ep.errors) | {700} | ({720} if ep.auth == "token" else set())
                       | ({701} if ep.auth == "signature" else set()))
        description = "Error codes: " + ", ".join(f"{c} {MESSAGES.get(c, '')}".strip() for c in codes) + "."
        if ep.returns:
            description += " Answer fields: " + ", ".join(ep.returns) + "."
        responses = {"200": {"description": "the answer envelope (HTTP 200 for every API-level error too)",
                             "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Envelope"}}}},
                     "503": {"description": "a back end (Redis) is unavailable",
                             "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Envelope"}}}}}
        operation_id = ep.path.strip("/").replace("/", "_").replace("-", "_").replace(".", "_")
        common = {"summary": ep.summary, "description": description, "responses": responses}
        if ep.tag:
            common["tags"] = [ep.tag]
        if ep.deprecated:
            common["deprecated"] = True
        get = {**common, "operationId": operation_id + "_get", "parameters": [_query_parameter(p) for p in params]}
        post = {**common, "operationId": operation_id + "_post"}
        if params:
            post["requestBody"] = {"required": any(p.required for p in params), "content": {
                "application/x-www-form-urlencoded": {"schema": _body_schema(params, form=True)},
                "application/json": {"schema": _body_schema(params, form=False)},
            }}
        paths[ep.path] = {"get": get, "post": post}
    return {
        "openapi": "3.0.3",
        "info": {"title": "heihei API (seed 001)", "version": version,
                 "description": "Parameters may be sent in the query string, a form body or a JSON body, "
                                "with GET or POST. Every answer is {errorcode, errormsg, ...}."},
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {"schemas": {"Envelope": ENVELOPE}},
    }
