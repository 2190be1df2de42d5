"""The group HTTP API on the --boss site, the group picture and the profile provider."""

import io
import json

import pytest
import pytest_twisted
import treq
from PIL import Image

from tests.boss.conftest import API_KEY, boss_settings, png_bytes, ticket
from tests.conftest import http_url

KEY = {"X-Api-Key": API_KEY}


async def call(node, path, params=None, *, method="GET", headers=KEY, prefix=""):
    url = http_url(node, prefix + path, listener="boss")
    if method == "GET":
        response = await treq.get(url, params=params or {}, headers=headers)
    else:
        response = await treq.post(url, data=params or {}, headers=headers)
    body = await response.content()
    return response.code, json.loads(body)


async def fetch(url):
    response = await treq.get(url)
    return response.code, response.headers, await response.content()


def tile_color(picture: Image.Image, corner, tile):
    x, y = corner[0] + tile // 2, corner[1] + tile // 2
    return picture.getpixel((x, y))


def close_to(color, expected, tolerance=30):
    return all(abs(a - b) <= tolerance for a, b in zip(color, expected))


@pytest_twisted.ensureDeferred
async def test_every_group_endpoint_with_generated_picture(nodes, backend):
    backend.add_user("1", "Alice", (220, 20, 20))
    backend.nicknames["4"] = "Dave"
    backend.images["green.png"] = png_bytes((20, 200, 20), (50, 90))
    node = await nodes.start("a", boss_settings(**backend.settings()))

    # a back end pushes a profile
    code, answer = await call(node, "/setuser", {"userid": "3", "nickname": "段思琪",
                                                 "snap": f"{backend.base}/img/green.png"})
    assert (code, answer) == (200, {"code": 1, "message": "OK"})

    code, answer = await call(node, "/creategrp", {"creator": "1", "members": "1,2,3,4,", "name": "我的群"})
    assert code == 200 and answer["code"] == 1 and answer["message"] == "OK"
    data = answer["data"]
    assert data["groupid"] == "1" and data["creator"] == "1" and data["name"] == "我的群" and data["notice"] == ""
    assert data["members"] == ["1", "2", "3", "4"]
    base = http_url(node, "", listener="boss")
    assert data["snap"].startswith(f"{base}/emovideo/1_") and data["snap"].endswith(".jpg")

    # the picture: a 340x340 JPEG tiling the four avatars (2 has none: the default one)
    code, headers, body = await fetch(data["snap"])
    assert code == 200 and headers.getRawHeaders("content-type") == ["image/jpeg"]
    picture = Image.open(io.BytesIO(body))
    assert picture.format == "JPEG" and picture.size == (340, 340)
    corners = [(15, 15), (175, 15), (15, 175), (175, 175)]
    assert close_to(tile_color(picture, corners[0], 150), (220, 20, 20))  # 1: from the lookup service
    assert close_to(tile_color(picture, corners[2], 150), (20, 200, 20))  # 3: pushed through setuser
    assert not close_to(tile_color(picture, corners[1], 150), (200, 200, 200), 5)  # default avatar, not background
    assert close_to(picture.getpixel((5, 5)), (200, 200, 200))  # the original's grey background

    # ids keep increasing
    code, answer = await call(node, "/creategrp", {"creator": "1", "members": "2", "name": "second"})
    assert answer["data"]["groupid"] == "2" and answer["data"]["members"] == ["1", "2"]

    # membership changes redraw the picture
    assert await call(node, "/addmembers", {"groupid": "1", "members": "50,60"}) == (200, {"code": 1, "message": "OK"})
    code, answer = await call(node, "/grpinfo", {"groupid": "1"})
    assert [m["userid"] for m in answer["data"]["members"]] == ["1", "2", "3", "4", "50", "60"]
    new_snap = answer["data"]["snap"]
    assert new_snap != data["snap"]
    assert (await fetch(data["snap"]))[0] == 404  # the old picture is gone
    picture = Image.open(io.BytesIO((await fetch(new_snap))[2]))
    assert picture.size == (340, 340)
    assert close_to(tile_color(picture, (10, 65), 100), (220, 20, 20))  # six members: 3 by 2 tiles of 100

    assert await call(node, "/delmembers", {"groupid": "1", "members": "60"}) == (200, {"code": 1, "message": "OK"})
    assert await call(node, "/editgrp", {"groupid": "1", "notice": "明天开会", "name": "新名字"}) \
        == (200, {"code": 1, "message": "OK"})

    code, answer = await call(node, "/grpinfo", {"groupid": "1"})
    info = answer["data"]
    assert (info["groupid"], info["creator"], info["name"], info["notice"]) == ("1", "1", "新名字", "明天开会")
    members = {m["userid"]: m for m in info["members"]}
    assert list(members) == ["1", "2", "3", "4", "50"]
    assert members["1"] == {"userid": "1", "nickname": "Alice", "snap": f"{backend.base}/img/1.png"}
    assert members["3"] == {"userid": "3", "nickname": "段思琪", "snap": f"{backend.base}/img/green.png"}
    assert members["4"]["nickname"] == "Dave"
    default = f"{base}/emopic/default.jpg"
    assert members["2"] == {"userid": "2", "nickname": "2", "snap": default}
    assert members["4"]["snap"] == default
    code, headers, body = await fetch(default)
    assert code == 200 and Image.open(io.BytesIO(body)).format == "JPEG"

    code, answer = await call(node, "/querymygrps", {"userid": "2"})
    assert answer["code"] == 1 and [g["groupid"] for g in answer["data"]] == ["1", "2"]
    assert answer["data"][0]["name"] == "新名字" and len(answer["data"][0]["members"]) == 5
    assert answer["data"][1]["members"][0] == {"userid": "1", "nickname": "Alice",
                                               "snap": f"{backend.base}/img/1.png"}
    code, answer = await call(node, "/querymygrps", {"userid": "60"})  # removed: no groups
    assert answer == {"code": 1, "message": "OK", "data": []}

    before = (await call(node, "/grpinfo", {"groupid": "1"}))[1]["data"]["snap"]
    assert await call(node, "/refreshgrp", {"groupid": "1"}) == (200, {"code": 1, "message": "OK"})
    after = (await call(node, "/grpinfo", {"groupid": "1"}))[1]["data"]["snap"]
    assert after != before and (await fetch(after))[0] == 200

    # the same under /wsim/, with POST forms; links then point under /wsim/ too
    code, answer = await call(node, "/grpinfo", {"groupid": "2"}, method="POST", prefix="/wsim")
    assert answer["code"] == 1 and answer["data"]["snap"].startswith(f"{base}/wsim/emovideo/2_")
    assert (await fetch(answer["data"]["snap"]))[0] == 200
    code, answer = await call(node, "/creategrp", {"creator": "9", "members": "8", "name": "w"}, method="POST",
                              prefix="/wsim")
    assert answer["data"]["groupid"] == "3"

    # the members are the same ones the WebSocket side sees
    assert await node.hub.groups.members("boss", "1") == ["1", "2", "3", "4", "50"]


