"""
J-IM customer-service protocol (seed 003) on the `--jim` listener.

Handshake (any path): `ws://host:8889/?token=<token>` with a token bound by
`/im/vanke/initUser`, or J-IM's `?username=<u>&password=<p>`, checked by
`[jim] auth_url` or, only with `[jim] insecure_login`, accepted as is.
Anything else is refused in the handshake: `HTTP/1.1 401`.

Frames are JSON objects, text or binary. Client frames carry `cmd` (number or
numeric string); server frames carry `command`, and `code`/`msg` when they
answer. Server frames are written like J-IM's fastjson output: keys in
alphabetical order, absent values left out. `msg` is J-IM's "<description>
<text>" for the code (e.g. "ok 发送成功"); refusals add `data.reason`.

    after the handshake  → {"code":10007,"command":6,"data":{"token"?,"user":{user}},"msg":"ok 登录成功!"}
                           (10008 and close 4500 if the login cannot be completed)
    3  {"token"}         → 4: 10009 if the token is bound to this user, else 10010
    5  {"token"|"loginname","password"} → 6: 10007 + user if it names this user, else 10008
    7  {"group_id"|"groupId"} → 8: {"code":10011,"data":{"group","result":1}} (10012, result 0/2);
                           online members get 9: {"command":9,"data":{"group","user":{"id","nick"}}}
    11 chat              → sender 12: {"code":10000,"command":12,"msg":"ok 发送成功"}
                           (10001 private receiver offline, stored; 10002 refused)
                           receivers 11: {"command":11,"data":{chat}}
    13 heartbeat         → {"command":13,"data":{"createTime":<ms>,"hbbyte":-128}}
    14 {"userid"?}       → {"code":10021,"command":14,"msg":...} then close 1000 (10020 for someone else)
    15 {"id"}            → 16: {"code":10000,"command":16,"data":{"id"},"msg":...} (10002 unknown, 10020 not yours);
                           receivers and the sender's other connections get 16: {"command":16,"data":{recalled}}
    17 type 0 {"userid"} → 18: 10005, data = J-IM user {avatar,friends,groups,id,nick,status,terminal}
    17 type 1 {"userId"} → 18: {"code":200,"command":18,"data":[{avatar?,id,nick?,terminal?}],"msg":"success "}
    17 type 2 {"userId","extras":{"pullType","searchKey"}} → 18: code 200, the seed's detail object
    19 type 0/1/2 {"userId","fromUserId"|"groupId","beginTime","endTime","offset","count"}
                         → 20: 10016 / 10018 / 10022, data {"friends":{id:[chat]},"groups":{id:[chat]},"userid"};
                           10015 on a bad request
    other cmd            → {"code":10017,"command":0,"msg":"cmd failed! 未知的cmd命令!"}
    not a JSON object    → {"code":10002,"command":0,"data":{"reason"},"msg":...}
    leaving / closing    → group members get 10: {"command":10,"data":{"group","user":{"id","nick"}}}

    chat = {"chatType","cmd":11,"content":<string>,"createTime","extras"?,"from","groupId"?,"group_id"?,
            "id":<32 hex>,"msgType","to"?}

A chat's `content` may be sent as any JSON value: a string is kept, anything
else is stored as its compact JSON text (the seed's examples). Frames over
`[jim] max_message_bytes` close the connection with 1009; a connection silent
for `[jim] heartbeat_timeout` (no frame, no pong to the server's pings) is
closed with 4000. User objects of cmd 6 and 17 type 0 carry the user's avatar
or `[jim] default_avatar`. See docs/jim.md.
"""

from __future__ import annotations

from typing import Any, Callable

import orjson
from autobahn.websocket.types import ConnectionDeny
from twisted.internet import defer
from twisted.logger import Logger

from heihei.core.hub import Notice
from heihei.core.model import Message
from heihei.jim.service import (FRIENDS_GROUP, GROUP_JOINED, GROUP_LEFT, RECALLED, TOKEN_REBOUND, Jim, JimError,
                                NotAllowed, chat_body, group_room, groups_of_rooms, token_digest)
