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

import secrets
from typing import Any

import orjson

from heihei.config import JimSettings
from heihei.core.errors import Refused
from heihei.jim.service import NO_AGENT, Jim
from heihei.jim.store import USER_TYPES, VISITOR
from heihei.web.kit import auth, openapi, readers
from heihei.jim.ids import ID_CHAR, TOKEN_CHAR, is_id_text, is_token_text
from heihei.web.kit.params import MISSING, BadParameter, Param
from heihei.web.kit.routes import Routes, Surface, WireError, endpoint, new_app
from heihei.web.limits import EarlyAnswer
from heihei.textnum import is_int_text

MAX_ID_CHARS = 128
MAX_TOKEN_CHARS = 256
FIELD_LIMITS = {"nick": 128, "avatar": 2048, "terminal": 64, "sign": 512}
MAX_EXTRAS_BYTES = 4096
JSON_TYPE = b"application/json;charset=UTF-8"


def _id(name: str):
    def convert(value: Any) -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or len(value) > MAX_ID_CHARS or not is_id_text(value):
            raise WireError(400, f"{name} must be a string of at most {MAX_ID_CHARS} characters, no control "
                            "characters", status=400)
        return value

    return convert


def _choice(name: str, allowed: tuple[int, ...]):
    def convert(value: Any) -> int:
        if isinstance(value, str) and is_int_text(value.strip()):
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or value not in allowed:
            raise WireError(400, f"{name} must be one of {', '.join(map(str, allowed))}", status=400)
        return value

    return convert


def _token(value: Any) -> str:
    if not isinstance(value, str) or len(value) > MAX_TOKEN_CHARS or not is_token_text(value):
        raise WireError(400, f"token must be a string of at most {MAX_TOKEN_CHARS} characters, no spaces or "
                        "control characters", status=400)
    return value


def user_id(name: str, *, required: bool = True, required_if: tuple | None = None,
            missing: str | None = None) -> Param:
    return Param(name, convert=_id(name), required=required, required_if=required_if, max_length=MAX_ID_CHARS,
                 pattern=ID_CHAR + "+", missing=missing)


def choice(name: str, allowed: tuple[int, ...], default: int | None = None, *, required: bool = False) -> Param:
    return Param(name, "int", convert=_choice(name, allowed), required=required, default=default, enum=allowed,
                 description="one of " + ", ".join(map(str, allowed)))


TOKEN = Param("token", convert=_token, required=False, max_length=MAX_TOKEN_CHARS, pattern=TOKEN_CHAR + "+",
              description="the connection token to bind (generated when absent)")


def _fields(body: dict[str, Any]) -> dict[str, str]:
    fields = {}
    for name, limit in FIELD_LIMITS.items():
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, str) or len(value) > limit:
            raise WireError(400, f"{name} must be a string of at most {limit} characters", status=400)
        fields[name] = value
    extras = body.get("extras")
    if extras is not None:
        if not isinstance(extras, dict):
            raise WireError(400, "extras must be a JSON object", status=400)
        text = orjson.dumps(extras)
        if len(text) > MAX_EXTRAS_BYTES:
            raise WireError(400, f"extras larger than {MAX_EXTRAS_BYTES} bytes", status=400)
        fields["extras"] = text.decode("utf-8")
    return fields


def receiver_json(user: str, record: dict[str, str], online: bool) -> dict[str, Any]:
    """The seed's receiver object: every field present, null when unknown."""
    extras = record.get("extras")
    return {"id": user, "nick": record.get("nick"), "avatar": record.get("avatar"),
            "status": "online" if online else "offline", "sign": record.get("sign"),
            "terminal": record.get("terminal"), "friends": None, "groups": None,
            "extras": orjson.loads(extras) if extras else None}


def _translate(e: Exception) -> WireError:
    if isinstance(e, BadParameter):
        if e.problem == MISSING:
            return WireError(400, (e.param.missing if e.param is not None and e.param.missing else None)
                             or f"{e.name} is required", status=400)
        if e.name == "body":
            return WireError(400, f"body must be a JSON object: {e.why}", status=400)
        return WireError(400, f"{e.name}: {e.why}", status=400)
    if isinstance(e, auth.Unauthorized):
        if e.reason == auth.NOT_CONFIGURED:
            return WireError(401, "the jim API is closed: set [jim] api_key (or insecure_api)", status=401)
        return WireError(401, "missing or wrong X-Api-Key", status=401)
    if isinstance(e, Refused):
        status = 503 if e.reason == NO_AGENT else 400
        return WireError(status, e.detail or e.reason, status=status)
    raise TypeError(e)


