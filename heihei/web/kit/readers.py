"""
How each surface reads a request's raw parameters (before `params.validate`).

- `query_form_json` (the heihei app's `/api`, `/messageserver`): the query
  string, an urlencoded or multipart form, or a JSON object body, GET and
  POST alike; the body wins over the query string; the first of repeated
  values is used; JSON keeps its types.
- `query_form` (boss): the query string or a form, values as text; a
  multipart field named in `files` is kept as bytes.
- `json_body` (J-IM's `/im/vanke`, the admin API's bodies): one JSON object
  in the body.

Every reader bounds what it takes (the site already capped the body):
`MAX_PARAMS` parameters, `max_value_chars` per text value.
"""

from __future__ import annotations

from typing import Any

from heihei.jsonsafe import BadJSON, decode_json_object
from heihei.web.kit.params import BAD_FORMAT, MAX_PARAMS, TOO_LONG_TEXT, BadParameter


#: what a reader takes of a body when the site says nothing (a BoundedSite caps bodies itself)
DEFAULT_MAX_BODY_BYTES = 1024 * 1024


def site_limit(request) -> int:
    """The body cap of the site serving `request` (heihei.web.limits.BoundedSite)."""
    return getattr(getattr(request, "site", None), "max_body_bytes", DEFAULT_MAX_BODY_BYTES)


def _body(request, max_body_bytes: int) -> bytes:
    return request.content.read(max_body_bytes + 1) if request.content is not None else b""


def query_form_json(request, max_body_bytes: int, files: tuple[str, ...] = ()) -> dict[str, Any]:
    """`files`: multipart fields kept as bytes (uploads)."""
    raw: dict[str, Any] = {}
    # twisted.web merges the query string and an urlencoded/multipart form in request.args
    for name, values in (request.args or {}).items():
        if not values:
            continue
        try:
            key = name.decode("utf-8")
            if key in files and isinstance(values[0], bytes):
                raw.setdefault(key, values[0])
                continue
            value = values[0].decode("utf-8") if isinstance(values[0], bytes) else str(values[0])
        except UnicodeDecodeError:
            raise BadParameter(repr(name)[2:-1], BAD_FORMAT, "not valid UTF-8") from None
        raw.setdefault(key, value)
    content_type = (request.getHeader("content-type") or "").lower()
    if request.method == b"POST" and "json" in content_type:
        body = _body(request, max_body_bytes)
        if body.strip():
            try:
                raw.update(decode_json_object(body, max_bytes=max_body_bytes))
            except BadJSON as e:
                raise BadParameter("body", BAD_FORMAT, e.reason) from None
    if len(raw) > MAX_PARAMS:
        raise BadParameter("parameters", TOO_LONG_TEXT, f"more than {MAX_PARAMS}")
    return raw


def query_form(request, max_value_chars: int, files: tuple[str, ...] = ()) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    for name, values in (request.args or {}).items():
        if not values:
            continue
        try:
            key = name.decode("utf-8")
        except UnicodeDecodeError:
            continue  # not text: not one of ours (a missing one is reported by name)
        if key in files:
            raw[key] = values[0]
            continue
        try:
            value = values[0].decode("utf-8")
        except UnicodeDecodeError:
            continue
        if len(value) > max_value_chars:
            raise BadParameter(key, TOO_LONG_TEXT, f"parameter {key} too long")
        raw.setdefault(key, value)
        if len(raw) > MAX_PARAMS:
            raise BadParameter("parameters", TOO_LONG_TEXT, f"more than {MAX_PARAMS}")
    return raw


def json_body(request, max_body_bytes: int, *, optional: bool = False) -> dict[str, Any]:
    body = _body(request, max_body_bytes)
    if optional and not body.strip():
        return {}
    try:
        return decode_json_object(body, max_bytes=max_body_bytes)
    except BadJSON as e:
        raise BadParameter("body", BAD_FORMAT, e.reason) from None
