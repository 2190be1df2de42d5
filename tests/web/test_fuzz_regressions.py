"""
What schemathesis found on the documented HTTP surfaces (tests/test_schemathesis.py):
answers outside the documented envelope, and documents that disagree with what
the routes accept, although the kit promises that "a document can never
disagree with what the routes accept" (heihei/web/kit/openapi.py).
"""

import json
import socket

import pytest
import pytest_twisted
import treq
from twisted.internet.threads import deferToThread

from heihei.web.kit.auth import sign
from tests.conftest import http_url

ADMIN_TOKEN = "fuzz-admin-token"
JIM_KEY = "fuzz-jim-key"
BOSS_KEY = "fuzz-boss-key"
SECRET = "fuzz-server-secret"
EXTRA = {"admin": {"token": ADMIN_TOKEN}, "jim": {"api_key": JIM_KEY}, "boss": {"api_key": BOSS_KEY},
         "heihei": {"server_secret": SECRET}}
#: surface -> (listener, a path, the keys of its documented envelope, headers)
SURFACES = {
    "heihei": ("http", "/api/init", {"errorcode", "errormsg"}, b""),
    "boss": ("boss", "/grpinfo", {"code", "message"}, b""),
    "jim": ("http", "/im/vanke/initUser", {"code", "msg", "data"}, f"X-Api-Key: {JIM_KEY}\r\n".encode()),
}


def raw_request(host: str, port: int, request: bytes) -> bytes:
    with socket.create_connection((host, port)) as sock:
        sock.settimeout(5)
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


#: what the site itself refuses, and the request that provokes it: (status, request line + headers)
SITE_REFUSALS = {
    414: lambda path, headers: b"GET " + path + b"?x=" + b"y" * 9000 + b" HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n",
    431: lambda path, headers: b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nX-Long: " + b"y" * 9000 + b"\r\n"
    + headers + b"\r\n",
    413: lambda path, headers: b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    + b"Content-Length: 999999999\r\n" + headers + b"\r\n",
}


@pytest.mark.parametrize("status", sorted(SITE_REFUSALS))
@pytest.mark.parametrize("surface", sorted(SURFACES))
@pytest_twisted.ensureDeferred
async def test_site_limit_answers_are_in_the_surface_envelope(nodes, surface, status):
    # schemathesis: GET /api/sys/update, /creategrp, ... with a long query string were answered
    # 414 {"error": "request line too long", "limit": 8192}, which is none of the documents' `default`
    # answers (the surface's envelope); the same held for the site's 413 and 431
    node = await nodes.start("a", EXTRA)
    listener, path, keys, headers = SURFACES[surface]
    host, port = node.listeners[listener].address()
    answer = await deferToThread(raw_request, host, port, SITE_REFUSALS[status](path.encode(), headers))
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status)
    answer = json.loads(body)
    assert keys <= set(answer), body
    assert "too" in json.dumps(answer, ensure_ascii=False), body  # it says what was too large


async def document(node, path: str, listener: str = "http", headers=None) -> dict:
    response = await treq.get(http_url(node, path, listener=listener), headers=headers or {})
    return json.loads(await response.content())


def required_strings(doc: dict):
    """(operation, name, schema) of every required string parameter or body property."""
    for path, item in doc["paths"].items():
        for method, op in item.items():
            label = f"{method.upper()} {path}"
            for p in op.get("parameters", []):
                if p["in"] != "path" and p.get("required") and p.get("schema", {}).get("type") == "string":
                    yield label, p["name"], p["schema"]
            for content in (op.get("requestBody") or {}).get("content", {}).values():
                schema = content["schema"]
                for name in schema.get("required", []):
                    prop = schema["properties"].get(name, {})
                    if prop.get("type") == "string" and prop.get("format") != "binary":
                        yield label, name, prop


