"""
The boss site's HTTP side (seed 002): group API, profile push, uploads, media.

Mounted as the fallback of the `--boss` site's root and of its `/wsim/`
folder, so every route answers at `/<route>` and `/wsim/<route>` (Klein routes
on what is left of the path). Parameters come from the query string or a
form body, GET or POST, as the original's `FormValue` did.

Answers are JSON with HTTP 200, the outcome in the body, as the original sent
them (its clients read `code`, not the status):
- group API: `{"code": 1, "message": "OK"[, "data": ...]}` (`code` 0 with `[boss]
  group_success_code = 0`, as the original answered since March 2017), errors
  `{"code": 400|403|404|503, "message": reason}`
- uploads: `{"code": 0, "message": "OK"|"Succeeded", "data": url}`, errors
  `{"code": 400|403|413|415|503, "message": reason}`
Unknown paths and wrong methods get a real 404/405 status with the same shape.

Who may call (docs/boss.md): a caller with the `[boss] api_key` (header
`X-Api-Key` or parameter `api_key`) is trusted; an app user proves who they
are with `userid` and `ticket` (the login ticket) and may then only act on
their own behalf and on groups they are in; with `[boss] insecure_http` the
calls need nothing, as with the original server. Media files are public.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from typing import Any

from twisted.web import static
from twisted.web.http import parse_qs
from werkzeug.exceptions import NotFound

from heihei.boss import media
from heihei.boss.groups import MAX_MEMBERS_PER_CALL, MAX_NAME_CHARS, GroupInfo, GroupService, parse_ids
from heihei.boss.ids import ID_RE
from heihei.boss.mediastore import AUDIO_DIR, DEFAULT_AVATAR, PICTURE_DIR, VIDEO_DIR, MediaStore
from heihei.boss.profiles import MAX_NICKNAME_CHARS, Profile, Profiles, valid_url
from heihei.boss.tickets import TicketError, check_ticket
from heihei.config import ConfigError
from heihei.core import errors
from heihei.core.errors import Refused
from heihei.jsonsafe import encode_json
from heihei.web.kit import auth, openapi, readers
from heihei.web.kit.params import MISSING, BadParameter, Param, path, string, upload
from heihei.web.kit.routes import Routes, Surface, WireError, endpoint, new_app
from heihei.web.limits import EarlyAnswer
from heihei.textnum import is_digits

HOST_RE = re.compile(r"[A-Za-z0-9.\-]{1,253}(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?")
MAX_PARAM_CHARS = 8192
IMMUTABLE = b"public, max-age=31536000, immutable"
#: domain refusal -> the answer's code
REFUSALS = {
    errors.BAD_REQUEST: 400, errors.TOO_LONG: 400, errors.FULL: 400,
    errors.FORBIDDEN: 403, errors.NOT_A_MEMBER: 403,
    errors.NO_SUCH_GROUP: 404, errors.NOT_FOUND: 404,
    media.TOO_LARGE: 413, media.UNSUPPORTED_MEDIA: 415,
}


def _translate(e: Exception) -> WireError:
    if isinstance(e, BadParameter):
        if e.problem == MISSING and (e.param is None or e.param.missing is None):
            return WireError(400, f"missing {e.name}")
        return WireError(400, e.why)
    if isinstance(e, auth.Unauthorized):
        return WireError(403, e.detail or "api_key or userid and ticket required")
    if isinstance(e, Refused):
        return WireError(REFUSALS.get(e.reason, 400), e.detail or e.reason)
    raise TypeError(e)


def _ok(request, result: Any, success_code: int = 1) -> bytes:
    result = result or {}
    answer: dict[str, Any] = {"code": result.get("code", success_code), "message": result.get("message", "OK")}
    if "data" in result:
        answer["data"] = result["data"]
    return encode_json(answer)


def _error(request, error: WireError) -> bytes:
    return encode_json({"code": error.code, "message": error.detail})


#: the boss site's HTTP side: `{"code": 1, "message": "OK"[, "data"]}`, refusals HTTP 200 with the code
BOSS = Surface(
    name="boss",
    read=lambda request: readers.query_form(request, MAX_PARAM_CHARS, files=("file",)),
    ok=_ok, error=_error, translate=_translate,
    not_found=WireError(404, "not found", status=404),
    method_not_allowed=WireError(405, "method not allowed", status=405),
    unavailable=WireError(503, "service unavailable, try again"),
    internal=WireError(500, "internal error", status=500),
    envelope_schema={"type": "object", "required": ["code", "message"], "additionalProperties": False,
                     "properties": {"code": {"type": "integer", "description": "1 (0 for uploads) on success, "
                                                                               "else 400 403 404 413 415 503"},
                                    "message": {"type": "string"}, "data": {}}},
)


class BossCaller:
    """Who calls the boss API: a back end with `[boss] api_key` (header `X-Api-Key` or parameter
    `api_key`) is trusted; an app user proves who they are with their login `ticket` and the id they
    act as (`userid`, or the first of `acting` given); with `insecure_http` nobody needs anything."""

    scheme = "boss"
    params = ()

    def __init__(self, settings, clock, acting: tuple[str, ...] = ("userid",)) -> None:
        self.settings = settings
        self.clock = clock
        self.acting = acting
        self.api_key = auth.ApiKey(lambda: settings.api_key, param="api_key")

    async def authenticate(self, request, raw: dict[str, Any]) -> auth.Caller:
        return self.check(self.api_key.given(request, raw), raw)

    def check(self, key: str | bytes | None, raw: dict[str, Any]) -> auth.Caller:
        """The caller proven by an API key or by the ticket among `raw`'s parameters."""
        s = self.settings
        if key is not None:
            if s.api_key and auth.same_secret(key, s.api_key):
                return auth.Caller(trusted=True)
            if not s.insecure_http:
                raise auth.Unauthorized(auth.BAD_API_KEY, "invalid api key")
        ticket = raw.get("ticket")
        if ticket is not None:
            acting = next((raw[name].strip() for name in self.acting if raw.get(name)), "")
            if not acting or not ID_RE.fullmatch(acting):
                # a ticket is a credential only with the id it was made for
                raise auth.Unauthorized(auth.BAD_TICKET, "missing userid for the ticket")
            try:
                check_ticket(s.login_secret, acting, ticket, self.clock.seconds())
            except TicketError as e:
                raise auth.Unauthorized(auth.BAD_TICKET, str(e)) from None
            return auth.Caller(user=acting)
        if s.insecure_http:
            return auth.Caller(trusted=True)
        raise auth.Unauthorized(auth.NO_CREDENTIALS, "api_key or userid and ticket required")


