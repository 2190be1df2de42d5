"""Topics (黑聊) over real nodes: the default topics, posting a voice subject uploaded with oss2 and
handed in by its sign, replies, listens, likes, pages, and the errors (100, 102, 700, 400)."""

from __future__ import annotations

import time

import pytest_twisted
from twisted.internet import task

from tests.boss.conftest import mp3_bytes, png_bytes
from tests.heihei.conftest import heihei_extra
from tests.heihei.helpers import api, name, ok, sign_in
from tests.heihei.test_uploads_api import UPLOADS, Uploader

SAMPLES = "1,2,3,4,5,6,7,66,45,32,34,98,44,3,2,33,0"


def extra(outside, tmp_path, **social) -> dict:
    return heihei_extra(outside, uploads={**UPLOADS, "storage_dir": str(tmp_path / "shared-uploads")},
                        social=social)


async def upload(node, token: str, data: bytes, *, module: str = "record", fmt: str = "mp3") -> dict:
    answer = await ok(node, "/api/sys/oss-token", {"token": token, "format": fmt, "module": module})
    uploader = Uploader(node)
    try:
        await uploader.put(answer, data)
    finally:
        uploader.close()
    return answer["FileInfo"]


@pytest_twisted.ensureDeferred
async def test_default_topics_post_reply_listen_like_across_two_nodes(nodes, outside, tmp_path):
    a_node = await nodes.start("a", extra(outside, tmp_path))
    b_node = await nodes.start("b", extra(outside, tmp_path))
    ta, a = await sign_in(a_node, outside, "13600000001")
    tb, b = await sign_in(b_node, outside, "13600000002")
    await name(a_node, ta, "爱丽丝")
    await name(b_node, tb, "鲍勃")

    listing = await ok(b_node, "/api/topic/topic-list", {"token": tb})
    assert [t["id"] for t in listing["topics"]] == [1, 2]  # the shipped topics, the pinned one first
    first = listing["topics"][0]
    assert first["name"] == "随便聊聊" and first["isTop"] == 1 and first["type"] == 0
    assert first["img"] == "http://127.0.0.1:8082/static/img/topic-default.png"
    assert first["countings"] == {"viewCount": 0, "replyCount": 0, "likeCount": 0}
    assert listing["dueChat"]["topic"]["id"] == 2 and listing["dueChat"]["users"] == []

    # a posts on node A: the upload, then the sign
    f = await upload(a_node, ta, mp3_bytes(3.0))
    created = await ok(a_node, "/api/topic/create-subject", {"token": ta, "topicId": 2, "sign": f["sign"],
                                                             "samples": SAMPLES, "title": "你好", "length": 99})
    subject = created["subject"]
    assert subject["title"] == "你好" and subject["length"] == 3  # measured, not the client's 99
    assert subject["path"] == f["url"] and subject["creatorId"] == int(a) and subject["topicId"] == 2
    assert subject["mainSubjectId"] == 0 and subject["replyUserId"] == 0 and subject["isLike"] is False
    assert subject["countings"] == {"viewCount": 0, "replyCount": 0, "giftCount": 0, "likeCount": 0}
    assert created["users"][a]["displayName"] == "爱丽丝" and created["users"][a]["heiNum"] == 1000001
    sid = subject["id"]
    # a retry with the same sign is the same subject
    again = await ok(b_node, "/api/topic/create-subject", {"token": ta, "topicId": 2, "sign": f["sign"],
                                                           "samples": SAMPLES, "title": "你好"})
    assert again["subject"]["id"] == sid

    # b replies on node B (shared storage), a replies to the reply
    g = await upload(b_node, tb, mp3_bytes(2.0))
    reply = (await ok(b_node, "/api/topic/reply-subject", {"token": tb, "subjectId": sid, "sign": g["sign"],
                                                           "samples": SAMPLES}))["subject"]
    assert reply["mainSubjectId"] == sid and reply["replySubjectId"] == sid and reply["replyUserId"] == int(a)
    assert reply["replyText"] == "你好" and reply["replyLength"] == 3 and reply["replyId"] == sid
    h = await upload(a_node, ta, mp3_bytes(2.0))
    nested = (await ok(a_node, "/api/topic/reply-subject", {"token": ta, "subjectId": reply["id"],
                                                            "sign": h["sign"], "samples": SAMPLES}))["subject"]
    assert nested["mainSubjectId"] == sid and nested["replySubjectId"] == reply["id"]
    assert nested["replyUserId"] == int(b)

    # listens count once per user for a while; likes once per user
    listened = await ok(b_node, "/api/topic/listen-subject", {"token": tb, "subjectId": sid})
    assert listened["subjectCountings"] == {"viewCount": 1, "replyCount": 1, "subjectId": sid, "giftCount": 0,
                                            "likeCount": 0}
    assert listened["topicCountings"] == {"viewCount": 1, "topicId": 2, "replyCount": 3, "likeCount": 0}
    assert (await ok(a_node, "/api/topic/listen-subject", {"token": tb, "subjectId": sid}))[
        "subjectCountings"]["viewCount"] == 1
    liked = await ok(a_node, "/api/topic/like-subject", {"token": tb, "subjectId": sid})
    assert liked["subjectCountings"]["likeCount"] == 1 and liked["topicCountings"]["likeCount"] == 1
    assert (await ok(b_node, "/api/topic/like-subject", {"token": tb, "subjectId": sid}))[
        "subjectCountings"]["likeCount"] == 1

    detail = await ok(a_node, "/api/topic/topic-detail", {"token": tb, "topicId": 2, "type": "1"})
    assert detail["topic"]["countings"] == {"viewCount": 1, "replyCount": 3, "likeCount": 1}
    [shown] = detail["subjects"]
    assert shown["id"] == sid and shown["isLike"] is True and shown["repliesTotal"] == 2
    assert [r["id"] for r in shown["replies"]] == [nested["id"], reply["id"]]  # newest first
    assert set(detail["users"]) == {a, b} and detail["pageSize"] == 20 and detail["offset"] == 1
    assert detail["users"][a]["isFollowed"] is False
    await ok(a_node, "/api/user/follow", {"token": tb, "userId": a})
    thread = await ok(b_node, "/api/topic/subject-detail", {"token": tb, "subjectId": sid})
    assert thread["subject"]["id"] == sid and thread["subject"]["shareInfo"] == {}
    assert thread["topic"]["id"] == 2 and thread["topic"]["shareInfo"] == {}
    assert [r["id"] for r in thread["replys"]] == [reply["id"], nested["id"]]  # oldest first
    assert thread["users"][a]["isFollowed"] is True
    page2 = await ok(b_node, "/api/topic/subject-detail", {"token": tb, "subjectId": sid, "offset": 1})
    assert [r["id"] for r in page2["replys"]] == [nested["id"]]

    hot = await ok(b_node, "/api/topic/topic-detail", {"token": tb, "topicId": 2, "type": "0"})
    assert [s["id"] for s in hot["subjects"]] == [sid]
    listing = await ok(b_node, "/api/topic/topic-list", {"token": tb})
    assert [u["id"] for u in listing["dueChat"]["users"]] == [int(a), int(b)]
    assert listing["dueChat"]["users"][0]["timeTip"] == "刚刚"

    # only the creator changes a subject
    changed = await ok(b_node, "/api/topic/update-subject", {"token": ta, "subjectId": sid, "title": "新标题"})
    assert changed["subject"]["title"] == "新标题"
    refused = await api(a_node, "/api/topic/update-subject", {"token": tb, "subjectId": sid, "title": "x"})
    assert refused["errorcode"] == 400
    got = await ok(a_node, "/api/topic/get-subject", {"token": tb, "subjectId": reply["id"]})
    assert got["subject"]["replyText"] == "新标题" and set(got["users"]) == {a, b}


