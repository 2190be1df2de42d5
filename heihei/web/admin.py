"""
The operators' HTTP API under `/admin/` on the `--http` site: node-wide, each
realm contributing its own routes (heihei/realms.py mounts them).

Every request needs `Authorization: Bearer <token>`, where the token is
`[admin] token`, or, when that is empty, a random one generated at the first
start into `<data_dir>/admin-token` (mode 0600; the log names the file, never
the token). Comparison is constant-time. Without it: 401, whatever the path
(an unknown path or method is not even admitted to exist).

Answers are JSON. Errors are `{"error": "<reason>"}` with 400 (bad input),
401, 404 (no such activity/message/path), 405, 503 (Redis unavailable) or 500.

    GET    /admin/moderation/banned-words                       this node's banned words
    POST   /admin/moderation/banned-words/reload                re-read the file on this node

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
"""

from __future__ import annotations

import os
from typing import Any

from twisted.logger import Logger

from heihei.core import errors
from heihei.core.errors import Refused
from heihei.core.moderation import ModerationOperators
from heihei.jsonsafe import encode_json
from heihei.live.operators import MAX_LISTING, LiveOperators
from heihei.paths import load_or_create_secret
from heihei.live.activities import ACTIVITY_ID
from heihei.web import admin_bodies as bodies
from heihei.web.kit import auth, openapi, readers
from heihei.web.kit.params import OUT_OF_RANGE, BadParameter, integer, path
from heihei.web.kit.routes import Answer, Routes, Surface, WireError, endpoint, new_app
from heihei.web.limits import EarlyAnswer
from heihei.textnum import is_digits

_log = Logger()

TOKEN_FILE = "admin-token"
UNAUTHORIZED = WireError(401, "unauthorized: send Authorization: Bearer <admin token>", status=401,
                         headers=((b"www-authenticate", b'Bearer realm="heihei-admin"'),))
#: domain refusal -> HTTP status
REFUSALS = {errors.NOT_FOUND: 404, errors.BAD_REQUEST: 400, errors.NO_SUCH_GROUP: 404, errors.FORBIDDEN: 403}


def admin_token(configured: str, data_dir: str) -> str:
    """`[admin] token`, or the one generated once into the data dir."""
    if configured:
        return configured
    file = os.path.join(data_dir, TOKEN_FILE)
    existed = os.path.exists(file)
    token = load_or_create_secret(data_dir, TOKEN_FILE, 24)
    _log.info("admin API: [admin] token is not set; using the token {how} {path}",
              how="kept in" if existed else "generated into", path=file)
    return token


def _read(request) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    for name, values in (request.args or {}).items():
        try:
            raw[name.decode("utf-8")] = values[0].decode("utf-8")
        except (UnicodeDecodeError, IndexError):
            continue
    if request.method in (b"PUT", b"POST", b"PATCH"):
        raw["body"] = readers.json_body(request, readers.site_limit(request), optional=True)
    return raw


def _translate(e: Exception) -> WireError:
    if isinstance(e, BadParameter):
        return WireError(400, f"{e.name}: {e.why}", status=400)
    if isinstance(e, auth.Unauthorized):
        return UNAUTHORIZED
    if isinstance(e, Refused):
        status = REFUSALS.get(e.reason, 400)
        return WireError(status, e.detail or e.reason, status=status)
    raise TypeError(e)


ADMIN = Surface(
    name="admin", read=_read, translate=_translate,
    ok=lambda request, result: encode_json(result),
    error=lambda request, error: encode_json({"error": error.detail}),
    not_found=WireError(404, "not found", status=404),
    method_not_allowed=WireError(405, "method not allowed", status=405),
    unavailable=WireError(503, "storage unavailable, retry later", status=503),
    internal=WireError(500, "internal error", status=500),
    envelope_schema={"type": "object", "description": "the result, or {\"error\": reason}"},
)


class AdminRoutes(Routes):
    """A group of operator routes: bearer token by default, unknown paths answered only to operators."""

    surface = ADMIN
    default_auth = "bearer"

    def __init__(self, token: str) -> None:
        self.strategies = {"bearer": auth.Bearer(token)}


def admin_gate(token: str):
    """Every /admin/ request shows its bearer token in the headers before its body is read."""

    def refusal(e: auth.Unauthorized) -> EarlyAnswer:
        return EarlyAnswer(401, "admin call without the token", encode_json({"error": UNAUTHORIZED.detail}),
                           ((b"content-type", b"application/json; charset=utf-8"),) + UNAUTHORIZED.headers)

    return auth.header_gate(b"/admin/", auth.Bearer(token), refusal)


