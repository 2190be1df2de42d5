"""
Topics (黑聊, seed 001 v2.0.0): operators run topics; users post voice
subjects in them, reply to subjects, listen and like.

Model
- A **topic** (operators: admin API, manhole; the first start fills Redis
  from `[social] topics_file`): id, name, img, content, catName, isTop,
  type (0 normal, 1 约聊 — the one shown as `dueChat` in topic-list), an
  operator `order`, and counters (viewCount, replyCount, likeCount) that the
  subjects in it add to.
- A **subject** is a voice post: the file the user uploaded with
  `oss-token` (module record), handed in by its `sign`. A subject in a
  topic is a *main* subject (`mainSubjectId` 0); a reply is a subject with
  `mainSubjectId` (its thread), `replySubjectId` (the subject it answers)
  and `replyUserId` (that subject's creator). Counters: viewCount (listens),
  replyCount (direct replies), likeCount, giftCount (gifts come later), and
  for a main subject `repliesTotal` (its whole thread).
- Lists: a topic's main subjects by time (`type` 1 new) or by heat (0 hot:
  a listen adds 1, a reply 2, a like 3 to the thread's score); a thread's
  replies oldest first. Pages of `[social] page_size`, by `offset`; the
  answer's `offset` is where the next page starts.
- Only the creator updates a subject (its title), else 400. A listen counts
  once per user and subject per `LISTEN_DEDUPE_S`; a like once per user
  (liking again is a success that changes nothing).
- The length of a subject is measured from the file when it is on this
  node's disk (the node upload provider); with Aliyun OSS the client's
  `length` is taken, bounded.
- Handing in the same `sign` again (a retry after a timeout) answers the
  subject it already made; a sign is someone's own upload of module record
  (else 102).

Redis (realm id "heihei"):
- `topic:heihei:<id>` HASH; `topics:heihei` ZSET id -> list position
  (pinned first, then by `order`, highest first)
- `subject:heihei:<id>` HASH; `seq:heihei:subject`
- `tsubj:heihei:<topicId>:new|hot` ZSET main subject id -> ms | heat
- `sreplies:heihei:<mainId>` ZSET reply id -> ms
- `slikes:heihei:<subjectId>` SET of users who liked it
- `slisten:heihei:<subjectId>:<uid>` a listen's dedupe key (expires)
- `tdue:heihei:<topicId>` ZSET creator -> ms of their latest post (the
  newest `DUE_USERS_MAX`)
"""

from __future__ import annotations

import re
from typing import Any, Callable

import orjson

from heihei.core.errors import NOT_FOUND, Refused
from heihei.heihei.accounts import REALM
from heihei.heihei.audio import BadAudio, measure
from heihei.heihei.catalogs import CatalogError
from heihei.heihei.errors import BAD_FILE, BAD_PARAMETER, BUSINESS_FAILED, NO_SUCH_TOPIC
from heihei.heihei.files import sign_key as _sign_key
from heihei.heihei.timetext import as_int as _int, create_time, time_tip
from heihei.store.keys import key
from heihei.store.scripts import Script
from heihei.textnum import is_digits

LISTEN_DEDUPE_S = 600
DUE_USERS_MAX = 50
DUE_USERS_SHOWN = 10
#: replies shown under each subject of topic-detail
REPLIES_SHOWN = 3
MAX_SUBJECT_SECONDS = 600
MAX_SAMPLES_CHARS = 4000
SAMPLES = re.compile(r"\[?-?[0-9]{1,6}(,\s?-?[0-9]{1,6}){0,999}\]?")
MAX_TOPICS = 1000
HEAT_LISTEN, HEAT_REPLY, HEAT_LIKE = 1, 2, 3
PINNED = 10 ** 12
TOPIC_FIELDS = ("name", "img", "content", "catName", "isTop", "type", "order")

