"""
Seed 000: the live-activity chat room, on the `--live` listener (any path).

Wire format (docs/live.md has every decision). Client frames are JSON text
(binary frames are read the same way):

    {"cmd": "<Cmd>", "data": {...}}

Every answer and push is one JSON object:

    {"code": <int>, "msg": "<text>", "cmd": "<Cmd>", "data": {...}}

    Open       data {activityId}            -> 1 {title, details, shareTitle, shareDigest,
                                                  startTime, endTime (10-digit Unix seconds as
                                                  strings), sharePic, total, liveStreamingPath, appId}
                                               joins the room; -1004 unknown activity
    Total      data {activityId}            -> 1 {total}; also pushed to the room on every change
                                               of the online total, at most once per second
    CheckLogin data {token}                 -> 1 {token, nickname, headimgurl, appId} | -1001 {appId}
    Login      data {type: "wechat", code}  -> 1 {token, nickname, headimgurl} | -1009
    Message    data {activityId, msg, token}-> broadcast to the room:
                                               1 "msg": <text> {userName, headPic, my, time, msg}
                                               (my "1" in the sender's copies, "0" elsewhere;
                                               time "YYYY-MM-DD HH:MM:SS" server local time)
                                               -1001 no/bad token, -1002 too fast or muted,
                                               -1003 over max_chars, -1004 not started,
                                               -1005 ended
    History    data {activityId, count<=100}-> 1 {activityId, messages: [Message data + id]},
                                               newest last (our addition to the seed)

    any        not JSON / not an object / missing parameter -> -1006 (cmd "" if unknown)
               unknown cmd -> -1008; server trouble -> -1007
    push       activity removed by an operator -> -1005 (cmd "Open"), then close 1000

Errors carry `data: {}` except -1001, which carries `{appId}` so the page can
start WeChat OAuth. Anonymous connections may watch (Open, Total, History).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from twisted.logger import Logger

from heihei.core.model import Message
from heihei.jsonsafe import BadJSON, decode_json_object, encode_json
from heihei.live import service as live
from heihei.core.hub import Notice
from heihei.incidents import STORE
from heihei.live.service import EVENT_REMOVED, EVENT_TOTAL, LiveError, LiveService
from heihei.net.websocket import BaseProtocol
from heihei.store.client import StoreUnavailable

_log = Logger()

OK = 1
OK_MSG = "成功"
NOT_LOGGED_IN_MSG = "未登录"  # the seed's CheckLogin answer
INTERNAL = (-1007, "网络问题出错，请重试")
UNKNOWN_CMD = (-1008, "没有该方法")
MISSING = (-1006, "缺少必传参数")
ENDED = (-1005, "直播活动已结束")
#: domain refusal -> (code, msg)
REFUSALS = {
    live.NOT_LOGGED_IN: (-1001, "用户未登录，禁止发言"),
    live.TOO_FREQUENT: (-1002, "发言频繁，请稍后再试"),
    live.MUTED: (-1002, "您已被禁言"),
    live.TOO_LONG: (-1003, "超过最大字符数，{max_chars}字"),
    live.NOT_OPEN: (-1004, "直播活动未开启"),
    live.ENDED_REASON: ENDED,
    live.MISSING: MISSING,
    live.LOGIN_FAILED: (-1009, "登录失败"),
}
#: echoed command names are cut to this length
MAX_CMD_ECHO = 64
#: longest WeChat OAuth code accepted (real ones are 32 characters)
MAX_CODE_CHARS = 512
HISTORY_DEFAULT = 20


def answer(cmd: str, code: int, msg: str, data: Any) -> bytes:
    return encode_json({"code": code, "msg": msg, "cmd": cmd, "data": data})


def message_data(message: Message, my: str) -> dict[str, Any]:
    b = message.body
    return {"userName": b.get("userName", ""), "headPic": b.get("headPic", ""), "my": my,
            "time": b.get("time", ""), "msg": b.get("msg", "")}


class LiveRenderer:
    """Two variants of a chat message: the sender's own copies (`my` "1") and everyone else's."""

    def variant(self, message: Message, client) -> str:
        return "1" if client.user is not None and client.user == message.sender else "0"

    #: `variant` only tells the sender's own connections ("1") from everyone else's ("0"):
    #: the hub groups a room by set operations instead of a call per receiver
    by_sender = ("1", "0")

    def render(self, message: Message, variant: str) -> bytes:
        # top-level msg echoes the text, as the seed's example does ("msg": "中国")
        return answer("Message", OK, message.body.get("msg", ""), message_data(message, variant))


class LiveFrames:
    """Pushes the domain starts: one prepared frame for all local receivers."""

    def total(self, clients: Iterable, total: int) -> None:
        _send_to_all(clients, answer("Total", OK, OK_MSG, {"total": total}))

    def removed(self, clients: Iterable) -> None:
        clients = list(clients)
        _send_to_all(clients, answer("Open", ENDED[0], ENDED[1], {}))
        for client in clients:
            client.close(1000, "activity removed")


def _send_to_all(clients: Iterable, payload: bytes) -> None:
    frame = None
    for client in clients:
        if frame is None:
            frame = client.prepare(payload)
        client.send_frame(frame)


def on_notice(service: LiveService):
    """The live realm's notices: a room's total changed (coalesced), its activity was removed."""

    def handle(notice: Notice, clients: set) -> None:
        if notice.kind == EVENT_TOTAL:
            service.totals.changed(notice.data["room"])
        elif notice.kind == EVENT_REMOVED:
            LiveFrames().removed(clients)

    return handle


class LiveProtocol(BaseProtocol):
    #: the activity whose room this connection is in
    activity: str | None = None
    #: the token of the last successful Login/CheckLogin/Message on this connection
    token: str | None = None

    @property
    def service(self) -> LiveService:
        return self.factory.context

    def onOpen(self) -> None:
        super().onOpen()
        # after the connection left its room (the session's clean-up), the room hears the new total
        self.session.on_cleanup(self.service.left)

    # -- framing -----------------------------------------------------------------

    def onMessage(self, payload: bytes, is_binary: bool) -> None:
        cmd, handler, data, refusal = self._parse(payload)
        if refusal is not None:
            # answered in turn: a refusal must not overtake the answer to an earlier command
            run = self._answer_in_turn(cmd, refusal)
        else:
            run = lambda: self._run(cmd, handler, data)  # noqa: E731
        if not self.run_in_order(run, cmd or "frame"):
            self._refuse(cmd, live.TOO_FREQUENT)

    def _parse(self, payload: bytes):
        """(cmd, handler, data, None), or (cmd, None, None, the (code, msg) to answer)."""
        limit = self.factory.settings.max_message_bytes
        try:
            frame = decode_json_object(payload, max_bytes=limit)
        except BadJSON:
            return "", None, None, MISSING
        cmd = frame.get("cmd")
        if not isinstance(cmd, str) or not cmd:
            return "", None, None, MISSING
        handler = COMMANDS.get(cmd)
        if handler is None:
            return cmd[:MAX_CMD_ECHO], None, None, UNKNOWN_CMD
        data = frame.get("data")
        if data is None:
            data = {}
        elif isinstance(data, str):
            # the seed prints `data` as a quoted JSON string once; accept that form too
            try:
                data = decode_json_object(data, max_bytes=limit)
            except BadJSON:
                data = None
        if not isinstance(data, dict):
            return cmd, None, None, MISSING
        return cmd, handler, data, None

    def _answer_in_turn(self, cmd: str, refusal: tuple[int, str]):
        async def answer() -> None:
            self._send(cmd, *refusal)

        return answer

    async def _run(self, cmd: str, handler: Callable, data: dict[str, Any]) -> None:
        try:
            await handler(self, data)
        except LiveError as e:
            self._refuse(cmd, e.reason)
        except StoreUnavailable as e:  # expected while Redis is away: one log line per incident
            STORE.happened(str(e), during=f"live {cmd}")
            self._send(cmd, *INTERNAL)
        except Exception:
            _log.failure("live {cmd} failed for {peer}", cmd=cmd, peer=self.peer)
            self._send(cmd, *INTERNAL)

    def _send(self, cmd: str, code: int, msg: str, data: Any = None) -> None:
        if self.connection_open:
            self.send_text(answer(cmd, code, msg, {} if data is None else data))

    def _refuse(self, cmd: str, reason: str) -> None:
        code, msg = REFUSALS.get(reason, INTERNAL)
        if reason == live.TOO_LONG:
            msg = msg.format(max_chars=self.factory.settings.max_chars)
        data = {"appId": self.factory.settings.wechat_appid} if code == -1001 else {}
        self._send(cmd, code, msg, data)

    # -- commands ---------------------------------------------------------------------

    async def open(self, data: dict[str, Any]) -> None:
        activity_id = _required_id(data)
        activity, total = await self.service.open(self, activity_id)
        f = activity.fields()
        self._send("Open", OK, OK_MSG, {
            "title": f["title"], "details": f["details"], "shareTitle": f["shareTitle"],
            "shareDigest": f["shareDigest"], "startTime": str(f["startTime"]), "endTime": str(f["endTime"]),
            "sharePic": f["sharePic"], "total": total, "liveStreamingPath": f["liveStreamingPath"],
            "appId": self.factory.settings.wechat_appid})
        await self.service.joined(activity_id)

    async def total(self, data: dict[str, Any]) -> None:
        total = await self.service.total(_required_id(data))
        self._send("Total", OK, OK_MSG, {"total": total})

    async def check_login(self, data: dict[str, Any]) -> None:
        appid = self.factory.settings.wechat_appid
        session = await self.service.check_login(self, data.get("token"))
        if session is None:
            self._send("CheckLogin", -1001, NOT_LOGGED_IN_MSG, {"appId": appid})
            return
        self._send("CheckLogin", OK, OK_MSG, {"token": session.token, "nickname": session.nickname,
                                              "headimgurl": session.headimgurl, "appId": appid})

    async def login(self, data: dict[str, Any]) -> None:
        login_type, code = _required_text(data, "type"), _required_text(data, "code")
        if len(code) > MAX_CODE_CHARS:
            raise LiveError(live.LOGIN_FAILED, "code too long")
        session = await self.service.login(self, login_type, code)
        self._send("Login", OK, OK_MSG, {"token": session.token, "nickname": session.nickname,
                                         "headimgurl": session.headimgurl})

    async def message(self, data: dict[str, Any]) -> None:
        activity_id = _required_id(data)
        text = data.get("msg")
        if not isinstance(text, str) or not text:
            raise LiveError(live.MISSING, "msg")
        message = await self.service.send(self, activity_id, data.get("token"), text)
        if self.activity != activity_id and self.connection_open:
            # not in that room, so the broadcast missed the sender: its own copy comes here
            self.send_text(LiveRenderer().render(message, "1"))

    async def history(self, data: dict[str, Any]) -> None:
        activity_id = _required_id(data)
        count = _count(data.get("count", HISTORY_DEFAULT))
        messages = await self.service.history(activity_id, count)
        renderer = LiveRenderer()
        items = [{"id": str(m.id), **message_data(m, renderer.variant(m, self))} for m in messages]
        self._send("History", OK, OK_MSG, {"activityId": activity_id, "messages": items})


COMMANDS: dict[str, Callable] = {
    "Open": LiveProtocol.open,
    "Total": LiveProtocol.total,
    "CheckLogin": LiveProtocol.check_login,
    "Login": LiveProtocol.login,
    "Message": LiveProtocol.message,
    "History": LiveProtocol.history,
}


def _required_id(data: dict[str, Any]) -> str:
    """`activityId` as text; pages may send it as a number."""
    value = data.get("activityId")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise LiveError(live.MISSING, "activityId")
    return value.strip()


def _required_text(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise LiveError(live.MISSING, name)
    return value


def _count(value: object) -> int:
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 6:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise LiveError(live.MISSING, "count must be a positive integer")
    return min(value, live.HISTORY_MAX)
