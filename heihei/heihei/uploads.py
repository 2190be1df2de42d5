"""
Direct uploads (seed 001, `/api/sys/oss-token`): the client asks for
credentials, uploads its file straight to object storage, then hands the
file's `sign` back to us (e.g. to `create-subject`), which we check.

    Uploads.issue(user, format, module, now_s)
        -> Issued(credentials, file)
           credentials: {AccessKeyId, AccessKeySecret, SecurityToken, Expiration}
                        that allow one PUT of exactly `file.path`, until Expiration
           file:        {fileName, path, sign, uploadUrl, url}
        unknown format or module, or a pair with no size cap -> UploadRefused (700)
        the provider fails                                  -> its own error
                                                               (e.g. aliyun_oss.StsUnavailable)
    Uploads.verify_sign(file_name, sign, user=None) -> bool

The file name is ours, never the client's: `<yyyymmddHH>_<uid>_<random>.<ext>`
(the hour in China time, as in the seed's `2017020812_10468_vHPCMkYp29`),
the path `<bucket>/<module>/<fileName>`. `sign` is an HMAC of the file name
under a key derived from `[uploads] secret`, 32 hex digits like the seed's,
so every node with the same secret verifies it and nobody without it can
make one for a name of their choosing.

Storage sits behind `StorageProvider`: the node itself (heihei/web/oss_signing.py,
the default, serving heihei/web/oss.py) or Aliyun OSS through STS
(heihei/outbound/aliyun_oss.py). Providers take `now_s` from the caller and
never read a clock.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

#: the formats of the seed's enum, with the content type each is served with; m4a (AAC) only for the
#: voice records the API itself takes (record/upload-record): no size cap, so no credentials, for it
CONTENT_TYPES = {"mp3": "audio/mpeg", "png": "image/png", "jpeg": "image/jpeg", "jpg": "image/jpeg",
                 "m4a": "audio/mp4"}
#: the seed's modules (its enum says 'record', 'message', avatar)
MODULES = ("record", "message", "avatar")
#: spellings in the seed's own table ("jepg" in the enum, "avator" in the remark)
ALIASES = {"jepg": "jpeg", "avator": "avatar"}
#: the seed's file names end in 10 random letters and digits
RANDOM_CHARS = 10
#: the hour in a file name is China Standard Time (UTC+8, no DST), as in the seed's example
FILE_NAME_TZ = timezone(timedelta(hours=8))
#: size caps used when [uploads] max_bytes says nothing (a module/format pair missing here is refused)
MIB = 1024 * 1024
DEFAULT_MAX_BYTES = {
    "record": {"mp3": 5 * MIB},
    "message": {"mp3": 5 * MIB, "png": 5 * MIB, "jpeg": 5 * MIB, "jpg": 5 * MIB},
    "avatar": {"png": 2 * MIB, "jpeg": 2 * MIB, "jpg": 2 * MIB},
}
#: 128 bits, 32 hex digits: as long as the seed's sign
SIGN_HEX_CHARS = 32
MIN_SECRET_BYTES = 16
#: user ids are Redis-generated numbers today; letters are allowed, never separators
UID_RE = re.compile(r"[0-9A-Za-z]{1,32}")
FILE_NAME_RE = re.compile(r"(?P<hour>[0-9]{10})_(?P<uid>[0-9A-Za-z]{1,32})_(?P<random>[0-9A-Za-z]{%d})\.(?P<ext>%s)"
                          % (RANDOM_CHARS, "|".join(CONTENT_TYPES)))
#: an object key: `<module>/<fileName>`; the only keys any provider ever issues or serves
KEY_RE = re.compile(r"(?P<module>%s)/(?P<name>%s)" % ("|".join(MODULES), FILE_NAME_RE.pattern))
#: OSS bucket names: 3-63 lower-case letters, digits and hyphens, not starting or ending with a hyphen
BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
_ALPHABET = string.ascii_letters + string.digits


class UploadRefused(ValueError):
    """The request cannot be served as asked: `field` names the parameter (for 700)."""

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"{field}: {why}")
        self.field = field
        self.why = why


def derive_key(secret: str | bytes, label: str) -> bytes:
    """A key for one purpose, from the one configured secret: keys of different purposes
    (file-name signs, the node's security tokens, its access-key secrets) never coincide."""
    raw = secret.encode("utf-8") if isinstance(secret, str) else secret
    if len(raw) < MIN_SECRET_BYTES:
        raise ValueError(f"the uploads secret must be at least {MIN_SECRET_BYTES} bytes")
    return hmac.new(raw, b"heihei uploads\0" + label.encode("ascii"), hashlib.sha256).digest()


def split_path(path: str) -> tuple[str, str]:
    """`<bucket>/<module>/<fileName>` -> (bucket, key); ValueError for anything else."""
    bucket, _, key = path.partition("/")
    if not BUCKET_RE.fullmatch(bucket) or not KEY_RE.fullmatch(key):
        raise ValueError("not an upload path")
    return bucket, key


def format_of(key_or_name: str) -> str:
    """The format (file extension) of a valid key or file name."""
    return key_or_name.rsplit(".", 1)[1]


@dataclass(frozen=True)
class FileName:
    hour: str
    uid: str
    random: str
    ext: str


def parse_file_name(name: str) -> FileName | None:
    """The parts of one of our file names, or None if `name` is not one."""
    m = FILE_NAME_RE.fullmatch(name) if isinstance(name, str) else None
    return FileName(m["hour"], m["uid"], m["random"], m["ext"]) if m else None


def expiration_text(expires_at_s: int) -> str:
    """`2017-02-08T05:51:21Z`, as STS writes Expiration."""
    return datetime.fromtimestamp(expires_at_s, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class IssuedCredentials(Protocol):
    """What a provider hands out (each provider has its own class with these attributes)."""

    access_key_id: str
    access_key_secret: str
    security_token: str
    #: as the client is shown it, `2017-02-08T05:51:21Z`
    expiration: str
    expires_at_s: int


class StorageProvider(Protocol):
    """Where uploaded files go. `path` is always `<bucket>/<module>/<fileName>` (checked by Uploads)."""

    async def issue_credentials(self, path: str, *, ttl_s: int, max_bytes: int, now_s: float) -> IssuedCredentials:
        """Temporary credentials that allow one thing: a PUT of exactly `path`, until `now_s + ttl_s`
        (a provider may round the lifetime to what its service accepts, and say so in `expires_at_s`).
        `max_bytes` is the size cap; a provider that cannot enforce it says so in its docs."""
        ...

    def upload_url(self, path: str) -> str:
        """Where the client PUTs the file."""
        ...

    def public_url(self, path: str) -> str:
        """Where the file is served once uploaded."""
        ...


@dataclass(frozen=True)
class FileInfo:
    file_name: str
    path: str
    sign: str
    upload_url: str
    url: str

    def as_json(self) -> dict[str, str]:
        return {"fileName": self.file_name, "path": self.path, "sign": self.sign, "uploadUrl": self.upload_url,
                "url": self.url}


@dataclass(frozen=True)
class Issued:
    credentials: IssuedCredentials = field(repr=False)
    file: FileInfo

    def as_json(self) -> dict[str, Any]:
        """The seed's answer fields: `Credentials` and `FileInfo` (the REST layer adds errorcode/errormsg)."""
        c = self.credentials
        return {"Credentials": {"AccessKeyId": c.access_key_id, "AccessKeySecret": c.access_key_secret,
                                "SecurityToken": c.security_token, "Expiration": c.expiration},
                "FileInfo": self.file.as_json()}


class Uploads:
    """Names files, signs their names, and asks the provider for credentials for exactly one of them."""

    def __init__(self, provider: StorageProvider, *, bucket: str, secret: str | bytes, ttl_s: int,
                 max_bytes: Mapping[str, Mapping[str, int]], random_text=None) -> None:
        if not BUCKET_RE.fullmatch(bucket):
            raise ValueError(f"bucket {bucket!r} is not a valid bucket name")
        if isinstance(ttl_s, bool) or not isinstance(ttl_s, int) or ttl_s <= 0:
            raise ValueError(f"ttl_s must be a positive int, got {ttl_s!r}")
        caps: dict[tuple[str, str], int] = {}
        for module, formats in max_bytes.items():
            if module not in MODULES:
                raise ValueError(f"max_bytes: unknown module {module!r}")
            for fmt, cap in formats.items():
                if fmt not in CONTENT_TYPES:
                    raise ValueError(f"max_bytes: unknown format {fmt!r} for {module}")
                if isinstance(cap, bool) or not isinstance(cap, int) or cap <= 0:
                    raise ValueError(f"max_bytes: {module}.{fmt} must be a positive int")
                caps[(module, fmt)] = cap
        self.provider = provider
        self.bucket = bucket
        self.ttl_s = ttl_s
        self._caps = caps
        self._sign_key = derive_key(secret, "file name sign")
        self._random_text = random_text or _random_text

    def max_bytes(self, module: str, format: str) -> int | None:
        """The size cap of a module/format pair, None if the pair is not allowed."""
        return self._caps.get((module, format))

    def check(self, format: object, module: object) -> tuple[str, str]:
        """(format, module) normalized, or UploadRefused naming the parameter at fault."""
        if not isinstance(format, str) or ALIASES.get(format, format) not in CONTENT_TYPES:
            raise UploadRefused("format", f"one of {', '.join(CONTENT_TYPES)}")
        if not isinstance(module, str) or ALIASES.get(module, module) not in MODULES:
            raise UploadRefused("module", f"one of {', '.join(MODULES)}")
        format, module = ALIASES.get(format, format), ALIASES.get(module, module)
        if (module, format) not in self._caps:
            raise UploadRefused("format", f"{format} files cannot be uploaded to {module}")
        return format, module

    def file_name(self, user: str, format: str, now_s: float) -> str:
        return make_file_name(user, format, now_s, self._random_text)

    def sign(self, file_name: str) -> str:
        return hmac.new(self._sign_key, file_name.encode("utf-8"), hashlib.sha256).hexdigest()[:SIGN_HEX_CHARS]

    def verify_sign(self, file_name: object, sign: object, user: str | None = None) -> bool:
        """Whether `sign` is ours for `file_name` (and, given `user`, the file name is that user's)."""
        name = parse_file_name(file_name) if isinstance(file_name, str) else None
        if name is None or not isinstance(sign, str) or len(sign) != SIGN_HEX_CHARS:
            return False
        if user is not None and name.uid != user:
            return False
        # on bytes: hmac.compare_digest refuses a str holding non-ASCII (a TypeError, not a "no")
        return hmac.compare_digest(self.sign(file_name).encode(), sign.lower().encode("utf-8"))

    def path_of(self, module: str, file_name: str) -> str:
        """`<bucket>/<module>/<fileName>` for a valid module and file name; ValueError otherwise."""
        path = f"{self.bucket}/{module}/{file_name}"
        split_path(path)
        return path

    def public_url(self, module: str, file_name: str) -> str:
        """Where an uploaded file is served (e.g. for `create-subject`'s `path`)."""
        return self.provider.public_url(self.path_of(module, file_name))

    async def issue(self, user: str, format: object, module: object, now_s: float) -> Issued:
        format, module = self.check(format, module)
        name = self.file_name(user, format, now_s)
        path = f"{self.bucket}/{module}/{name}"
        credentials = await self.provider.issue_credentials(path, ttl_s=self.ttl_s,
                                                            max_bytes=self._caps[(module, format)], now_s=now_s)
        return Issued(credentials, FileInfo(file_name=name, path=path, sign=self.sign(name),
                                            upload_url=self.provider.upload_url(path),
                                            url=self.provider.public_url(path)))


def make_file_name(user: str, format: str, now_s: float, random_text=None) -> str:
    """`<yyyymmddHH>_<uid>_<10 random>.<ext>`: every file name the server gives out."""
    if not isinstance(user, str) or not UID_RE.fullmatch(user):
        raise ValueError("user ids in file names are 1-32 letters or digits")
    hour = datetime.fromtimestamp(int(now_s), FILE_NAME_TZ).strftime("%Y%m%d%H")
    return f"{hour}_{user}_{(random_text or _random_text)(RANDOM_CHARS)}.{format}"


def _random_text(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))