CREATE_MAIN = Script("heihei_create_subject", r"""
-- KEYS: 1 sign record, 2 subject seq, 3 topic hash, 4 new zset, 5 hot zset, 6 due zset
-- ARGV: 1 subject key prefix, 2 now ms, 3 creator, 4 topic id, 5 title, 6 url, 7 object key, 8 length,
--       9 samples, 10 due max. Returns {id, 1 created | 0 this sign's subject already | -1 no topic}
if redis.call('EXISTS', KEYS[3]) == 0 then return {'', -1} end
local used = redis.call('HGET', KEYS[1], 'used')
if used then return {used, 0} end
local id = tostring(redis.call('INCR', KEYS[2]))
redis.call('HSET', ARGV[1] .. id, 'id', id, 'topicId', ARGV[4], 'creatorId', ARGV[3], 'title', ARGV[5],
           'path', ARGV[6], 'key', ARGV[7], 'length', ARGV[8], 'samples', ARGV[9], 'created', ARGV[2],
           'mainSubjectId', '0', 'replySubjectId', '0', 'replyUserId', '0', 'viewCount', 0, 'replyCount', 0,
           'likeCount', 0, 'giftCount', 0, 'repliesTotal', 0)
redis.call('HSET', KEYS[1], 'used', id)
redis.call('ZADD', KEYS[4], ARGV[2], id)
redis.call('ZADD', KEYS[5], 0, id)
redis.call('HINCRBY', KEYS[3], 'replyCount', 1)
redis.call('ZADD', KEYS[6], ARGV[2], ARGV[3])
local extra = redis.call('ZCARD', KEYS[6]) - tonumber(ARGV[10])
if extra > 0 then redis.call('ZREMRANGEBYRANK', KEYS[6], 0, extra - 1) end
return {id, 1}
""")

CREATE_REPLY = Script("heihei_reply_subject", r"""
-- KEYS: 1 sign record, 2 subject seq, 3 parent hash, 4 main hash, 5 thread zset, 6 topic hash, 7 hot zset,
--       8 due zset
-- ARGV: 1 subject key prefix, 2 now ms, 3 creator, 4 url, 5 object key, 6 length, 7 samples, 8 parent id,
--       9 main id, 10 due max, 11 heat of a reply. Returns {id, 1 | 0 | -1 no parent}
if redis.call('EXISTS', KEYS[3]) == 0 or redis.call('EXISTS', KEYS[4]) == 0 then return {'', -1} end
local used = redis.call('HGET', KEYS[1], 'used')
if used then return {used, 0} end
local parent = redis.call('HMGET', KEYS[3], 'topicId', 'creatorId')
local id = tostring(redis.call('INCR', KEYS[2]))
redis.call('HSET', ARGV[1] .. id, 'id', id, 'topicId', parent[1], 'creatorId', ARGV[3], 'title', '',
           'path', ARGV[4], 'key', ARGV[5], 'length', ARGV[6], 'samples', ARGV[7], 'created', ARGV[2],
           'mainSubjectId', ARGV[9], 'replySubjectId', ARGV[8], 'replyUserId', parent[2], 'viewCount', 0,
           'replyCount', 0, 'likeCount', 0, 'giftCount', 0, 'repliesTotal', 0)
redis.call('HSET', KEYS[1], 'used', id)
redis.call('ZADD', KEYS[5], ARGV[2], id)
redis.call('HINCRBY', KEYS[3], 'replyCount', 1)
redis.call('HINCRBY', KEYS[4], 'repliesTotal', 1)
if redis.call('EXISTS', KEYS[6]) == 1 then redis.call('HINCRBY', KEYS[6], 'replyCount', 1) end
if redis.call('ZSCORE', KEYS[7], ARGV[9]) then redis.call('ZINCRBY', KEYS[7], ARGV[11], ARGV[9]) end
redis.call('ZADD', KEYS[8], ARGV[2], ARGV[3])
local extra = redis.call('ZCARD', KEYS[8]) - tonumber(ARGV[10])
if extra > 0 then redis.call('ZREMRANGEBYRANK', KEYS[8], 0, extra - 1) end
return {id, 1}
""")