@pytest_twisted.ensureDeferred
async def test_profiles_are_cached_and_a_dead_backend_means_defaults(nodes, backend):
    backend.add_user("1", "Alice", (220, 20, 20))
    node = await nodes.start("a", boss_settings(**backend.settings()))
    await call(node, "/creategrp", {"creator": "1", "members": "2", "name": "g"})
    calls = len(backend.calls)
    assert calls == 2  # one avatar and one nickname lookup, both ids at once
    assert sorted(backend.calls[0][1]) == ["1", "2"]
    await call(node, "/grpinfo", {"groupid": "1"})
    await call(node, "/querymygrps", {"userid": "1"})
    assert len(backend.calls) == calls  # answered from the cache, including "2 is unknown"

    await backend.port.stopListening()
    other = await nodes.start("b", boss_settings(**{**backend.settings(), "profile_timeout_s": 1.0}))
    code, answer = await call(other, "/creategrp", {"creator": "7", "members": "8", "name": "g"})
    assert answer["code"] == 1
    members = (await call(other, "/grpinfo", {"groupid": answer["data"]["groupid"]}))[1]["data"]["members"]
    assert [m["nickname"] for m in members] == ["7", "8"]
    assert (await fetch(answer["data"]["snap"]))[0] == 200  # drawn with default avatars


