"""
Aliyun OSS as the uploads' storage: temporary credentials from Aliyun STS
(`AssumeRole`), narrowed by an inline policy to one `oss:PutObject` on
exactly one object. Implements heihei.heihei.uploads.StorageProvider.

    GET {sts_base}/?Action=AssumeRole&Version=2015-04-01&Format=JSON
        &RoleArn&RoleSessionName&DurationSeconds&Policy
        &AccessKeyId&SignatureMethod=HMAC-SHA1&SignatureVersion=1.0
        &SignatureNonce&Timestamp&Signature
    -> 200 {"RequestId", "AssumedRoleUser": {...},
            "Credentials": {"AccessKeyId", "AccessKeySecret", "SecurityToken", "Expiration"}}
    -> 4xx {"RequestId", "HostId", "Code", "Message", "Recommend"}

The signature is Aliyun's RPC signature v1: every parameter percent-encoded
(RFC 3986: `A-Za-z0-9-_.~` kept, space as %20), sorted by name, joined as a
query string; StringToSign = `GET&%2F&` + percent-encode(that string);
Signature = base64(HMAC-SHA1(AccessKeySecret + "&", StringToSign)).

The policy (the session gets the intersection of it and the role's own):

    {"Version": "1", "Statement": [{"Effect": "Allow", "Action": ["oss:PutObject"],
      "Resource": ["acs:oss:*:*:<bucket>/<module>/<fileName>"]}]}

What OSS cannot be told through STS: a size cap or a content check (RAM
policies have no condition on an object's size or bytes). `max_bytes` is
therefore not enforced by Aliyun; whoever accepts the uploaded file's `sign`
should check the object (HEAD for its size and type) if that matters.

STS accepts lifetimes of 900 s up to the role's maximum session duration
(3600 s unless raised); `ttl_s` is clamped into [900, max_duration_s] and
the answer's Expiration is what the client is shown.

Errors (both `StsError`; `reason` for logs: never a secret, a token or a URL):

    StsRejected     STS answered with an error Code (`code`, `message` are its own words),
                    e.g. InvalidAccessKeyId.NotFound, SignatureDoesNotMatch, NoPermission
    StsUnavailable  no usable answer: unreachable, timed out, too large, not JSON, HTTP 5xx,
                    or an answer without the credentials
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import quote, urlsplit

from heihei.outbound.http import HttpClient, OutboundError, TimedOut

STS_BASE_URL = "https://sts.aliyuncs.com"
STS_VERSION = "2015-04-01"
#: STS's own bounds for DurationSeconds (the upper one is the role's setting, 3600 by default)
MIN_DURATION_S = 900
DEFAULT_MAX_DURATION_S = 3600
#: an STS answer is a few kilobytes (the SecurityToken is the bulk)
MAX_BODY_BYTES = 64 * 1024
MAX_FIELD_CHARS = 8192
#: RoleSessionName: 2-64 of these
_SESSION_NAME_RE = re.compile(r"[^A-Za-z0-9.@_-]")
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")


class StsError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class StsRejected(StsError):
    def __init__(self, reason: str, code: str, message: str = "") -> None:
        super().__init__(reason)
        self.code = code
        self.message = message


class StsUnavailable(StsError):
    pass


@dataclass(frozen=True)
class StsCredentials:
    access_key_id: str
    access_key_secret: str = field(repr=False)
    security_token: str = field(repr=False)
    #: as STS wrote it, e.g. 2017-02-08T05:51:21Z
    expiration: str
    expires_at_s: int


def percent_encode(text: str) -> str:
    """Aliyun's POP encoding: RFC 3986 unreserved characters kept, everything else %XX of its UTF-8."""
    return quote(text, safe="-_.~")


