"""Shared helpers of the jim tests: a node with the jim realm, the HTTP API, clients."""

from __future__ import annotations

import json

import orjson
import treq

from tests.conftest import http_url, ws_url
from tests.wsclient import connect

API_KEY = "test-api-key"


def extra(**jim) -> dict:
    return {"jim": {"api_key": API_KEY, **jim}}


async def post(node, path: str, body=None, *, key: str | None = API_KEY, raw: bytes | None = None,
               method: str = "POST"):
    """(HTTP status, decoded JSON answer) of a call to /im/vanke/<path>."""
    headers = {"X-Api-Key": [key]} if key else {}
    data = raw if raw is not None else orjson.dumps(body if body is not None else {})
    response = await treq.request(method, http_url(node, f"/im/vanke/{path}"), data=data, headers=headers)
    text = await response.content()
    return response.code, json.loads(text)


async def register(node, user: str, user_type: int = 0, *, nick: str | None = None, token: str | None = None,
                   **fields) -> str:
    token = token or f"tok-{user}"
    body = {"senderId": user, "type": user_type, "token": token, "terminal": "pc", **fields}
    if nick is not None:
        body["nick"] = nick
    status, answer = await post(node, "initUser", body)
    assert (status, answer) == (200, {"code": 200, "msg": "success", "data": None}), answer
    return token


async def login(node, token: str | None = None, *, query: str | None = None, path: str = "/",
                answer_pings: bool = True):
    """A connected client whose login frame (cmd 6) was read into `client.login`."""
    url = ws_url(node, "jim", f"{path}?{query or 'token=' + token}")
    client = await connect(url, answer_pings=answer_pings)
    client.login = await client.next_json()
    assert client.login["command"] == 6, client.login
    return client


async def ask(client, request: dict | str, timeout: float = 5.0) -> dict:
    client.send(request if isinstance(request, str) else json.dumps(request, ensure_ascii=False))
    return await client.next_json(timeout)


async def until(client, command: int, timeout: float = 5.0) -> dict:
    """The next frame with `command`, skipping others (notices) into client.skipped."""
    skipped = client.__dict__.setdefault("skipped", [])
    while True:
        got = await client.next_json(timeout)
        if got.get("command") == command:
            return got
        skipped.append(got)


def chat(frm: str, to: str, content, **more) -> dict:
    return {"cmd": 11, "from": frm, "to": to, "chatType": 2, "msgType": 0, "createTime": 1568012384,
            "content": content, **more}
