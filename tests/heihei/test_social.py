"""The social graph and discovery over real nodes and Redis: follow, lists with counts and isFollowed,
blocks, users by type, active users, isinlive, reports, phones, banners, gift resources."""

from __future__ import annotations

import json

import pytest_twisted
import treq
from twisted.internet import task

from tests.conftest import http_url
from tests.heihei.conftest import heihei_extra
from tests.heihei.helpers import api, name, ok, sign_in

T0 = 1_700_000_000


async def people(node, outside, count: int) -> list[tuple[str, str]]:
    out = []
    for i in range(count):
        token, uid = await sign_in(node, outside, f"1390000{i:04d}")
        await name(node, token, f"用户{i}")
        out.append((token, uid))
    return out


@pytest_twisted.ensureDeferred
async def test_follow_lists_counts_and_is_followed_across_two_nodes(nodes, outside):
    a_node = await nodes.start("a", heihei_extra(outside))
    b_node = await nodes.start("b", heihei_extra(outside))
    (ta, a), (tb, b), (tc, c) = await people(a_node, outside, 3)

    await ok(a_node, "/api/user/follow", {"token": ta, "userId": b})
    await ok(a_node, "/api/user/follow", {"token": ta, "userId": b, "liveId": 77})  # idempotent
    await ok(b_node, "/api/user/follow", {"token": tc, "userId": b})
    await ok(b_node, "/api/user/follow", {"token": tb, "userId": a})

    # node B sees node A's follow at once
    info = (await ok(b_node, "/api/user/info", {"token": ta, "uid": b}))["result"]
    assert info["followerCount"] == 2 and info["followingCount"] == 1 and info["isFollowed"] is True
    seen_by_c = (await ok(b_node, "/api/user/info", {"token": tc, "uid": a}))["result"]
    assert seen_by_c["isFollowed"] is False and seen_by_c["followerCount"] == 1
    as_a = (await ok(a_node, "/api/user/info", {"token": tc, "uid": b, "cuid": a}))["result"]
    assert as_a["isFollowed"] is True

    followers = await ok(b_node, "/api/user/list-follower", {"token": tc, "userId": b})
    assert followers["totalSize"] == 2
    assert [u["id"] for u in followers["result"]] == [int(c), int(a)]  # the most recent first
    first = followers["result"][1]
    assert first["displayName"] == "用户0" and first["followerCount"] == 1 and first["followingCount"] == 1
    assert first["isFollowed"] is False  # c does not follow a
    assert followers["result"][0]["isFollowed"] is False  # c is c
    as_b = await ok(a_node, "/api/user/list-follower", {"token": tc, "userId": b, "curUserId": b})
    assert [u["isFollowed"] for u in as_b["result"]] == [False, True]  # b follows a, not c

    following = await ok(a_node, "/api/user/list-following", {"token": ta, "userId": a, "limit": 1})
    assert following["totalSize"] == 1 and following["result"][0]["id"] == int(b)
    assert following["result"][0]["isFollowed"] is True
    empty = await ok(a_node, "/api/user/list-following", {"token": ta, "userId": a, "offset": 5})
    assert empty == {"errorcode": 0, "errormsg": "success", "totalSize": 1, "result": []}

    await ok(b_node, "/api/user/unfollow", {"token": ta, "userId": b})
    await ok(b_node, "/api/user/unfollow", {"token": ta, "userId": b})  # idempotent
    assert (await ok(a_node, "/api/user/info", {"token": ta, "uid": b}))["result"]["followerCount"] == 1