COUNT_ACTION = Script("heihei_subject_action", r"""
-- A listen or a like. KEYS: 1 subject hash, 2 dedupe (a listen: its key; a like: the likers set),
-- 3 topic hash, 4 hot zset. ARGV: 1 'listen' | 'like', 2 user, 3 dedupe seconds, 4 main id, 5 heat,
-- 6 counter field. Returns {subject counters..., topic counters...} or {} for no subject.
if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
local fresh
if ARGV[1] == 'listen' then
  fresh = redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[3])
else
  fresh = redis.call('SADD', KEYS[2], ARGV[2]) == 1
end
if fresh then
  redis.call('HINCRBY', KEYS[1], ARGV[6], 1)
  if redis.call('EXISTS', KEYS[3]) == 1 then redis.call('HINCRBY', KEYS[3], ARGV[6], 1) end
  if redis.call('ZSCORE', KEYS[4], ARGV[4]) then redis.call('ZINCRBY', KEYS[4], ARGV[5], ARGV[4]) end
end
local s = redis.call('HMGET', KEYS[1], 'viewCount', 'replyCount', 'likeCount', 'giftCount')
local t = redis.call('HMGET', KEYS[3], 'viewCount', 'replyCount', 'likeCount')
return {s[1], s[2], s[3], s[4], t[1] or '0', t[2] or '0', t[3] or '0'}
""")

SEED_TOPICS = Script("heihei_seed_topics", r"""
-- KEYS: 1 seeded flag, 2 topics zset, 3 topic seq. ARGV: topic key prefix, then JSON topics.
if redis.call('SET', KEYS[1], '1', 'NX') == false then return 0 end
for i = 2, #ARGV do
  local t = cjson.decode(ARGV[i])
  local k = ARGV[1] .. t.id
  if redis.call('EXISTS', k) == 0 then
    redis.call('HSET', k, 'id', t.id, 'name', t.name, 'img', t.img, 'content', t.content, 'catName', t.catName,
               'isTop', t.isTop, 'type', t.type, 'order', t.order, 'viewCount', 0, 'replyCount', 0, 'likeCount', 0)
    redis.call('ZADD', KEYS[2], t.position, t.id)
    local seq = tonumber(redis.call('GET', KEYS[3]) or '0')
    if tonumber(t.id) > seq then redis.call('SET', KEYS[3], t.id) end
  end
end
return 1
""")


def topic_key(topic_id: str) -> str:
    return key("topic", REALM, topic_id)


def subject_key(subject_id: str) -> str:
    return key("subject", REALM, subject_id)


def _id(value: Any) -> str | None:
    text = str(value)
    return text if is_digits(text) and len(text) < 19 else None


def check_topic(topic_id: Any, fields: dict[str, Any]) -> dict[str, str]:
    """An operator's topic, checked; ValueError naming the field."""
    if _id(topic_id) is None or int(topic_id) <= 0:
        raise ValueError("id must be a positive integer")
    unknown = set(fields) - set(TOPIC_FIELDS) - {"id"}
    if unknown:
        raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
    out = {}
    for name, limit in (("name", 50), ("content", 1000), ("catName", 50)):
        value = fields.get(name, "")
        if not isinstance(value, str) or len(value) > limit or (name == "name" and not value.strip()):
            raise ValueError(f"{name} must be a string of 1 to {limit} characters" if name == "name"
                             else f"{name} must be a string of at most {limit} characters")
        out[name] = value
    img = fields.get("img", "")
    if not isinstance(img, str) or len(img) > 1024 or (img and not img.startswith(("http://", "https://", "/"))):
        raise ValueError("img must be an http(s) URL or a path starting with /")
    out["img"] = img
    for name, allowed in (("isTop", (0, 1)), ("type", (0, 1))):
        value = fields.get(name, 0)
        if value not in allowed or isinstance(value, bool):
            raise ValueError(f"{name} must be 0 or 1")
        out[name] = str(value)
    order = fields.get("order", int(topic_id))
    if isinstance(order, bool) or not isinstance(order, int) or not 0 <= order < PINNED:
        raise ValueError("order must be a non-negative integer")
    out["order"] = str(order)
    return out


def check_topics_file(doc: Any) -> list[dict[str, Any]]:
    """`[social] topics_file`: {"topics": [{id, name, img, content, catName, isTop, type, order?}]}."""
    if not isinstance(doc, dict) or not isinstance(doc.get("topics"), list) or len(doc["topics"]) > MAX_TOPICS:
        raise CatalogError(f'a topics file is {{"topics": [...]}} with at most {MAX_TOPICS} topics')
    for i, t in enumerate(doc["topics"]):
        try:
            if not isinstance(t, dict):
                raise ValueError("must be an object")
            check_topic(t.get("id"), t)
        except ValueError as e:
            raise CatalogError(f"topics[{i}]: {e}") from None
    return doc["topics"]