def rpc_signature(method: str, params: dict[str, str], secret: str) -> tuple[str, str]:
    """(Signature, StringToSign) of Aliyun's RPC signature v1 (HMAC-SHA1)."""
    canonical = "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in sorted(params.items()))
    to_sign = f"{method}&{percent_encode('/')}&{percent_encode(canonical)}"
    digest = hmac.new((secret + "&").encode(), to_sign.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii"), to_sign


def object_policy(bucket: str, key: str) -> str:
    """The inline policy: PutObject on exactly `bucket/key`, nothing else."""
    return json.dumps({"Version": "1", "Statement": [{"Effect": "Allow", "Action": ["oss:PutObject"],
                                                      "Resource": [f"acs:oss:*:*:{bucket}/{key}"]}]},
                      separators=(",", ":"))


class AliyunOss:
    """The production provider: STS credentials for one object, files in an OSS bucket."""

    def __init__(self, http: HttpClient, *, access_key_id: str, access_key_secret: str, role_arn: str,
                 bucket: str, oss_endpoint: str, public_base_url: str = "", sts_base_url: str = STS_BASE_URL,
                 timeout_s: float = 10.0, max_duration_s: int = DEFAULT_MAX_DURATION_S) -> None:
        """`oss_endpoint`: the bucket's region endpoint, e.g. https://oss-cn-beijing.aliyuncs.com;
        `public_base_url`: where objects are served (a CDN), default `https://<bucket>.<endpoint host>`."""
        empty = [name for name, value in (("access_key_id", access_key_id), ("access_key_secret", access_key_secret),
                                          ("role_arn", role_arn), ("oss_endpoint", oss_endpoint)) if not value]
        if empty:
            raise ValueError(f"aliyun uploads: empty setting(s) {', '.join(empty)}")
        if not _BUCKET_RE.fullmatch(bucket):
            raise ValueError(f"bucket {bucket!r} is not a valid bucket name")
        if max_duration_s < MIN_DURATION_S:
            raise ValueError(f"max_duration_s must be at least {MIN_DURATION_S}")
        endpoint = urlsplit(oss_endpoint)
        if endpoint.scheme not in ("http", "https") or not endpoint.hostname:
            raise ValueError("oss_endpoint must be an http(s) URL")
        self.http = http
        self.access_key_id = access_key_id
        self._access_key_secret = access_key_secret
        self.role_arn = role_arn
        self.bucket = bucket
        self.sts_base_url = sts_base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.max_duration_s = max_duration_s
        self.bucket_url = f"{endpoint.scheme}://{bucket}.{endpoint.netloc}"
        self.public_base_url = (public_base_url or self.bucket_url).rstrip("/")

    def __repr__(self) -> str:
        return f"AliyunOss(bucket={self.bucket!r}, access_key_id={self.access_key_id!r})"

    def upload_url(self, path: str) -> str:
        return f"{self.bucket_url}/{self._key(path)}"

    def public_url(self, path: str) -> str:
        return f"{self.public_base_url}/{self._key(path)}"

    def _key(self, path: str) -> str:
        bucket, _, key = path.partition("/")
        if bucket != self.bucket or not key:
            raise ValueError(f"path is not in bucket {self.bucket!r}")
        return key

    async def issue_credentials(self, path: str, *, ttl_s: int, max_bytes: int, now_s: float) -> StsCredentials:
        key = self._key(path)
        params = {
            "Action": "AssumeRole",
            "Version": STS_VERSION,
            "Format": "JSON",
            "RoleArn": self.role_arn,
            "RoleSessionName": _session_name(key),
            "DurationSeconds": str(min(max(int(ttl_s), MIN_DURATION_S), self.max_duration_s)),
            "Policy": object_policy(self.bucket, key),
            "AccessKeyId": self.access_key_id,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureVersion": "1.0",
            "SignatureNonce": secrets.token_hex(16),
            "Timestamp": datetime.fromtimestamp(int(now_s), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        params["Signature"], _ = rpc_signature("GET", params, self._access_key_secret)
        url = self.sts_base_url + "/?" + "&".join(f"{percent_encode(k)}={percent_encode(v)}"
                                                  for k, v in params.items())
        try:
            status, answer = await self.http.get_json(url, timeout_s=self.timeout_s, max_bytes=MAX_BODY_BYTES)
        except TimedOut:
            raise StsUnavailable(f"AssumeRole: no answer within {self.timeout_s} s") from None
        except OutboundError as e:
            raise StsUnavailable(f"AssumeRole: {e.reason}") from None
        code = answer.get("Code")
        if status != 200 or code:
            if isinstance(code, str) and code and 400 <= status < 500:
                message = answer.get("Message")
                message = message[:300] if isinstance(message, str) else ""
                raise StsRejected(f"AssumeRole: HTTP {status}, {code[:80]}: {message}", code[:80], message)
            raise StsUnavailable(f"AssumeRole: HTTP {status}")
        return _credentials(answer.get("Credentials"))


def _session_name(key: str) -> str:
    """The session's name in Aliyun's audit trail: the file name without its extension."""
    stem = key.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    name = _SESSION_NAME_RE.sub("-", stem)[:64]
    return name if len(name) >= 2 else "heihei-upload"


def _credentials(value: object) -> StsCredentials:
    if not isinstance(value, dict):
        raise StsUnavailable("AssumeRole: an answer without Credentials")
    fields = {}
    for name in ("AccessKeyId", "AccessKeySecret", "SecurityToken", "Expiration"):
        text = value.get(name)
        if not isinstance(text, str) or not text or len(text) > MAX_FIELD_CHARS:
            raise StsUnavailable(f"AssumeRole: Credentials.{name} missing or malformed")
        fields[name] = text
    try:
        expires = datetime.strptime(fields["Expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        raise StsUnavailable("AssumeRole: Credentials.Expiration is not a UTC time") from None
    return StsCredentials(fields["AccessKeyId"], fields["AccessKeySecret"], fields["SecurityToken"],
                          fields["Expiration"], int(expires.timestamp()))
