"""
The operators' HTTP API under `/admin/` on the `--http` site.

Every request needs `Authorization: Bearer <token>`, where the token is
`[admin] token`, or, when that is empty, a random one generated at the first
start into `<data_dir>/admin-token` (mode 0600; the log names the file, never
the token). Comparison is constant-time. Without it: 401, whatever the path.

Answers are JSON. Errors are `{"error": "<reason>"}` with 400 (bad input),
401, 404 (no such activity/message/path), 405, 503 (Redis unavailable) or 500.

Live activities (docs/live.md), all backed by `LiveOperators`, which the
manhole exposes too:

    GET    /admin/live/activities                               list
    PUT    /admin/live/activities/{id}                          create (201) or replace (200)
    GET    /admin/live/activities/{id}                          read, with state and online total
    DELETE /admin/live/activities/{id}                          remove; open rooms get -1005 and close
    GET    /admin/live/activities/{id}/mutes                    muted users -> until (Unix s or null)
    PUT    /admin/live/activities/{id}/mutes/{user}             mute; body {"duration_s": n} optional
    DELETE /admin/live/activities/{id}/mutes/{user}             unmute
    GET    /admin/live/activities/{id}/messages?count=50        newest last, with message ids
    DELETE /admin/live/activities/{id}/messages/{messageId}     remove from history
    GET    /admin/moderation/banned-words                       this node's banned words
    POST   /admin/moderation/banned-words/reload                re-read the file on this node
"""

from __future__ import annotations

import functools
import hmac
import os
from typing import Any

from klein import Klein
from twisted.logger import Logger
from werkzeug.exceptions import HTTPException

from heihei.paths import load_or_create_secret
from heihei.jsonsafe import BadJSON, decode_json_object, encode_json
from heihei.live.activities import InvalidActivity
from heihei.live.operators import InvalidRequest, LiveOperators, NoSuchActivity, NoSuchMessage
from heihei.store.client import StoreUnavailable

_log = Logger()

TOKEN_FILE = "admin-token"


class Unauthorized(Exception):
    pass


def admin_token(configured: str, data_dir: str) -> str:
    """`[admin] token`, or the one generated once into the data dir."""
    if configured:
        return configured
    path = os.path.join(data_dir, TOKEN_FILE)
    existed = os.path.exists(path)
    token = load_or_create_secret(data_dir, TOKEN_FILE, 24)
    _log.info("admin API: [admin] token is not set; using the token {how} {path}",
              how="kept in" if existed else "generated into", path=path)
    return token


def authorized(route):
    """Every admin route starts by checking the bearer token."""

    @functools.wraps(route)
    async def checked(self, request, *args, **kwargs):
        self.check(request)
        return await route(self, request, *args, **kwargs)

    return checked


