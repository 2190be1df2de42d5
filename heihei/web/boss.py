"""
The boss site's HTTP side (seed 002): group API, profile push, uploads, media.

Mounted as the fallback of the `--boss` site's root and of its `/wsim/`
folder, so every route answers at `/<route>` and `/wsim/<route>` (Klein routes
on what is left of the path). Parameters come from the query string or a
form body, GET or POST, as the original's `FormValue` did.

Answers are JSON with HTTP 200, the outcome in the body, as the original sent
them (its clients read `code`, not the status):
- group API: `{"code": 1, "message": "OK"[, "data": ...]}`, errors
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

import hmac
import re
from dataclasses import dataclass
from typing import Any

from klein import Klein
from twisted.logger import Logger
from twisted.web import static
from werkzeug.exceptions import MethodNotAllowed, NotFound

from heihei.boss.ids import ID_RE
from heihei.boss.groups import ApiError, GroupInfo, GroupService, parse_ids
from heihei.boss.media import MediaError
from heihei.boss.mediastore import AUDIO_DIR, DEFAULT_AVATAR, PICTURE_DIR, VIDEO_DIR, MediaStore
from heihei.boss.profiles import MAX_NICKNAME_CHARS, Profile, Profiles, valid_url
from heihei.boss.tickets import TicketError, check_ticket
from heihei.jsonsafe import encode_json
from heihei.store.client import StoreUnavailable

HOST_RE = re.compile(r"[A-Za-z0-9.\-]{1,253}(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?")
MAX_PARAM_CHARS = 8192
IMMUTABLE = b"public, max-age=31536000, immutable"


@dataclass(frozen=True)
class Caller:
    trusted: bool  # api key or insecure mode: acts for anyone
    user: str | None = None  # proven by a ticket


class BossWeb:
    app = Klein()
    _log = Logger()

    def __init__(self, settings, *, clock, groups: GroupService, profiles: Profiles, media: MediaStore) -> None:
        self.settings = settings
        self.clock = clock
        self.groups = groups
        self.profiles = profiles
        self.media = media

    def resource(self):
        return self.app.resource()

    # -- plumbing --------------------------------------------------------------------------------------

    @staticmethod
    def _json(request, value: Any, status: int = 200) -> bytes:
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"application/json; charset=utf-8")
        return encode_json(value)

    @app.handle_errors(ApiError, MediaError)
    def _refused(self, request, failure):
        e = failure.value
        return self._json(request, {"code": e.code, "message": e.message})

    @app.handle_errors(StoreUnavailable)
    def _unavailable(self, request, failure):
        return self._json(request, {"code": 503, "message": "service unavailable, try again"})

    @app.handle_errors(NotFound)
    def _not_found(self, request, failure):
        return self._json(request, {"code": 404, "message": "not found"}, 404)

    @app.handle_errors(MethodNotAllowed)
    def _bad_method(self, request, failure):
        return self._json(request, {"code": 405, "message": "method not allowed"}, 405)

    @app.handle_errors
    def _failed(self, request, failure):
        self._log.failure("boss HTTP {path} failed", failure=failure, path=request.path)
        return self._json(request, {"code": 500, "message": "internal error"}, 500)

    @staticmethod
    def _params(request) -> dict[str, str]:
        params = {}
        for name, values in (request.args or {}).items():
            if name == b"file" or not values:
                continue
            try:
                key, value = name.decode("utf-8"), values[0].decode("utf-8")
            except UnicodeDecodeError:
                continue  # not text: not one of ours (a missing one is reported by name)
            if len(value) > MAX_PARAM_CHARS:
                raise ApiError(400, f"parameter {key} too long")
            params[key] = value
        return params

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

    def _caller(self, request, params: dict[str, str], acting: str | None) -> Caller:
        s = self.settings
        key = request.getHeader(b"x-api-key")
        key = key.decode("latin-1") if key is not None else params.get("api_key")
        if key is not None:
            if s.api_key and hmac.compare_digest(key.encode("utf-8"), s.api_key.encode("utf-8")):
                return Caller(trusted=True)
            if not s.insecure_http:
                raise ApiError(403, "invalid api key")
        ticket = params.get("ticket")
        if ticket is not None:
            if not acting or not ID_RE.fullmatch(acting):
                raise ApiError(400, "missing userid for the ticket")
            try:
                check_ticket(s.login_secret, acting, ticket, self.clock.seconds())
            except TicketError as e:
                raise ApiError(403, str(e)) from None
            return Caller(trusted=False, user=acting)
        if s.insecure_http:
            return Caller(trusted=True)
        raise ApiError(403, "api_key or userid and ticket required")

    async def _member_or_trusted(self, caller: Caller, group: str) -> GroupInfo:
        info = await self.groups.info(group)  # 404 before 403
        if not caller.trusted and caller.user not in info.members:
            raise ApiError(403, "not a member of this group")
        return info

    def _group_id(self, params: dict[str, str]) -> str:
        group = params.get("groupid", "").strip()
        if not group:
            raise ApiError(400, "missing groupid")
        if not group.isdigit() or len(group) > 18:
            raise ApiError(404, "no such group")
        return group

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

    def _ok(self, request, data: Any = None) -> bytes:
        answer: dict[str, Any] = {"code": 1, "message": "OK"}
        if data is not None:
            answer["data"] = data
        return self._json(request, answer)

    # -- group API -------------------------------------------------------------------------------------

    @app.route("/creategrp", methods=["GET", "POST"])
    async def creategrp(self, request):
        params = self._params(request)
        creator = params.get("creator", "").strip()
        caller = self._caller(request, params, params.get("userid") or creator)
        if not creator or not ID_RE.fullmatch(creator):
            raise ApiError(400, "missing or bad creator")
        if not caller.trusted and caller.user != creator:
            raise ApiError(403, "the creator must be the ticket's user")
        members = parse_ids(params.get("members"), "members", self.settings.max_group_members)
        info = await self.groups.create(creator, members, params.get("name", "").strip())
        return self._ok(request, self._group_json(request, info, info.members))

    @app.route("/addmembers", methods=["GET", "POST"])
    async def addmembers(self, request):
        params = self._params(request)
        caller = self._caller(request, params, params.get("userid"))
        group = self._group_id(params)
        members = parse_ids(params.get("members"), "members", self.settings.max_group_members)
        await self._member_or_trusted(caller, group)
        await self.groups.add_members(group, members)
        return self._ok(request)

    @app.route("/delmembers", methods=["GET", "POST"])
    async def delmembers(self, request):
        params = self._params(request)
        caller = self._caller(request, params, params.get("userid"))
        group = self._group_id(params)
        members = parse_ids(params.get("members"), "members", self.settings.max_group_members)
        info = await self._member_or_trusted(caller, group)
        if not caller.trusted and members != [caller.user] and caller.user != info.creator:
            raise ApiError(403, "only the creator removes other members")
        await self.groups.remove_members(group, members)
        return self._ok(request)

    @app.route("/editgrp", methods=["GET", "POST"])
    async def editgrp(self, request):
        params = self._params(request)
        caller = self._caller(request, params, params.get("userid"))
        group = self._group_id(params)
        await self._member_or_trusted(caller, group)
        await self.groups.edit(group, params.get("name"), params.get("notice"))
        return self._ok(request)

    @app.route("/querymygrps", methods=["GET", "POST"])
    async def querymygrps(self, request):
        params = self._params(request)
        user = params.get("userid", "").strip()
        if not user or not ID_RE.fullmatch(user):
            raise ApiError(400, "missing or bad userid")
        self._caller(request, params, user)  # a ticket is checked for this very user
        infos = await self.groups.groups_of(user)
        profiles = await self.groups.profiles_of([m for info in infos for m in info.members])
        return self._ok(request, [self._group_json(request, info, self._members_json(request, info, profiles))
                                  for info in infos])

    @app.route("/grpinfo", methods=["GET", "POST"])
    async def grpinfo(self, request):
        params = self._params(request)
        caller = self._caller(request, params, params.get("userid"))
        info = await self._member_or_trusted(caller, self._group_id(params))
        profiles = await self.groups.profiles_of(info.members)
        return self._ok(request, self._group_json(request, info, self._members_json(request, info, profiles)))

    @app.route("/refreshgrp", methods=["GET", "POST"])
    async def refreshgrp(self, request):
        params = self._params(request)
        caller = self._caller(request, params, params.get("userid"))
        group = self._group_id(params)
        await self._member_or_trusted(caller, group)
        await self.groups.redraw(group)
        return self._ok(request)

    @app.route("/setuser", methods=["GET", "POST"])
    async def setuser(self, request):
        params = self._params(request)
        user = params.get("userid", "").strip()
        if not user or not ID_RE.fullmatch(user):
            raise ApiError(400, "missing or bad userid")
        self._caller(request, params, user)
        nickname, snap = params.get("nickname"), params.get("snap")
        if nickname is None and snap is None:
            raise ApiError(400, "nothing to set: give nickname or snap")
        if nickname is not None and (not nickname.strip() or len(nickname) > MAX_NICKNAME_CHARS):
            raise ApiError(400, f"nickname must be 1 to {MAX_NICKNAME_CHARS} characters")
        if snap is not None and not valid_url(snap):
            raise ApiError(400, "snap must be an http(s) URL")
        await self.profiles.push(user, nickname, snap)
        return self._ok(request)

    # -- uploads and media --------------------------------------------------------------------------------

    @app.route("/upload/<which>", methods=["POST"])
    async def upload(self, request, which):
        params = self._params(request)
        self._caller(request, params, params.get("userid"))
        files = (request.args or {}).get(b"file")
        if not files:
            raise ApiError(400, "missing multipart field file")
        stored = await self.media.upload(which, files[0])
        message = "Succeeded" if which == "writev3" else "OK"
        return self._json(request, {"code": 0, "message": message,
                                    "data": f"{self._base(request)}/{stored.folder}/{stored.name}"})

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
