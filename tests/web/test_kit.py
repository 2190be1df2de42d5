"""The HTTP kit across its surfaces: the OpenAPI documents, credentials before bodies, bytes-safe secrets."""

import json

import pytest_twisted
import treq
from openapi_spec_validator import validate

from tests.conftest import http_url

ADMIN_TOKEN = "kit-admin-token"


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
    node = await nodes.start("a", {"jim": {"api_key": "right"}})
    url = http_url(node, "/im/vanke/initUser")
    # a body that is not JSON: without the key the answer is about the key, not the body
    response = await treq.post(url, data=b"{not json", headers={"X-Api-Key": ["wrong"]})
    assert response.code == 401 and json.loads(await response.content())["msg"] == "missing or wrong X-Api-Key"
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
