"""
`/im/vanke/*` on the `--http` site: the app back end's API (seed 003).

    POST /im/vanke/initUser     register or update a user, bind their connection token
    POST /im/vanke/getReceiver  the same, then the chat partner (an agent for a visitor)
    POST /im/vanke/chatInfo     chat-list counters of `to` for `from`

Bodies are JSON objects; answers are `{"code": 200, "msg": "success", "data": ...}`
(keys in that order, nulls written out, as the original Spring service did).
Errors use the same envelope with the HTTP status as `code` and the reason as
`msg`: 400 bad JSON or fields, 401 missing or wrong `X-Api-Key`, 404 unknown
path, 405 not POST, 503 storage unavailable or no agent registered, 500 a bug
(logged, never a stack trace). The API is server-to-server: with `[jim]
api_key` set every call must carry it in `X-Api-Key`; with no key it refuses
every call unless `[jim] insecure_api` is on.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

import orjson
from klein import Klein
from twisted.logger import Logger

from heihei.config import JimSettings
from heihei.jim.service import Jim, JimError, NoAgent
from heihei.jim.store import USER_TYPES, VISITOR
from heihei.jsonsafe import BadJSON, decode_json_object
from heihei.store.client import StoreUnavailable

MAX_ID_CHARS = 128
MAX_TOKEN_CHARS = 256
FIELD_LIMITS = {"nick": 128, "avatar": 2048, "terminal": 64, "sign": 512}
MAX_EXTRAS_BYTES = 4096
JSON_TYPE = b"application/json;charset=UTF-8"


class ApiError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _id(body: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = body.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if value is None or value == "":
        if required:
            raise ApiError(400, f"{name} is required")
        return None
    if not isinstance(value, str) or len(value) > MAX_ID_CHARS or not value.isprintable():
        raise ApiError(400, f"{name} must be a string of at most {MAX_ID_CHARS} printable characters")
    return value


def _choice(body: dict[str, Any], name: str, allowed: tuple[int, ...], default: int | None,
            *, required: bool = False) -> int | None:
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise ApiError(400, f"{name} is required")
        return default
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value not in allowed:
        raise ApiError(400, f"{name} must be one of {', '.join(map(str, allowed))}")
    return value


def _fields(body: dict[str, Any]) -> dict[str, str]:
    fields = {}
    for name, limit in FIELD_LIMITS.items():
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, str) or len(value) > limit:
            raise ApiError(400, f"{name} must be a string of at most {limit} characters")
        fields[name] = value
    extras = body.get("extras")
    if extras is not None:
        if not isinstance(extras, dict):
            raise ApiError(400, "extras must be a JSON object")
        text = orjson.dumps(extras)
        if len(text) > MAX_EXTRAS_BYTES:
            raise ApiError(400, f"extras larger than {MAX_EXTRAS_BYTES} bytes")
        fields["extras"] = text.decode("utf-8")
    return fields


def _token(body: dict[str, Any]) -> str | None:
    token = body.get("token")
    if token is None or token == "":
        return None
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or not token.isprintable() or " " in token:
        raise ApiError(400, f"token must be a string of at most {MAX_TOKEN_CHARS} printable characters, no spaces")
    return token


def receiver_json(user: str, record: dict[str, str], online: bool) -> dict[str, Any]:
    """The seed's receiver object: every field present, null when unknown."""
    extras = record.get("extras")
    return {"id": user, "nick": record.get("nick"), "avatar": record.get("avatar"),
            "status": "online" if online else "offline", "sign": record.get("sign"),
            "terminal": record.get("terminal"), "friends": None, "groups": None,
            "extras": orjson.loads(extras) if extras else None}