from heihei.jim.store import REALM
from heihei.jim.ids import is_id_text
from heihei.incidents import STORE
from heihei.jsonsafe import BadJSON, decode_json, encode_json
from heihei.net.websocket import BaseProtocol
from heihei.store.client import StoreUnavailable
from heihei.textnum import is_int_text

CLOSE_HEARTBEAT = 4000
CLOSE_LOGIN_FAILED = 4500
MAX_ID_CHARS = 128
MAX_TOKEN_CHARS = 256
MAX_PASSWORD_CHARS = 1024
HEARTBEAT_BYTE = -128

#: J-IM's status codes: "<description> <text>"
MSG = {
    10000: "ok 发送成功", 10001: "offline 用户不在线", 10002: "send failed 消息发送失败,数据格式不正确",
    10003: "ok 获取用户信息成功!", 10004: "get user failed ! 获取用户信息失败!",
    10005: "ok 获取所有在线用户信息成功!", 10006: "ok 获取所有离线用户信息成功!", 10007: "ok 登录成功!",
    10008: "login failed ! 登录失败!", 10009: "ok 鉴权成功!", 10010: "auth failed! 鉴权失败!",
    10011: "join group ok! 加入群组成功!", 10012: "join group failed! 加入群组失败!",
    10013: "Protocol version number does not match 协议版本号不匹配!",
    10014: "unsupported cmd command 不支持的cmd命令!", 10015: "get user message failed! 获取用户消息失败!",
    10016: "get user message ok! 获取离线消息成功!", 10017: "cmd failed! 未知的cmd命令!",
    10018: "get user message ok! 获取历史消息成功!", 10019: "online 用户在线", 10020: "Invalid verification! 不合法校验",
    10021: "close ok! 关闭成功", 10022: "ok! 拉取离线消息成功!",
}
SEED_OK_MSG = "success "  # the seed's cmd 18 answers, trailing space included
GET_MESSAGES_CODE = {0: 10016, 1: 10018, 2: 10022}


class BadRequest(Exception):
    """A frame the wire layer refuses before the domain sees it; `detail` is shown to the client."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


# -- formatting --------------------------------------------------------------------------


def frame(command: int | None = None, code: int | None = None, data: Any = None, msg: str | None = None) -> bytes:
    """A server frame with J-IM's key order (code, command, data, msg) and no nulls."""
    out: dict[str, Any] = {}
    if code is not None:
        out["code"] = code
    if command is not None:
        out["command"] = command
    if data is not None:
        out["data"] = data
    if code is not None:
        out["msg"] = msg if msg is not None else MSG.get(code, "")
    return encode_json(out)


def refusal(command: int, code: int, reason: str) -> bytes:
    return frame(command, code, {"reason": reason})


def chat_json(message: Message) -> dict[str, Any]:
    """A stored chat message as J-IM's ChatBody (keys sorted as fastjson writes them)."""
    b = message.body
    out: dict[str, Any] = {"chatType": b["chatType"], "cmd": 11, "content": b["content"], "createTime": b["createTime"]}
    if "extras" in b:
        out["extras"] = b["extras"]
    out["from"] = message.sender
    if message.kind == "group":
        out["groupId"] = message.target
        out["group_id"] = message.target
    out["id"] = b["id"]
    out["msgType"] = b["msgType"]
    if message.kind == "user":
        out["to"] = message.target
    return out


def user_json(user: str, record: dict[str, str], *, status: str | None = None,
              default_avatar: str = "") -> dict[str, Any]:
    """A J-IM User (cmd 6, cmd 17 type 0): the nick falls back to the id and the avatar to
    `[jim] default_avatar`, because J-IM pages draw `nick(id)` and `<img src=avatar>` for
    every user (a missing avatar became a request for ".../undefined" and a broken image)."""
    out: dict[str, Any] = {}
    avatar = record.get("avatar") or default_avatar
    if avatar:
        out["avatar"] = avatar
    out["id"] = user
    out["nick"] = record.get("nick") or user
    if record.get("sign"):
        out["sign"] = record["sign"]
    if status:
        out["status"] = status
    out["terminal"] = record.get("terminal") or "ws"
    return out