class AdminFallback(AdminRoutes):
    """Any path under /admin/ that no group claims: 401 or, to an operator, 404; and the
    OpenAPI document of every group (`groups`: their Routes classes)."""

    app = new_app(ADMIN, check_auth_first=True)
    prefix = "/admin"

    def __init__(self, token: str, groups: list[type[AdminRoutes]]) -> None:
        super().__init__(token)
        self.groups = groups

    @endpoint(app, "/openapi.json", "This API's OpenAPI document", methods=("GET",))
    async def openapi(self, call, a):
        return openapi.document([openapi.group(g, envelope="AdminAnswer", body=("json",))
                                 for g in [type(self), *self.groups]],
                                title="heihei operators' API", server_url="/", version="1.0")


class ModerationAdmin(AdminRoutes):
    app = new_app(ADMIN, check_auth_first=True)
    prefix = "/admin/moderation"

    def __init__(self, token: str, moderation: ModerationOperators) -> None:
        super().__init__(token)
        self.moderation = moderation

    @endpoint(app, "/banned-words", "This node's banned words", methods=("GET",))
    async def banned_words(self, call, a):
        return {"words": self.moderation.banned_words()}

    @endpoint(app, "/banned-words/reload", "Read the banned words file again (this node)", methods=("POST",))
    async def reload_banned_words(self, call, a):
        try:
            count = self.moderation.reload_banned_words()
        except OSError as e:
            raise WireError(500, f"cannot read the banned words file: {e.strerror}", status=500) from None
        return {"words": count}


#: the most messages one listing gives
MAX_COUNT = MAX_LISTING


def _count(value: str) -> int:
    if not is_digits(value) or len(value) > len(str(MAX_COUNT)) or not 1 <= int(value) <= MAX_COUNT:
        raise BadParameter("count", OUT_OF_RANGE, f"must be an integer from 1 to {MAX_COUNT}")
    return int(value)


#: an activity id: the pattern is documented, and the live operators apply it in their own words (a
#: malformed id is "no such activity" to a read, and refused with the rule by a PUT)
AID = path("aid", pattern=ACTIVITY_ID.pattern.strip("^$"), max_length=64, convert=str)


class LiveAdmin(AdminRoutes):
    """The live realm's activities, mutes and messages (heihei.live.operators)."""

    app = new_app(ADMIN, check_auth_first=True)
    prefix = "/admin/live"

    def __init__(self, token: str, live: LiveOperators) -> None:
        super().__init__(token)
        self.live = live

    @endpoint(app, "/activities", "Every activity", methods=("GET",))
    async def list_activities(self, call, a):
        return {"activities": await self.live.activities()}

    @endpoint(app, "/activities/<aid>", "Create (201) or replace an activity", AID,
              bodies.ACTIVITY, methods=("PUT",))
    async def put_activity(self, call, a):
        result = await self.live.put_activity(a["aid"], a["body"])
        created = result.pop("created")
        return Answer(result, 201 if created else 200)

    @endpoint(app, "/activities/<aid>", "An activity with its state and online total", AID, methods=("GET",))
    async def get_activity(self, call, a):
        return await self.live.activity(a["aid"])

    @endpoint(app, "/activities/<aid>", "Remove an activity: open rooms get -1005 and close", AID,
              methods=("DELETE",))
    async def delete_activity(self, call, a):
        await self.live.remove_activity(a["aid"])
        return {"removed": a["aid"]}

    @endpoint(app, "/activities/<aid>/mutes", "Muted users -> end of the mute (Unix s or null)", AID,
              methods=("GET",))
    async def list_mutes(self, call, a):
        return {"activityId": a["aid"], "muted": await self.live.muted(a["aid"])}

    @endpoint(app, "/activities/<aid>/mutes/<user>", "Mute a user (for duration_s, or until unmuted)", AID,
              path("user", max_length=1024), bodies.MUTE, methods=("PUT",))
    async def mute(self, call, a):
        body = a["body"] or {}
        unknown = set(body) - {"duration_s"}
        if unknown:
            raise Refused(errors.BAD_REQUEST, f"unknown fields: {', '.join(sorted(unknown))}")
        return await self.live.mute(a["aid"], a["user"], body.get("duration_s"))

    @endpoint(app, "/activities/<aid>/mutes/<user>", "Unmute a user", AID, path("user", max_length=1024),
              methods=("DELETE",))
    async def unmute(self, call, a):
        was = await self.live.unmute(a["aid"], a["user"])
        return {"activityId": a["aid"], "user": a["user"], "wasMuted": was}

    @endpoint(app, "/activities/<aid>/messages", "The newest messages, oldest first, with their ids", AID,
              integer("count", required=False, default=50, minimum=1, maximum=MAX_COUNT, convert=_count), methods=("GET",))
    async def messages(self, call, a):
        return {"activityId": a["aid"], "messages": await self.live.messages(a["aid"], a["count"])}

    @endpoint(app, "/activities/<aid>/messages/<mid>", "Remove a message from the history", AID,
              path("mid", max_length=64), methods=("DELETE",))
    async def remove_message(self, call, a):
        return {"removed": await self.live.remove_message(a["aid"], a["mid"])}