class AdminApp:
    app = Klein()

    def __init__(self, token: str, *, live: LiveOperators, max_body_bytes: int) -> None:
        self._token = token.encode("utf-8")
        self.live = live
        self.max_body_bytes = max_body_bytes

    def resource(self):
        return self.app.resource()

    def check(self, request) -> None:
        header = request.getHeader(b"authorization") or b""
        scheme, _, given = header.partition(b" ")
        if scheme.lower() != b"bearer" or not hmac.compare_digest(given.strip(), self._token):
            raise Unauthorized()

    def _body(self, request, *, optional: bool = False) -> dict[str, Any]:
        raw = request.content.read() if request.content is not None else b""
        if optional and not raw.strip():
            return {}
        try:
            return decode_json_object(raw, max_bytes=self.max_body_bytes)
        except BadJSON as e:
            raise InvalidRequest(f"body: {e.reason}") from None

    # -- activities ----------------------------------------------------------------

    @app.route("/live/activities", methods=["GET"])
    @authorized
    async def list_activities(self, request):
        return _json(request, 200, {"activities": await self.live.activities()})

    @app.route("/live/activities/<aid>", methods=["PUT"])
    @authorized
    async def put_activity(self, request, aid):
        result = await self.live.put_activity(aid, self._body(request))
        created = result.pop("created")
        return _json(request, 201 if created else 200, result)

    @app.route("/live/activities/<aid>", methods=["GET"])
    @authorized
    async def get_activity(self, request, aid):
        return _json(request, 200, await self.live.activity(aid))

    @app.route("/live/activities/<aid>", methods=["DELETE"])
    @authorized
    async def delete_activity(self, request, aid):
        await self.live.remove_activity(aid)
        return _json(request, 200, {"removed": aid})

    # -- mutes -----------------------------------------------------------------------

    @app.route("/live/activities/<aid>/mutes", methods=["GET"])
    @authorized
    async def list_mutes(self, request, aid):
        return _json(request, 200, {"activityId": aid, "muted": await self.live.muted(aid)})

    @app.route("/live/activities/<aid>/mutes/<user>", methods=["PUT"])
    @authorized
    async def mute(self, request, aid, user):
        body = self._body(request, optional=True)
        unknown = set(body) - {"duration_s"}
        if unknown:
            raise InvalidRequest(f"unknown fields: {', '.join(sorted(unknown))}")
        return _json(request, 200, await self.live.mute(aid, user, body.get("duration_s")))

    @app.route("/live/activities/<aid>/mutes/<user>", methods=["DELETE"])
    @authorized
    async def unmute(self, request, aid, user):
        was = await self.live.unmute(aid, user)
        return _json(request, 200, {"activityId": aid, "user": user, "wasMuted": was})

    # -- history ------------------------------------------------------------------------

    @app.route("/live/activities/<aid>/messages", methods=["GET"])
    @authorized
    async def messages(self, request, aid):
        raw = (request.args.get(b"count") or [b"50"])[0]
        if not raw.isdigit() or len(raw) > 6:
            raise InvalidRequest("count must be an integer")
        return _json(request, 200, {"activityId": aid, "messages": await self.live.messages(aid, int(raw))})

    @app.route("/live/activities/<aid>/messages/<mid>", methods=["DELETE"])
    @authorized
    async def remove_message(self, request, aid, mid):
        return _json(request, 200, {"removed": await self.live.remove_message(aid, mid)})

    # -- banned words (this node) -----------------------------------------------------------

    @app.route("/moderation/banned-words", methods=["GET"])
    @authorized
    async def banned_words(self, request):
        return _json(request, 200, {"words": self.live.banned_words()})

    @app.route("/moderation/banned-words/reload", methods=["POST"])
    @authorized
    async def reload_banned_words(self, request):
        try:
            count = self.live.reload_banned_words()
        except OSError as e:
            return _json(request, 500, {"error": f"cannot read the banned words file: {e.strerror}"})
        return _json(request, 200, {"words": count})

    # -- errors ---------------------------------------------------------------------------

    @app.handle_errors(Unauthorized)
    def unauthorized(self, request, failure):
        request.setHeader(b"www-authenticate", b'Bearer realm="heihei-admin"')
        return _json(request, 401, {"error": "unauthorized: send Authorization: Bearer <admin token>"})

    @app.handle_errors(InvalidActivity, InvalidRequest)
    def bad_request(self, request, failure):
        return _json(request, 400, {"error": str(failure.value)})

    @app.handle_errors(NoSuchActivity)
    def no_activity(self, request, failure):
        return _json(request, 404, {"error": "no such activity"})

    @app.handle_errors(NoSuchMessage)
    def no_message(self, request, failure):
        return _json(request, 404, {"error": "no such message"})

    @app.handle_errors(StoreUnavailable)
    def unavailable(self, request, failure):
        return _json(request, 503, {"error": "storage unavailable, retry later"})

    @app.handle_errors(HTTPException)
    def routing(self, request, failure):
        # unknown path or method: still no hint to an unauthenticated caller
        try:
            self.check(request)
        except Unauthorized:
            return self.unauthorized(request, failure)
        return _json(request, failure.value.code or 404, {"error": failure.value.name.lower()})

    @app.handle_errors(Exception)
    def internal(self, request, failure):
        _log.failure("admin request {uri} failed", failure=failure, uri=request.uri)
        return _json(request, 500, {"error": "internal error"})


def _json(request, code: int, value: Any) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json; charset=utf-8")
    return encode_json(value)