def notice_user(user: str, record: dict[str, str]) -> dict[str, Any]:
    return {"id": user, "nick": record.get("nick") or user}


def friend_json(user: str, record: dict[str, str]) -> dict[str, Any]:
    """An entry of the seed's friend list (cmd 17 type 1): unknown fields left out."""
    out: dict[str, Any] = {}
    if record.get("avatar"):
        out["avatar"] = record["avatar"]
    out["id"] = user
    if record.get("nick"):
        out["nick"] = record["nick"]
    if record.get("terminal"):
        out["terminal"] = record["terminal"]
    return out


def messages_json(user: str, messages: list[Message]) -> dict[str, Any]:
    """cmd 20's data: private messages under the partner's id, group ones under the group's."""
    friends: dict[str, list] = {}
    groups: dict[str, list] = {}
    for m in messages:
        if m.kind == "group":
            groups.setdefault(m.target, []).append(chat_json(m))
        else:
            partner = m.target if m.sender == user else m.sender
            friends.setdefault(partner, []).append(chat_json(m))
    return {"friends": friends, "groups": groups, "userid": user}


class JimRenderer:
    """Every receiver of a chat message gets the same cmd 11 frame."""

    def variant(self, message, client):
        return None

    def render(self, message: Message, variant) -> bytes | None:
        if "chatType" not in message.body:
            return None
        return frame(11, data=chat_json(message))


#: notice kind -> the command that shows it
NOTICE_COMMANDS = {GROUP_JOINED: 9, GROUP_LEFT: 10, RECALLED: 16}


def recall_notice(data: dict[str, Any]) -> dict[str, Any]:
    """cmd 16's data for a recalled message, keys as J-IM writes them."""
    notice: dict[str, Any] = {"chatType": data["chatType"], "cmd": 15, "from": data["from"]}
    if data["kind"] == "group":
        notice["groupId"] = notice["group_id"] = data["target"]
    notice["id"] = data["id"]
    if data["kind"] == "user":
        notice["to"] = data["target"]
    return notice


def on_notice(notice: Notice, clients: set) -> None:
    """Notices to a group's or a user's connections on this node: cmd 9, 10 and 16; a token given
    to someone else ends the connections opened with it."""
    if notice.kind == TOKEN_REBOUND:
        for client in clients:
            session = client.session
            if session is not None and session.credential and token_digest(session.credential) == notice.data["token"]:
                session.revoked()
        return
    command = NOTICE_COMMANDS.get(notice.kind)
    targets = [c for c in clients if c.connection_open]
    if command is None or not targets:
        return
    if notice.kind == RECALLED:
        data = recall_notice(notice.data)
    else:
        data = {"group": notice.data["group"], "user": notice_user(notice.data["user"], notice.data)}
    prepared = targets[0].prepare(frame(command, data=data))
    for client in targets:
        client.send_frame(prepared)


# -- parsing -----------------------------------------------------------------------------


def as_int(value: Any, name: str, *, default: int | None = None, minimum: int | None = None) -> int | None:
    """J-IM clients send numbers as JSON numbers or numeric strings ("2")."""
    if value is None or value == "":
        return default
    if isinstance(value, str):
        text = value.strip()
        if is_int_text(text) and len(text) <= 20:
            value = int(text)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadRequest(f"{name} must be an integer")
    if minimum is not None and value < minimum:
        raise BadRequest(f"{name} must be at least {minimum}")
    if abs(value) >= 2 ** 53:
        raise BadRequest(f"{name} is out of range")
    return value


def as_id(value: Any, name: str, *, required: bool = True) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if value is None or value == "":
        if required:
            raise BadRequest(f"{name} is required")
        return None
    if not isinstance(value, str) or len(value) > MAX_ID_CHARS or not is_id_text(value):
        raise BadRequest(f"{name} must be a string of at most {MAX_ID_CHARS} characters, no control characters")
    return value