@pytest_twisted.ensureDeferred
async def test_follow_refusals_and_blocks_sever_follows(nodes, outside):
    node = await nodes.start("a", heihei_extra(outside))
    (ta, a), (tb, b) = await people(node, outside, 2)

    yourself = await api(node, "/api/user/follow", {"token": ta, "userId": a})
    assert yourself["errorcode"] == 700 and "yourself" in yourself["errormsg"]
    unknown = await api(node, "/api/user/follow", {"token": ta, "userId": 99999})
    assert unknown == {"errorcode": 710, "errormsg": "用户不存在"}
    assert (await api(node, "/api/user/unfollow", {"token": ta, "userId": 99999}))["errorcode"] == 710
    assert (await api(node, "/api/user/follow", {"token": ta, "userId": "x1"}))["errorcode"] == 700
    assert (await api(node, "/api/user/follow", {"token": ta}))["errorcode"] == 700
    assert (await api(node, "/api/user/follow", {"token": "nope", "userId": b}))["errorcode"] == 720

    await ok(node, "/api/user/follow", {"token": ta, "userId": b})
    await ok(node, "/api/user/follow", {"token": tb, "userId": a})
    await ok(node, "/api/user/block-user", {"token": tb, "userId": a})
    # the block ended both follows
    assert (await ok(node, "/api/user/info", {"token": ta, "uid": a}))["result"]["followingCount"] == 0
    assert (await ok(node, "/api/user/info", {"token": tb, "uid": b}))["result"]["followerCount"] == 0
    blocked = await api(node, "/api/user/follow", {"token": ta, "userId": b})
    assert blocked["errorcode"] == 711 and "blocked you" in blocked["errormsg"]
    own_block = await api(node, "/api/user/follow", {"token": tb, "userId": a})
    assert own_block["errorcode"] == 711
    assert (await api(node, "/api/user/list-follower", {"token": ta, "userId": b}))["errorcode"] == 736
    listed = await ok(node, "/api/user/list-blocked-user", {"token": tb})
    assert listed["totalSize"] == 1 and listed["result"][0]["id"] == int(a)
    assert listed["result"][0]["isFollowed"] is False
    await ok(node, "/api/user/unblock-user", {"token": tb, "targetId": a})
    await ok(node, "/api/user/follow", {"token": ta, "userId": b})

    too_many = await api(node, "/api/user/list-follower", {"token": ta, "userId": b, "limit": 21})
    assert too_many["errorcode"] == 700 and "limit" in too_many["errormsg"]
    negative = await api(node, "/api/user/list-following", {"token": ta, "userId": b, "offset": -1})
    assert negative["errorcode"] == 700


@pytest_twisted.ensureDeferred
async def test_im_users_map_carries_is_followed(nodes, outside):
    from tests.heihei.helpers import item, open_channel, send_im

    node = await nodes.start("a", heihei_extra(outside))
    (ta, a), (tb, b) = await people(node, outside, 2)
    await ok(node, "/api/user/follow", {"token": tb, "userId": a})
    bob = await open_channel(node, tb)
    alice = await open_channel(node, ta)
    send_im(alice, b, "text", {"text": "hi"})
    got = await item(bob)
    assert got["users"][a]["isFollowed"] is True and got["users"][b]["isFollowed"] is False
    echo = await item(alice)
    assert echo["users"][b]["isFollowed"] is False
    await alice.close()
    await bob.close()


