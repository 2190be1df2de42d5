"""
The node as its own object storage: the default `StorageProvider`. It issues
temporary credentials shaped like Aliyun STS ones and checks OSS-signed PUTs
made with them (heihei/web/oss.py is the HTTP side).

Credentials are stateless, so any node with the same `[uploads] secret`
checks what another issued, with nothing in Redis:

    AccessKeyId      "STS." + 25 random letters and digits
    SecurityToken    "HH1." + base64url(JSON {v, k: AccessKeyId, b: bucket, o: key,
                     e: expiry, m: max bytes}) + "." + base64url(HMAC-SHA256(token key, payload))
    AccessKeySecret  base64url(HMAC-SHA256(secret key, payload))[:40]

The token is not secret (the client sends it with every request); the access
key secret can only be derived with the server's key, so whoever signs a
request with it got it from us, with that token. Both keys are derived from
the one configured secret (uploads.derive_key), each for its own purpose.

`check_put(request, now_s)` -> Grant, or `OssDenied(status, code, message)`,
in the order OSS checks:

    no Authorization, or a scheme we do not speak         403 AccessDenied / 400 InvalidArgument
    a query string (anything but PutObject)               403 AccessDenied
    no x-oss-security-token                               403 InvalidAccessKeyId
    token malformed or not made with our key              403 InvalidSecurityToken
    token of another AccessKeyId                          403 InvalidAccessKeyId
    token expired                                         403 SecurityTokenExpired
    Date / x-oss-date missing or off by more than 15 min  403 AccessDenied / RequestTimeTooSkewed
    signature wrong (wrong secret, altered request)       403 SignatureDoesNotMatch (+ StringToSign)
    another bucket or key than the token's                403 AccessDenied

Signatures: V1 (`Authorization: OSS <AccessKeyId>:<base64 HMAC-SHA1 over
VERB, Content-MD5, Content-Type, Date, CanonicalizedOSSHeaders +
CanonicalizedResource>`), what oss2 (2.19) sends unless told otherwise, and
V4 (`OSS4-HMAC-SHA256 Credential=<id>/<yyyymmdd>/<region>/oss/aliyun_v4_request,
[AdditionalHeaders=...,] Signature=<hex>`), what oss2 sends with
`auth_version=AUTH_VERSION_4` and what Aliyun's newer SDK (alibabacloud-oss-v2)
sends by default. V4's region is taken from the request's scope (the signing
key depends on it, so it is bound anyway). V2 (`OSS2 ...`) is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from urllib.parse import quote

from heihei.heihei.uploads import BUCKET_RE, KEY_RE, derive_key, expiration_text, split_path

#: how far a request's date may be from ours (OSS allows 15 minutes)
ALLOWED_SKEW_S = 15 * 60
TOKEN_PREFIX = "HH1"
#: tokens we make are well under 1 kB; anything longer is not one
MAX_TOKEN_CHARS = 2048
ACCESS_KEY_ID_RE = re.compile(r"STS\.[0-9A-Za-z]{25}")
SECRET_CHARS = 40
V4_ALGORITHM = "OSS4-HMAC-SHA256"
V4_DATE_RE = re.compile(r"[0-9]{8}T[0-9]{6}Z")
REGION_RE = re.compile(r"[a-z0-9-]{1,64}")
SHA256_HEX_RE = re.compile(r"[0-9a-f]{64}")
#: headers a request may carry once only: each is signed, a second copy would make it ambiguous
SINGLE_HEADERS = ("authorization", "content-md5", "content-type", "date")
_ALPHABET = string.ascii_letters + string.digits


class OssDenied(Exception):
    """A refusal in OSS terms; heihei/web/oss.py writes it as OSS's XML error document.
    `extra` holds further elements of that document (e.g. StringToSign)."""

    def __init__(self, status: int, code: str, message: str, **extra: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


@dataclass(frozen=True)
class NodeCredentials:
    access_key_id: str
    access_key_secret: str = field(repr=False)
    security_token: str = field(repr=False)
    expiration: str
    expires_at_s: int


@dataclass(frozen=True)
class Grant:
    """What a checked request may do: PUT `key` into `bucket`, at most `max_bytes`."""

    access_key_id: str
    bucket: str
    key: str
    expires_at_s: int
    max_bytes: int
    #: hex SHA-256 of the body when a V4 request signed one (None: UNSIGNED-PAYLOAD, or V1)
    content_sha256: str | None = None


@dataclass(frozen=True)
class SignedRequest:
    """What the signature covers, as received. `headers`: lower-case names, one value each."""

    method: str
    bucket: str
    key: str
    query: bytes
    headers: Mapping[str, str]


class NodeOss:
    """The node's provider: issues credentials for `<bucket>/<key>` and checks requests made with them."""

    def __init__(self, secret: str | bytes, *, bucket: str, site_url: str, public_base_url: str = "") -> None:
        """`site_url`: where the node's OSS resource is mounted, without the bucket (it is mounted at
        `/<bucket>/`); `public_base_url`: where files are served from, if not `<site_url>/<bucket>`
        (e.g. a CDN in front)."""
        if not BUCKET_RE.fullmatch(bucket):
            raise ValueError(f"bucket {bucket!r} is not a valid bucket name")
        self.bucket = bucket
        self.site_url = site_url.rstrip("/")
        self.public_base_url = (public_base_url or f"{self.site_url}/{bucket}").rstrip("/")
        self._token_key = derive_key(secret, "node security token")
        self._secret_key = derive_key(secret, "node access key secret")

    # -- the provider ------------------------------------------------------------------------------

    async def issue_credentials(self, path: str, *, ttl_s: int, max_bytes: int, now_s: float) -> NodeCredentials:
        return self.credentials_for(path, ttl_s=ttl_s, max_bytes=max_bytes, now_s=now_s)

    def credentials_for(self, path: str, *, ttl_s: int, max_bytes: int, now_s: float) -> NodeCredentials:
        bucket, key = self._own(path)
        if isinstance(ttl_s, bool) or not isinstance(ttl_s, int) or ttl_s <= 0:
            raise ValueError("ttl_s must be a positive int")
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
            raise ValueError("max_bytes must be a positive int")
        key_id = "STS." + "".join(secrets.choice(_ALPHABET) for _ in range(25))
        expires = int(now_s) + ttl_s
        payload = _b64url(json.dumps({"v": 1, "k": key_id, "b": bucket, "o": key, "e": expires, "m": max_bytes},
                                     separators=(",", ":"), sort_keys=True).encode())
        token = f"{TOKEN_PREFIX}.{payload}.{_b64url(self._mac(self._token_key, payload))}"
        return NodeCredentials(key_id, self._secret_of(payload), token, expiration_text(expires), expires)

    def upload_url(self, path: str) -> str:
        bucket, key = self._own(path)
        return f"{self.site_url}/{bucket}/{key}"

    def public_url(self, path: str) -> str:
        _, key = self._own(path)
        return f"{self.public_base_url}/{key}"

    def _own(self, path: str) -> tuple[str, str]:
        bucket, key = split_path(path)
        if bucket != self.bucket:
            raise ValueError(f"bucket {bucket!r} is not this node's")
        return bucket, key

    # -- checking a request ---------------------------------------------------------------------------

    def check_put(self, request: SignedRequest, now_s: float) -> Grant:
        """The grant a PUT is made under, or OssDenied (see the module docstring for the order)."""
        headers = request.headers
        authorization = headers.get("authorization", "")
        if not authorization:
            raise OssDenied(403, "AccessDenied", "Anonymous access is forbidden for this operation.")
        if authorization.startswith("OSS "):
            version = 1
        elif authorization.startswith(V4_ALGORITHM + " "):
            version = 4
        elif authorization.startswith("OSS2 "):
            raise OssDenied(403, "AccessDenied", "Signature version 2 is not supported here: use v1 or v4.")
        else:
            raise OssDenied(400, "InvalidArgument", "Authorization header is invalid.")
        if request.method != "PUT" or request.query:
            raise OssDenied(403, "AccessDenied", "These credentials allow PutObject only.")
        token = headers.get("x-oss-security-token", "")
        if not token:
            raise OssDenied(403, "InvalidAccessKeyId",
                            "The OSS Access Key Id you provided does not exist in our records.")
        claims, payload = self._open_token(token)
        if version == 1:
            key_id, signature = _parse_v1(authorization)
        else:
            key_id, signature, scope, additional = _parse_v4(authorization)
        if not hmac.compare_digest(key_id.encode(), claims["k"].encode()):
            raise OssDenied(403, "InvalidAccessKeyId", "The security token does not belong to this AccessKeyId.")
        if now_s >= claims["e"]:
            raise OssDenied(403, "SecurityTokenExpired", "The security token you provided has expired.")
        secret = self._secret_of(payload)
        content_sha256 = None
        if version == 1:
            _check_skew(_v1_request_time(headers), now_s)
            to_sign = _v1_string_to_sign(request)
            expected = base64.b64encode(hmac.new(secret.encode(), to_sign.encode("utf-8"),
                                                 hashlib.sha1).digest()).decode()
        else:
            date, region = _check_v4_scope(headers, scope)
            _check_skew(datetime.strptime(date, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc).timestamp(), now_s)
            payload_hash = headers.get("x-oss-content-sha256", "UNSIGNED-PAYLOAD")
            if payload_hash != "UNSIGNED-PAYLOAD":
                if not SHA256_HEX_RE.fullmatch(payload_hash):
                    raise OssDenied(400, "InvalidArgument", "x-oss-content-sha256 is invalid.")
                content_sha256 = payload_hash
            to_sign = _v4_string_to_sign(request, date, scope, additional, payload_hash)
            expected = hmac.new(_v4_signing_key(secret, date[:8], region), to_sign.encode("utf-8"),
                                hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise OssDenied(403, "SignatureDoesNotMatch",
                            "The request signature we calculated does not match the signature you provided. "
                            "Check your key and signing method.", StringToSign=to_sign, OSSAccessKeyId=key_id)
        if request.bucket != claims["b"] or request.key != claims["o"]:
            raise OssDenied(403, "AccessDenied", "You have no right to access this object: "
                                                 "the credentials allow one object only.")
        return Grant(key_id, claims["b"], claims["o"], claims["e"], claims["m"], content_sha256)

    def _open_token(self, token: str) -> tuple[dict, str]:
        invalid = OssDenied(403, "InvalidSecurityToken", "The security token you provided is invalid.")
        parts = token.split(".") if len(token) <= MAX_TOKEN_CHARS else []
        if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
            raise invalid
        _, payload, mac = parts
        try:
            ok = hmac.compare_digest(_b64url_decode(mac), self._mac(self._token_key, payload))
        except ValueError:
            ok = False
        if not ok:
            raise invalid
        try:
            claims = json.loads(_b64url_decode(payload))
        except ValueError:
            raise invalid from None
        # our own key made it, so the shape is ours; checked anyway, cheaply
        if (not isinstance(claims, dict) or claims.get("v") != 1
                or not isinstance(claims.get("k"), str) or not ACCESS_KEY_ID_RE.fullmatch(claims["k"])
                or not isinstance(claims.get("b"), str) or not isinstance(claims.get("o"), str)
                or not KEY_RE.fullmatch(claims["o"])
                or not all(isinstance(claims.get(n), int) and not isinstance(claims.get(n), bool) for n in "em")):
            raise invalid
        return claims, payload

    def _secret_of(self, payload: str) -> str:
        return _b64url(self._mac(self._secret_key, payload))[:SECRET_CHARS]

    @staticmethod
    def _mac(key: bytes, payload: str) -> bytes:
        return hmac.new(key, payload.encode("ascii"), hashlib.sha256).digest()


# -- V1 -----------------------------------------------------------------------------------------------


def _parse_v1(authorization: str) -> tuple[str, str]:
    key_id, sep, signature = authorization[len("OSS "):].strip().partition(":")
    if not sep or not key_id or not signature:
        raise OssDenied(400, "InvalidArgument", "Authorization header is invalid.")
    return key_id, signature


def _v1_request_time(headers: Mapping[str, str]) -> float:
    # oss2 signs x-oss-date in the Date line when there is one, else Date
    text = headers.get("x-oss-date") or headers.get("date")
    if not text:
        raise OssDenied(403, "AccessDenied", "The request needs a Date header.")
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        raise OssDenied(403, "AccessDenied", "The Date header is invalid.") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def _v1_string_to_sign(request: SignedRequest) -> str:
    h = request.headers
    oss_headers = "".join(f"{name}:{h[name]}\n" for name in sorted(n for n in h if n.startswith("x-oss-")))
    date = h.get("x-oss-date") or h.get("date", "")
    resource = f"/{request.bucket}/{request.key}"
    return "\n".join([request.method, h.get("content-md5", ""), h.get("content-type", ""), date,
                      oss_headers + resource])


# -- V4 -----------------------------------------------------------------------------------------------


def _parse_v4(authorization: str) -> tuple[str, str, list[str], list[str]]:
    """(AccessKeyId, signature, scope parts [date, region, product, terminator], additional headers)."""
    fields: dict[str, str] = {}
    for item in authorization[len(V4_ALGORITHM) + 1:].split(","):
        name, sep, value = item.strip().partition("=")
        if not sep or name in fields:
            raise OssDenied(400, "InvalidArgument", "Authorization header is invalid.")
        fields[name] = value.strip()
    credential, signature = fields.get("Credential", ""), fields.get("Signature", "")
    parts = credential.split("/")
    if len(parts) != 5 or not parts[0] or not re.fullmatch(r"[0-9a-f]{64}", signature):
        raise OssDenied(400, "InvalidArgument", "Authorization header is invalid.")
    additional = sorted({h.strip().lower() for h in fields.get("AdditionalHeaders", "").split(";") if h.strip()})
    return parts[0], signature, parts[1:], additional


def _check_v4_scope(headers: Mapping[str, str], scope: list[str]) -> tuple[str, str]:
    date = headers.get("x-oss-date", "")
    if not V4_DATE_RE.fullmatch(date):
        raise OssDenied(403, "AccessDenied", "A V4 request needs an x-oss-date header.")
    day, region, product, terminator = scope
    if day != date[:8] or not REGION_RE.fullmatch(region) or product != "oss" or terminator != "aliyun_v4_request":
        raise OssDenied(403, "AccessDenied", "The credential scope of the Authorization header is invalid.")
    return date, region


def _v4_uri_encode(text: str, slashes: bool) -> str:
    return quote(text, safe="/-_.~" if slashes else "-_.~")


def _v4_string_to_sign(request: SignedRequest, date: str, scope: list[str], additional: list[str],
                       payload_hash: str) -> str:
    h = request.headers
    additional = [name for name in additional if name in h and not _v4_default_signed(name)]
    signed = sorted(name for name in h if _v4_default_signed(name) or name in additional)
    canonical = "\n".join([
        request.method,
        _v4_uri_encode(f"/{request.bucket}/{request.key}", True),
        "",  # the query: a PUT with one was refused before
        "".join(f"{name}:{h[name]}\n" for name in signed),
        ";".join(additional),
        payload_hash,
    ])
    return "\n".join([V4_ALGORITHM, date, "/".join(scope), hashlib.sha256(canonical.encode("utf-8")).hexdigest()])


def _v4_default_signed(name: str) -> bool:
    return name.startswith("x-oss-") or name in ("content-type", "content-md5")


def _v4_signing_key(secret: str, day: str, region: str) -> bytes:
    key = hmac.new(("aliyun_v4" + secret).encode(), day.encode(), hashlib.sha256).digest()
    for part in (region, "oss", "aliyun_v4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


# -- shared -------------------------------------------------------------------------------------------


def _check_skew(when_s: float, now_s: float) -> None:
    if abs(when_s - now_s) > ALLOWED_SKEW_S:
        raise OssDenied(403, "RequestTimeTooSkewed",
                        "The difference between the request time and the current time is too large.")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _b64url_decode(text: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
