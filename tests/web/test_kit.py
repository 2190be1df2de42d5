"""The HTTP kit across its surfaces: the OpenAPI documents, credentials before bodies, bytes-safe secrets."""

import json
import socket

import pytest_twisted
import treq
from openapi_spec_validator import validate
from twisted.internet.threads import deferToThread

from tests.conftest import http_url

ADMIN_TOKEN = "kit-admin-token"


async def headers_only(host, port, head: bytes) -> bytes:
    """Send a request's head and no body; the whole answer the server gives (it must not wait)."""
    sock = socket.create_connection((host, port))
    try:
        sock.sendall(head)
        sock.settimeout(5)
        answer = b""
        while True:
            chunk = await deferToThread(sock.recv, 4096)
            if not chunk:
                return answer
            answer += chunk
    finally:
        sock.close()


async def get_json(url, headers=None):
    response = await treq.get(url, headers=headers or {})
    return response.code, json.loads(await response.content())


@pytest_twisted.ensureDeferred
async def test_every_surface_serves_a_valid_openapi_document_of_its_routes(nodes):
    node = await nodes.start("a", {"admin": {"token": ADMIN_TOKEN}, "jim": {"api_key": "k"}})
    expected = {
        http_url(node, "/api/openapi.json"): ["/api/user/sign-in", "/messageserver/api/msg/send-msg.action"],
        http_url(node, "/openapi.json", listener="boss"): ["/creategrp", "/upload/{which}"],
        http_url(node, "/im/openapi.json"): ["/im/vanke/initUser", "/im/vanke/chatInfo"],
        http_url(node, "/admin/openapi.json"): ["/admin/live/activities/{aid}", "/admin/moderation/banned-words",
                                                "/admin/openapi.json"],
    }
    for url, paths in expected.items():
        headers = {"Authorization": [f"Bearer {ADMIN_TOKEN}"]} if "/admin/" in url else {}
        if "/im/" in url:
            headers = {"X-Api-Key": ["k"]}  # a server-to-server API, documented to its callers
        code, document = await get_json(url, headers)
        assert code == 200, url
        validate(document)
        for path in paths:
            assert path in document["paths"], (url, path)
    # a path segment is a required path parameter; the admin API names its bearer scheme
    code, document = await get_json(http_url(node, "/admin/openapi.json"),
                                     {"Authorization": [f"Bearer {ADMIN_TOKEN}"]})
    put = document["paths"]["/admin/live/activities/{aid}"]["put"]
    assert {"name": "aid", "in": "path", "required": True}.items() <= put["parameters"][0].items()
    assert put["security"] == [{"bearer": []}]
    # the operators' document is an operators' secret like the rest of /admin
    assert (await get_json(http_url(node, "/admin/openapi.json")))[0] == 401


@pytest_twisted.ensureDeferred
async def test_a_header_credential_is_checked_before_the_body_is_read(nodes):
    node = await nodes.start("a", {"jim": {"api_key": "right"}, "admin": {"token": ADMIN_TOKEN}})
    url = http_url(node, "/im/vanke/initUser")
    # a body that is not JSON: without the key the answer is about the key, not the body
    response = await treq.post(url, data=b"{not json", headers={"X-Api-Key": ["wrong"]})
    assert response.code == 401 and json.loads(await response.content())["msg"] == "missing or wrong X-Api-Key"
    # and it comes from the headers alone (the site's gate): announced, never sent, the body is refused
    host, port = node.listeners["http"].address()
    answer = await headers_only(host, port, b"POST /im/vanke/initUser HTTP/1.1\r\nHost: x\r\nX-Api-Key: wrong\r\n"
                                            b"Content-Length: 1000000\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 401 ") and b"Connection: close" in answer
    assert answer.endswith(b'{"code":401,"msg":"missing or wrong X-Api-Key","data":null}')
    answer = await headers_only(host, port, b"PUT /admin/live/activities/1 HTTP/1.1\r\nHost: x\r\n"
                                            b"Content-Length: 1000000\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 401 ") and b'www-authenticate: bearer realm="heihei-admin"' in answer.lower()
    response = await treq.post(url, data=b"{not json", headers={"X-Api-Key": ["right"]})
    assert response.code == 400 and "body must be a JSON object" in json.loads(await response.content())["msg"]


@pytest_twisted.ensureDeferred
async def test_non_ascii_credentials_are_refused_not_errors(nodes):
    node = await nodes.start("a", {"admin": {"token": ADMIN_TOKEN}, "jim": {"api_key": "k"},
                                   "heihei": {"server_secret": "s3cret"}})
    response = await treq.post(http_url(node, "/messageserver/api/msg/open-room.action"),
                               data={"roomId": "1", "signature": "é☃"})
    assert response.code == 200
    assert json.loads(await response.content())["errorcode"] == 701
    response = await treq.post(http_url(node, "/im/vanke/initUser"), data=b"{}",
                               headers={"X-Api-Key": ["é☃".encode("utf-8")]})
    assert response.code == 401
    await response.content()
    code, body = await get_json(http_url(node, "/admin/live/activities"),
                                {"Authorization": ["Bearer é☃".encode("utf-8")]})
    assert code == 401 and "unauthorized" in body["error"]
