"""
`/media/...`: the media server's callbacks (server to server; docs/heihei-live.md
has working configurations).

Every URL carries the shared secret as `?hook_key=<[media] callback_key>` (or
the header `X-Heihei-Media-Key`); without it, or with an empty callback_key,
every call is refused (401). Not `key`: nginx-rtmp posts the stream's own
query as form fields next to the URL's, and the client's streaming SDK
publishes with `?key=...` (streams.py, qiniuObj), which would shadow it. A refusal answers HTTP 403, which every one of
these servers takes as "no": nginx-rtmp drops the publisher or player on any
non-2xx, SRS on anything but HTTP 200 with code 0, Node-Media-Server closes
the session on a non-200.

    POST /media/nginx?hook_key=  nginx-rtmp: on_publish, on_publish_done, on_play, on_record_done all
                             point here (form posts; `call` says which; the stream's own query —
                             sign, pk — arrives as form fields next to app and name)
    POST /media/srs?hook_key=    SRS HTTP callbacks (JSON {action: on_publish | on_unpublish | on_play |
                             on_dvr, client_id, app, stream, param: "?sign=..&pk=..", file});
                             answers {"code": 0}
    POST /media/nms?hook_key=    Node-Media-Server's notify.url (JSON {action: prePublish | donePublish |
                             prePlay | doneRecord ..., id, app, name, query: {sign, pk}, filePath})

Anything else these servers report (connect, play_done, update ...) is
answered 200 and ignored.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from heihei.heihei.livemedia import MediaRefused
from heihei.core.errors import Refused
from heihei.jsonsafe import BadJSON, decode_json_object, encode_json
from heihei.web.kit import auth, readers
from heihei.web.kit.params import BadParameter, json_object, string
from heihei.web.kit.routes import Routes, Surface, WireError, endpoint, new_app

NAME = r"[A-Za-z0-9_-]{1,64}"
#: the query parameter carrying [media] callback_key
HOOK_KEY = "hook_key"
MAX_BODY_BYTES = 64 * 1024


def _read(request) -> dict[str, Any]:
    """Query string and form fields, and a JSON object body whatever its content type (NMS posts JSON
    as text/plain)."""
    raw = readers.query_form_json(request, MAX_BODY_BYTES)
    content_type = (request.getHeader("content-type") or "").lower()
    if request.method == b"POST" and "json" not in content_type and "form" not in content_type:
        body = request.content.read(MAX_BODY_BYTES + 1) if request.content is not None else b""
        if body.strip().startswith(b"{"):
            try:
                raw.update(decode_json_object(body, max_bytes=MAX_BODY_BYTES))
            except BadJSON as e:
                raise BadParameter("body", "format", e.reason) from None
    return raw


def _translate(e: Exception) -> WireError:
    if isinstance(e, BadParameter):
        return WireError(400, f"{e.name} ({e.why})", status=400)
    if isinstance(e, auth.Unauthorized):
        return WireError(401, "bad or missing key", status=401)
    if isinstance(e, Refused):
        return WireError(403, e.reason, status=403)
    raise TypeError(e)


MEDIA = Surface(
    name="media",
    read=_read,
    ok=lambda request, result: encode_json({"code": 0, **(result or {})}),
    error=lambda request, error: encode_json({"code": error.code, "msg": error.message or error.detail}),
    translate=_translate,
    not_found=WireError(404, "not found", status=404),
    method_not_allowed=WireError(405, "method not allowed", status=405),
    unavailable=WireError(503, "unavailable", status=503),
    internal=WireError(500, "internal error", status=500),
)


class MediaHooks(Routes):
    app = new_app(MEDIA)
    prefix = "/media"
    surface = MEDIA
    default_auth = "key"

    def __init__(self, lives, callback_key) -> None:
        self.lives = lives
        self.strategies = {"key": auth.ApiKey(callback_key, header=b"x-heihei-media-key", param=HOOK_KEY)}

    async def _gate(self, coro) -> None:
        try:
            await coro
        except MediaRefused as e:
            raise WireError(403, e.reason, status=403) from None

    @endpoint(app, "/nginx", "nginx-rtmp's on_publish / on_publish_done / on_play / on_record_done",
              string("call", max_length=32), string("app", pattern=NAME), string("name", pattern=NAME),
              string("sign", required=False, max_length=64), string("pk", required=False, max_length=64),
              string("clientid", required=False, max_length=64), string("path", required=False, max_length=512),
              methods=("POST",))
    async def nginx(self, call, a):
        media, query = self.lives.media, {"sign": a["sign"], "pk": a["pk"]}
        if a["call"] == "publish":
            await self._gate(media.publish(a["app"], a["name"], query, "nginx-" + (a["clientid"] or "")))
        elif a["call"] == "publish_done":
            await media.unpublish(a["app"], a["name"], "nginx-" + (a["clientid"] or ""))
        elif a["call"] == "play":
            await self._gate(media.play(a["app"], a["name"], query))
        elif a["call"] == "record_done":
            await media.recorded(a["app"], a["name"], a["path"] or "")

    @endpoint(app, "/srs", "SRS's on_publish / on_unpublish / on_play / on_dvr (JSON)",
              string("action", max_length=32), string("app", pattern=NAME), string("stream", pattern=NAME),
              string("param", required=False, max_length=1024), string("client_id", required=False, max_length=64),
              string("file", required=False, max_length=512), methods=("POST",))
    async def srs(self, call, a):
        media = self.lives.media
        query = dict(parse_qsl((a["param"] or "").lstrip("?")))
        client = "srs-" + (a["client_id"] or "")
        if a["action"] == "on_publish":
            await self._gate(media.publish(a["app"], a["stream"], query, client))
        elif a["action"] == "on_unpublish":
            await media.unpublish(a["app"], a["stream"], client)
        elif a["action"] == "on_play":
            await self._gate(media.play(a["app"], a["stream"], query))
        elif a["action"] == "on_dvr":
            await media.recorded(a["app"], a["stream"], a["file"] or "")

    @endpoint(app, "/nms", "Node-Media-Server's notify webhook (JSON)",
              string("action", max_length=32), string("app", pattern=NAME), string("name", pattern=NAME),
              json_object("query", required=False, max_length=4096), string("id", required=False, max_length=64),
              string("filePath", required=False, max_length=512), methods=("POST",))
    async def nms(self, call, a):
        media = self.lives.media
        query = {k: v for k, v in (a["query"] or {}).items() if isinstance(v, str)}
        client = "nms-" + (a["id"] or "")
        if a["action"] == "prePublish":
            await self._gate(media.publish(a["app"], a["name"], query, client))
        elif a["action"] == "donePublish":
            await media.unpublish(a["app"], a["name"], client)
        elif a["action"] == "prePlay":
            await self._gate(media.play(a["app"], a["name"], query))
        elif a["action"] == "doneRecord":
            await media.recorded(a["app"], a["name"], a["filePath"] or "")