@pytest_twisted.ensureDeferred
async def test_documents_say_an_empty_value_is_absent(nodes):
    # schemathesis: the kit reads an empty value as absent (Param.empty_is_absent), so a required
    # string sent empty is refused as missing (heihei "700 参数错误: version (required)", boss
    # "missing groupid", J-IM "to is required") and an optional one sent empty is accepted whatever
    # its pattern (open-room.action?chatId=); the documents allow "" for both. A required string must
    # say minLength >= 1, and an optional query string whose schema refuses "" must say
    # allowEmptyValue.
    node = await nodes.start("a", EXTRA)
    docs = {"heihei": await document(node, "/api/openapi.json"),
            "boss": await document(node, "/openapi.json", "boss"),
            "jim": await document(node, "/im/openapi.json", headers={"X-Api-Key": [JIM_KEY]})}
    wrong = [f"{name}: {label} {param}" for name, doc in docs.items() for label, param, schema in required_strings(doc)
             if schema.get("minLength", 0) < 1]
    for name, doc in docs.items():
        for path, item in doc["paths"].items():
            for method, op in item.items():
                for p in op.get("parameters", []):
                    schema = p.get("schema", {})
                    refuses_empty = schema.get("minLength", 0) > 0 or "{1," in schema.get("pattern", "")
                    if p["in"] == "query" and not p.get("required") and refuses_empty and not p.get("allowEmptyValue"):
                        wrong.append(f"{name}: {method.upper()} {path} {p['name']} (optional, empty means absent)")
    assert not wrong, f"{len(wrong)} parameters:\n" + "\n".join(wrong)


async def call(node, method: str, path: str, *, listener="http", query: str = "", body=None, headers=None):
    url = http_url(node, path, listener=listener) + (f"?{query}" if query else "")
    data = json.dumps(body).encode() if body is not None else None
    response = await treq.request(method, url, data=data, headers=headers or {})
    return response.code, json.loads(await response.content())


def signed(params: dict) -> dict:
    return {**params, "signature": sign(SECRET, params)}


@pytest_twisted.ensureDeferred
async def test_documented_input_is_not_refused_as_malformed(nodes):
    # schemathesis: values the documents allow, refused as malformed by a surface's own converter
    # (a rule the document does not carry); each is (what the document says, the request, the answer)
    node = await nodes.start("a", EXTRA)
    boss = {"X-Api-Key": [BOSS_KEY]}
    jim = {"X-Api-Key": [JIM_KEY]}
    admin = {"Authorization": [f"Bearer {ADMIN_TOKEN}"]}
    refused = []

    # boss: userid and creator are "string, maxLength 1024"; the server wants [A-Za-z0-9][A-Za-z0-9.@-]{0,63}
    _, answer = await call(node, "GET", "/setuser", listener="boss", query="userid=a%20b&nickname=x", headers=boss)
    if answer.get("message") == "missing or bad userid":
        refused.append(("boss /setuser userid='a b'", answer))
    _, answer = await call(node, "GET", "/creategrp", listener="boss", query="creator=a%20b&name=x", headers=boss)
    if answer.get("message") == "missing or bad creator":
        refused.append(("boss /creategrp creator='a b'", answer))
    # /im/vanke: senderId is "string, maxLength 128"; the server wants printable characters
    status, answer = await call(node, "POST", "/im/vanke/initUser", body={"senderId": "a\u00adb"}, headers=jim)
    if status == 400:
        refused.append(("/im/vanke/initUser senderId='a\\u00adb'", answer))
    # /admin: count is "int32, minimum 1"; the server wants at most 6 digits (and says "must be an integer")
    status, answer = await call(node, "GET", "/admin/live/activities/a1/messages", query="count=1000000",
                                headers=admin)
    if status == 400:
        refused.append(("/admin messages count=1000000", answer))
    # /admin: the document's request body is {"body": {...}}; the server takes the fields at the top
    # level and refuses "body" as an unknown field
    await call(node, "PUT", "/admin/live/activities/a1", body={"title": "t", "startTime": 0, "endTime": 4102444800},
               headers=admin)
    status, answer = await call(node, "PUT", "/admin/live/activities/a1/mutes/u1", body={"body": {"duration_s": 60}},
                                headers=admin)
    if status == 400:
        refused.append(("/admin mute with the documented body", answer))
    # /messageserver send-msg.action: data is "an object, additionalProperties"; the server requires
    # timeStamp, type and more inside it
    query = "&".join(f"{k}={v}" for k, v in signed({"data": "{}"}).items())
    _, answer = await call(node, "GET", "/messageserver/api/msg/send-msg.action", query=query)
    if answer.get("errorcode") == 700:
        refused.append(("/messageserver send-msg.action data={}", answer))
    assert not refused, "\n".join(f"{what}: {answer}" for what, answer in refused)
