"""
v2 IM messages (seed 001 "IM消息类型"): what a client may send, and how the
stored message looks on the wire.

Client → server (a push-channel frame, or a JSON array of up to
`MAX_FRAME_ITEMS` of them):

    {"msgType": "IM", "msg": {"toUserId": 10034, "msgType": "text",
     "content": {"text": "hello"}, "jump": {...}?, "clientMsgId": "..."?}}

Server → both users (every connection), one item of a frame array:

    {"msgType": "IM", "msg": {"toUserId", "fromUserId", "msgType", "content",
     "jump"?, "msgId", "createTime", "tips"}, "users": {"<id>": {id,
     displayName, heiNum, coverUrl, level, gender, honours, isFollowed}},
     "timeStamp": <seconds>}

Content per msgType (unknown keys are dropped, every string is bounded):
text/systopic {text}; audio {audio: URL, length: s}; gift {text?, giftId};
dueChat {chatStatus, chatLength}; sysnotify {text, img?: URL, icon?: URL}
(+ msg.jump {text, link}); image {img: URL}; video {video: URL}.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from heihei.core.errors import Refused
from heihei.heihei.errors import BAD_PARAMETER
from heihei.textnum import is_digits

MSG_TYPES = ("text", "audio", "gift", "systopic", "dueChat", "sysnotify", "image", "video")

TIPS = {
    "text": "【文本消息】不支持的消息类型，请升级最新客户端。",
    "systopic": "【系统消息】不支持的消息类型，请升级最新客户端。",
    "audio": "【声音消息】不支持的消息类型，请升级最新客户端。",
    "gift": "【礼物消息】不支持的消息类型，请升级最新客户端。",
    "dueChat": "【约聊消息】不支持的消息类型，请升级最新客户端。",
    "sysnotify": "【通知消息】不支持的消息类型，请升级最新客户端。",
    "image": "【图片消息】不支持的消息类型，请升级最新客户端。",
    "video": "【视频消息】不支持的消息类型，请升级最新客户端。",
}

#: what a conversation list or a push shows for a message without text
PREVIEW = {"audio": "[语音]", "image": "[图片]", "video": "[视频]", "dueChat": "[约聊]", "gift": "[礼物]"}

MAX_URL_CHARS = 1024
MAX_FRAME_ITEMS = 20
MAX_CLIENT_MSG_ID_CHARS = 64
MAX_INT = 2 ** 31 - 1

# field -> (kind, required); kinds: text, url, int
CONTENT = {
    "text": {"text": ("text", True)},
    "systopic": {"text": ("text", True)},
    "audio": {"audio": ("url", True), "length": ("int", True)},
    "gift": {"text": ("text", False), "giftId": ("int", True)},
    "dueChat": {"chatStatus": ("int", True), "chatLength": ("int", True)},
    "sysnotify": {"text": ("text", True), "img": ("url", False), "icon": ("url", False)},
    "image": {"img": ("url", True)},
    "video": {"video": ("url", True)},
}


class ImError(Refused):
    """A client IM the domain refuses (malformed: the detail says what is wrong)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason, detail)


@dataclass(frozen=True)
class ClientIm:
    to: str
    msg_type: str
    content: dict[str, Any]
    jump: dict[str, str] | None
    client_msg_id: str | None


def api_major(text: str | None) -> int:
    """An app's `apiVersion` ("2.0" -> 2; anything unreadable is 1: the shipped client sends "1.0").
    Only apps of version 2 or later get v2 IM items on the push channel."""
    head = (text or "").strip().split(".", 1)[0]
    return int(head) if is_digits(head) and len(head) < 6 else 1


def _bad(detail: str) -> ImError:
    return ImError(BAD_PARAMETER, detail)


def _check_field(where: str, kind: str, value: Any, max_text_chars: int) -> Any:
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INT:
            raise _bad(f"{where} must be a non-negative integer")
        return value
    if not isinstance(value, str) or not value.strip():
        raise _bad(f"{where} must be a non-empty string")
    if kind == "url":
        if len(value) > MAX_URL_CHARS or not value.startswith(("http://", "https://")):
            raise _bad(f"{where} must be an http(s) URL of at most {MAX_URL_CHARS} characters")
        return value
    if len(value) > max_text_chars:
        raise _bad(f"{where} longer than {max_text_chars} characters")
    return value


