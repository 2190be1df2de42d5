"""
What schemathesis found on the documented HTTP surfaces (tests/test_schemathesis.py):
answers outside the documented envelope, and documents that disagree with what
the routes accept, although the kit promises that "a document can never
disagree with what the routes accept" (heihei/web/kit/openapi.py).
"""

import json
import socket
from urllib.parse import urlencode

import jsonschema

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


def operation(doc: dict, method: str, path: str) -> dict:
    return doc["paths"][path][method.lower()]


def parameter_schema(doc: dict, method: str, path: str, name: str) -> dict:
    op = operation(doc, method, path)
    for p in op.get("parameters", []):
        if p["name"] == name:
            return p.get("schema") or p["content"]["application/json"]["schema"]
    for content in (op.get("requestBody") or {}).get("content", {}).values():
        if name in content["schema"].get("properties", {}):
            return content["schema"]["properties"][name]
    raise KeyError(f"{method} {path} has no parameter {name}")


def body_schema(doc: dict, method: str, path: str) -> dict:
    return operation(doc, method, path)["requestBody"]["content"]["application/json"]["schema"]


def allows(schema: dict, value) -> bool:
    # jsonschema's draft 4 validator reads OpenAPI 3.0's schema objects (nullable aside)
    return jsonschema.Draft4Validator(schema).is_valid(value)


@pytest_twisted.ensureDeferred
async def test_documents_carry_the_rules_the_surfaces_apply(nodes):
    # schemathesis: values the documents allowed were refused as malformed by a surface's own converter
    # (a rule the document did not carry). Each rule now is in the document, and the server agrees
    # with the document on both sides of it: (the document allows it, the server accepts it)
    node = await nodes.start("a", EXTRA)
    boss_doc = await document(node, "/openapi.json", "boss")
    jim_doc = await document(node, "/im/openapi.json", headers={"X-Api-Key": [JIM_KEY]})
    admin_doc = await document(node, "/admin/openapi.json", headers={"Authorization": [f"Bearer {ADMIN_TOKEN}"]})
    heihei_doc = await document(node, "/api/openapi.json")
    boss = {"X-Api-Key": [BOSS_KEY]}
    jim = {"X-Api-Key": [JIM_KEY]}
    admin = {"Authorization": [f"Bearer {ADMIN_TOKEN}"]}
    disagree = []

    def check(what: str, documented: bool, accepted: bool) -> None:
        if documented != accepted:
            disagree.append(f"{what}: the document {'allows' if documented else 'refuses'} it, "
                            f"the server {'accepts' if accepted else 'refuses'} it")

    # boss: userid and creator are ids ([A-Za-z0-9][A-Za-z0-9.@-]{0,63})
    userid = parameter_schema(boss_doc, "GET", "/setuser", "userid")
    for value in ("a b", "alice", "a" * 65, " alice "):
        _, answer = await call(node, "GET", "/setuser", listener="boss",
                               query=urlencode({"userid": value, "nickname": "x"}), headers=boss)
        check(f"boss /setuser userid={value!r}", allows(userid, value), answer.get("code") == 1)
    creator = parameter_schema(boss_doc, "GET", "/creategrp", "creator")
    for value in ("a b", "bob"):
        _, answer = await call(node, "GET", "/creategrp", listener="boss",
                               query=urlencode({"creator": value, "members": "carol", "name": "x"}), headers=boss)
        check(f"boss /creategrp creator={value!r}", allows(creator, value), answer.get("code") == 1)
    # /im/vanke: ids are text without control characters, at most 128 characters
    sender = parameter_schema(jim_doc, "POST", "/im/vanke/initUser", "senderId")
    for value in ("a\u00adb", "a\u0007b", "客服 1", "x" * 129):
        status, _ = await call(node, "POST", "/im/vanke/initUser", body={"senderId": value}, headers=jim)
        check(f"/im/vanke/initUser senderId={value!r}", allows(sender, value), status == 200)
    # /admin: count is at most what one listing gives, and says so
    await call(node, "PUT", "/admin/live/activities/a1", body={"title": "t", "startTime": 0, "endTime": 4102444800},
               headers=admin)
    count = parameter_schema(admin_doc, "GET", "/admin/live/activities/{aid}/messages", "count")
    for value in (1000000, 1000, 1001):
        status, _ = await call(node, "GET", "/admin/live/activities/a1/messages", query=f"count={value}",
                               headers=admin)
        check(f"/admin messages count={value}", allows(count, value), status == 200)
    # /admin: the request body is the object itself (the server refuses a `body` field inside it)
    mute = body_schema(admin_doc, "PUT", "/admin/live/activities/{aid}/mutes/{user}")
    for value in ({"duration_s": 60}, {"body": {"duration_s": 60}}, {"duration_s": 0}):
        status, _ = await call(node, "PUT", "/admin/live/activities/a1/mutes/u1", body=value, headers=admin)
        check(f"/admin mute body {value}", allows(mute, value), status == 200)
    # /messageserver send-msg.action: data's own fields, each type's target required
    data = parameter_schema(heihei_doc, "GET", "/messageserver/api/msg/send-msg.action", "data")
    for value in ({}, {"timeStamp": 1, "type": "tosingle", "msg": {}},
                  {"timeStamp": 1, "type": "tosingle", "targetUserId": 1, "msg": {}}):
        query = urlencode(signed({"data": json.dumps(value)}))
        _, answer = await call(node, "GET", "/messageserver/api/msg/send-msg.action", query=query)
        check(f"/messageserver send-msg.action data={value}", allows(data, value), answer.get("errorcode") != 700)
    assert not disagree, "\n".join(disagree)
