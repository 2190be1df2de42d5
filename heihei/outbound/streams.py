"""
Live-room stream addresses on a Node-Media-Server (NMS), signed the way its
`auth` option checks them, and the Qiniu Pili stream object (`qiniuObj`) the
shipped Android client needs before its anchor can broadcast.

## The signature (NMS `auth.secret`, `auth.publish`, `auth.play`)

From Node-Media-Server's source: `BroadcastServer.verifyAuth` in
src/server/broadcast_server.js (v4, 2024-) and `NodeCoreUtils.verifyAuth` in
src/node_core_utils.js (v2) compute the same thing:

    streamPath = "/<app>/<stream>"                          "/live/1577899525"
    sign       = "<exp>-" + md5hex(streamPath + "-" + exp + "-" + secret)
    refused when exp < now (exp == now still passes) or the hex differs

and read `sign` from the query of the publish or play request. So every
address carries `?sign=<exp>-<md5>`, as seed 001's
`http://back.wmlive.cn:8000/live/1577899525.flv?sign=1473418685-bacebe…`
does (both of the seed's signed addresses expire 14999 s after their live's
createTime read as UTC+8: the old server signed once, at creation, for about
15000 s; hence the default TTLs below).

NMS v4 accepts only app and stream names of [A-Za-z0-9_-]; we refuse others
rather than sign an address NMS would drop. NMS checks the sign when a
session starts, not afterwards: a stream running past `exp` goes on, but a
reconnect with the same address is refused, so a push TTL must cover the
longest broadcast including its reconnects.

What the signature cannot tell apart: NMS signs the stream path alone, so a
play sign is also a push sign for the same stream until it expires. Anyone
holding a viewer's address can publish to that stream while the anchor is
not publishing (NMS refuses a second publisher while one is connected). So
push addresses made `with_proof` carry a second, heihei-only proof next to the
sign: `pk=` (`push_proof`, an HMAC of "publish:<streamPath>:<exp>" that no
play address carries), and the media server's publish callback to heihei
(nginx-rtmp `on_publish`, SRS `on_publish`, NMS's `prePublish` webhook)
checks both with `verify_push`. A media server without that callback only
checks the sign; then `pull_ttl_s` short and `push_ttl_s` long is the only
lever.

HLS: NMS v4 does not serve HLS, and NMS v2 served the files it transmuxed
(`<mediaroot>/<app>/<stream>/index.m3u8`) as static files without checking
any sign. The HLS address is signed the same way so that whatever serves it
can call `verify`, and is left out ("") unless `pull_hls` is configured.

## qiniuObj: the Pili stream JSON the client's streaming SDK publishes with

The client (`LiveInfo.java:88-95`, `StreamingManagerFactory.java:46-49`)
hands `qiniuObj` to `new StreamingProfile.Stream(json)` of
pldroid-rtc-streaming 2.0.3 (its app/libs jar). Read from that jar's bytecode:

- the constructor calls `getString` on "id", "hub", "title", "publishKey",
  "publishSecurity" and `hosts.publish.rtmp`: a missing one throws, and the
  app crashes;
- `StreamingProfile.setStream` rejects any of the six that is blank;
- the publish URL is `String.format("%s://%s/%s/%s?key=%s", "rtmp",
  hosts.publish.rtmp, hub, title, publishKey)` when publishSecurity is
  "static"; otherwise ("dynamic") `...?nonce=<now>&token=<hmac-sha1>`, which
  NMS would not understand.

NMS splits the RTMP stream name at the first "?" and parses the rest as a
query string, so with publishSecurity "static" and publishKey
"<sign>&sign=<sign>" the SDK publishes to
`rtmp://<push host>/<app>/<stream>?key=<sign>&sign=<sign>`, which NMS reads
as stream `/<app>/<stream>` with `sign=<sign>`: our signed push address.
Field by field, see `qiniu_obj`. The SDK always uses the scheme "rtmp", so
the push base must be rtmp:// for a qiniuObj.

Everything here is a pure function of its arguments and the configuration:
`now_s` (Unix seconds) comes from the caller. The secret never appears in a
repr; nor do signs and addresses, which are bearer credentials.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

# Node-Media-Server v4's SAFE_NAME_PATTERN (rtmp_session.js, flv_session.js).
SAFE_NAME = re.compile(r"[A-Za-z0-9_-]+")
SIGN_FORM = re.compile(r"([1-9][0-9]{0,11})-([0-9a-f]{32})")
STREAM_PATH = re.compile(r"/([^/]*)/([^/]*)")

# The seed's addresses were signed for about 15000 s (see the module docstring).
DEFAULT_PUSH_TTL_S = 15000
DEFAULT_PULL_TTL_S = 15000

REFUSAL_REASONS = ("malformed", "foreign", "forged", "expired", "unproven")
PROOF_FORM = re.compile(r"[0-9a-f]{32}")


class SignRefused(ValueError):
    """A stream address whose sign does not admit it; `reason` is one of REFUSAL_REASONS.

    malformed: no sign, or not "<expiry, no leading zero>-<32 lower-case hex>"
    foreign:   the path is not "/<our app>/<a safe stream name>"
    forged:    the hash is not ours for this path and expiry
    expired:   a sign of ours whose expiry has passed
    unproven:  a valid sign without heihei's publish proof (`pk`): a play address used to publish
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True)
class PushAddress:
    """Where the anchor publishes (the client's `pushAddr`)."""

    stream: str
    expires_at_s: int
    sign: str = field(repr=False)
    rtmp: str = field(repr=False)
    #: heihei's publish proof (`pk=`), "" unless made `with_proof`
    proof: str = field(default="", repr=False)


