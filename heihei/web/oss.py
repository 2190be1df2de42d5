"""
The node's object storage over HTTP, speaking enough of OSS for Aliyun's own
SDKs (oss2, alibabacloud-oss-v2, the mobile SDKs) to upload with the
credentials heihei/web/oss_signing.py issues.

The object key is the path below the resource, so it can be mounted two ways:

- at `/<bucket>/` on a shared site (the `--http` one): path style,
  `<endpoint>/<bucket>/<key>`, which oss2 uses for an IP endpoint or with
  `is_path_style=True`, alibabacloud-oss-v2 with `use_path_style`;
- as the root of a site or virtual host of its own: CNAME style,
  `<endpoint>/<key>` (oss2 `is_cname=True`, alibabacloud-oss-v2 `use_cname`;
  Aliyun's mobile SDKs are said to pick it for hosts outside aliyuncs.com,
  not checked here).

Every client signs `/<bucket>/<key>` whatever the URL, so a proxy mapping
virtual-host style (`<bucket>.<host>/<key>`) onto either works too. oss2 drops
any path from its endpoint: a prefix such as `/oss/` is unreachable from it.

    PUT  /<bucket>/<module>/<fileName>   OSS-signed (V1 or V4) with the issued credentials
         -> 200, ETag "<MD5 hex>", Content-MD5, x-oss-request-id
         -> an OSS error document (see nodeoss.check_put and objectstore.put for which)
    GET|HEAD /<bucket>/<module>/<fileName>
         -> the file: its format's Content-Type, Range requests, Last-Modified,
            Cache-Control immutable (objects are written once), nosniff, CORS *
         -> 404 NoSuchKey; 403 AccessDenied for the bucket itself (no listing)
    any other method -> 405 MethodNotAllowed

Errors are OSS's XML (`<Error><Code>...</Code><Message>...</Message>
<RequestId>...</RequestId><HostId>...</HostId></Error>`, Content-Type
application/xml, `x-oss-request-id`), which the SDKs turn into their typed
exceptions; a HEAD carries the document base64-encoded in `x-oss-err`, as OSS does.

The request body reaches us already spooled by twisted.web (a temporary
file, or memory under 100 kB), bounded by the site's `max_body_bytes`; the
credential's own cap, the content check and the copy into the store run in
the reactor's thread pool, at most `max_jobs` at a time.
"""

from __future__ import annotations

import base64
import secrets
from xml.sax.saxutils import escape

from twisted.internet import defer, threads
from twisted.logger import Logger
from twisted.web import static
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from heihei.web.oss_signing import SINGLE_HEADERS, NodeOss, OssDenied, SignedRequest
from heihei.web.oss_store import Body, ObjectStore
from heihei.heihei.uploads import CONTENT_TYPES, format_of

MAX_JOBS = 2
CACHE_CONTROL = b"public, max-age=31536000, immutable"
#: a served file is data, never a page: no script, no plugin, even if a browser were fooled
CONTENT_SECURITY_POLICY = b"default-src 'none'; sandbox"