@pytest_twisted.ensureDeferred
async def test_topic_errors(nodes, outside, tmp_path):
    node = await nodes.start("a", extra(outside, tmp_path, max_title_chars=10))
    ta, a = await sign_in(node, outside, "13600000003")
    tb, b = await sign_in(node, outside, "13600000004")
    f = await upload(node, ta, mp3_bytes(2.0))
    base = {"token": ta, "topicId": 1, "sign": f["sign"], "samples": SAMPLES, "title": "t"}
    assert (await api(node, "/api/topic/create-subject", {**base, "topicId": 99}))["errorcode"] == 100
    assert (await api(node, "/api/topic/topic-detail", {"token": ta, "topicId": 99}))["errorcode"] == 100
    for sid_endpoint in ("get-subject", "subject-detail", "listen-subject", "like-subject"):
        r = await api(node, f"/api/topic/{sid_endpoint}", {"token": ta, "subjectId": 12345})
        assert r["errorcode"] == 100 and r["errormsg"].startswith("话题或帖子不存在"), (sid_endpoint, r)
    # the sign: someone else's, made up, of another module, never uploaded
    stolen = await api(node, "/api/topic/create-subject", {**base, "token": tb})
    assert stolen["errorcode"] == 102 and stolen["errormsg"].startswith("文件验证失败")
    assert (await api(node, "/api/topic/create-subject", {**base, "sign": "0" * 32}))["errorcode"] == 102
    avatar = await upload(node, ta, png_bytes(), module="avatar", fmt="png")
    assert (await api(node, "/api/topic/create-subject", {**base, "sign": avatar["sign"]}))["errorcode"] == 102
    never = await ok(node, "/api/sys/oss-token", {"token": ta, "format": "mp3", "module": "record"})
    missing = await api(node, "/api/topic/create-subject", {**base, "sign": never["FileInfo"]["sign"]})
    assert missing["errorcode"] == 102 and "not been uploaded" in missing["errormsg"]
    # parameters
    for bad, words in [({"sign": "xyz"}, "sign"), ({"samples": "a,b"}, "samples"), ({"title": "x" * 11}, "title"),
                       ({"title": ""}, "title"), ({"topicId": "one"}, "topicId")]:
        r = await api(node, "/api/topic/create-subject", {**base, **bad})
        assert r["errorcode"] == 700 and words in r["errormsg"], (bad, r)
    assert (await api(node, "/api/topic/topic-detail", {"token": ta, "topicId": 1, "type": "2"}))["errorcode"] == 700
    ok_subject = await ok(node, "/api/topic/create-subject", base)
    sid = ok_subject["subject"]["id"]
    assert (await api(node, "/api/topic/reply-subject", {"token": tb, "subjectId": sid, "sign": f["sign"],
                                                         "samples": SAMPLES}))["errorcode"] == 102
    # not an mp3 inside: refused at the upload already (the content is sniffed)
    answer = await ok(node, "/api/sys/oss-token", {"token": ta, "format": "mp3", "module": "record"})
    uploader = Uploader(node)
    try:
        import oss2
        import pytest

        with pytest.raises(oss2.exceptions.AccessDenied):
            await uploader.put(answer, b"<html>" + b"x" * 2000)
    finally:
        uploader.close()
    assert (await api(node, "/api/topic/topic-list", {"token": ta, "offset": -1}))["errorcode"] == 700
    assert (await api(node, "/api/topic/topic-list", {}))["errorcode"] == 720


