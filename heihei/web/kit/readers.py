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

from dataclasses import dataclass
from typing import IO, Any

import multipart
from twisted.internet import threads
from urllib.parse import unquote_to_bytes

from heihei.jsonsafe import BadJSON, decode_json_object
from heihei.web.kit.params import BAD_FORMAT, MAX_PARAMS, TOO_LONG_TEXT, BadParameter

#: a multipart body larger than this is parsed in a thread, not on the reactor
PARSE_IN_THREAD_BYTES = 256 * 1024
#: file parts larger than this go to a temporary file while they are parsed
SPOOL_BYTES = 64 * 1024
#: what the text fields of one form may hold in memory together
FORM_TEXT_BYTES = 1024 * 1024


@dataclass
class Upload:
    """A multipart file field: a readable file (spooled to disk when large), its size, its name."""

    file: IO[bytes]
    size: int
    filename: str = ""


#: what a reader takes of a body when the site says nothing (a BoundedSite caps bodies itself)
DEFAULT_MAX_BODY_BYTES = 1024 * 1024


def site_limit(request) -> int:
    """The body cap of the site serving `request` (heihei.web.limits.BoundedSite)."""
    return getattr(getattr(request, "site", None), "max_body_bytes", DEFAULT_MAX_BODY_BYTES)


def _body(request, max_body_bytes: int) -> bytes:
    return request.content.read(max_body_bytes + 1) if request.content is not None else b""


def _content_type(request) -> tuple[str, dict[str, str]]:
    value = request.getHeader("content-type") or ""
    return multipart.parse_options_header(value)


def _unquoted(part: bytes) -> bytes:
    return unquote_to_bytes(part.replace(b"+", b" ")) if b"%" in part or b"+" in part else part


def parse_form(qs: bytes) -> dict[bytes, list[bytes]]:
    """An urlencoded form: name -> values, bytes in, bytes out, blank values kept; what
    twisted.web.http.parse_qs(qs, 1) answers (`&` and `;` separate, a part without `=` is skipped),
    without its two unquote calls per field when nothing in a part is quoted (most of an app's fields:
    ids, numbers, tokens), which were most of the cost of reading such a body."""
    d: dict[bytes, list[bytes]] = {}
    for s1 in qs.split(b"&"):
        for item in s1.split(b";") if b";" in s1 else (s1,):
            k, eq, v = item.partition(b"=")
            if not eq:
                continue
            k, v = _unquoted(k), _unquoted(v)
            if k in d:
                d[k].append(v)
            else:
                d[k] = [v]
    return d


def form_fields(request, max_body_bytes: int, files: tuple[str, ...] = ()):
    """The fields of an urlencoded or multipart POST body: name -> list of text values (bytes), and
    the fields named in `files` as `Upload`s. twisted.web leaves the body unparsed
    (heihei.web.limits.BoundedRequest); a large multipart body is parsed in a thread, its file
    parts streamed to disk, so neither the reactor nor memory holds it."""
    if request.method != b"POST" or request.content is None:
        return {}
    kind, options = _content_type(request)
    if kind == "application/x-www-form-urlencoded":
        # bounded by the site's body cap
        return parse_form(_body(request, max_body_bytes))
    if kind != "multipart/form-data" or not options.get("boundary"):
        return {}
    request.content.seek(0, 2)
    size = request.content.tell()
    request.content.seek(0)

    def parse() -> dict[str, list]:
        out: dict[str, list] = {}
        try:
            parser = multipart.MultipartParser(
                request.content, options["boundary"], content_length=size, part_limit=MAX_PARAMS + 1,
                spool_limit=SPOOL_BYTES, memory_limit=FORM_TEXT_BYTES, disk_limit=max_body_bytes)
            for part in parser:
                name = part.name.encode("utf-8", "surrogateescape")
                if part.name in files:
                    out.setdefault(name, []).append(Upload(part.file, part.size, part.filename or ""))
                else:
                    out.setdefault(name, []).append(part.raw)
        except multipart.MultipartError as e:
            raise BadParameter("body", BAD_FORMAT, f"not a readable multipart form ({e})") from None
        finally:
            request.content.seek(0)
        return out

    if size > PARSE_IN_THREAD_BYTES:
        return threads.deferToThread(parse)
    return parse()


def query_form_json(request, max_body_bytes: int, files: tuple[str, ...] = ()):
    """The query string, an urlencoded or multipart form, or a JSON object body, merged; the
    multipart fields named in `files` are `Upload`s."""
    form = form_fields(request, max_body_bytes, files)
    if not isinstance(form, dict):  # a large multipart body: parsed in a thread
        return form.addCallback(lambda fields: _query_form_json(request, max_body_bytes, fields))
    return _query_form_json(request, max_body_bytes, form)


def _merged(request, form: dict) -> dict:
    """The query string's values, then the body's over them (the body wins)."""
    merged = dict(request.args or {})
    for name, values in form.items():
        merged[name.encode("utf-8") if isinstance(name, str) else name] = values
    return merged


def _query_form_json(request, max_body_bytes: int, form: dict) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    for name, values in _merged(request, form).items():
        if not values:
            continue
        try:
            key = name.decode("utf-8")
            if isinstance(values[0], Upload):
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


def query_form(request, max_value_chars: int, files: tuple[str, ...] = ()):
    form = form_fields(request, site_limit(request), files)
    if not isinstance(form, dict):
        return form.addCallback(lambda fields: _query_form(request, max_value_chars, files, fields))
    return _query_form(request, max_value_chars, files, form)


def _query_form(request, max_value_chars: int, files: tuple[str, ...], form: dict) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    for name, values in _merged(request, form).items():
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
