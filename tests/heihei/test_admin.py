"""The heihei app's operator routes (/admin/heihei/...) over two nodes, and the same object in the manhole."""

from __future__ import annotations

import pytest_twisted

from tests.heihei.conftest import heihei_extra
from tests.heihei.helpers import api, name, ok, open_channel, sign_in
from tests.heihei.test_topics import SAMPLES, extra as topic_extra, upload
from tests.boss.conftest import mp3_bytes
from tests.live.test_admin import TOKEN, admin


def admin_extra(outside, tmp_path=None) -> dict:
    base = topic_extra(outside, tmp_path) if tmp_path is not None else heihei_extra(outside)
    base["sms"]["resend_interval_s"] = 0.0  # users sign in again here
    return {**base, "admin": {"token": TOKEN}}


@pytest_twisted.ensureDeferred
async def test_users_reports_and_bans(nodes, outside):
    a_node = await nodes.start("a", admin_extra(outside))
    b_node = await nodes.start("b", admin_extra(outside))
    ta, a = await sign_in(a_node, outside, "13100000001")
    tb, b = await sign_in(b_node, outside, "13100000002")
    await name(a_node, ta, "举报人")
    await ok(a_node, "/api/user/follow", {"token": ta, "userId": b})

    assert (await admin(a_node, "GET", f"/heihei/users/{b}", token=None))[0] == 401
    assert (await admin(a_node, "GET", f"/heihei/users/{b}", token="wrong"))[0] == 401
    code, user = await admin(a_node, "GET", f"/heihei/users/{b}")
    assert code == 200 and user["profile"]["id"] == b and user["followerCount"] == 1 and user["sessions"] == 1
    assert user["user_status"] == "Published"
    assert (await admin(a_node, "GET", "/heihei/users/99999"))[0] == 404
    assert (await admin(a_node, "GET", "/heihei/users/abc"))[0] == 400

    await ok(a_node, "/api/user/report-user", {"token": ta, "userId": b, "reportType": 4})
    code, listed = await admin(b_node, "GET", "/heihei/reports")
    assert code == 200 and listed["total"] == 1
    [report] = listed["reports"]
    assert report["reporter"] == a and report["target"] == b and report["reportTypeText"] == "淫秽色情"
    assert (await admin(b_node, "GET", "/heihei/reports?status=closed"))[0] == 400

    # resolving with a ban: b's sessions end everywhere (its channel is closed), sign-in is refused
    channel = await open_channel(b_node, tb)
    code, resolved = await admin(a_node, "POST", f"/heihei/reports/{report['id']}/resolve",
                                 {"resolution": "色情内容", "ban": True})
    assert code == 200 and resolved["status"] == "resolved" and resolved["resolution"] == "色情内容"
    code_reason = await channel.closed
    assert code_reason[0] == 4401
    assert (await api(b_node, "/api/user/get-config", {"token": tb}))["errorcode"] == 720
    again = await api(b_node, "/api/user/get-sms-verification-code", {"phoneNo": "13100000002"})
    assert again["errorcode"] == 0
    records = await outside.wait_for("sms", 3)
    code_sent = [r for r in records if r["phoneNo"] == "13100000002"][-1]["code"]
    banned = await api(b_node, "/api/user/sign-in-cl-by-phone", {"phoneNo": "13100000002", "verifyCode": code_sent})
    assert banned["errorcode"] == 711
    assert (await ok(a_node, "/api/user/info", {"token": ta, "uid": b}))["result"]["user_status"] == "Banned"
    assert (await admin(a_node, "GET", "/heihei/reports"))[1]["total"] == 0
    assert (await admin(a_node, "GET", "/heihei/reports?status=all"))[1]["total"] == 1

    code, lifted = await admin(b_node, "DELETE", f"/heihei/bans/{b}")
    assert code == 200 and lifted["user_status"] == "Published"
    await sign_in(b_node, outside, "13100000002")
    code, _ = await admin(a_node, "PUT", f"/heihei/bans/{a}", {"reason": "spam"})
    assert code == 200 and (await api(a_node, "/api/user/get-config", {"token": ta}))["errorcode"] == 720
    assert (await admin(a_node, "PUT", f"/heihei/bans/{a}", {"why": "x"}))[0] == 400
    assert (await admin(a_node, "PUT", "/heihei/bans/99999", {}))[0] == 404

    # recommending and anchors, for list-user-byType
    _, fresh = await sign_in(a_node, outside, "13100000003")
    assert (await admin(a_node, "PUT", f"/heihei/users/{fresh}/type", {"userType": "Anchor"}))[0] == 200
    assert (await admin(a_node, "PUT", f"/heihei/users/{fresh}/type", {"userType": "King"}))[0] == 400
    assert (await admin(a_node, "PUT", f"/heihei/users/{fresh}/recommend", {"weight": 3}))[0] == 200
    assert (await admin(a_node, "PUT", f"/heihei/users/{fresh}/recommend", {"weight": "high"}))[0] == 400
    tc, _ = await sign_in(b_node, outside, "13100000004")
    anchors = await ok(b_node, "/api/user/list-user-byType", {"token": tc, "type": "anchor"})
    assert [u["id"] for u in anchors["result"]] == [int(fresh)]
    recommended = await ok(b_node, "/api/user/list-user-byType", {"token": tc})
    assert [u["id"] for u in recommended["result"]] == [int(fresh)]
    assert (await admin(a_node, "DELETE", f"/heihei/users/{fresh}/recommend"))[0] == 200
    assert (await ok(b_node, "/api/user/list-user-byType", {"token": tc}))["totalSize"] == 0