def content_text(value: Any) -> str:
    if value is None:
        raise BadRequest("content is required")
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode("utf-8")


def _param(params: dict[str, list[str]], name: str, limit: int) -> str | None:
    values = params.get(name) or []
    value = values[0] if values else None
    if not value or len(value) > limit or not is_id_text(value):
        return None
    return value


# -- the connection ------------------------------------------------------------------------


class JimProtocol(BaseProtocol):
    _log = Logger()

    def __init__(self) -> None:
        super().__init__()
        self.token: str | None = None
        #: inbox entries handed out by cmd 19 type 0 and not yet confirmed by the client
        self._pulling: set[str] = set()

    @property
    def jim(self) -> Jim:
        return self.factory.context

    # -- handshake ----------------------------------------------------------------------

    def onConnect(self, request):
        # Autobahn waits for a Deferred from onConnect (txaio.as_future), so the
        # refusal is a real HTTP 401 in the handshake, after Redis or the hook answered.
        return defer.Deferred.fromCoroutine(self._authenticate(request.params))

    async def _authenticate(self, params: dict[str, list[str]]) -> None:
        token = _param(params, "token", MAX_TOKEN_CHARS)
        username = _param(params, "username", MAX_ID_CHARS)
        try:
            if token:
                user = await self.jim.user_of_token(token)
            elif username:
                user = await self.jim.user_of_password(username, _param(params, "password", MAX_PASSWORD_CHARS) or "")
            else:
                raise ConnectionDeny(401, "token (or username and password) required")
        except StoreUnavailable:
            raise ConnectionDeny(503, "storage unavailable") from None
        if self._lost:  # gone while we waited: never open a connection that is not there
            raise ConnectionDeny(401, "connection lost during authentication")
        if not user:
            raise ConnectionDeny(401, "invalid token" if token else "login refused")
        self.user = user
        self.token = token or None
        return None

    # -- open and close ----------------------------------------------------------------------

    def onOpen(self) -> None:
        super().onOpen()
        self.session.credential = self.token  # checked again now and then (None for a hook login)
        self.session.on_cleanup(self._left)
        self.run_in_order(self._login, "login")

    async def _login(self) -> None:
        try:
            groups = await self.jim.login(self.user)
            # hold=True: nothing overtakes the login answer (J-IM clients ignore frames before it)
            if not await self.session.login(self.user, rooms=[group_room(g) for g in groups], hold=True):
                return
            # every group message stored after the login answer is pushed (older ones are pulled)
            await self.session.fix_group_floors()
            record = await self.jim.user(self.user)
        except Exception:
            self._log.failure("jim login of {user} failed", user=self.user)
            if self.connection_open:
                self.send_text(frame(6, 10008))
                self.close(CLOSE_LOGIN_FAILED, "login failed")
            return
        if not self.connection_open:
            return
        data: dict[str, Any] = {}
        if self.token:
            data["token"] = self.token
        data["user"] = self._user_json(self.user, record)
        self.send_text(frame(6, 10007, data))
        self.session.release()
        try:
            await self.session.release_groups()
        except Exception:  # its group messages would stay held: the client had better come again
            self._log.failure("jim connection of {user} could not go live in its groups", user=self.user)
            if self.connection_open:
                self.close(CLOSE_LOGIN_FAILED, "login failed")
            return
        for group in groups:
            await self.jim.announce(group, GROUP_JOINED, self.user, record, skip=self.session.id)

    async def _left(self, rooms: list[str]) -> None:
        """After the connection left its rooms: its groups hear it went (cmd 10)."""
        groups = groups_of_rooms(rooms)
        if groups and self.user is not None:
            record = await self.jim.user(self.user)
            for group in groups:
                await self.jim.announce(group, GROUP_LEFT, self.user, record)

    def close_silent(self) -> None:
        """The liveness sweep found this connection silent for too long."""
        self._log.info("closing silent jim connection of {user} ({peer})", user=self.user, peer=self.peer)
        self.close(CLOSE_HEARTBEAT, "heartbeat timeout")

    # -- input -----------------------------------------------------------------------------

    def onMessage(self, payload: bytes, is_binary: bool) -> None:
        if not self.run_in_order(lambda: self._handle(payload), "jim frame"):
            self.send_text(refusal(0, 10002, "too many requests waiting, slow down"))

    async def _handle(self, payload: bytes) -> None:
        try:
            request = decode_json(payload, max_bytes=self.factory.settings.max_message_bytes)
        except BadJSON as e:
            self._reply(refusal(0, 10002, e.reason))
            return
        if not isinstance(request, dict):
            self._reply(refusal(0, 10002, "a frame must be a JSON object"))
            return
        try:
            cmd = as_int(request.get("cmd"), "cmd")
        except BadRequest:
            cmd = None
        handler = HANDLERS.get(cmd)
        if handler is None:
            self._reply(frame(0, 10017))
            return
        try:
            await handler(self, request)
        except StoreUnavailable as e:
            STORE.happened(str(e), during=f"jim cmd {cmd}")
            command, code = FAILURE[cmd]
            self._reply(refusal(command, code, "storage unavailable, try again"))
        except Exception:
            self._log.failure("jim cmd {cmd} of {user} failed", cmd=cmd, user=self.user)
            command, code = FAILURE[cmd]
            self._reply(refusal(command, code, "internal error"))

    def _reply(self, payload: bytes) -> None:
        if self.connection_open:
            self.send_text(payload)

    def _user_json(self, user: str, record: dict[str, str]) -> dict[str, Any]:
        """An online J-IM user as cmd 6 and cmd 17 type 0 list them."""
        return user_json(user, record, status="online", default_avatar=self.jim.settings.default_avatar)

    # -- commands --------------------------------------------------------------------------

    async def cmd_auth(self, request: dict[str, Any]) -> None:
        token = request.get("token")
        ok = isinstance(token, str) and 0 < len(token) <= MAX_TOKEN_CHARS and \
            await self.jim.user_of_token(token) == self.user
        self._reply(frame(4, 10009 if ok else 10010))

    async def cmd_login(self, request: dict[str, Any]) -> None:
        token = request.get("token")
        name = request.get("loginname")
        user = None
        if isinstance(token, str) and 0 < len(token) <= MAX_TOKEN_CHARS:
            user = await self.jim.user_of_token(token)
        elif isinstance(name, str) and 0 < len(name) <= MAX_ID_CHARS:
            password = request.get("password")
            user = await self.jim.user_of_password(name, password if isinstance(password, str) else "")
        if user != self.user:
            self._reply(refusal(6, 10008, "the credentials do not name this connection's user"))
            return
        record = await self.jim.user(self.user)
        data: dict[str, Any] = {}
        if self.token:
            data["token"] = self.token
        data["user"] = self._user_json(self.user, record)
        self._reply(frame(6, 10007, data))

    async def cmd_join_group(self, request: dict[str, Any]) -> None:
        try:
            group = as_id(request.get("group_id", request.get("groupId")), "group_id")
        except BadRequest as e:
            self._reply(frame(8, 10012, {"reason": e.detail, "result": 0}))
            return
        allowed = await self.jim.may_join(self.user, group)
        if not allowed:
            result, reason = (2, f"no group {group}") if allowed is None else (0, f"not a member of group {group}")
            self._reply(frame(8, 10012, {"group": group, "reason": reason, "result": result}))
            return
        room = group_room(group)
        new = room not in self.session.rooms()
        if new:
            await self.session.join(room)
        self._reply(frame(8, 10011, {"group": group, "result": 1}))
        if new:
            await self.jim.announce(group, GROUP_JOINED, self.user, await self.jim.user(self.user),
                                    skip=self.session.id)

    async def cmd_chat(self, request: dict[str, Any]) -> None:
        try:
            chat_type = as_int(request.get("chatType"), "chatType")
            if chat_type not in (1, 2):
                raise BadRequest("chatType must be 1 (group) or 2 (private)")
            sender = as_id(request.get("from"), "from", required=False)
            if sender is not None and sender != self.user:
                raise BadRequest("from must be the connected user")
            body = chat_body(chat_type=chat_type, msg_type=as_int(request.get("msgType"), "msgType", default=0, minimum=0),
                             content=content_text(request.get("content")),
                             create_time=as_int(request.get("createTime"), "createTime", minimum=0,
                                                default=self.jim.now_ms()),
                             extras=request.get("extras"))
            client_id = request.get("id") if isinstance(request.get("id"), str) and 0 < len(request["id"]) <= 64 \
                else None
            if chat_type == 2:
                to = as_id(request.get("to"), "to")
                if to == self.user:
                    raise BadRequest("cannot send to yourself")
                result = await self.jim.send_private(self.user, to, body, client_id=client_id, exclude=self)
                code = 10000 if result.online or result.duplicate else 10001
            else:
                group = as_id(request.get("groupId", request.get("group_id")), "groupId")
                await self.jim.send_group(self.user, group, body, client_id=client_id, exclude=self)
                code = 10000
        except (BadRequest, JimError) as e:
            self._reply(refusal(12, 10002, e.detail))
            return
        self._reply(frame(12, code))

    async def cmd_heartbeat(self, request: dict[str, Any]) -> None:
        self._reply(frame(13, data={"createTime": self.jim.now_ms(), "hbbyte": HEARTBEAT_BYTE}))

    async def cmd_close(self, request: dict[str, Any]) -> None:
        target = request.get("userid", request.get("userId"))
        if target is not None and str(target) != self.user:
            self._reply(refusal(14, 10020, "a connection can only close itself"))
            return
        self._reply(frame(14, 10021))
        self.close(1000, "close requested")

    async def cmd_recall(self, request: dict[str, Any]) -> None:
        msg_id = request.get("id")
        if not isinstance(msg_id, str) or not 0 < len(msg_id) <= 64:
            self._reply(refusal(16, 10002, "id of the message to recall is required"))
            return
        try:
            recalled = await self.jim.recall(self.user, msg_id, skip=self.session.id)
        except NotAllowed as e:
            self._reply(refusal(16, 10020, e.detail))
            return
        except JimError as e:
            self._reply(refusal(16, 10002, e.detail))
            return
        self._reply(frame(16, 10000, {"id": recalled.id}))

    async def cmd_get_user(self, request: dict[str, Any]) -> None:
        try:
            kind = as_int(request.get("type"), "type", default=0)
            user = as_id(request.get("userId", request.get("userid")), "userId")
            if user != self.user:
                raise BadRequest("userId must be the connected user")
            if kind == 0:
                await self._user_online(user)
            elif kind == 1:
                records = await self.jim.users(await self.jim.friends(user))
                self._reply(frame(18, 200, [friend_json(u, r) for u, r in records.items()], SEED_OK_MSG))
            elif kind == 2:
                extras = request.get("extras") if isinstance(request.get("extras"), dict) else {}
                pull_type = as_int(extras.get("pullType"), "pullType", default=1)
                if pull_type not in (1, 2, 3):
                    raise BadRequest("pullType must be 1, 2 or 3")
                search = extras.get("searchKey") or ""
                if not isinstance(search, str) or len(search) > MAX_ID_CHARS:
                    raise BadRequest("searchKey must be a short string")
                await self._user_detail(user, pull_type, search.strip())
            else:
                raise BadRequest("type must be 0, 1 or 2")
        except BadRequest as e:
            self._reply(refusal(18, 10004, e.detail))

    async def _user_online(self, user: str) -> None:
        """J-IM's type 0: the user with the online members of their groups and friends."""
        groups = await self.jim.groups_with_online_members(user)
        friends = await self.jim.online_friends(user)
        everyone = [user] + friends + [m for _, _, members in groups for m in members]
        records = await self.jim.users(everyone)
        me = self._user_json(user, records[user])
        me["friends"] = [{"group_id": FRIENDS_GROUP, "name": "我的好友",
                          "users": [self._user_json(f, records[f]) for f in friends]}]
        me["groups"] = [{"group_id": g, "name": name, "users": [self._user_json(m, records[m]) for m in members]}
                        for g, name, members in groups]
        self._reply(frame(18, 10005, dict(sorted(me.items()))))

    async def _user_detail(self, user: str, pull_type: int, search: str) -> None:
        details = await self.jim.friend_details(user, pull_type, search)
        records = await self.jim.users([user] + [f for f, _, _ in details])
        friends = [{"avatar": records[f].get("avatar", ""), "historyMessage": [chat_json(m) for m in msgs],
                    "nickname": records[f].get("nick", ""), "unReadNum": unread, "userId": f}
                   for f, msgs, unread in details]
        me = records[user]
        self._reply(frame(18, 200, {"avatar": me.get("avatar", ""), "friends": friends,
                                    "nickname": me.get("nick", ""), "userId": user}, SEED_OK_MSG))

    async def cmd_get_messages(self, request: dict[str, Any]) -> None:
        try:
            kind = as_int(request.get("type"), "type")
            if kind not in (0, 1, 2):
                raise BadRequest("type must be 0 (offline), 1 (history) or 2 (offline, kept)")
            user = as_id(request.get("userId", request.get("userid")), "userId")
            if user != self.user:
                raise BadRequest("userId must be the connected user")
            group = as_id(request.get("groupId", request.get("group_id")), "groupId", required=False)
            partner = None if group else as_id(request.get("fromUserId"), "fromUserId", required=False)
            if partner == user:
                raise BadRequest("fromUserId cannot be the user")
            window = {"begin_ms": as_int(request.get("beginTime"), "beginTime", minimum=0),
                      "end_ms": as_int(request.get("endTime"), "endTime", minimum=0),
                      "offset": as_int(request.get("offset"), "offset", default=0, minimum=0),
                      "count": as_int(request.get("count"), "count", minimum=0)}
            if kind == 1:
                if group is None and partner is None:
                    raise BadRequest("history needs fromUserId or groupId")
                messages = await self.jim.history(user, partner=partner, group=group, **window)
            else:
                messages = await self.jim.offline(user, partner=partner, group=group, skip=frozenset(self._pulling),
                                                  live_floors=self.jim.hub.group_feed.live_floors(self), **window)
        except (BadRequest, JimError) as e:
            self._reply(refusal(20, 10015, e.detail))
            return
        answer = frame(20, GET_MESSAGES_CODE[kind], messages_json(user, messages))
        if kind != 0 or not messages:
            self._reply(answer)
            return
        # type 0: the messages leave the inbox only once the client has provably read this answer
        # (its pong); a pull that dies on the way loses nothing, and until then a second pull on
        # this connection does not hand them out again
        entries = {m.entry for m in messages}
        self._pulling |= entries

        def delivered() -> None:
            self.spawn(self._pulled(messages, entries), "removing pulled messages")

        if self.connection_open:
            self.send_text(answer, on_delivered=delivered)

    async def _pulled(self, messages: list[Message], entries: set[str]) -> None:
        try:
            await self.jim.pulled(self.user, messages)
        finally:
            self._pulling -= entries


HANDLERS: dict[int | None, Callable[[JimProtocol, dict[str, Any]], Any]] = {
    3: JimProtocol.cmd_auth,
    5: JimProtocol.cmd_login,
    7: JimProtocol.cmd_join_group,
    11: JimProtocol.cmd_chat,
    13: JimProtocol.cmd_heartbeat,
    14: JimProtocol.cmd_close,
    15: JimProtocol.cmd_recall,
    17: JimProtocol.cmd_get_user,
    19: JimProtocol.cmd_get_messages,
}
#: the answer (command, code) when a command could not be served (storage down)
FAILURE = {3: (4, 10010), 5: (6, 10008), 7: (8, 10012), 11: (12, 10002), 13: (13, 10002), 14: (14, 10020),
           15: (16, 10002), 17: (18, 10004), 19: (20, 10015)}