def _user_id(value: str) -> str:
    value = value.strip()
    if not ID_RE.fullmatch(value):
        raise WireError(400, "missing or bad userid")
    return value


def _group_id(value: str) -> str:
    group = value.strip()
    if not group:
        raise WireError(400, "missing groupid")
    if not is_digits(group) or len(group) > 18:
        raise WireError(404, "no such group")
    return group


def _creator(value: str) -> str:
    value = value.strip()
    if not ID_RE.fullmatch(value):
        raise WireError(400, "missing or bad creator")
    return value


#: a user id as the boss routes read it: an id (heihei.boss.ids.ID_RE), spaces around it ignored
ID_PARAM = r"\s*" + ID_RE.pattern + r"\s*"
GROUPID = Param("groupid", convert=_group_id, missing="missing groupid", max_length=MAX_PARAM_CHARS,
                description="a group id (digits; any other value is no such group)")
USERID = Param("userid", convert=_user_id, missing="missing or bad userid", pattern=ID_PARAM,
               max_length=MAX_PARAM_CHARS, description="the user acted for")
ACTING = string("userid", required=False, max_length=MAX_PARAM_CHARS, pattern=ID_PARAM,
                description="with `ticket`: the user the ticket is for")
TICKET = string("ticket", required=False, max_length=128, description="the user's login ticket")
#: ids separated by commas (a trailing comma allowed, as the original did): the rule of
#: heihei.boss.groups.parse_ids, which reads them (and words its refusals as the original did)
MEMBERS_PATTERN = ID_PARAM + r"(,\s*" + ID_RE.pattern + r"\s*)*,*\s*"
MEMBERS = Param("members", convert=lambda text: text, missing="missing members", pattern=MEMBERS_PATTERN,
                max_length=MAX_PARAM_CHARS, description="user ids separated by commas")