@pytest_twisted.ensureDeferred
async def test_operators_manage_topics_and_remove_subjects(nodes, outside, tmp_path):
    clock = task.Clock()
    clock.advance(time.time())  # the node checks the upload's signed Date against its clock
    node = await nodes.start("a", extra(outside, tmp_path), clock=clock)
    topics = node.operators["channel"].topics
    token, uid = await sign_in(node, outside, "13600000005")
    await topics.put_topic(7, {"name": "新话题", "content": "c", "catName": "生活", "isTop": 1, "type": 0,
                               "img": "https://img.example/t.png", "order": 5})
    listing = await ok(node, "/api/topic/topic-list", {"token": token})
    assert [t["id"] for t in listing["topics"]] == [7, 1, 2]  # pinned by order, then the rest
    await topics.remove_topic(2)
    listing = await ok(node, "/api/topic/topic-list", {"token": token})
    assert [t["id"] for t in listing["topics"]] == [7, 1] and "dueChat" not in listing
    page = await ok(node, "/api/topic/topic-list", {"token": token, "offset": 1})
    assert [t["id"] for t in page["topics"]] == [1] and page["offset"] == 2
    f = await upload(node, token, mp3_bytes(2.0))
    sid = (await ok(node, "/api/topic/create-subject", {"token": token, "topicId": 7, "sign": f["sign"],
                                                        "samples": SAMPLES, "title": "t"}))["subject"]["id"]
    clock.advance(150)
    shown = await ok(node, "/api/topic/get-subject", {"token": token, "subjectId": sid})
    assert shown["subject"]["timeTip"] == "2分钟前"
    assert await topics.remove_subject(sid) == 1
    assert (await api(node, "/api/topic/get-subject", {"token": token, "subjectId": sid}))["errorcode"] == 100
    assert (await ok(node, "/api/topic/topic-detail", {"token": token, "topicId": 7}))["subjects"] == []