def _ok(request, result: Any) -> bytes:
    data, extra = result if isinstance(result, tuple) else (result, {})
    return orjson.dumps({"code": 200, "msg": "success", "data": data, **extra})


def _error(request, error: WireError) -> bytes:
    return orjson.dumps({"code": error.code, "msg": error.detail, "data": None})


#: J-IM's back-end API: `{"code": 200, "msg": "success", "data": ...}`, errors with the HTTP status as code
VANKE = Surface(
    name="jim",
    read=lambda request: readers.json_body(request, readers.site_limit(request)),
    ok=_ok, error=_error, translate=_translate,
    not_found=lambda request: WireError(404, f"no such jim API: {request.path.decode('utf-8', 'replace')}",
                                        status=404),
    method_not_allowed=WireError(405, "use POST with a JSON body", status=405),
    unavailable=WireError(503, "storage unavailable, try again", status=503),
    internal=WireError(500, "internal error", status=500),
    envelope_schema={"type": "object", "required": ["code", "msg", "data"],
                     "properties": {"code": {"type": "integer", "description": "200, or the HTTP status"},
                                    "msg": {"type": "string"}, "data": {"nullable": True},
                                    "token": {"type": "string", "description": "a generated connection token"}}},
    headers=((b"content-type", JSON_TYPE),),
)


class VankeApp(Routes):
    app = new_app(VANKE)
    prefix = "/im"
    surface = VANKE
    default_auth = "api-key"

    def __init__(self, jim: Jim, settings: JimSettings) -> None:
        self.jim = jim
        self.settings = settings
        self.strategies = {"api-key": auth.ApiKey(lambda: settings.api_key, insecure=lambda: settings.insecure_api)}
        #: the key is checked from the headers before a body is read (heihei.web.limits)
        self.gate = auth.header_gate(b"/im/", self.strategies["api-key"], self._early_refusal)

    @staticmethod
    def _early_refusal(e: auth.Unauthorized) -> EarlyAnswer:
        error = _translate(e)
        return EarlyAnswer(error.status, "jim API call without its key", _error(None, error), VANKE.headers)

    async def _register(self, a: dict[str, Any], raw: dict[str, Any]) -> tuple[str, int, str | None]:
        fields = _fields(raw)
        token = generated = a["token"]
        if token is None:
            token = generated = secrets.token_hex(16)
        else:
            generated = None
        registered = await self.jim.register(a["senderId"], a["type"], fields, token)
        return a["senderId"], registered, generated

    @app.route("/openapi.json", methods=["GET"])
    def openapi(self, request):
        request.setHeader(b"content-type", JSON_TYPE)
        return orjson.dumps(openapi.document([openapi.group(VankeApp, envelope="VankeAnswer", body=("json",))],
                                             title="heihei J-IM back-end API (seed 003)", server_url="/",
                                             version="1.0"))

    @endpoint(app, "/vanke/initUser", "Register or update a user and bind their connection token",
              user_id("senderId"), choice("type", USER_TYPES), TOKEN, methods=("POST",), errors=(400, 401))
    async def init_user(self, call, a):
        _, _, generated = await self._register(a, call.raw)
        return {"token": generated} if generated else None

    @endpoint(app, "/vanke/getReceiver", "Register the user, then their partner (an agent for a visitor)",
              user_id("senderId"),
              user_id("receiverId", required=False, required_if=("type", tuple(str(t) for t in USER_TYPES
                                                                             if t != VISITOR)),
                      missing="receiverId is required unless the sender is a visitor (type 0)"),
              choice("type", USER_TYPES), TOKEN,
              methods=("POST",), errors=(400, 401, 503), returns=("data", "token"))
    async def get_receiver(self, call, a):
        receiver = a["receiverId"]
        if receiver is not None and receiver == a["senderId"]:
            raise WireError(400, "receiverId cannot be the sender", status=400)
        user, user_type, generated = await self._register(a, call.raw)
        partner = await self.jim.receiver_for(user, user_type, receiver)
        record = await self.jim.user(partner)
        online = await self.jim.is_online(partner)
        return receiver_json(partner, record, online), ({"token": generated} if generated else {})

    @endpoint(app, "/vanke/chatInfo", "Chat-list counters of `to` for `from`",
              user_id("to"), user_id("from"), choice("op", (1, 2), required=True), choice("isNewMember", (0, 1), 0),
              choice("isConcurrent", (0, 1), 0), methods=("POST",), errors=(400, 401))
    async def chat_info(self, call, a):
        to, frm = a["to"], a["from"]
        if to == frm:
            raise WireError(400, "to and from must differ", status=400)
        counters = await self.jim.chat_info(to, frm, a["op"], bool(a["isNewMember"]), bool(a["isConcurrent"]))
        return {"to": to, "from": frm, **counters}