@dataclass(frozen=True)
class PullAddresses:
    """Where viewers play (http-flv is the client's `streamAddr`); "" where not configured."""

    stream: str
    expires_at_s: int
    sign: str = field(repr=False)
    flv: str = field(repr=False)
    rtmp: str = field(repr=False)
    hls: str = field(repr=False)


@dataclass(frozen=True)
class SignedStream:
    """What `verify` vouches for."""

    app: str
    stream: str
    expires_at_s: int


def nms_sign(stream_path: str, expires_at_s: int, secret: str) -> str:
    """The `sign` query value Node-Media-Server accepts for `stream_path` until `expires_at_s`."""
    digest = hashlib.md5(f"{stream_path}-{expires_at_s}-{secret}".encode("utf-8")).hexdigest()
    return f"{expires_at_s}-{digest}"


def _base(setting: str, value: str, schemes: tuple[str, ...], required: bool) -> str:
    """A configured "scheme://host[:port]" base, without trailing slash; "" if optional and empty."""
    if not value:
        if required:
            raise ValueError(f"[media] {setting} must be set")
        return ""
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.netloc or parts.path not in ("", "/") \
            or parts.query or parts.fragment:
        raise ValueError(f"[media] {setting} must look like {schemes[0]}://host[:port], got {value!r}")
    return f"{parts.scheme}://{parts.netloc}"


