"""Small clients for the heihei REST API and push channel, used by the tests."""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

import treq

from heihei.web.messageserver import sign
from tests.conftest import http_url, ws_url
from tests.heihei.conftest import SECRET
from tests.wsclient import connect


async def api(node, path: str, params: dict | None = None, *, how: str = "form") -> dict:
    """Call `/api...` with the parameters in a form body (default), the query string or a JSON body."""
    params = params or {}
    url = http_url(node, path)
    if how == "query":
        response = await treq.get(url + ("?" + urlencode(params) if params else ""))
    elif how == "json":
        response = await treq.post(url, data=json.dumps(params).encode(),
                                   headers={b"Content-Type": [b"application/json"]})
    else:
        response = await treq.post(url, data={k: str(v) for k, v in params.items()})
    assert response.headers.getRawHeaders("content-type")[0].startswith("application/json")
    return json.loads(await response.text("utf-8"))


async def ok(node, path: str, params: dict | None = None, **kw) -> dict:
    body = await api(node, path, params, **kw)
    assert body["errorcode"] == 0, body
    assert body["errormsg"] == "success"
    return body


async def sign_in(node, outside, phone: str) -> tuple[str, str]:
    """Phone sign-in through the SMS sink; returns (token, user id)."""
    before = len(outside.sms)
    await ok(node, "/api/user/get-sms-verification-code", {"phoneNo": phone})
    records = await outside.wait_for("sms", before + 1)
    code = [r for r in records if r["phoneNo"] == phone][-1]["code"]
    body = await ok(node, "/api/user/sign-in-cl-by-phone", {"phoneNo": phone, "verifyCode": code})
    return body["token"], str(body["userInfo"]["id"])


async def name(node, token: str, display_name: str) -> None:
    await ok(node, "/api/user/update", {"token": token, "displayName": display_name, "gender": "Female",
                                        "birthDay": "1990-01-02"})


def channel_url(node, token: str | None, v2: bool = True) -> str:
    """The push channel's URL; `v2` asks for v2 IM items (`apiVersion=2`, docs/heihei-social.md)."""
    query = [f"token={token}"] if token is not None else []
    if v2:
        query.append("apiVersion=2")
    return ws_url(node, "http", "/ws/channel" + ("?" + "&".join(query) if query else ""))


async def frame(client, timeout: float = 5.0) -> list:
    """The next frame, checked to be a JSON array of items {msg, timeStamp}."""
    text = await client.next(timeout)
    items = json.loads(text)
    assert isinstance(items, list) and items, text
    for item in items:
        assert isinstance(item, dict) and isinstance(item["msg"], dict) and isinstance(item["timeStamp"], int), text
    return items


async def item(client, timeout: float = 5.0) -> dict:
    items = await frame(client, timeout)
    assert len(items) == 1, items
    return items[0]


async def open_channel(node, token: str, *, expect_unread: int | None = 0, v2: bool = True):
    """Connect; the first item is the unread count (checked if `expect_unread` is not None)."""
    client = await connect(channel_url(node, token, v2))
    if expect_unread is not None:
        first = await item(client)
        assert first["msg"] == {"msgType": "action", "action": "message-unread-count", "comment": "未读消息数",
                                "count": expect_unread}, first
    return client


def send_im(client, to: str, msg_type: str, content: dict, **extra) -> None:
    client.send(json.dumps({"msgType": "IM", "msg": {"toUserId": int(to), "msgType": msg_type,
                                                      "content": content, **extra}}))


async def server_call(node, action: str, params: dict, *, secret: str = SECRET, how: str = "form",
                      signature: str | None = None) -> dict:
    """A signed /messageserver call (`params` values as they will be sent)."""
    sent = dict(params)
    sent["signature"] = signature if signature is not None else sign(secret, sent)
    url = http_url(node, f"/messageserver/api/msg/{action}.action")
    if how == "json":
        response = await treq.post(url, data=json.dumps(sent).encode(), headers={b"Content-Type": [b"application/json"]})
    else:
        response = await treq.post(url, data=sent)
    return json.loads(await response.text("utf-8"))


def now_ms() -> int:
    return int(time.time() * 1000)


def send_data(kind: str, target_field: str, target, msg: dict, stamp: int | None = None) -> dict:
    return {"data": json.dumps({"timeStamp": stamp if stamp is not None else now_ms(), "type": kind,
                                target_field: target, "msg": msg}, ensure_ascii=False)}