@pytest_twisted.ensureDeferred
async def test_api_errors(nodes):
    node = await nodes.start("a", boss_settings())
    await call(node, "/creategrp", {"creator": "1", "members": "2", "name": "g"})
    cases = [
        ("/creategrp", {"members": "2", "name": "g"}, 400, "missing or bad creator"),
        ("/creategrp", {"creator": "1", "name": "g"}, 400, "missing members"),
        ("/creategrp", {"creator": "1", "members": "2"}, 400, "missing name"),
        ("/creategrp", {"creator": "1", "members": "2,a b", "name": "g"}, 400, "bad id in members"),
        ("/creategrp", {"creator": "1", "members": "2", "name": "x" * 65}, 400, "name longer than 64 characters"),
        ("/addmembers", {"members": "2"}, 400, "missing groupid"),
        ("/addmembers", {"groupid": "99", "members": "2"}, 404, "no such group"),
        ("/addmembers", {"groupid": "abc", "members": "2"}, 404, "no such group"),
        ("/delmembers", {"groupid": "1"}, 400, "missing members"),
        ("/delmembers", {"groupid": "99", "members": "2"}, 404, "no such group"),
        ("/editgrp", {"groupid": "1"}, 400, "nothing to change: give name or notice"),
        ("/editgrp", {"groupid": "99", "name": "n"}, 404, "no such group"),
        ("/grpinfo", {"groupid": "99"}, 404, "no such group"),
        ("/refreshgrp", {"groupid": "99"}, 404, "no such group"),
        ("/querymygrps", {}, 400, "missing or bad userid"),
        ("/setuser", {"userid": "1"}, 400, "nothing to set: give nickname or snap"),
        ("/setuser", {"userid": "1", "snap": "file:///etc/passwd"}, 400, "snap must be an http(s) URL"),
        ("/setuser", {"userid": "1", "nickname": ""}, 400, "nickname must be 1 to 64 characters"),
    ]
    for path, params, code, message in cases:
        assert await call(node, path, params) == (200, {"code": code, "message": message}), path
    too_many = ",".join(str(i) for i in range(600))
    assert await call(node, "/addmembers", {"groupid": "1", "members": too_many}) \
        == (200, {"code": 400, "message": "more than 500 members"})
    # credentials
    assert await call(node, "/grpinfo", {"groupid": "1"}, headers={}) \
        == (200, {"code": 403, "message": "api_key or userid and ticket required"})
    assert await call(node, "/grpinfo", {"groupid": "1"}, headers={"X-Api-Key": "wrong"}) \
        == (200, {"code": 403, "message": "invalid api key"})
    assert (await call(node, "/grpinfo", {"groupid": "1", "api_key": API_KEY}, headers={}))[1]["code"] == 1
    # not ours at all
    assert await call(node, "/nothing") == (404, {"code": 404, "message": "not found"})
    assert await call(node, "/wsim/nothing") == (404, {"code": 404, "message": "not found"})
    assert await call(node, "/upload/writev1") == (405, {"code": 405, "message": "method not allowed"})
    code, _, _ = await fetch(http_url(node, "/emopic/../../etc/passwd", listener="boss"))
    assert code == 404
    code, _, _ = await fetch(http_url(node, "/emovideo/", listener="boss"))
    assert code == 404


