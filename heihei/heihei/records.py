"""
Voice records (seed 001 v1.3.0, 黑聊): a user's short recording that others
browse, listen to and answer.

- `upload-record` takes the file itself (multipart `file`) with `fileMd5`.
  Checked in this order: size over `[social] record_max_bytes` -> 756; the
  MD5 not the file's -> 754; not a whole MP3 or M4A (AAC) sound, decoded to
  the end with PyAV -> 754; longer than `record_max_s` -> 756; shorter than
  `record_min_s` -> 755. The length is the measured one (`recordLength` and
  `fileName` from the client are accepted and not trusted). The file is
  stored by the node under a name of ours (`record/<yyyymmddHH>_<uid>_<random>.<ext>`)
  and served at `recordPath`.
- A user has one current record: a new upload replaces the previous one,
  whose file is deleted.
- `refresh-record`: the user's own record (`mine`) and a page of the others'
  records, newest first, `score` being where the next page starts (0: the
  newest); records of users blocked either way are left out.
- `read-record` counts a listen and answers the record; `delete-record`
  removes one's own (757 unknown, 757 someone else's).

Redis (realm id "heihei"):
- `record:heihei:<id>` HASH {recordId, userId, key, url, length, format,
  created, listens}; `seq:heihei:record`
- `records:heihei` ZSET id -> created ms (the browse list)
- `urecord:heihei:<uid>` -> the user's current record id
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable

from heihei.core.errors import Refused
from heihei.heihei.accounts import REALM
from heihei.heihei.audio import BadAudio, measure
from heihei.heihei.errors import (BAD_PARAMETER, NO_SUCH_RECORD, NOT_YOUR_RECORD, RECORD_CORRUPT,
                                  RECORD_TOO_BIG, RECORD_TOO_SHORT)
from heihei.heihei.timetext import as_int as _int, create_time, time_tip
from heihei.heihei.uploads import make_file_name
from heihei.store.keys import key
from heihei.store.scripts import Script

#: how many records one refresh looks through to fill a page (others' records minus blocked users)
SCAN_BATCHES = 5

PUT_RECORD = Script("heihei_put_record", r"""
-- KEYS: 1 seq, 2 list zset, 3 the user's current record. ARGV: 1 record key prefix, 2 user, 3 key, 4 url,
-- 5 length, 6 format, 7 now ms. Returns {new id, the replaced record's object key or ''}
local old = redis.call('GET', KEYS[3])
local old_key = ''
if old then
  old_key = redis.call('HGET', ARGV[1] .. old, 'key') or ''
  redis.call('DEL', ARGV[1] .. old)
  redis.call('ZREM', KEYS[2], old)
end
local id = tostring(redis.call('INCR', KEYS[1]))
redis.call('HSET', ARGV[1] .. id, 'recordId', id, 'userId', ARGV[2], 'key', ARGV[3], 'url', ARGV[4],
           'length', ARGV[5], 'format', ARGV[6], 'created', ARGV[7], 'listens', 0)
redis.call('ZADD', KEYS[2], ARGV[7], id)
redis.call('SET', KEYS[3], id)
return {id, old_key}
""")

DELETE_RECORD = Script("heihei_delete_record", r"""
-- KEYS: 1 record hash, 2 list zset, 3 the user's current record. ARGV: 1 id, 2 user.
-- Returns the object key, or -1 unknown, -2 someone else's
local owner = redis.call('HGET', KEYS[1], 'userId')
if not owner then return -1 end
if owner ~= ARGV[2] then return -2 end
local object_key = redis.call('HGET', KEYS[1], 'key')
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('GET', KEYS[3]) == ARGV[1] then redis.call('DEL', KEYS[3]) end
return object_key
""")


def record_key(record_id: str) -> str:
    return key("record", REALM, record_id)


class Records:
    def __init__(self, store, clock, *, people, blocks, files, base_url: str, settings,
                 run_in_thread: Callable) -> None:
        self.store = store
        self.clock = clock
        self.people = people
        self.blocks = blocks
        #: heihei.web.oss_store.LocalFiles: save(key, data), remove(key) (None: not wired)
        self.files = files
        self.base_url = base_url.rstrip("/")
        self.settings = settings
        self.run_in_thread = run_in_thread

    def now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    @property
    def max_bytes(self) -> int:
        return self.settings.record_max_bytes

    async def upload(self, uid: str, data: bytes, file_md5: str) -> dict[str, Any]:
        s = self.settings
        if not data:
            raise Refused(BAD_PARAMETER, "file (empty)")
        if len(data) > s.record_max_bytes:
            raise Refused(RECORD_TOO_BIG, f"at most {s.record_max_bytes} bytes")
        if hashlib.md5(data).hexdigest() != file_md5.lower():
            raise Refused(RECORD_CORRUPT, "fileMd5 is not the file's MD5")
        try:
            audio = await self.run_in_thread(measure, data, max_seconds=s.record_max_s)
        except BadAudio as e:
            if e.kind == "too-long":
                raise Refused(RECORD_TOO_BIG, f"longer than {s.record_max_s:g} seconds") from None
            raise Refused(RECORD_CORRUPT, e.detail) from None
        if audio.duration_s < s.record_min_s:
            raise Refused(RECORD_TOO_SHORT, f"shorter than {s.record_min_s:g} seconds")
        if self.files is None:
            raise Refused(RECORD_CORRUPT, "records are not stored on this node")
        object_key = f"record/{make_file_name(uid, audio.format, self.clock.seconds())}"
        await self.files.save(object_key, data)
        record_id, replaced = await PUT_RECORD(
            self.store, [key("seq", REALM, "record"), key("records", REALM), key("urecord", REALM, uid)],
            [key("record", REALM) + ":", uid, object_key, f"{self.base_url}/{object_key}", audio.whole_seconds,
             audio.format, self.now_ms()])
        if replaced:
            await self.files.remove(replaced)
        return await self._shown(uid, await self.store.hgetall(record_key(record_id)), with_score=True)

    async def _shown(self, viewer: str, r: dict[str, str], *, with_score: bool, users=None) -> dict[str, Any]:
        uid = r.get("userId", "")
        if users is None:
            users = await self.people.users_map(viewer, [uid])
        created = _int(r.get("created"))
        length = _int(r.get("length"))
        out: dict[str, Any] = {"recordId": _int(r.get("recordId")), "userId": _int(uid),
                               "recordPath": r.get("url", ""), "redordLength": length, "recordLength": length,
                               "status": 1, "createTime": create_time(created)}
        if with_score:
            out["score"] = created
            out["timeTip"] = time_tip(self.clock.seconds(), created / 1000)
        user = users.get(uid)
        if user is not None:
            info = {k: user[k] for k in ("displayName", "id", "coverUrl", "gender", "birthDay", "level")}
            info["region"] = ""
            if uid != viewer:
                info["isFollow"] = info["isFollowed"] = user["isFollowed"]
            live = await self.people.live.live_of(uid)
            if live is not None:
                info["status"] = {"type": 1, "jump": f"wmlives_heihei://live?id={live.live_id}"}
            out["userInfo"] = info
        return out

    async def refresh(self, uid: str, score: int) -> dict[str, Any]:
        """`refresh-record`: {mine?, records}: others' records older than `score` (0: the newest)."""
        n = self.settings.page_size
        top = f"({score}" if score > 0 else "+inf"
        picked: list[dict[str, str]] = []
        offset = 0
        for _ in range(SCAN_BATCHES):
            ids = await self.store.zrevrangebyscore(key("records", REALM), top, "-inf", offset=offset, count=n)
            if not ids:
                break
            offset += len(ids)
            for record_id in ids:
                r = await self.store.hgetall(record_key(record_id))
                owner = r.get("userId") if r else None
                if owner is None or owner == uid or await self.blocks.either_blocked(uid, owner):
                    continue
                picked.append(r)
                if len(picked) == n:
                    break
            if len(picked) == n:
                break
        users = await self.people.users_map(uid, [r["userId"] for r in picked])
        data: dict[str, Any] = {"records": [await self._shown(uid, r, with_score=True, users=users) for r in picked]}
        mine_id = await self.store.get(key("urecord", REALM, uid))
        mine = await self.store.hgetall(record_key(mine_id)) if mine_id else {}
        if mine:
            data["mine"] = await self._shown(uid, mine, with_score=False)
        return {"data": data}

    async def _existing(self, viewer: str, record_id: int) -> dict[str, str]:
        r = await self.store.hgetall(record_key(str(record_id)))
        if not r or (r["userId"] != viewer and await self.blocks.has_blocked(r["userId"], viewer)):
            raise Refused(NO_SUCH_RECORD)
        return r

    async def read(self, uid: str, record_id: int) -> dict[str, Any]:
        """`read-record`: the record (757 unknown); a listen is counted."""
        r = await self._existing(uid, record_id)
        await self.store.hincrby(record_key(r["recordId"]), "listens", 1)
        return {"record": await self._shown(uid, r, with_score=True)}

    async def delete(self, uid: str, record_id: int) -> None:
        """`delete-record`: one's own record goes, with its file (757 unknown or someone else's)."""
        result = await DELETE_RECORD(self.store, [record_key(str(record_id)), key("records", REALM),
                                                  key("urecord", REALM, uid)], [str(record_id), uid])
        if result == -1:
            raise Refused(NO_SUCH_RECORD)
        if result == -2:
            raise Refused(NOT_YOUR_RECORD)
        if self.files is not None:
            await self.files.remove(result)
