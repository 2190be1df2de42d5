"""`/api/user/search` and `/api/user/usearch` through a node: the seed's `users` list of full user
objects, found by name or heiNum, renames followed, bad queries answered 700."""

from __future__ import annotations

import pytest
import pytest_twisted

from tests.heihei.conftest import heihei_extra
from tests.heihei.helpers import api, name, ok, sign_in


async def three_users(nodes, outside):
    node = await nodes.start("a", heihei_extra(outside))
    users = []
    for phone, display in (("13100000001", "邵晶"), ("13100000002", "邵晶微信号"), ("13100000003", "Alice")):
        token, uid = await sign_in(node, outside, phone)
        await name(node, token, display)
        users.append((token, uid))
    return node, users


@pytest_twisted.ensureDeferred
async def test_search_by_name_and_heinum_with_the_seeds_user_objects(nodes, outside):
    node, [(me, my_id), (_, second), (_, alice)] = await three_users(nodes, outside)
    await ok(node, "/api/user/follow", {"token": me, "userId": second})
    for path in ("/api/user/search", "/api/user/usearch"):
        found = await ok(node, path, {"token": me, "queryParameter": "邵晶"})
        ids = [u["id"] for u in found["users"]]
        assert ids == [int(my_id), int(second)]  # the exact name first, then the longer one
        entry = found["users"][1]
        assert entry["displayName"] == "邵晶微信号" and entry["isFollowed"] is True
        assert {"id", "displayName", "coverUrl", "gender", "level", "birthDay", "isFollowed"} <= set(entry)
    hei_num = (await ok(node, "/api/user/info", {"token": me, "uid": alice}))["result"]["heiNum"]
    by_number = await ok(node, "/api/user/search", {"token": me, "queryParameter": hei_num})
    assert [u["id"] for u in by_number["users"]] == [int(alice)]
    assert (await ok(node, "/api/user/search", {"token": me, "queryParameter": "alice"}))["users"][0]["id"] == int(alice)


@pytest_twisted.ensureDeferred
async def test_a_rename_is_searchable_at_once_and_the_old_name_is_gone(nodes, outside):
    node, [(me, _), (_, _), (alice_token, alice)] = await three_users(nodes, outside)
    await name(node, alice_token, "Bobby")
    assert (await ok(node, "/api/user/search", {"token": me, "queryParameter": "alice"}))["users"] == []
    assert [u["id"] for u in (await ok(node, "/api/user/search", {"token": me, "queryParameter": "bob"}))["users"]] \
        == [int(alice)]


@pytest.mark.parametrize("params, code", [
    ({}, 700),
    ({"queryParameter": ""}, 700),
    ({"queryParameter": " ,. "}, 700),  # nothing left to look for
    ({"queryParameter": "x" * 65}, 700),
    ({"queryParameter": "邵", "limit": "21"}, 700),
])
@pytest_twisted.ensureDeferred
async def test_bad_queries_are_700(nodes, outside, params, code):
    node = await nodes.start("a", heihei_extra(outside))
    token, _ = await sign_in(node, outside, "13100000001")
    body = await api(node, "/api/user/search", {"token": token, **params})
    assert body["errorcode"] == code, body


@pytest_twisted.ensureDeferred
async def test_search_needs_a_valid_token(nodes, outside):
    node = await nodes.start("a", heihei_extra(outside))
    assert (await api(node, "/api/user/search", {"token": "nope", "queryParameter": "a"}))["errorcode"] == 720