def parse_client_im(frame: Any, max_text_chars: int) -> ClientIm:
    """Check one client IM object; raise ImError naming the first problem."""
    if not isinstance(frame, dict):
        raise _bad("a frame item must be a JSON object")
    if frame.get("msgType") != "IM":
        raise _bad('msgType must be "IM"')
    msg = frame.get("msg")
    if not isinstance(msg, dict):
        raise _bad("msg must be an object")
    to = msg.get("toUserId")
    if isinstance(to, bool) or not isinstance(to, (int, str)) or not is_digits(str(to)) or len(str(to)) > 19:
        raise _bad("msg.toUserId must be a user id")
    msg_type = msg.get("msgType")
    if msg_type not in MSG_TYPES:
        raise _bad("msg.msgType must be one of " + ", ".join(MSG_TYPES))
    content = msg.get("content")
    if not isinstance(content, dict):
        raise _bad("msg.content must be an object")
    clean: dict[str, Any] = {}
    for name, (kind, required) in CONTENT[msg_type].items():
        if name not in content or content[name] is None:
            if required:
                raise _bad(f"msg.content.{name} is required for {msg_type}")
            continue
        clean[name] = _check_field(f"msg.content.{name}", kind, content[name], max_text_chars)
    jump = None
    if msg_type == "sysnotify" and msg.get("jump") is not None:
        raw = msg["jump"]
        if not isinstance(raw, dict):
            raise _bad("msg.jump must be an object")
        jump = {"text": _check_field("msg.jump.text", "text", raw.get("text"), 32),
                "link": _check_field("msg.jump.link", "text", raw.get("link"), MAX_URL_CHARS)}
    cid = msg.get("clientMsgId")
    if cid is not None and (not isinstance(cid, (str, int)) or isinstance(cid, bool)
                            or len(str(cid)) > MAX_CLIENT_MSG_ID_CHARS):
        raise _bad(f"msg.clientMsgId must be a string of at most {MAX_CLIENT_MSG_ID_CHARS} characters")
    return ClientIm(str(int(to)), msg_type, clean, jump, str(cid) if cid is not None else None)


def build_msg(*, to: str, sender: str, msg_type: str, content: dict, jump: dict | None, msg_id: int,
              create_time: int, client_msg_id: str | None = None) -> dict[str, Any]:
    """The stored/delivered `msg` object, keys in the seed's order."""
    msg: dict[str, Any] = {"toUserId": int(to), "fromUserId": int(sender), "msgType": msg_type, "content": content}
    if jump is not None:
        msg["jump"] = jump
    msg["msgId"] = msg_id
    msg["createTime"] = create_time
    msg["tips"] = TIPS[msg_type]
    if client_msg_id is not None:
        msg["clientMsgId"] = client_msg_id
    return msg


def user_entry(profile: dict[str, str] | None, uid: str, is_followed: bool) -> dict[str, Any]:
    """One entry of an IM item's `users` map (types as in the seed: heiNum is a string there)."""
    p = profile or {}
    level = p.get("level", "0")
    return {"id": int(uid), "displayName": p.get("displayName", ""), "heiNum": p.get("heiNum", ""),
            "coverUrl": p.get("coverUrl", ""), "level": int(level) if is_digits(level) else 0,
            "gender": p.get("gender", ""), "honours": [], "isFollowed": bool(is_followed)}


def preview(msg: dict[str, Any]) -> str:
    """A short text for a conversation list or a push."""
    if msg.get("msgType") == "IM" and isinstance(msg.get("msg"), dict):
        msg = msg["msg"]
    content = msg.get("content") if isinstance(msg.get("content"), dict) else {}
    kind = msg.get("msgType", "")
    text = content.get("text") if isinstance(content.get("text"), str) else None
    if text is None and isinstance(msg.get("text"), str):
        text = msg["text"]
    if text is None and isinstance(msg.get("comment"), str):
        text = msg["comment"]
    return (text or PREVIEW.get(kind, ""))[:100]


# -- stored message -> client item ------------------------------------------------------
#
# Message bodies the push channel stores (realm "channel"):
#   {"t": "im", "msg": {...}, "users": {"s": users map for the sender's eyes,
#                                       "r": users map for the receiver's eyes}}
#   {"t": "item", "item": {...}}   an item delivered verbatim (server messages, room text)


def item_of(body: dict[str, Any], created_ms: int, viewer_is_sender: bool) -> dict[str, Any] | None:
    """The client item for a stored body, as one viewer sees it (None: not an item)."""
    kind = body.get("t")
    if kind == "im":
        users = body.get("users", {}).get("s" if viewer_is_sender else "r", {})
        return {"msgType": "IM", "msg": body["msg"], "users": users, "timeStamp": created_ms // 1000}
    if kind == "item" and isinstance(body.get("item"), dict):
        return body["item"]
    return None


def items_of(body: dict[str, Any], created_ms: int, viewer_is_sender: bool) -> list[dict[str, Any]]:
    """Every client item of a stored body: a room batch (`t: items`, the live lanes) holds several."""
    if body.get("t") == "items":
        return [item for item in body.get("items") or () if isinstance(item, dict)]
    item = item_of(body, created_ms, viewer_is_sender)
    return [] if item is None else [item]


def msg_of(body: dict[str, Any]) -> dict[str, Any]:
    """The `msg` object inside a stored body (for previews and types)."""
    if body.get("t") == "im":
        return body.get("msg", {})
    item = body.get("item") or {}
    if item.get("msgType") == "IM":
        return item.get("msg") or {}
    return item.get("msg") or {}