@pytest_twisted.ensureDeferred
async def test_app_users_act_for_themselves_with_tickets(nodes):
    node = await nodes.start("a", boss_settings())

    def as_user(user, **params):
        return {"userid": user, "ticket": ticket(user), **params}

    code, answer = await call(node, "/creategrp", as_user("1", creator="1", members="2,3", name="g"), headers={})
    assert answer["code"] == 1
    group = answer["data"]["groupid"]
    refused = await call(node, "/creategrp", as_user("1", creator="2", members="3", name="g"), headers={})
    assert refused[1] == {"code": 403, "message": "the creator must be the ticket's user"}
    assert (await call(node, "/grpinfo", as_user("2", groupid=group), headers={}))[1]["code"] == 1
    assert (await call(node, "/grpinfo", as_user("9", groupid=group), headers={}))[1] \
        == {"code": 403, "message": "not a member of this group"}
    assert (await call(node, "/addmembers", as_user("9", groupid=group, members="9"), headers={}))[1]["code"] == 403
    assert (await call(node, "/delmembers", as_user("2", groupid=group, members="3"), headers={}))[1] \
        == {"code": 403, "message": "only the creator removes other members"}
    assert (await call(node, "/delmembers", as_user("2", groupid=group, members="2"), headers={}))[1]["code"] == 1
    assert (await call(node, "/delmembers", as_user("1", groupid=group, members="3"), headers={}))[1]["code"] == 1
    assert await node.hub.groups.members("boss", group) == ["1"]
    # a ticket speaks for its own user only
    forged = {"userid": "1", "ticket": ticket("2")}
    assert (await call(node, "/querymygrps", forged, headers={}))[1] == {"code": 403, "message": "invalid ticket"}
    expired = {"userid": "1", "ticket": ticket("1", expiry=1000)}
    assert (await call(node, "/querymygrps", expired, headers={}))[1] == {"code": 403, "message": "ticket expired"}
    assert (await call(node, "/querymygrps", as_user("1"), headers={}))[1]["data"][0]["groupid"] == group
    # a user may set their own profile, not someone else's
    assert (await call(node, "/setuser", as_user("1", nickname="me"), headers={}))[1]["code"] == 1
    other = {"userid": "2", "ticket": ticket("1"), "nickname": "you"}
    assert (await call(node, "/setuser", other, headers={}))[1]["code"] == 403


@pytest_twisted.ensureDeferred
async def test_insecure_http_works_without_credentials_like_the_original(nodes):
    node = await nodes.start("a", {"boss": {"insecure_http": True}})
    code, answer = await call(node, "/creategrp", {"creator": "1", "members": "2", "name": "g"}, headers={})
    assert answer["code"] == 1
    assert (await call(node, "/grpinfo", {"groupid": "1"}, headers={}))[1]["code"] == 1


@pytest_twisted.ensureDeferred
async def test_public_url_makes_the_links(nodes):
    node = await nodes.start("a", boss_settings(public_url="https://cdn.example.com/im/"))
    code, answer = await call(node, "/creategrp", {"creator": "1", "members": "2", "name": "g"})
    assert answer["data"]["snap"].startswith("https://cdn.example.com/im/emovideo/1_")
    code, answer = await call(node, "/grpinfo", {"groupid": "1"})
    assert answer["data"]["members"][0]["snap"] == "https://cdn.example.com/im/emopic/default.jpg"


@pytest_twisted.ensureDeferred
async def test_group_success_code_0_answers_like_the_running_original(nodes):
    # wsim's README says 1; its code answers 0 since March 2017: clients built against it read 0
    node = await nodes.start("a", boss_settings(group_success_code=0))
    code, answer = await call(node, "/creategrp", {"creator": "1", "members": "2", "name": "g"})
    assert (code, answer["code"], answer["message"]) == (200, 0, "OK") and answer["data"]["groupid"] == "1"
    assert await call(node, "/addmembers", {"groupid": "1", "members": "3"}) == (200, {"code": 0, "message": "OK"})
    # refusals keep their codes
    assert (await call(node, "/grpinfo", {"groupid": "99"}))[1]["code"] == 404
    assert (await call(node, "/grpinfo", {"groupid": "1"}, headers={}))[1]["code"] == 403


def test_group_success_code_is_0_or_1(tmp_path):
    from heihei.config import ConfigError
    from heihei.node import Node
    from tests.conftest import node_settings

    settings = node_settings(str(tmp_path), "redis://127.0.0.1:9/0", "a", boss_settings(group_success_code=2))
    with pytest.raises(ConfigError, match="group_success_code must be 1"):
        Node(settings)