class MediaSigner:
    """Signs and checks the addresses of one NMS application (`app`) with its `auth.secret`."""

    def __init__(self, *, secret: str, push_rtmp: str, pull_flv: str, app: str = "live",
                 pull_rtmp: str = "", pull_hls: str = "",
                 push_ttl_s: int = DEFAULT_PUSH_TTL_S, pull_ttl_s: int = DEFAULT_PULL_TTL_S) -> None:
        if not secret:
            # NMS itself treats an empty secret as "no authentication at all".
            raise ValueError("[media] secret must be set (NMS checks nothing with an empty one)")
        if not SAFE_NAME.fullmatch(app or ""):
            raise ValueError(f"[media] app {app!r} must be made of A-Z a-z 0-9 _ -")
        for name, ttl in (("push_ttl_s", push_ttl_s), ("pull_ttl_s", pull_ttl_s)):
            if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0:
                raise ValueError(f"[media] {name} must be a positive int of seconds, got {ttl!r}")
        self._secret = secret
        self.app = app
        self.push_rtmp = _base("push_rtmp", push_rtmp, ("rtmp", "rtmps"), True)
        self.pull_flv = _base("pull_flv", pull_flv, ("http", "https"), True)
        self.pull_rtmp = _base("pull_rtmp", pull_rtmp, ("rtmp", "rtmps"), False)
        self.pull_hls = _base("pull_hls", pull_hls, ("http", "https"), False)
        self.push_ttl_s = push_ttl_s
        self.pull_ttl_s = pull_ttl_s

    def __repr__(self) -> str:
        return f"MediaSigner(app={self.app!r}, push_rtmp={self.push_rtmp!r}, pull_flv={self.pull_flv!r})"

    def stream_path(self, stream: str) -> str:
        if not isinstance(stream, str) or not SAFE_NAME.fullmatch(stream):
            raise ValueError(f"stream name {stream!r} must be made of A-Z a-z 0-9 _ - (NMS refuses others)")
        return f"/{self.app}/{stream}"

    def sign(self, stream: str, *, expires_at_s: int) -> str:
        return nms_sign(self.stream_path(stream), int(expires_at_s), self._secret)

    def push_proof(self, stream: str, *, expires_at_s: int) -> str:
        """heihei's publish proof for a push sign of `stream` expiring at `expires_at_s`: 32 hex
        of HMAC-SHA256(secret, "publish:<streamPath>:<exp>"); no play address carries it."""
        text = f"publish:{self.stream_path(stream)}:{int(expires_at_s)}"
        return hmac.new(self._secret.encode("utf-8"), text.encode("utf-8"), hashlib.sha256).hexdigest()[:32]

    def push(self, stream: str, *, now_s: float, with_proof: bool = False) -> PushAddress:
        expires = int(now_s) + self.push_ttl_s
        sign = self.sign(stream, expires_at_s=expires)
        rtmp = f"{self.push_rtmp}/{self.app}/{stream}?sign={sign}"
        if not with_proof:
            return PushAddress(stream, expires, sign, rtmp)
        proof = self.push_proof(stream, expires_at_s=expires)
        return PushAddress(stream, expires, sign, f"{rtmp}&pk={proof}", proof)

    def pull(self, stream: str, *, now_s: float) -> PullAddresses:
        expires = int(now_s) + self.pull_ttl_s
        sign = self.sign(stream, expires_at_s=expires)
        path = f"/{self.app}/{stream}"
        return PullAddresses(
            stream, expires, sign,
            flv=f"{self.pull_flv}{path}.flv?sign={sign}",
            rtmp=f"{self.pull_rtmp}{path}?sign={sign}" if self.pull_rtmp else "",
            hls=f"{self.pull_hls}{path}/index.m3u8?sign={sign}" if self.pull_hls else "",
        )

    def verify(self, path: str, sign: str | None, *, now_s: float) -> SignedStream:
        """Whether `sign` admits `path` ("/<app>/<stream>", as NMS's streamPath) at `now_s`.

        For media-server callbacks (NMS `notify.url` posts app, name and the
        query): `verify(f"/{app}/{name}", query.get("sign"), now_s=...)`.
        Same verdict as NMS for every address we issue; stricter on form:
        NMS's parseInt also takes "0123-…" or "12abc-…", which are malformed here.
        """
        match = STREAM_PATH.fullmatch(path or "")
        if not match or match.group(1) != self.app or not SAFE_NAME.fullmatch(match.group(2)):
            raise SignRefused("foreign", f"not a stream of /{self.app}/")
        form = SIGN_FORM.fullmatch(sign or "")
        if not form:
            raise SignRefused("malformed", "sign must be <expiry>-<md5 hex>")
        expires = int(form.group(1))
        expected = nms_sign(path, expires, self._secret)
        if not hmac.compare_digest(sign.encode("ascii"), expected.encode("ascii")):
            raise SignRefused("forged", "sign does not match this stream")
        if expires < int(now_s):
            raise SignRefused("expired", f"expired at {expires}")
        return SignedStream(match.group(1), match.group(2), expires)

    def verify_push(self, path: str, sign: str | None, proof: str | None, *, now_s: float) -> SignedStream:
        """`verify`, and the publish proof (`pk`) of that sign: what a publish callback checks."""
        signed = self.verify(path, sign, now_s=now_s)
        expected = self.push_proof(signed.stream, expires_at_s=signed.expires_at_s)
        if not PROOF_FORM.fullmatch(proof or "") \
                or not hmac.compare_digest(proof.encode("ascii"), expected.encode("ascii")):
            raise SignRefused("unproven", "no publish proof for this sign")
        return signed

    def qiniu_obj(self, stream: str, *, now_s: float, with_proof: bool = False) -> dict[str, Any]:
        """The `qiniuObj` of the anchor's LiveInfo: a Pili v1 stream JSON aimed at our signed push address.

        id               "z1.<app>.<stream>": Pili's "<zone>.<hub>.<title>" id (the seed's
                         `slot` has that shape); the SDK only reports it
        hub              [media] app: the first path segment the SDK publishes to
        title            the stream name (the live id): the second path segment
        publishKey       "<sign>&sign=<sign>" with the push sign: the SDK appends it
                         after "?key=", so NMS finds `sign` in the query
                         (`with_proof`: "<sign>&sign=<sign>&pk=<proof>")
        publishSecurity  "static": the only mode whose URL carries publishKey verbatim
        hosts.publish.rtmp  host[:port] of [media] push_rtmp: the SDK's publish host
        hosts.live.{rtmp,hdl,hls}  host[:port] of pull_rtmp, pull_flv, pull_hls: Pili's
                         shape for players; the SDK ignores them, players get signed
                         addresses in streamAddr
        disabled, createdAt, updatedAt  Pili's shape, informational
        """
        if not self.push_rtmp.startswith("rtmp://"):
            raise ValueError("a qiniuObj needs an rtmp:// push base: the client's SDK always uses rtmp")
        push = self.push(stream, now_s=now_s, with_proof=with_proof)
        publish_key = f"{push.sign}&sign={push.sign}" + (f"&pk={push.proof}" if with_proof else "")
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(now_s)))
        live = {"rtmp": urlsplit(self.pull_rtmp or self.push_rtmp).netloc,
                "hdl": urlsplit(self.pull_flv).netloc}
        if self.pull_hls:
            live["hls"] = urlsplit(self.pull_hls).netloc
        return {
            "id": f"z1.{self.app}.{stream}",
            "hub": self.app,
            "title": stream,
            "publishKey": publish_key,
            "publishSecurity": "static",
            "disabled": False,
            "hosts": {"publish": {"rtmp": urlsplit(self.push_rtmp).netloc}, "live": live},
            "createdAt": stamp,
            "updatedAt": stamp,
        }


def pili_publish_url(qiniu_obj: dict[str, Any]) -> str:
    """The URL pldroid-rtc-streaming 2.0.3 publishes to for a "static" stream JSON.

    `String.format("%s://%s/%s/%s?key=%s", "rtmp", publishRtmpHost, hub, title,
    publishKey)`, read from the SDK's bytecode (c/h.a). For tests and by-hand checks.
    """
    if qiniu_obj["publishSecurity"] != "static":
        raise ValueError("only the static publish URL is reproduced here")
    return "rtmp://{}/{}/{}?key={}".format(qiniu_obj["hosts"]["publish"]["rtmp"], qiniu_obj["hub"],
                                          qiniu_obj["title"], qiniu_obj["publishKey"])