class BossWeb(Routes):
    """The group API, the profile push, uploads and the media they serve (docs/boss.md)."""

    app = new_app(BOSS)
    surface = BOSS
    default_auth = "boss"

    def __init__(self, settings, *, clock, groups: GroupService, profiles: Profiles, media: MediaStore) -> None:
        self.settings = settings
        self.clock = clock
        self.groups = groups
        self.profiles = profiles
        self.media = media
        if settings.group_success_code not in (0, 1):
            raise ConfigError("[boss] group_success_code must be 1 (wsim's README) or 0 (wsim's code since 2017)")
        if settings.group_success_code != 1:
            # the original's answers since March 2017: clients built against the running server read 0
            self.surface = dataclasses.replace(BOSS, ok=functools.partial(_ok, success_code=settings.group_success_code))
        self.strategies = {"boss": BossCaller(settings, clock),
                           "boss-creator": BossCaller(settings, clock, acting=("userid", "creator"))}

    # -- the gate: uploads decided from their headers ------------------------------------------------

    def gate(self, method: bytes, uri: bytes, headers) -> EarlyAnswer | None:
        """Before an upload's body is read: a back end's `X-Api-Key` (or `api_key` in the query), or a
        user's `userid` and `ticket` in the query string, must be right. (Credentials in the
        multipart form itself would arrive only after the body they are meant to let in.)"""
        path, _, query = uri.partition(b"?")
        if method != b"POST" or not (path.startswith(b"/upload/") or path.startswith(b"/wsim/upload/")):
            return None
        raw = {k.decode("utf-8", "replace"): v[0].decode("utf-8", "replace") for k, v in parse_qs(query).items()}
        caller = BossCaller(self.settings, self.clock)
        try:
            key = headers.getRawHeaders(b"x-api-key", [None])[0]
            caller.check(key if key is not None else raw.get("api_key"), raw)
        except (auth.Unauthorized, WireError) as e:
            error = _translate(e) if isinstance(e, auth.Unauthorized) else e
            # HTTP 200 with the code, like every refusal of this API (its clients read `code`)
            return EarlyAnswer(200, "upload without valid credentials",
                               encode_json({"code": error.code, "message": error.detail}))
        return None

    # -- plumbing --------------------------------------------------------------------------------------

    def _base(self, request) -> str:
        """Where our media is reached: `public_url`, else this request's own host (and /wsim)."""
        if self.settings.public_url:
            return self.settings.public_url.rstrip("/")
        host = (request.getHeader(b"host") or b"").decode("latin-1")
        if not HOST_RE.fullmatch(host):
            address = request.getHost()
            host = f"{address.host}:{address.port}"
        scheme = "https" if request.isSecure() else "http"
        prefix = "/wsim" if request.prepath[:1] == [b"wsim"] else ""
        return f"{scheme}://{host}{prefix}"

    def _default_avatar(self, request) -> str:
        return self.settings.default_avatar_url or f"{self._base(request)}/{AUDIO_DIR}/{DEFAULT_AVATAR}"

    def _snap_url(self, request, name: str) -> str:
        return f"{self._base(request)}/{PICTURE_DIR}/{name}" if name else ""

    async def _member_or_trusted(self, caller: auth.Caller, group: str) -> GroupInfo:
        info = await self.groups.summary(group)  # 404 before 403; no member list read
        if not caller.trusted and not await self.groups.is_member(group, caller.user):
            raise Refused(errors.NOT_A_MEMBER, "not a member of this group")
        return info

    def _members(self, text: str | None) -> list[str]:
        return parse_ids(text, "members", min(self.settings.max_group_members, MAX_MEMBERS_PER_CALL))

    def _members_json(self, request, info: GroupInfo, profiles: dict[str, Profile]) -> list[dict[str, str]]:
        default = self._default_avatar(request)
        out = []
        for user in info.members:
            p = profiles.get(user, Profile())
            out.append({"userid": user, "nickname": p.nickname or user, "snap": p.snap or default})
        return out

    def _group_json(self, request, info: GroupInfo, members: Any) -> dict[str, Any]:
        return {"groupid": info.groupid, "creator": info.creator, "name": info.name, "notice": info.notice,
                "snap": self._snap_url(request, info.snap), "members": members}

    # -- group API -------------------------------------------------------------------------------------

    @endpoint(app, "/creategrp", "Create a group (the creator is a member)",
              Param("creator", convert=_creator, missing="missing or bad creator", pattern=ID_PARAM,
                    max_length=MAX_PARAM_CHARS), MEMBERS,
              Param("name", convert=lambda text: text, missing="missing name", pattern=r"[\s\S]*\S[\s\S]*",
                    max_length=MAX_NAME_CHARS, description="not blank"), ACTING, TICKET,
              auth="boss-creator", errors=(400, 403), returns=("data",))
    async def creategrp(self, call, a):
        if not call.caller.trusted and call.user != a["creator"]:
            raise Refused(errors.FORBIDDEN, "the creator must be the ticket's user")
        info = await self.groups.create(a["creator"], self._members(a["members"]), (a["name"] or "").strip())
        return {"data": self._group_json(call.request, info, info.members)}

    @endpoint(app, "/addmembers", "Add members to a group", GROUPID, MEMBERS, ACTING, TICKET,
              errors=(400, 403, 404))
    async def addmembers(self, call, a):
        members = self._members(a["members"])
        await self._member_or_trusted(call.caller, a["groupid"])
        await self.groups.add_members(a["groupid"], members)

    @endpoint(app, "/delmembers", "Remove members (a member may remove themself; the creator anyone)",
              GROUPID, MEMBERS, ACTING, TICKET, errors=(400, 403, 404))
    async def delmembers(self, call, a):
        members = self._members(a["members"])
        info = await self._member_or_trusted(call.caller, a["groupid"])
        if not call.caller.trusted and members != [call.user] and call.user != info.creator:
            raise Refused(errors.FORBIDDEN, "only the creator removes other members")
        await self.groups.remove_members(a["groupid"], members)

    @endpoint(app, "/editgrp", "Rename a group or change its notice", GROUPID,
              string("name", required=False, max_length=MAX_PARAM_CHARS, empty_is_absent=False),
              string("notice", required=False, max_length=MAX_PARAM_CHARS, empty_is_absent=False),
              ACTING, TICKET, errors=(400, 403, 404))
    async def editgrp(self, call, a):
        await self._member_or_trusted(call.caller, a["groupid"])
        await self.groups.edit(a["groupid"], a["name"], a["notice"])

    @endpoint(app, "/querymygrps", "The groups of a user, with their members", USERID, TICKET,
              errors=(400, 403), returns=("data",))
    async def querymygrps(self, call, a):
        infos = await self.groups.groups_of(a["userid"])
        profiles = await self.groups.profiles_of([m for info in infos for m in info.members])
        return {"data": [self._group_json(call.request, info, self._members_json(call.request, info, profiles))
                         for info in infos]}

    @endpoint(app, "/grpinfo", "A group with its members", GROUPID, ACTING, TICKET, errors=(400, 403, 404),
              returns=("data",))
    async def grpinfo(self, call, a):
        await self._member_or_trusted(call.caller, a["groupid"])
        info = await self.groups.info(a["groupid"])
        profiles = await self.groups.profiles_of(info.members)
        return {"data": self._group_json(call.request, info, self._members_json(call.request, info, profiles))}

    @endpoint(app, "/refreshgrp", "Draw the group's picture again", GROUPID, ACTING, TICKET,
              errors=(400, 403, 404))
    async def refreshgrp(self, call, a):
        await self._member_or_trusted(call.caller, a["groupid"])
        await self.groups.redraw(a["groupid"])

    @endpoint(app, "/setuser", "Push a user's nickname and avatar", USERID,
              string("nickname", required=False, max_length=MAX_PARAM_CHARS, empty_is_absent=False),
              string("snap", required=False, max_length=MAX_PARAM_CHARS, empty_is_absent=False),
              TICKET, errors=(400, 403))
    async def setuser(self, call, a):
        nickname, snap = a["nickname"], a["snap"]
        if nickname is None and snap is None:
            raise Refused(errors.BAD_REQUEST, "nothing to set: give nickname or snap")
        if nickname is not None and (not nickname.strip() or len(nickname) > MAX_NICKNAME_CHARS):
            raise Refused(errors.BAD_REQUEST, f"nickname must be 1 to {MAX_NICKNAME_CHARS} characters")
        if snap is not None and not valid_url(snap):
            raise Refused(errors.BAD_REQUEST, "snap must be an http(s) URL")
        await self.profiles.push(a["userid"], nickname, snap)

    # -- uploads and media --------------------------------------------------------------------------------

    @endpoint(app, "/upload/<which>", "Upload audio (writev1), an image (writev2) or a video (writev3)",
              path("which", max_length=16, description="writev1 (audio), writev2 (image) or writev3 (video)"),
              upload("file", missing="missing multipart field file"), ACTING, TICKET,
              methods=("POST",), errors=(400, 403, 404, 413, 415), returns=("data",))
    async def upload(self, call, a):
        which = a["which"]
        stored = await self.media.upload(which, a["file"].file, a["file"].size)
        return {"code": 0, "message": "Succeeded" if which == "writev3" else "OK",
                "data": f"{self._base(call.request)}/{stored.folder}/{stored.name}"}

    @app.route("/openapi.json", methods=["GET"])
    def openapi(self, request):
        """This API's OpenAPI document (the media files are not in it)."""
        request.setHeader(b"content-type", b"application/json; charset=utf-8")
        return encode_json(openapi.document(
            [openapi.group(BossWeb, envelope="BossAnswer", body=("form",))], title="heihei boss API (seed 002)",
            server_url=self._base(request), version="1.0",
            description="Every route also answers under /wsim/. A trusted back end sends X-Api-Key (or api_key); "
                        "an app user sends userid and its login ticket."))

    @app.route(f"/{AUDIO_DIR}/<name>", methods=["GET", "HEAD"])
    def emopic(self, request, name):
        return self._serve(request, AUDIO_DIR, name)

    @app.route(f"/{VIDEO_DIR}/<name>", methods=["GET", "HEAD"])
    def emovideo(self, request, name):
        return self._serve(request, VIDEO_DIR, name)

    def _serve(self, request, folder: str, name: str):
        path = self.media.path_of(folder, name)
        if path is None:
            raise NotFound()
        request.setHeader(b"cache-control", IMMUTABLE)
        return static.File(path)