def _position(fields: dict[str, str]) -> int:
    return (PINNED if fields["isTop"] == "1" else 0) + int(fields["order"])


class Topics:
    def __init__(self, store, clock, *, people, files, settings, base_url: str,
                 run_in_thread: Callable, initial_topics: list[dict[str, Any]], clean_text: Callable[[str], str]):
        self.store = store
        self.clock = clock
        self.people = people
        #: heihei.heihei.files.UploadedFiles (None: uploads not wired)
        self.files = files
        self.settings = settings
        self.base_url = base_url.rstrip("/")
        self.run_in_thread = run_in_thread
        self.initial = [{"id": t["id"], **check_topic(t["id"], t)} for t in initial_topics]
        self.clean_text = clean_text
        self._seeded = False

    def now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    @property
    def page_size(self) -> int:
        return self.settings.page_size

    # -- reading -------------------------------------------------------------------------------

    async def _seed(self) -> None:
        if self._seeded:
            return
        topics = [orjson.dumps({**t, "position": _position(t)}).decode() for t in self.initial]
        await SEED_TOPICS(self.store, [key("catalog", REALM, "topics-seeded"), key("topics", REALM),
                                       key("seq", REALM, "topic")], [key("topic", REALM) + ":", *topics])
        self._seeded = True

    async def _topic(self, topic_id: str | None) -> dict[str, str]:
        await self._seed()
        raw = await self.store.hgetall(topic_key(topic_id)) if topic_id else {}
        if not raw:
            raise Refused(NO_SUCH_TOPIC, "no such topic")
        return raw

    async def _subject(self, subject_id: Any) -> dict[str, str]:
        sid = _id(subject_id)
        raw = await self.store.hgetall(subject_key(sid)) if sid else {}
        if not raw:
            raise Refused(NO_SUCH_TOPIC, "no such subject")
        return raw

    def topic_object(self, t: dict[str, str]) -> dict[str, Any]:
        img = t.get("img", "")
        return {"countings": {"viewCount": _int(t.get("viewCount")), "replyCount": _int(t.get("replyCount")),
                              "likeCount": _int(t.get("likeCount"))},
                "name": t.get("name", ""), "img": self.base_url + img if img.startswith("/") else img,
                "content": t.get("content", ""), "catName": t.get("catName", ""), "isTop": _int(t.get("isTop")),
                "type": _int(t.get("type")), "id": _int(t.get("id"))}

    async def _subject_objects(self, viewer: str, subjects: list[dict[str, str]]) -> list[dict[str, Any]]:
        """The seed's subject objects (countings, isLike as the viewer, timeTip, and for a reply what it
        answers: replyId, replyText, replyPath, replyLength)."""
        now_s = self.clock.seconds()
        parents: dict[str, dict[str, str]] = {}
        for s in subjects:
            pid = s.get("replySubjectId", "0")
            if pid != "0" and pid not in parents:
                parents[pid] = await self.store.hgetall(subject_key(pid)) or {}
        out = []
        for s in subjects:
            liked = bool(await self.store.sismember(key("slikes", REALM, s["id"]), viewer))
            created = _int(s.get("created"))
            parent = parents.get(s.get("replySubjectId", "0"), {})
            out.append({
                "topicId": _int(s.get("topicId")), "repliesTotal": _int(s.get("repliesTotal")),
                "countings": {"viewCount": _int(s.get("viewCount")), "replyCount": _int(s.get("replyCount")),
                              "giftCount": _int(s.get("giftCount")), "likeCount": _int(s.get("likeCount"))},
                "replyUserId": _int(s.get("replyUserId")), "title": s.get("title", ""),
                "creatorId": _int(s.get("creatorId")), "createTime": create_time(created),
                "length": _int(s.get("length")), "mainSubjectId": _int(s.get("mainSubjectId")),
                "replySubjectId": _int(s.get("replySubjectId")), "samples": s.get("samples", ""),
                "path": s.get("path", ""), "id": _int(s.get("id")), "isLike": liked,
                "timeTip": time_tip(now_s, created / 1000),
                "replyId": _int(s.get("replySubjectId")), "replyText": parent.get("title", ""),
                "replyPath": parent.get("path", ""), "replyLength": _int(parent.get("length")),
            })
        return out

    async def _users(self, viewer: str, subjects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        ids = []
        for s in subjects:
            ids += [s["creatorId"], s["replyUserId"]]
            for r in s.get("replies", ()):
                ids += [r["creatorId"], r["replyUserId"]]
        return await self.people.users_map(viewer, ids)

    async def topic_list(self, viewer: str, offset: int) -> dict[str, Any]:
        """`topic-list`: the topics (pinned first), and the 约聊 topic with its latest posters."""
        await self._seed()
        n = self.page_size
        ids = await self.store.zrevrange(key("topics", REALM), offset, offset + n - 1)
        topics = []
        for tid in ids:
            raw = await self.store.hgetall(topic_key(tid))
            if raw:
                topics.append(self.topic_object(raw))
        answer: dict[str, Any] = {"topics": topics, "offset": offset + len(ids)}
        due = await self._due_chat_topic()
        if due is not None:
            posters = await self.store.zrevrange(key("tdue", REALM, due["id"]), 0, DUE_USERS_SHOWN - 1,
                                                 withscores=True)
            briefs = await self.people.users_map(viewer, [uid for uid, _ in posters])
            now_s = self.clock.seconds()
            users = [{**briefs[uid], "timeTip": time_tip(now_s, float(ms) / 1000)} for uid, ms in posters
                     if uid in briefs]
            answer["dueChat"] = {"topic": self.topic_object(due), "users": users}
        return answer

    async def _due_chat_topic(self) -> dict[str, str] | None:
        for tid in await self.store.zrevrange(key("topics", REALM), 0, MAX_TOPICS - 1):
            raw = await self.store.hgetall(topic_key(tid))
            if raw and raw.get("type") == "1":
                return raw
        return None

    async def topic_detail(self, viewer: str, topic_id: int, order: str, offset: int) -> dict[str, Any]:
        """`topic-detail`: a topic and a page of its subjects, hot (0) or new (1), each with its
        newest replies."""
        topic = await self._topic(str(topic_id))
        n = self.page_size
        k = key("tsubj", REALM, topic["id"], "hot" if order == "hot" else "new")
        ids = await self.store.zrevrange(k, offset, offset + n - 1)
        raw = [r for r in [await self.store.hgetall(subject_key(i)) for i in ids] if r]
        subjects = await self._subject_objects(viewer, raw)
        for s in subjects:
            reply_ids = await self.store.zrevrange(key("sreplies", REALM, s["id"]), 0, REPLIES_SHOWN - 1)
            replies = [r for r in [await self.store.hgetall(subject_key(i)) for i in reply_ids] if r]
            s["replies"] = await self._subject_objects(viewer, replies)
        return {"topic": self.topic_object(topic), "users": await self._users(viewer, subjects), "pageSize": n,
                "subjects": subjects, "offset": offset + len(ids)}

    async def get_subject(self, viewer: str, subject_id: int) -> dict[str, Any]:
        [subject] = await self._subject_objects(viewer, [await self._subject(subject_id)])
        return {"subject": subject, "users": await self._users(viewer, [subject])}

    async def subject_detail(self, viewer: str, subject_id: int, offset: int) -> dict[str, Any]:
        """`subject-detail`: a subject, its topic and a page of its thread's replies, oldest first."""
        raw = await self._subject(subject_id)
        main = raw["mainSubjectId"] if raw.get("mainSubjectId", "0") != "0" else raw["id"]
        topic = await self.store.hgetall(topic_key(raw.get("topicId", ""))) or {}
        n = self.page_size
        ids = await self.store.zrange(key("sreplies", REALM, main), offset, offset + n - 1)
        replies = [r for r in [await self.store.hgetall(subject_key(i)) for i in ids] if r]
        [subject] = await self._subject_objects(viewer, [raw])
        reply_objects = await self._subject_objects(viewer, replies)
        shown_topic = self.topic_object(topic) if topic else {}
        return {"topic": {**shown_topic, "shareInfo": {}}, "subject": {**subject, "shareInfo": {}},
                "pageSize": n, "replys": reply_objects, "offset": offset + len(ids),
                "users": await self._users(viewer, [subject, *reply_objects])}

    # -- posting ---------------------------------------------------------------------------------

    def _samples(self, samples: str) -> str:
        if len(samples) > MAX_SAMPLES_CHARS or not SAMPLES.fullmatch(samples):
            raise Refused(BAD_PARAMETER, "samples (numbers separated by commas)")
        return samples

    async def _length(self, local_path: str | None, claimed: int | None) -> int:
        if local_path is None:
            if claimed is None:
                raise Refused(BAD_PARAMETER, "length (required)")
            return max(1, min(claimed, MAX_SUBJECT_SECONDS))
        try:
            audio = await self.run_in_thread(measure, local_path, max_seconds=MAX_SUBJECT_SECONDS)
        except BadAudio as e:
            raise Refused(BAD_FILE, e.detail) from None
        return audio.whole_seconds

    async def create_subject(self, uid: str, topic_id: int, sign: str, samples: str, title: str,
                             length: int | None) -> dict[str, Any]:
        """`create-subject`: 100 no such topic, 102 the sign / file; a repeated sign answers the subject
        it made."""
        topic = await self._topic(str(topic_id))
        title = self._title(title)
        samples = self._samples(samples)
        upload = await self._claim(uid, sign)
        if upload.used:
            return await self.get_subject(uid, upload.used)
        length = await self._length(upload.local_path, length)
        sid, status = await CREATE_MAIN(
            self.store,
            [_sign_key(sign), key("seq", REALM, "subject"), topic_key(topic["id"]),
             key("tsubj", REALM, topic["id"], "new"), key("tsubj", REALM, topic["id"], "hot"),
             key("tdue", REALM, topic["id"])],
            [key("subject", REALM) + ":", self.now_ms(), uid, topic["id"], title, upload.url, upload.key, length,
             samples, DUE_USERS_MAX])
        if int(status) < 0:
            raise Refused(NO_SUCH_TOPIC, "no such topic")
        return await self.get_subject(uid, sid)

    async def reply_subject(self, uid: str, subject_id: int, sign: str, samples: str,
                            length: int | None) -> dict[str, Any]:
        parent = await self._subject(subject_id)
        samples = self._samples(samples)
        upload = await self._claim(uid, sign)
        if upload.used:
            return await self.get_subject(uid, upload.used)
        length = await self._length(upload.local_path, length)
        main = parent["mainSubjectId"] if parent.get("mainSubjectId", "0") != "0" else parent["id"]
        topic_id = parent.get("topicId", "0")
        sid, status = await CREATE_REPLY(
            self.store,
            [_sign_key(sign), key("seq", REALM, "subject"), subject_key(parent["id"]), subject_key(main),
             key("sreplies", REALM, main), topic_key(topic_id), key("tsubj", REALM, topic_id, "hot"),
             key("tdue", REALM, topic_id)],
            [key("subject", REALM) + ":", self.now_ms(), uid, upload.url, upload.key, length, samples, parent["id"],
             main, DUE_USERS_MAX, HEAT_REPLY])
        if int(status) < 0:
            raise Refused(NO_SUCH_TOPIC, "no such subject")
        return await self.get_subject(uid, sid)

    def _title(self, title: str) -> str:
        title = title.strip()
        if not title or len(title) > self.settings.max_title_chars:
            raise Refused(BAD_PARAMETER, f"title (1 to {self.settings.max_title_chars} characters)")
        return self.clean_text(title)

    async def _claim(self, uid: str, sign: str):
        if self.files is None:
            raise Refused(BAD_FILE, "uploads are not configured")
        return await self.files.claim(uid, sign, "record")

    async def update_subject(self, uid: str, subject_id: int, title: str) -> dict[str, Any]:
        raw = await self._subject(subject_id)
        if raw.get("creatorId") != uid:
            raise Refused(BUSINESS_FAILED, "only its creator may change a subject")
        await self.store.hset(subject_key(raw["id"]), "title", self._title(title))
        return await self.get_subject(uid, raw["id"])

    async def _count(self, uid: str, subject_id: int, action: str) -> dict[str, Any]:
        raw = await self._subject(subject_id)
        main = raw["mainSubjectId"] if raw.get("mainSubjectId", "0") != "0" else raw["id"]
        topic_id = raw.get("topicId", "0")
        dedupe = key("slisten", REALM, raw["id"], uid) if action == "listen" else key("slikes", REALM, raw["id"])
        counts = await COUNT_ACTION(
            self.store, [subject_key(raw["id"]), dedupe, topic_key(topic_id), key("tsubj", REALM, topic_id, "hot")],
            [action, uid, LISTEN_DEDUPE_S, main, HEAT_LISTEN if action == "listen" else HEAT_LIKE,
             "viewCount" if action == "listen" else "likeCount"])
        if not counts:
            raise Refused(NO_SUCH_TOPIC, "no such subject")
        c = [_int(v) for v in counts]
        return {"subjectCountings": {"viewCount": c[0], "replyCount": c[1], "subjectId": _int(raw["id"]),
                                     "giftCount": c[3], "likeCount": c[2]},
                "topicCountings": {"viewCount": c[4], "topicId": _int(topic_id), "replyCount": c[5],
                                   "likeCount": c[6]}}

    async def listen(self, uid: str, subject_id: int) -> dict[str, Any]:
        """`listen-subject`: counts a listen (once per user per LISTEN_DEDUPE_S)."""
        return await self._count(uid, subject_id, "listen")

    async def like(self, uid: str, subject_id: int) -> dict[str, Any]:
        """`like-subject`: counts a like (once per user)."""
        return await self._count(uid, subject_id, "like")

    # -- operators -------------------------------------------------------------------------------

    async def topics(self) -> list[dict[str, Any]]:
        await self._seed()
        out = []
        for tid in await self.store.zrevrange(key("topics", REALM), 0, MAX_TOPICS - 1):
            raw = await self.store.hgetall(topic_key(tid))
            if raw:
                out.append({**self.topic_object(raw), "order": _int(raw.get("order"))})
        return out

    async def put_topic(self, topic_id: Any, fields: dict[str, Any]) -> dict[str, Any]:
        """Create or change a topic (its counters stay)."""
        await self._seed()
        try:
            checked = check_topic(topic_id, fields)
        except ValueError as e:
            raise Refused(BAD_PARAMETER, str(e)) from None
        tid = str(int(topic_id))
        if int(await self.store.zcard(key("topics", REALM))) >= MAX_TOPICS \
                and await self.store.zscore(key("topics", REALM), tid) is None:
            raise Refused(BAD_PARAMETER, f"at most {MAX_TOPICS} topics")
        await self.store.hmset(topic_key(tid), {"id": tid, **checked})
        await self.store.zadd(key("topics", REALM), _position(checked), tid)
        raw = await self.store.hgetall(topic_key(tid))
        return {**self.topic_object(raw), "order": _int(raw.get("order"))}

    async def remove_topic(self, topic_id: Any) -> None:
        """The topic goes from the lists and its page (its subjects stay findable by id)."""
        await self._seed()
        tid = _id(topic_id)
        if tid is None or not await self.store.zrem(key("topics", REALM), tid):
            raise Refused(NOT_FOUND, "no such topic")
        await self.store.delete([topic_key(tid)])

    async def remove_subject(self, subject_id: Any) -> int:
        """Moderation: a subject goes (a main subject with its thread); returns how many went."""
        sid = _id(subject_id)
        raw = await self.store.hgetall(subject_key(sid)) if sid else {}
        if not raw:
            raise Refused(NOT_FOUND, "no such subject")
        gone = [sid]
        topic_id = raw.get("topicId", "0")
        if raw.get("mainSubjectId", "0") == "0":
            gone += list(await self.store.zrange(key("sreplies", REALM, sid), 0, -1))
            for order in ("new", "hot"):
                await self.store.zrem(key("tsubj", REALM, topic_id, order), sid)
            await self.store.delete([key("sreplies", REALM, sid)])
        else:
            await self.store.zrem(key("sreplies", REALM, raw["mainSubjectId"]), sid)
        await self.store.delete([subject_key(g) for g in gone] + [key("slikes", REALM, g) for g in gone])
        return len(gone)