@pytest_twisted.ensureDeferred
async def test_users_by_type_active_users_and_isinlive(nodes, outside):
    clock = task.Clock()
    clock.advance(T0)
    node = await nodes.start("a", heihei_extra(outside, social={"active_window_s": 3600.0}), clock=clock)
    users = []
    for i in range(3):
        clock.advance(120)
        users.append(await sign_in(node, outside, f"1370000000{i}"))
        await name(node, users[-1][0], f"新人{i}")
    (ta, a), (tb, b), (tc, c) = users
    newest = await ok(node, "/api/user/list-user-byType", {"token": ta, "type": "new", "limit": 2})
    assert newest["totalSize"] == 3 and [u["id"] for u in newest["result"]] == [int(c), int(b)]
    by_number = await ok(node, "/api/user/list-user-byType", {"token": ta, "type": "1", "offset": 2})
    assert [u["id"] for u in by_number["result"]] == [int(a)]
    assert (await ok(node, "/api/user/list-user-byType", {"token": ta}))["totalSize"] == 0  # nobody recommended
    await node.operators["channel"].people.recommend(b, 10)
    await node.operators["channel"].people.recommend(a, 20)
    await node.operators["channel"].people.set_user_type(c, "Anchor")
    recommended = await ok(node, "/api/user/list-user-byType", {"token": ta, "type": "recommend"})
    assert [u["id"] for u in recommended["result"]] == [int(a), int(b)]
    anchors = await ok(node, "/api/user/list-user-byType", {"token": ta, "userType": "anchor"})
    assert [u["id"] for u in anchors["result"]] == [int(c)]
    bad = await api(node, "/api/user/list-user-byType", {"token": ta, "type": "vip"})
    assert bad["errorcode"] == 700 and "type" in bad["errormsg"]

    # activity: every authenticated call; the most recent first; older than the window drops out
    clock.advance(61)
    await ok(node, "/api/user/get-config", {"token": tb})
    clock.advance(1)
    active = await ok(node, "/api/user/list-active-user", {"token": tc})
    assert [u["id"] for u in active["result"]][:2] == [int(c), int(b)] and active["totalSize"] == 3
    clock.advance(3601)
    await ok(node, "/api/user/get-config", {"token": ta})
    active = await ok(node, "/api/user/list-active-user", {"token": ta, "limit": 20})
    assert [u["id"] for u in active["result"]] == [int(a)] and active["totalSize"] == 1

    live = await ok(node, "/api/user/isinlive", {"token": ta, "userId": b})
    assert live["isinlive"] == 0 and live["liveId"] == 0
    assert (await ok(node, "/api/user/isinlive", {"token": ta, "uid": b}))["isinlive"] == 0
    assert (await api(node, "/api/user/isinlive", {"token": ta, "userId": 5}))["errorcode"] == 710


@pytest_twisted.ensureDeferred
async def test_report_user_at_both_paths(nodes, outside, redis):
    node = await nodes.start("a", heihei_extra(outside, social={"reports_per_day": 2}))
    (ta, a), (tb, b), (tc, c) = await people(node, outside, 3)
    first = await ok(node, "/api/user/report-user", {"token": ta, "userId": b, "reportType": 3})
    assert first["reportmsg"] == "举报成功!"
    await ok(node, "/api/usr/report-user", {"token": ta, "userId": b, "reportType": 2})  # still open: no second
    total, reports = await node.operators["channel"].reports.page("open")
    assert total == 1 and reports[0]["reporter"] == a and reports[0]["reportType"] == 3
    await ok(node, "/api/usr/report-user", {"token": ta, "userId": c, "reportType": 4, "liveId": 9})
    over = await api(node, "/api/user/report-user", {"token": ta, "userId": c, "reportType": 1})
    assert over["errorcode"] == 0  # the same open report again: not a new one
    await node.operators["channel"].reports.resolve(reports[0]["id"], "warned")
    limited = await api(node, "/api/user/report-user", {"token": ta, "userId": b, "reportType": 1})
    assert limited["errorcode"] == 400 and "2 reports a day" in limited["errormsg"]
    assert (await api(node, "/api/user/report-user", {"token": ta, "userId": a, "reportType": 1}))["errorcode"] == 700
    assert (await api(node, "/api/user/report-user", {"token": ta, "userId": b, "reportType": 5}))["errorcode"] == 700
    assert (await api(node, "/api/user/report-user", {"token": tb, "userId": 42, "reportType": 1}))["errorcode"] == 710


