"""
Direct uploads as the rest of the app sees them: `/api/sys/oss-token` hands
out credentials for one file (heihei/heihei/uploads.py names and signs it),
and `create-subject` / `reply-subject` later hand back only the file's `sign`
(the seed's parameters carry no file name). So the sign is remembered:

    issue(uid, format, module)  -> the seed's Credentials + FileInfo, and in Redis
                                   upsign:heihei:<sign> HASH {name, path, key, module, user}
                                   for the credentials' lifetime plus CLAIM_MARGIN_S
    claim(uid, sign, module)    -> the file (name, key, url, where it is on this node's disk),
                                   or 102 文件验证失败: an unknown or expired sign, someone
                                   else's, a sign that does not verify for the name, another
                                   module, or (node provider) a file that was never uploaded

A claimed sign may be claimed again (a client retrying create-subject after a
timeout): the caller makes that idempotent (`used` in the record names what
the file became).

Provider errors (Aliyun STS refusing or out of reach) are 400 业务失败; the
reason is logged, never shown (it may name the role).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from twisted.logger import Logger

from heihei.core.errors import Refused
from heihei.heihei.accounts import REALM
from heihei.heihei.errors import BAD_FILE, BAD_PARAMETER, BUSINESS_FAILED
from heihei.heihei.uploads import Uploads, UploadRefused, parse_file_name
from heihei.store.keys import key

#: a sign stays claimable this long after its credentials expired (the upload may finish late,
#: the client may call create-subject a while later)
CLAIM_MARGIN_S = 3600


@dataclass(frozen=True)
class UploadedFile:
    name: str
    #: `<module>/<fileName>`
    key: str
    #: where it is served
    url: str
    #: the file on this node's disk (node provider), else None
    local_path: str | None
    #: what it became already (a subject id ...), "" if nothing yet
    used: str = ""


def sign_key(sign: str) -> str:
    return key("upsign", REALM, sign.lower())


class UploadedFiles:
    _log = Logger()

    def __init__(self, store, clock, uploads: Uploads, *,
                 local_path: Callable[[str], str | None] | None = None) -> None:
        """`local_path(key)`: where the node provider keeps an uploaded object (None if it was never
        uploaded); None for a provider whose files are elsewhere (Aliyun: not checked)."""
        self.store = store
        self.clock = clock
        self.uploads = uploads
        self.local_path = local_path

    async def issue(self, uid: str, format: str, module: str) -> dict:
        try:
            issued = await self.uploads.issue(uid, format, module, self.clock.seconds())
        except UploadRefused as e:
            raise Refused(BAD_PARAMETER, f"{e.field} ({e.why})") from None
        except Exception as e:
            if isinstance(e, (Refused, ValueError)):
                raise
            self._log.warn("upload credentials for user {user} failed: {why}", user=uid,
                           why=getattr(e, "reason", type(e).__name__))
            raise Refused(BUSINESS_FAILED, "the storage service did not answer") from None
        f = issued.file
        bucket, _, object_key = f.path.partition("/")
        k = sign_key(f.sign)
        await self.store.hmset(k, {"name": f.file_name, "path": f.path, "key": object_key,
                                   "module": object_key.split("/", 1)[0], "user": uid, "url": f.url})
        await self.store.expire(k, self.uploads.ttl_s + CLAIM_MARGIN_S)
        return issued.as_json()

    async def claim(self, uid: str, sign: str, module: str) -> UploadedFile:
        """The file behind `sign`, uploaded by `uid` to `module`, or 102."""
        record = await self.store.hgetall(sign_key(sign)) if isinstance(sign, str) and len(sign) <= 64 else {}
        if not record or record.get("user") != uid or record.get("module") != module:
            raise Refused(BAD_FILE, "unknown or expired sign")
        name = record.get("name", "")
        if parse_file_name(name) is None or not self.uploads.verify_sign(name, sign, user=uid):
            raise Refused(BAD_FILE, "the sign does not match the file")
        local = None
        if self.local_path is not None:
            local = self.local_path(record["key"])
            if local is None:
                raise Refused(BAD_FILE, "the file has not been uploaded")
        return UploadedFile(name, record["key"], record.get("url", ""), local, record.get("used", ""))

    async def mark_used(self, sign: str, what: str) -> str:
        """Record what the file became; returns what it became first (a concurrent claim may win)."""
        k = sign_key(sign)
        await self.store.hsetnx(k, "used", what)
        return await self.store.hget(k, "used") or what
