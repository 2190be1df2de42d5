"""
Where uploads and group pictures live, and the upload pipeline.

Layout under `[boss] media_dir` (default `<data_dir>/boss-media`):
- `emopic/`   uploaded audio (`<md5>-<seconds>.mp3`), images (`<md5>-<w>x<h>.jpg`)
              and the default avatar (`default.jpg`)
- `emovideo/` uploaded videos (`<md5>-<w>x<h>.mp4`) and group pictures
              (`<groupid>_<8 hex>.jpg`, a new name each time it is redrawn)
- `tmp/`      work space of uploads in progress; emptied at start-up

An upload is written to its own directory under `tmp/`, checked and converted
there, and only a finished file is renamed into place (same file system, so
the rename is atomic). Whatever happens, the work directory is removed: a
refused, corrupt or failed upload leaves nothing behind. The md5 is of the
stored file, so the same content uploaded twice is stored once.

All file work runs in the reactor's thread pool, at most `MAX_JOBS` at a time.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from typing import IO

from twisted.internet import defer, threads
from twisted.logger import Logger

from heihei.boss import media
from heihei.boss.media import TOO_LARGE, MediaError
from heihei.core import errors

AUDIO_DIR = "emopic"
IMAGE_DIR = "emopic"
VIDEO_DIR = "emovideo"
PICTURE_DIR = "emovideo"
DEFAULT_AVATAR = "default.jpg"
MAX_JOBS = 2

#: every name we serve; anything else is 404 (no traversal, no listing)
SERVED_NAME_RE = re.compile(r"[0-9a-f]{32}-(?:[0-9]+|[0-9]+x[0-9]+)\.(?:mp3|jpg|mp4)|[0-9]+_[0-9a-f]{8}\.jpg|"
                            + re.escape(DEFAULT_AVATAR))
ENDPOINTS = ("writev1", "writev2", "writev3")


@dataclass(frozen=True)
class Stored:
    folder: str
    name: str


class MediaStore:
    _log = Logger()

    def __init__(self, root: str, *, reactor, max_upload_bytes: int, max_media_seconds: float) -> None:
        self.root = os.path.abspath(root)
        self.tmp_root = os.path.join(self.root, "tmp")
        self.reactor = reactor
        self.max_upload_bytes = max_upload_bytes
        self.max_media_seconds = max_media_seconds
        self._jobs = defer.DeferredSemaphore(MAX_JOBS)
        self.default_avatar = media.default_avatar_jpeg()

    def prepare(self) -> None:
        """Create the folders, write the default avatar, sweep what a crash left in `tmp/`."""
        for folder in {AUDIO_DIR, IMAGE_DIR, VIDEO_DIR, PICTURE_DIR}:
            os.makedirs(os.path.join(self.root, folder), exist_ok=True)
        shutil.rmtree(self.tmp_root, ignore_errors=True)
        os.makedirs(self.tmp_root, exist_ok=True)
        path = os.path.join(self.root, AUDIO_DIR, DEFAULT_AVATAR)
        if not os.path.exists(path):
            self._write_atomically(path, self.default_avatar)

    def path_of(self, folder: str, name: str) -> str | None:
        """The file to serve for `/<folder>/<name>`, or None."""
        if folder not in (AUDIO_DIR, VIDEO_DIR) or not SERVED_NAME_RE.fullmatch(name):
            return None
        path = os.path.join(self.root, folder, name)
        return path if os.path.isfile(path) else None

    async def _in_thread(self, f, *args):
        return await self._jobs.run(threads.deferToThreadPool, self.reactor, self.reactor.getThreadPool(), f, *args)

    # -- uploads -----------------------------------------------------------------------------------

    async def upload(self, endpoint: str, data: bytes | IO[bytes], size: int | None = None) -> Stored:
        """Check, convert and store an upload (its bytes, or a readable file of `size` bytes, which
        is copied, never read into memory); `MediaError` says why not."""
        if endpoint not in ENDPOINTS:
            raise MediaError("no such upload endpoint", reason=errors.NOT_FOUND)
        size = len(data) if isinstance(data, bytes) else size
        if not size:
            raise MediaError("empty file", reason=errors.BAD_REQUEST)
        if size > self.max_upload_bytes:
            raise MediaError(f"file larger than {self.max_upload_bytes} bytes", reason=TOO_LARGE)
        return await self._in_thread(self._process, endpoint, data)

    def _process(self, endpoint: str, data: bytes | IO[bytes]) -> Stored:
        work = tempfile.mkdtemp(dir=self.tmp_root)
        try:
            source = os.path.join(work, "upload")
            with open(source, "wb") as f:
                if isinstance(data, bytes):
                    f.write(data)
                else:
                    data.seek(0)
                    shutil.copyfileobj(data, f)
            if endpoint != "writev2" and media.is_image(source):
                wanted = "an audio file" if endpoint == "writev1" else "an MP4 video"
                raise MediaError(f"expected {wanted}, got an image", wrong_type=True)
            if endpoint == "writev1":
                folder, path, suffix = self._audio(source, work)
            elif endpoint == "writev2":
                if media.is_image(source):
                    folder, path, suffix = self._image(source, work)
                else:
                    try:
                        folder, path, suffix = self._audio(source, work)
                    except MediaError as e:
                        if e.wrong_type:
                            raise MediaError("expected an image or an audio file") from None
                        raise
            else:
                info = media.probe_video(source, self.max_media_seconds)
                folder, path, suffix = VIDEO_DIR, source, f"{info.width}x{info.height}.mp4"
            name = f"{_md5(path)}-{suffix}"
            final = os.path.join(self.root, folder, name)
            if not os.path.exists(final):
                os.replace(path, final)
            return Stored(folder, name)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _audio(self, source: str, work: str) -> tuple[str, str, str]:
        info = media.probe_audio(source, self.max_media_seconds)
        if info.is_mp3:
            return AUDIO_DIR, source, f"{media.whole_seconds(info.duration_s)}.mp3"
        converted = os.path.join(work, "converted.mp3")
        duration = media.transcode_to_mp3(source, converted, self.max_media_seconds)
        return AUDIO_DIR, converted, f"{media.whole_seconds(duration)}.mp3"

    def _image(self, source: str, work: str) -> tuple[str, str, str]:
        converted = os.path.join(work, "converted.jpg")
        info = media.image_to_jpeg(source, converted)
        return IMAGE_DIR, converted, f"{info.width}x{info.height}.jpg"

    # -- group pictures -------------------------------------------------------------------------------

    async def draw_group_picture(self, group: str, avatars: list[bytes | None], old_name: str = "") -> str:
        """Compose and store a group's picture; returns its new name (the old file is removed)."""
        return await self._in_thread(self._draw, group, avatars, old_name)

    def _draw(self, group: str, avatars: list[bytes | None], old_name: str) -> str:
        picture = media.compose_group_picture(avatars, self.default_avatar)
        name = f"{group}_{secrets.token_hex(4)}.jpg"
        self._write_atomically(os.path.join(self.root, PICTURE_DIR, name), picture)
        if old_name and old_name != name and SERVED_NAME_RE.fullmatch(old_name):
            try:
                os.remove(os.path.join(self.root, PICTURE_DIR, old_name))
            except FileNotFoundError:
                pass
        return name

    def _write_atomically(self, path: str, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.tmp_root)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.remove(tmp)
            except FileNotFoundError:
                pass
            raise


def _md5(path: str) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