class VankeApp:
    app = Klein()
    _log = Logger()

    def __init__(self, jim: Jim, settings: JimSettings, *, max_body_bytes: int) -> None:
        self.jim = jim
        self.settings = settings
        self.max_body_bytes = max_body_bytes

    def resource(self):
        return self.app.resource()

    # -- plumbing ------------------------------------------------------------------------

    @staticmethod
    def _answer(request, status: int, msg: str, data: Any = None, **extra: Any) -> bytes:
        request.setResponseCode(status)
        request.setHeader(b"content-type", JSON_TYPE)
        return orjson.dumps({"code": status, "msg": msg, "data": data, **extra})

    def _authorize(self, request) -> None:
        key = self.settings.api_key
        if not key:
            if self.settings.insecure_api:
                return
            raise ApiError(401, "the jim API is closed: set [jim] api_key (or insecure_api)")
        given = request.getHeader(b"x-api-key") or b""
        if not hmac.compare_digest(given, key.encode("utf-8")):
            raise ApiError(401, "missing or wrong X-Api-Key")

    def _body(self, request) -> dict[str, Any]:
        if request.method != b"POST":
            raise ApiError(405, "use POST with a JSON body")
        self._authorize(request)
        try:
            return decode_json_object(request.content.read(), max_bytes=self.max_body_bytes)
        except BadJSON as e:
            raise ApiError(400, f"body must be a JSON object: {e.reason}") from None

    @app.handle_errors(ApiError)
    def _api_error(self, request, failure):
        e = failure.value
        return self._answer(request, e.status, e.reason)

    @app.handle_errors(StoreUnavailable)
    def _store_error(self, request, failure):
        self._log.warn("jim API: storage unavailable: {why}", why=failure.getErrorMessage())
        return self._answer(request, 503, "storage unavailable, try again")

    @app.handle_errors(Exception)
    def _bug(self, request, failure):
        self._log.failure("jim API request {path} failed", failure=failure, path=request.path)
        return self._answer(request, 500, "internal error")

    # -- routes -----------------------------------------------------------------------------

    async def _register(self, body: dict[str, Any]) -> tuple[str, int, str | None]:
        user = _id(body, "senderId")
        user_type = _choice(body, "type", USER_TYPES, None)
        fields = _fields(body)
        token = _token(body)
        generated = None
        if token is None:
            token = generated = secrets.token_hex(16)
        registered = await self.jim.register(user, user_type, fields, token)
        return user, registered, generated

    @app.route("/vanke/initUser", branch=False)
    async def init_user(self, request):
        body = self._body(request)
        _, _, generated = await self._register(body)
        return self._answer(request, 200, "success", {"token": generated} if generated else None)

    @app.route("/vanke/getReceiver", branch=False)
    async def get_receiver(self, request):
        body = self._body(request)
        receiver = _id(body, "receiverId", required=False)
        if receiver is not None and receiver == _id(body, "senderId"):
            raise ApiError(400, "receiverId cannot be the sender")
        if receiver is None and _choice(body, "type", USER_TYPES, None) not in (None, VISITOR):
            raise ApiError(400, "receiverId is required unless the sender is a visitor (type 0)")
        user, user_type, generated = await self._register(body)
        try:
            partner = await self.jim.receiver_for(user, user_type, receiver)
        except NoAgent as e:
            raise ApiError(503, e.detail) from None
        except JimError as e:
            raise ApiError(400, e.detail) from None
        record = await self.jim.user(partner)
        online = await self.jim.is_online(partner)
        extra = {"token": generated} if generated else {}
        return self._answer(request, 200, "success", receiver_json(partner, record, online), **extra)

    @app.route("/vanke/chatInfo", branch=False)
    async def chat_info(self, request):
        body = self._body(request)
        to = _id(body, "to")
        frm = _id(body, "from")
        op = _choice(body, "op", (1, 2), None, required=True)
        new_member = _choice(body, "isNewMember", (0, 1), 0)
        concurrent = _choice(body, "isConcurrent", (0, 1), 0)
        if to == frm:
            raise ApiError(400, "to and from must differ")
        counters = await self.jim.chat_info(to, frm, op, bool(new_member), bool(concurrent))
        return self._answer(request, 200, "success", {"to": to, "from": frm, **counters})

    @app.route("/", branch=True)
    def not_found(self, request):
        return self._answer(request, 404, f"no such jim API: {request.path.decode('utf-8', 'replace')}")