@pytest_twisted.ensureDeferred
async def test_catalogs_and_topics(nodes, outside, tmp_path):
    a_node = await nodes.start("a", admin_extra(outside, tmp_path))
    b_node = await nodes.start("b", admin_extra(outside, tmp_path))
    token, uid = await sign_in(a_node, outside, "13100000011")

    code, banners = await admin(a_node, "GET", "/heihei/banners")
    assert code == 200 and banners["banners"][0]["cover"] == "/static/img/banner-welcome.png"
    new = {"banners": [{"desc": "活动", "cover": "https://cdn.example/b.png", "type": 2,
                        "link": "wmlives_heihei://live?id=5"}]}
    assert (await admin(a_node, "PUT", "/heihei/banners", new))[0] == 200
    assert (await ok(b_node, "/api/social/get-banner", {"token": token}))["banners"] == new["banners"]
    code, error = await admin(a_node, "PUT", "/heihei/banners", {"banners": [{"cover": "ftp://x", "type": 1}]})
    assert code == 400 and "cover" in error["error"]

    gifts = {"resources": [{"id": 7, "attr_file": "https://cdn.example/7.zip", "file_md5": "abc"}],
             "history": []}
    assert (await admin(b_node, "PUT", "/heihei/gift-resources", gifts))[0] == 200
    assert (await ok(a_node, "/api/social/gift-resources", {"token": token}))["resources"] == \
        [{"file_md5": "abc", "id": 7, "attr_file": "https://cdn.example/7.zip"}]
    assert (await admin(b_node, "PUT", "/heihei/gift-resources", {"resources": [{"id": 0}]}))[0] == 400

    code, topic = await admin(a_node, "PUT", "/heihei/topics/9", {"name": "深夜", "content": "睡不着",
                                                                  "catName": "生活", "isTop": 1, "type": 0})
    assert code == 200 and topic["id"] == 9
    assert [t["id"] for t in (await ok(b_node, "/api/topic/topic-list", {"token": token}))["topics"]][0] == 9
    assert (await admin(a_node, "PUT", "/heihei/topics/9", {"name": ""}))[0] == 400
    assert (await admin(a_node, "PUT", "/heihei/topics/9", {"name": "x", "color": "red"}))[0] == 400
    f = await upload(a_node, token, mp3_bytes(2.0))
    sid = (await ok(a_node, "/api/topic/create-subject", {"token": token, "topicId": 9, "sign": f["sign"],
                                                          "samples": SAMPLES, "title": "t"}))["subject"]["id"]
    code, listed = await admin(b_node, "GET", "/heihei/topics")
    assert [t["countings"]["replyCount"] for t in listed["topics"] if t["id"] == 9] == [1]
    assert await admin(b_node, "DELETE", f"/heihei/subjects/{sid}") == (200, {"removed": 1})
    assert (await admin(b_node, "DELETE", f"/heihei/subjects/{sid}"))[0] == 404
    assert (await admin(a_node, "DELETE", "/heihei/topics/9"))[0] == 200
    assert (await api(a_node, "/api/topic/topic-detail", {"token": token, "topicId": 9}))["errorcode"] == 100
    assert (await admin(a_node, "DELETE", "/heihei/topics/9"))[0] == 404

    # the admin API's OpenAPI document lists the heihei routes; the manhole has the same object
    code, document = await admin(a_node, "GET", "/openapi.json")
    assert code == 200 and "/admin/heihei/reports/{rid}/resolve" in document["paths"]
    namespace = a_node.manhole_namespace()
    assert (await namespace["operators"]["channel"].list_topics())["topics"][0]["id"] == 1
