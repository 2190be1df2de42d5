"""
The node provider's files: one directory per module under a root, written
once, never changed.

    <root>/<module>/<fileName>    stored objects (only names matching uploads.KEY_RE exist
                                  or are ever looked up: no traversal, no other files served)
    <root>/.tmp/                  uploads being copied in; emptied at start-up

`put` runs in a worker thread (the caller's job; every call here blocks):

    the size is over the grant's cap            -> OssDenied 400 EntityTooLarge
    the first bytes do not match the format     -> OssDenied 403 AccessDenied
    Content-MD5 malformed or not the body's     -> OssDenied 400 InvalidDigest
    x-oss-content-sha256 (V4) not the body's    -> OssDenied 400 InvalidArgument
    the object exists with other content        -> OssDenied 409 FileAlreadyExists
    the object exists with the same content     -> Stored(created=False): a retried upload succeeds
    otherwise                                   -> Stored(created=True)

The body is read from where twisted.web spooled it (a temporary file, or a
small in-memory buffer under 100 kB) in 64 kB pieces, hashed and copied to
`.tmp/`, and hard-linked into place: the link fails if the name exists, so
two concurrent uploads of one name cannot both win, and a reader never sees
a half-written file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass

from twisted.internet import threads

from heihei.heihei import sniff
from heihei.web.oss_signing import Grant, OssDenied
from heihei.heihei.uploads import KEY_RE, MODULES, format_of

CHUNK_BYTES = 64 * 1024
TMP_DIR = ".tmp"


@dataclass(frozen=True)
class Stored:
    key: str
    size: int
    md5: bytes
    created: bool


class Body:
    """An upload's bytes, readable at any offset from a worker thread.

    Built on the reactor thread from twisted.web's `request.content`, it holds its own
    duplicate of the spool file's descriptor (positional reads only), so Twisted closing the
    request's file when the client goes away does not pull it from under the worker."""

    def __init__(self, content) -> None:
        self._fd: int | None = None
        self._data = b""
        fileno = getattr(content, "fileno", None)
        try:
            fd = fileno() if fileno is not None else None
        except (OSError, ValueError):  # BytesIO has fileno() but raises
            fd = None
        if fd is not None:
            self._fd = os.dup(fd)
            self.size = os.fstat(self._fd).st_size
        else:
            self._data = content.getvalue() if content is not None else b""
            self.size = len(self._data)

    def read_at(self, offset: int, length: int) -> bytes:
        if offset >= self.size or length <= 0:
            return b""
        if self._fd is None:
            return self._data[offset:offset + length]
        return os.pread(self._fd, min(length, self.size - offset), offset)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class ObjectStore:
    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.tmp = os.path.join(self.root, TMP_DIR)

    def prepare(self) -> None:
        """Create the folders and sweep what a crash left in `.tmp/` (blocking: call at start-up)."""
        for module in MODULES:
            os.makedirs(os.path.join(self.root, module), exist_ok=True)
        shutil.rmtree(self.tmp, ignore_errors=True)
        os.makedirs(self.tmp, exist_ok=True)

    def path_of(self, key: str) -> str | None:
        """The file of a stored object, or None (not one of our keys, or not uploaded)."""
        if not isinstance(key, str) or not KEY_RE.fullmatch(key):
            return None
        path = os.path.join(self.root, *key.split("/"))
        return path if os.path.isfile(path) else None

    def put(self, grant: Grant, body: Body, *, content_md5: str | None) -> Stored:
        """Check and store `body` as `grant.key` (see the module docstring); blocking."""
        if body.size > grant.max_bytes:
            raise OssDenied(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size.",
                            MaxSizeAllowed=str(grant.max_bytes))
        expected_md5 = _parse_md5(content_md5)
        fmt = format_of(grant.key)
        if not sniff.matches(fmt, body.read_at, body.size):
            raise OssDenied(403, "AccessDenied", f"The object's content is not a {fmt} file, "
                                                 "and these credentials allow only that.")
        md5, sha256 = hashlib.md5(), hashlib.sha256()
        fd, tmp = tempfile.mkstemp(dir=self.tmp)
        try:
            with os.fdopen(fd, "wb") as out:
                offset = 0
                while offset < body.size:
                    chunk = body.read_at(offset, CHUNK_BYTES)
                    if not chunk:
                        raise OSError("the upload's spool file is shorter than it was")
                    md5.update(chunk)
                    sha256.update(chunk)
                    out.write(chunk)
                    offset += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            if expected_md5 is not None and expected_md5 != md5.digest():
                raise OssDenied(400, "InvalidDigest", "The Content-MD5 you specified did not match what we received.")
            if grant.content_sha256 is not None and grant.content_sha256 != sha256.hexdigest():
                raise OssDenied(400, "InvalidArgument", "The x-oss-content-sha256 you specified did not match "
                                                        "what we received.")
            final = os.path.join(self.root, *grant.key.split("/"))
            os.chmod(tmp, 0o644)
            try:
                os.link(tmp, final)
            except FileExistsError:
                if _md5_of(final) != md5.digest():
                    raise OssDenied(409, "FileAlreadyExists", "The object you specified already exists "
                                                              "and can not be overwritten.") from None
                return Stored(grant.key, body.size, md5.digest(), created=False)
            return Stored(grant.key, body.size, md5.digest(), created=True)
        finally:
            os.unlink(tmp)


    def put_bytes(self, key: str, data: bytes) -> str:
        """Store `data` as `key`, checked by the caller (voice records the API took itself); the same
        write-once rule; blocking. Returns the file's path."""
        if not KEY_RE.fullmatch(key):
            raise ValueError("not an object key")
        final = os.path.join(self.root, *key.split("/"))
        fd, tmp = tempfile.mkstemp(dir=self.tmp)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o644)
            os.link(tmp, final)
        finally:
            os.unlink(tmp)
        return final

    def remove(self, key: str) -> bool:
        """Delete a stored object (a voice record its owner deleted); blocking."""
        path = self.path_of(key)
        if path is None:
            return False
        os.unlink(path)
        return True


class LocalFiles:
    """The object store as the domain sees it (heihei.heihei.records): the blocking calls run in the
    reactor's thread pool."""

    def __init__(self, store: ObjectStore, reactor) -> None:
        self.store = store
        self.reactor = reactor

    def path_of(self, key: str) -> str | None:
        return self.store.path_of(key)

    async def save(self, key: str, data: bytes) -> str:
        return await threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), self.store.put_bytes,
                                               key, data)

    async def remove(self, key: str) -> bool:
        return await threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), self.store.remove, key)


def _parse_md5(value: str | None) -> bytes | None:
    if value is None:
        return None
    try:
        digest = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        digest = b""
    if len(digest) != 16:
        raise OssDenied(400, "InvalidDigest", "The Content-MD5 you specified is not valid.")
    return digest


def _md5_of(path: str) -> bytes:
    md5 = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            md5.update(chunk)
    return md5.digest()