@pytest_twisted.ensureDeferred
async def test_register_and_verify_phone_and_bind_phone_synonyms(nodes, outside):
    node = await nodes.start("a", heihei_extra(outside))
    (ta, a), (tb, b) = await people(node, outside, 2)
    sent = await ok(node, "/api/sms/register-phone", {"token": ta, "phoneNo": "13511112222"})
    assert sent["timeout"] == 60
    [record] = [r for r in await outside.wait_for("sms", 3) if r["phoneNo"] == "13511112222"]
    wrong = "000000" if record["code"] != "000000" else "111111"
    assert (await api(node, "/api/sms/verify-phone", {"token": ta, "phone": "13511112222",
                                                      "verifyCode": wrong}))["errorcode"] == 401
    await ok(node, "/api/sms/verify-phone", {"token": ta, "phone": "13511112222", "code": record["code"]})
    taken = await api(node, "/api/sms/register-phone", {"token": tb, "phoneNo": "13511112222"})
    assert taken == {"errorcode": 403, "errormsg": "手机号已被其他账户绑定"}
    # b's own phone (from sign-in) may be asked for again later; a bad number is 700
    assert (await api(node, "/api/sms/register-phone", {"token": tb, "phoneNo": "12ab"}))["errorcode"] == 700
    # bind-phone takes the client's name too
    await ok(node, "/api/sms/register-phone", {"token": tb, "mobile": "13511113333"})
    records = await outside.wait_for("sms", 4)
    code = [r for r in records if r["phoneNo"] == "13511113333"][-1]["code"]
    await ok(node, "/api/user/bind-phone", {"token": tb, "phoneNo": "13511113333", "verifyCode": code})


@pytest_twisted.ensureDeferred
async def test_banners_and_gift_resources(nodes, outside, tmp_path):
    gifts = tmp_path / "gifts.json"
    gifts.write_text(json.dumps({"resources": [{"id": 101, "attr_file": "/static/gifts/101.zip", "file_md5": None},
                                               {"id": 102, "attr_file": "https://cdn.example/102.zip",
                                                "file_md5": "2323EFA"}],
                                 "history": [{"id": 103, "attr_file": "https://cdn.example/103.zip",
                                              "file_md5": "ab"}]}))
    node = await nodes.start("a", heihei_extra(outside, social={"gift_resources_file": str(gifts)},
                                               http={"public_url": "https://hh.example"}))
    b_node = await nodes.start("b", heihei_extra(outside))
    [(token, uid)] = await people(node, outside, 1)
    banners = await ok(node, "/api/social/get-banner", {"token": token})
    assert banners["expireTime"] == 84600
    [banner] = banners["banners"]
    assert banner == {"desc": "欢迎来到嘿嘿", "cover": "https://hh.example/static/img/banner-welcome.png", "type": 3,
                      "link": "wmlives_heihei://homepage"}
    picture = await treq.get(http_url(node, "/static/img/banner-welcome.png"))
    assert picture.code == 200 and picture.headers.getRawHeaders("content-type") == ["image/png"]
    assert (await picture.content()).startswith(b"\x89PNG")
    for path in ("/static/img/", "/static/img/nope.png", "/static/../heihei.example.toml"):
        response = await treq.get(http_url(node, path))
        assert response.code == 404, path
        await response.content()

    everything = await ok(node, "/api/social/gift-resources", {"token": token})
    assert everything["resources"] == [{"file_md5": None, "id": 101, "attr_file": "https://hh.example/static/gifts/101.zip"},
                                       {"file_md5": "2323EFA", "id": 102, "attr_file": "https://cdn.example/102.zip"}]
    assert everything["historyGiftRes"] == [{"file_md5": "ab", "id": 103, "attr_file": "https://cdn.example/103.zip"}]
    some = await ok(node, "/api/social/gift-resources", {"token": token, "giftIds": "102,103,999"})
    assert [g["id"] for g in some["resources"]] == [102] and [g["id"] for g in some["historyGiftRes"]] == [103]
    assert (await api(node, "/api/social/gift-resources", {"token": token, "giftIds": "1,x"}))["errorcode"] == 700
    # the catalog is in Redis: node b (whose own file would be the empty default) serves the same
    same = await ok(b_node, "/api/social/gift-resources", {"token": token, "giftIds": "101"})
    assert [g["id"] for g in same["resources"]] == [101]
    assert (await api(node, "/api/social/get-banner", {}))["errorcode"] == 720