class OssResource(Resource):
    """One bucket of the node's object storage (mount at `/<bucket>/`)."""

    isLeaf = True
    _log = Logger()

    def __init__(self, oss: NodeOss, store: ObjectStore, *, clock, reactor, max_jobs: int = MAX_JOBS) -> None:
        super().__init__()
        self.oss = oss
        self.store = store
        self.clock = clock
        self.reactor = reactor
        self._jobs = defer.DeferredSemaphore(max_jobs)

    # -- dispatch ----------------------------------------------------------------------------------

    def render(self, request):
        request_id = secrets.token_hex(12).upper()
        request.setHeader(b"x-oss-request-id", request_id.encode())
        method = request.method
        if method == b"PUT":
            d = defer.Deferred.fromCoroutine(self._put(request, request_id))
            d.addErrback(self._crashed, request, request_id)
            return NOT_DONE_YET
        if method in (b"GET", b"HEAD"):
            try:
                return self._get(request)
            except OssDenied as e:
                document = self._error(request, request_id, e)
                return b"" if method == b"HEAD" else document  # Twisted would log a HEAD body
        return self._error(request, request_id,
                           OssDenied(405, "MethodNotAllowed", "The specified method is not allowed against this "
                                                              "resource.", Method=method.decode("latin-1")[:16]))

    # -- PUT ---------------------------------------------------------------------------------------

    async def _put(self, request, request_id: str) -> None:
        body = None
        try:
            signed = self._signed(request)
            grant = self.oss.check_put(signed, self.clock.seconds())
            body = Body(request.content)
            stored = await self._jobs.run(threads.deferToThreadPool, self.reactor, self.reactor.getThreadPool(),
                                          self.store.put, grant, body, content_md5=signed.headers.get("content-md5"))
        except OssDenied as e:
            self._log.info("upload refused: {status} {code} ({key})", status=e.status, code=e.code,
                           key=_key_for_log(request))
            self._finish(request, self._error(request, request_id, e))
            return
        finally:
            if body is not None:
                body.close()
        self._log.info("upload stored: {key}, {size} bytes, by {access_key_id}{again}", key=stored.key,
                       size=stored.size, access_key_id=grant.access_key_id,
                       again="" if stored.created else " (again, same content)")
        request.setHeader(b"etag", b'"%s"' % stored.md5.hex().upper().encode())
        request.setHeader(b"content-md5", base64.b64encode(stored.md5))
        request.setHeader(b"content-length", b"0")
        self._finish(request, b"")

    def _signed(self, request) -> SignedRequest:
        headers: dict[str, str] = {}
        for raw_name, values in request.requestHeaders.getAllRawHeaders():
            name = raw_name.decode("latin-1").lower()
            if len(values) > 1 and (name in SINGLE_HEADERS or name.startswith("x-oss-")):
                raise OssDenied(400, "InvalidArgument", f"The header {name} is repeated.")
            try:
                headers[name] = b",".join(values).decode("utf-8")
            except UnicodeDecodeError:
                raise OssDenied(400, "InvalidArgument", f"The header {name} is not UTF-8.") from None
        query = request.uri.partition(b"?")[2]
        return SignedRequest(method=request.method.decode("latin-1"), bucket=self.oss.bucket,
                             key=_key(request) or "", query=query, headers=headers)

    # -- GET / HEAD --------------------------------------------------------------------------------

    def _get(self, request):
        key = _key(request)
        if not key:
            raise OssDenied(403, "AccessDenied", "Listing this bucket is not allowed.")
        path = self.store.path_of(key)
        if path is None:
            raise OssDenied(404, "NoSuchKey", "The specified key does not exist.")
        request.setHeader(b"cache-control", CACHE_CONTROL)
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"content-security-policy", CONTENT_SECURITY_POLICY)
        request.setHeader(b"access-control-allow-origin", b"*")
        served = static.File(path)
        served.type = CONTENT_TYPES[format_of(key)]
        served.encoding = None
        return served.render(request)

    # -- answers -----------------------------------------------------------------------------------

    def _error(self, request, request_id: str, e: OssDenied) -> bytes:
        elements = {"Code": e.code, "Message": e.message, "RequestId": request_id, "HostId": self.oss.bucket,
                    **e.extra}
        document = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error>\n'
                    + "".join(f"  <{name}>{escape(value)}</{name}>\n" for name, value in elements.items())
                    + "</Error>\n").encode("utf-8")
        request.setResponseCode(e.status)
        request.setHeader(b"content-type", b"application/xml")
        if request.method == b"HEAD":
            request.setHeader(b"x-oss-err", base64.b64encode(document))
        request.setHeader(b"content-length", b"%d" % len(document))
        return document

    def _crashed(self, failure, request, request_id: str) -> None:
        self._log.failure("upload failed ({key})", failure=failure, key=_key_for_log(request))
        self._finish(request, self._error(request, request_id,
                                          OssDenied(500, "InternalError", "We encountered an internal error. "
                                                                          "Please try again.")))

    @staticmethod
    def _finish(request, body: bytes) -> None:
        if request._disconnected or request.finished:
            return
        if body and request.method != b"HEAD":
            request.write(body)
        request.finish()


def _key(request) -> str | None:
    """The object key: the rest of the path below the mount point (segments already %-decoded)."""
    try:
        return "/".join(segment.decode("utf-8") for segment in request.postpath)
    except UnicodeDecodeError:
        return None


def _key_for_log(request) -> str:
    key = _key(request)
    return (key or "")[:120]
