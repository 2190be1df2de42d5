"""
Declared parameters: the one place that converts and checks what an HTTP
client sends, and the source of the OpenAPI documents.

Every endpoint of every surface declares its parameters (`Param`) instead of
parsing them. A surface's reader (heihei.web.kit.readers) gathers the raw
values; `validate` converts them (string, long, int, number, bool, JSON
object, uploaded file, or a surface's own converter), applies `required`,
enums, lengths, ranges and patterns, and raises `BadParameter` naming the
parameter and what is wrong with it. Each surface words that in its own
format (the heihei app's `700 参数错误: phoneNo (required)`, J-IM's
`senderId is required`, boss's `missing groupid`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

from heihei.jsonsafe import BadJSON, decode_json

INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1
INT32_MIN, INT32_MAX = -(2 ** 31), 2 ** 31 - 1
#: the most parameters one request may carry (every size is bounded)
MAX_PARAMS = 64
#: a string parameter without its own max_length is cut off here
DEFAULT_MAX_CHARS = 1024
_INT_TEXT = re.compile(r"^-?[0-9]{1,19}$")
_NUMBER_TEXT = re.compile(r"^-?[0-9]{1,15}(\.[0-9]{1,15})?$")

KINDS = ("string", "long", "int", "number", "bool", "json", "file")

# what is wrong with a parameter (BadParameter.problem); surfaces word each their own way
MISSING = "missing"
WRONG_TYPE = "type"
OUT_OF_RANGE = "range"
TOO_LONG_TEXT = "too-long"
TOO_SHORT = "too-short"
NOT_ALLOWED = "enum"
BAD_FORMAT = "format"


class BadParameter(Exception):
    """A parameter is missing or wrong; `why` is a short English explanation for the client."""

    def __init__(self, name: str, problem: str, why: str, param: "Param | None" = None) -> None:
        super().__init__(f"{name} ({why})")
        self.name = name
        self.problem = problem
        self.why = why
        self.param = param


@dataclass(frozen=True)
class Param:
    """One declared parameter. `kind` is one of KINDS; `convert` replaces the kind's conversion
    with a surface's own (it gets the raw value and returns the converted one, or raises)."""

    name: str
    kind: str = "string"
    required: bool = True
    description: str = ""
    #: the values allowed (strings, or integers for the integer kinds)
    enum: tuple[Any, ...] = ()
    min_length: int = 0
    max_length: int = DEFAULT_MAX_CHARS
    minimum: float | None = None
    maximum: float | None = None
    pattern: str | None = None
    default: Any = None
    #: other names clients use for it (the seed's own misspellings)
    aliases: tuple[str, ...] = ()
    #: required only when another parameter has this value (or one of these): ("accountSource", "Wechat"),
    #: ("type", ("1", "2"))
    required_if: tuple[str, str | tuple[str, ...]] | None = None
    #: the surface's error code for "longer than max_length" where the contract has its own (447)
    too_long_code: int | None = None
    #: a surface's own conversion and check (exact wording of its errors)
    convert: Callable[[Any], Any] | None = field(default=None, compare=False)
    #: where it comes from: "query" (query string or body), "path" (a route segment) or "body" (the
    #: request's JSON body itself, read whole by the surface into this one parameter: the admin API)
    where: str = "query"
    #: a JSON object's own fields (documentation: the OpenAPI schema of the object; the route checks them)
    fields: tuple["Param", ...] = field(default=(), compare=False)
    #: whether the object may carry fields besides `fields` (documentation, with `fields`)
    open_object: bool = True
    #: a JSON object's whole JSON schema where `fields` cannot say it (arrays of objects ...)
    schema: dict[str, Any] | None = field(default=None, compare=False)
    #: treat an empty string as absent (the usual reading of forms)
    empty_is_absent: bool = True
    #: a surface's own words for "required and absent" (else it words it itself)
    missing: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown parameter kind {self.kind!r}")


def string(name: str, **kw) -> Param:
    return Param(name, "string", **kw)


def long(name: str, **kw) -> Param:
    return Param(name, "long", **kw)


def integer(name: str, **kw) -> Param:
    return Param(name, "int", **kw)


def number(name: str, **kw) -> Param:
    return Param(name, "number", **kw)


def boolean(name: str, **kw) -> Param:
    return Param(name, "bool", **kw)


def json_object(name: str, **kw) -> Param:
    return Param(name, "json", **kw)


def upload(name: str, **kw) -> Param:
    """A multipart file field: a `heihei.web.kit.readers.Upload` (its file spooled to disk when large)."""
    return Param(name, "file", **kw)


def path(name: str, **kw) -> Param:
    """A route segment (`/activities/<aid>`)."""
    return Param(name, "string", where="path", **kw)


@dataclass(frozen=True)
class Endpoint:
    """An endpoint's declaration: path, methods, how it is authenticated, its parameters."""

    path: str
    summary: str
    params: tuple[Param, ...] = ()
    #: the name of its auth strategy ("open", "token", "signature", "api-key", "bearer", a surface's
    #: own); None: the default of the routes it belongs to (heihei.web.kit.routes.Routes)
    auth: str | None = None
    #: the surface's error codes for it (documented in the OpenAPI description)
    errors: tuple[int, ...] = ()
    deprecated: bool = False
    tag: str = ""
    #: names of the answer's fields besides the envelope's (documentation)
    returns: tuple[str, ...] = ()
    methods: tuple[str, ...] = ("GET", "POST")

    def all_params(self, auth_params: dict[str, tuple["Param", ...]] | None = None) -> tuple["Param", ...]:
        """Its parameters, with those its auth strategy reads (`auth_params`: strategy name -> params)."""
        return tuple((auth_params or {}).get(self.auth or "", ())) + self.params


# -- converting --------------------------------------------------------------------------


def validate(endpoint: Endpoint, raw: dict[str, Any]) -> dict[str, Any]:
    """Convert and check every declared parameter; unknown ones are ignored.

    Returns name -> value for every declared parameter (its default when it
    is absent and optional)."""
    out: dict[str, Any] = {}
    for p in endpoint.params:
        value = lookup(raw, p)
        needed = p.required
        if p.required_if is not None:
            other = p.required_if[0]
            needed = str(raw.get(other, "")) in condition_values(p)
        if value is None:
            if needed:
                raise BadParameter(p.name, MISSING, p.missing or "required", p)
            out[p.name] = p.default
            continue
        out[p.name] = p.convert(value) if p.convert is not None else convert(p, value)
    return out


def condition_values(p: Param) -> tuple[str, ...]:
    """The values of the other parameter that make `p` required (`required_if`), as text."""
    assert p.required_if is not None
    values = p.required_if[1]
    return values if isinstance(values, tuple) else (values,)


def lookup(raw: dict[str, Any], p: Param) -> Any:
    for name in (p.name, *p.aliases):
        value = raw.get(name)
        if value is None or (p.empty_is_absent and isinstance(value, str) and value == ""):
            continue
        return value
    return None


def convert(p: Param, value: Any) -> Any:
    kind = p.kind
    if kind == "string":
        return _string(p, value)
    if kind in ("long", "int"):
        return _integer(p, value)
    if kind == "number":
        return _number(p, value)
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value in ("0", "1", "true", "false"):
            return value in ("1", "true")
        raise BadParameter(p.name, WRONG_TYPE, "must be true or false", p)
    if kind == "file":
        if not (hasattr(value, "file") and hasattr(value, "size")):  # heihei.web.kit.readers.Upload
            raise BadParameter(p.name, WRONG_TYPE, "must be a multipart file", p)
        return value
    return _json(p, value)


def _string(p: Param, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise BadParameter(p.name, WRONG_TYPE, "must be a string", p)
    text = value if isinstance(value, str) else str(value)
    if len(text) > p.max_length:
        raise BadParameter(p.name, TOO_LONG_TEXT, f"longer than {p.max_length} characters", p)
    if len(text) < p.min_length:
        raise BadParameter(p.name, TOO_SHORT, f"shorter than {p.min_length} characters", p)
    if p.enum and text not in p.enum:
        raise BadParameter(p.name, NOT_ALLOWED, "must be one of " + ", ".join(map(str, p.enum)), p)
    if p.pattern is not None and not re.fullmatch(p.pattern, text):
        raise BadParameter(p.name, BAD_FORMAT, "bad format", p)
    return text


def _integer(p: Param, value: Any) -> int:
    low, high = (INT64_MIN, INT64_MAX) if p.kind == "long" else (INT32_MIN, INT32_MAX)
    if isinstance(value, bool):
        raise BadParameter(p.name, WRONG_TYPE, "must be an integer", p)
    if isinstance(value, str):
        if not _INT_TEXT.match(value.strip()):
            raise BadParameter(p.name, WRONG_TYPE, "must be an integer", p)
        value = int(value.strip())
    if not isinstance(value, int):
        raise BadParameter(p.name, WRONG_TYPE, "must be an integer", p)
    if not low <= value <= high:
        raise BadParameter(p.name, OUT_OF_RANGE, "out of range", p)
    if p.enum and value not in p.enum:
        raise BadParameter(p.name, NOT_ALLOWED, "must be one of " + ", ".join(map(str, p.enum)), p)
    _check_range(p, value)
    return value


def _number(p: Param, value: Any) -> float:
    if isinstance(value, bool):
        raise BadParameter(p.name, WRONG_TYPE, "must be a number", p)
    if isinstance(value, str):
        if not _NUMBER_TEXT.match(value.strip()):
            raise BadParameter(p.name, WRONG_TYPE, "must be a number", p)
        value = float(value.strip())
    if not isinstance(value, (int, float)) or value != value or value in (float("inf"), float("-inf")):
        raise BadParameter(p.name, WRONG_TYPE, "must be a number", p)
    _check_range(p, value)
    return float(value)


def _check_range(p: Param, value: float) -> None:
    if p.minimum is not None and value < p.minimum:
        raise BadParameter(p.name, OUT_OF_RANGE, f"must be at least {p.minimum:g}", p)
    if p.maximum is not None and value > p.maximum:
        raise BadParameter(p.name, OUT_OF_RANGE, f"must be at most {p.maximum:g}", p)


def _json(p: Param, value: Any) -> dict:
    """An object, given as such in a JSON body or as JSON text anywhere."""
    if isinstance(value, str):
        if len(value.encode("utf-8")) > p.max_length:
            raise BadParameter(p.name, TOO_LONG_TEXT, f"larger than {p.max_length} bytes", p)
        try:
            value = decode_json(value, max_bytes=p.max_length)
        except BadJSON as e:
            raise BadParameter(p.name, BAD_FORMAT, e.reason, p) from None
    if not isinstance(value, dict):
        raise BadParameter(p.name, WRONG_TYPE, "must be a JSON object", p)
    return value
