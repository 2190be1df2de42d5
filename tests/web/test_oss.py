"""
The node's own object storage against Aliyun's own SDKs: oss2 (its default
V1 signature and, opted in, V4) and alibabacloud-oss-v2 (V4 by default)
upload with the credentials `Uploads.issue` hands out, to a real twisted.web
site on 127.0.0.1. The SDKs are synchronous: they run in threads while the
reactor serves them.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import socket
import time

import alibabacloud_oss_v2 as ossv2
import oss2
import pytest
import pytest_twisted
import treq
from PIL import Image
from twisted.internet import reactor, task, threads
from twisted.web.resource import Resource

from heihei.web.oss_signing import NodeOss
from heihei.web.oss_store import ObjectStore
from heihei.heihei.uploads import DEFAULT_MAX_BYTES, Uploads
from heihei.web.limits import BoundedSite
from heihei.web.oss import OssResource
from tests.boss.conftest import jpeg_bytes, m4a_bytes, mp3_bytes, png_bytes

BUCKET = "heihei-test"
SECRET = "uploads-test-secret-0123456789abcdef"
REGION = "cn-hangzhou"
TTL_S = 900
#: the site's own cap on any request body, as the composition root would set it
SITE_MAX_BODY_BYTES = 1024 * 1024
SMALL_CAP = 64 * 1024


class TrackingSite(BoundedSite):
    """Remembers its connections: an SDK keeps the connection of an error answer checked out of its
    pool (it reads 4 kB of the body and never releases it), so closing its session leaves it open."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.channels: list = []

    def buildProtocol(self, addr):
        channel = super().buildProtocol(addr)
        self.channels.append(channel)
        return channel


class RecordingOss(OssResource):
    """Notes the scheme of each PUT's Authorization, to show which signature version a client used."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.schemes: list[str] = []

    def render(self, request):
        if request.method == b"PUT":
            self.schemes.append((request.getHeader(b"authorization") or b"").decode().split(" ", 1)[0])
        return super().render(request)


class Storage:
    """One node's storage side: the site, the resource, the store, and Uploads issuing for it."""

    def __init__(self, tmp_path) -> None:
        self.clock = task.Clock()
        self.clock.advance(time.time())
        self.store = ObjectStore(str(tmp_path / "objects"))
        self.store.prepare()
        self.site_url = ""
        self.oss: NodeOss | None = None
        self.uploads: Uploads | None = None
        self.port = None
        self.sessions: list = []

    def start(self) -> None:
        root = Resource()
        self.site = TrackingSite(root, max_body_bytes=SITE_MAX_BODY_BYTES, request_deadline_s=30, reactor=reactor)
        self.port = reactor.listenTCP(0, self.site, interface="127.0.0.1")
        self.site_url = f"http://127.0.0.1:{self.port.getHost().port}"
        self.oss = NodeOss(SECRET, bucket=BUCKET, site_url=self.site_url)
        self.resource = RecordingOss(self.oss, self.store, clock=self.clock, reactor=reactor)
        root.putChild(BUCKET.encode(), self.resource)
        caps = {module: dict(formats) for module, formats in DEFAULT_MAX_BYTES.items()}
        caps["avatar"] = {"png": SMALL_CAP, "jpeg": SMALL_CAP, "jpg": SMALL_CAP}
        self.uploads = Uploads(self.oss, bucket=BUCKET, secret=SECRET, ttl_s=TTL_S, max_bytes=caps)

    async def issue(self, module="record", fmt="mp3", user="10468", now_s=None):
        return await self.uploads.issue(user, fmt, module, self.clock.seconds() if now_s is None else now_s)

    def oss2_bucket(self, issued, *, secret=None, version=oss2.AUTH_VERSION_1) -> oss2.Bucket:
        c = issued.credentials
        auth = oss2.StsAuth(c.access_key_id, secret or c.access_key_secret, c.security_token, auth_version=version)
        session = oss2.Session()
        self.sessions.append(session.session)
        return oss2.Bucket(auth, self.site_url, BUCKET, session=session, region=REGION)

    def v2_client(self, issued, *, cname_endpoint: str = "") -> ossv2.Client:
        c = issued.credentials
        config = ossv2.config.load_default()
        config.credentials_provider = ossv2.credentials.StaticCredentialsProvider(
            c.access_key_id, c.access_key_secret, c.security_token)
        config.region = REGION
        if cname_endpoint:
            config.endpoint = cname_endpoint
            config.use_cname = True
        else:
            config.endpoint = self.site_url
            config.use_path_style = True
        config.retry_max_attempts = 1
        http = ossv2.transport.RequestsHttpClient()
        self.sessions.append(http)
        config.http_client = http
        return ossv2.Client(config)

    async def stop(self) -> None:
        for session in self.sessions:
            session.close()
        for channel in self.site.channels:
            if channel.transport is not None and channel.transport.connected:
                channel.transport.abortConnection()
        await self.port.stopListening()


@pytest_twisted.async_yield_fixture
async def storage(tmp_path):
    s = Storage(tmp_path)
    s.start()
    yield s
    await s.stop()


def key_of(issued) -> str:
    return issued.file.path.split("/", 1)[1]


async def in_thread(f, *args, **kwargs):
    return await threads.deferToThread(f, *args, **kwargs)


async def refused(f, *args, **kwargs) -> oss2.exceptions.OssError:
    with pytest.raises(oss2.exceptions.ServerError) as info:
        await in_thread(f, *args, **kwargs)
    return info.value


# -- oss2, its default (V1) ------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_oss2_uploads_the_issued_path_and_the_file_is_served(storage):
    issued = await storage.issue()
    assert issued.file.upload_url == f"{storage.site_url}/{issued.file.path}"
    bucket = storage.oss2_bucket(issued)
    data = mp3_bytes(1.5)
    result = await in_thread(bucket.put_object, key_of(issued), data)
    assert result.status == 200
    assert storage.resource.schemes == ["OSS"]  # oss2's default: signature V1
    assert result.etag == hashlib.md5(data).hexdigest().upper()
    assert result.request_id
    stored = storage.store.path_of(key_of(issued))
    with open(stored, "rb") as f:
        assert f.read() == data

    answer = await treq.get(issued.file.url)
    assert answer.code == 200
    assert await answer.content() == data
    headers = answer.headers
    assert headers.getRawHeaders("content-type") == ["audio/mpeg"]
    assert headers.getRawHeaders("cache-control") == ["public, max-age=31536000, immutable"]
    assert headers.getRawHeaders("x-content-type-options") == ["nosniff"]
    assert headers.getRawHeaders("accept-ranges") == ["bytes"]
    assert headers.getRawHeaders("last-modified")

    # a player asks for ranges; HEAD answers the size without the body
    part = await treq.get(issued.file.url, headers={"Range": "bytes=0-9"})
    assert part.code == 206 and await part.content() == data[:10]
    head = await treq.head(issued.file.url)
    assert head.code == 200 and head.headers.getRawHeaders("content-length") == [str(len(data))]
    await head.content()

    # and through the SDK, anonymously: the files are public
    anonymous = oss2.Bucket(oss2.AnonymousAuth(), storage.site_url, BUCKET, session=oss2.Session())
    storage.sessions.append(anonymous.session.session)
    got = await in_thread(lambda: anonymous.get_object(key_of(issued)).read())
    assert got == data


@pytest_twisted.ensureDeferred
async def test_oss2_is_refused_another_path(storage):
    issued = await storage.issue()
    other = await storage.issue()
    bucket = storage.oss2_bucket(issued)
    e = await refused(bucket.put_object, key_of(other), mp3_bytes(0.5))
    assert isinstance(e, oss2.exceptions.AccessDenied) and e.status == 403
    assert e.request_id
    # not a key we would ever issue either, nor a traversal
    for key in ("record/evil.mp3", "../record/" + issued.file.file_name, "record/../avatar/x.png"):
        e = await refused(bucket.put_object, key, mp3_bytes(0.5))
        assert e.status == 403 and e.code == "AccessDenied"
    assert os.listdir(storage.store.root + "/record") == []


@pytest_twisted.ensureDeferred
async def test_oss2_is_refused_after_expiry(storage):
    issued = await storage.issue()
    storage.clock.advance(TTL_S)
    e = await refused(storage.oss2_bucket(issued).put_object, key_of(issued), mp3_bytes(0.5))
    assert (e.status, e.code) == (403, "SecurityTokenExpired")


@pytest_twisted.ensureDeferred
async def test_oss2_is_refused_with_a_wrong_secret_or_a_tampered_token(storage):
    issued = await storage.issue()
    e = await refused(storage.oss2_bucket(issued, secret="not-the-secret").put_object, key_of(issued),
                      mp3_bytes(0.5))
    assert isinstance(e, oss2.exceptions.SignatureDoesNotMatch)
    assert "StringToSign" in e.details

    # a token rewritten for another path (its MAC no longer matches)
    c = issued.credentials
    prefix, payload, mac = c.security_token.split(".")
    other = await storage.issue()
    forged_payload = base64.urlsafe_b64encode(
        base64.urlsafe_b64decode(payload + "==").replace(key_of(issued).encode(), key_of(other).encode())
    ).decode().rstrip("=")
    auth = oss2.StsAuth(c.access_key_id, c.access_key_secret, f"{prefix}.{forged_payload}.{mac}")
    session = oss2.Session()
    storage.sessions.append(session.session)
    forged = oss2.Bucket(auth, storage.site_url, BUCKET, session=session)
    e = await refused(forged.put_object, key_of(other), mp3_bytes(0.5))
    assert (e.status, e.code) == (403, "InvalidSecurityToken")

    # credentials of one issue with the token of another
    auth = oss2.StsAuth(c.access_key_id, c.access_key_secret, other.credentials.security_token)
    mixed = oss2.Bucket(auth, storage.site_url, BUCKET, session=session)
    e = await refused(mixed.put_object, key_of(issued), mp3_bytes(0.5))
    assert (e.status, e.code) == (403, "InvalidAccessKeyId")

    # the node only knows STS-style credentials: no token, no access
    plain = oss2.Bucket(oss2.Auth(c.access_key_id, c.access_key_secret), storage.site_url, BUCKET, session=session)
    e = await refused(plain.put_object, key_of(issued), mp3_bytes(0.5))
    assert (e.status, e.code) == (403, "InvalidAccessKeyId")
    assert storage.store.path_of(key_of(issued)) is None


@pytest_twisted.ensureDeferred
async def test_oss2_is_refused_over_the_size_cap(storage):
    issued = await storage.issue(module="avatar", fmt="png")
    big = png_bytes(size=(400, 300)) + os.urandom(SMALL_CAP)
    assert SMALL_CAP < len(big) < SITE_MAX_BODY_BYTES
    e = await refused(storage.oss2_bucket(issued).put_object, key_of(issued), big)
    assert (e.status, e.code) == (400, "EntityTooLarge")
    assert e.details["MaxSizeAllowed"] == str(SMALL_CAP)
    assert storage.store.path_of(key_of(issued)) is None
    assert os.listdir(storage.store.tmp) == []
    # under the cap it goes through
    await in_thread(storage.oss2_bucket(issued).put_object, key_of(issued), png_bytes())


@pytest_twisted.ensureDeferred
async def test_a_body_spooled_to_disk_is_stored_and_served_whole(storage):
    """Over 100 kB twisted.web spools the body to a temporary file: the worker reads it from there."""
    out = io.BytesIO()
    Image.frombytes("RGB", (300, 300), os.urandom(300 * 300 * 3)).save(out, "PNG")
    data = out.getvalue()
    assert 100_000 < len(data) < DEFAULT_MAX_BYTES["message"]["png"]
    issued = await storage.issue(module="message", fmt="png")
    result = await in_thread(storage.oss2_bucket(issued).put_object, key_of(issued), data)
    assert result.etag == hashlib.md5(data).hexdigest().upper()
    answer = await treq.get(issued.file.url)
    assert await answer.content() == data


@pytest_twisted.ensureDeferred
async def test_oss2_is_refused_content_that_is_not_its_format(storage):
    cases = [("record", "mp3", m4a_bytes()), ("record", "mp3", png_bytes()), ("avatar", "png", jpeg_bytes()),
             ("avatar", "jpg", png_bytes()), ("message", "jpeg", b"<html><script>alert(1)</script></html>"),
             ("message", "mp3", b"")]
    for module, fmt, data in cases:
        issued = await storage.issue(module=module, fmt=fmt)
        e = await refused(storage.oss2_bucket(issued).put_object, key_of(issued), data)
        assert isinstance(e, oss2.exceptions.AccessDenied), (module, fmt)
        assert f"not a {fmt} file" in e.message
        assert storage.store.path_of(key_of(issued)) is None
    for module, fmt, data in [("avatar", "jpg", jpeg_bytes()), ("message", "png", png_bytes())]:
        issued = await storage.issue(module=module, fmt=fmt)
        await in_thread(storage.oss2_bucket(issued).put_object, key_of(issued), data)
        answer = await treq.get(issued.file.url)
        assert answer.headers.getRawHeaders("content-type") == ["image/jpeg" if fmt == "jpg" else "image/png"]
        assert await answer.content() == data


@pytest_twisted.ensureDeferred
async def test_content_md5_is_checked_when_sent(storage):
    data = mp3_bytes(0.5)
    good = base64.b64encode(hashlib.md5(data).digest()).decode()
    issued = await storage.issue()
    bucket = storage.oss2_bucket(issued)
    e = await refused(bucket.put_object, key_of(issued), data,
                      headers={"Content-MD5": base64.b64encode(hashlib.md5(b"other").digest()).decode()})
    assert isinstance(e, oss2.exceptions.InvalidDigest)
    e = await refused(bucket.put_object, key_of(issued), data, headers={"Content-MD5": "not-base64!"})
    assert isinstance(e, oss2.exceptions.InvalidDigest)
    await in_thread(bucket.put_object, key_of(issued), data, headers={"Content-MD5": good})


@pytest_twisted.ensureDeferred
async def test_objects_are_written_once_and_a_retry_of_the_same_bytes_succeeds(storage):
    issued = await storage.issue()
    bucket = storage.oss2_bucket(issued)
    data = mp3_bytes(0.5)
    await in_thread(bucket.put_object, key_of(issued), data)
    again = await in_thread(bucket.put_object, key_of(issued), data)
    assert again.status == 200
    e = await refused(bucket.put_object, key_of(issued), mp3_bytes(0.7))
    assert (e.status, e.code) == (409, "FileAlreadyExists")
    with open(storage.store.path_of(key_of(issued)), "rb") as f:
        assert f.read() == data


# -- V4: oss2 opted in, and Aliyun's newer SDK by default --------------------------------------------


@pytest_twisted.ensureDeferred
async def test_oss2_v4_signature(storage):
    issued = await storage.issue()
    bucket = storage.oss2_bucket(issued, version=oss2.AUTH_VERSION_4)
    data = mp3_bytes(0.5)
    result = await in_thread(bucket.put_object, key_of(issued), data)
    assert result.status == 200
    assert storage.resource.schemes == ["OSS4-HMAC-SHA256"]
    other = await storage.issue()
    e = await refused(bucket.put_object, key_of(other), data)
    assert isinstance(e, oss2.exceptions.AccessDenied)
    e = await refused(storage.oss2_bucket(issued, secret="wrong", version=oss2.AUTH_VERSION_4).put_object,
                      key_of(issued), data)
    assert isinstance(e, oss2.exceptions.SignatureDoesNotMatch)


@pytest_twisted.ensureDeferred
async def test_alibabacloud_oss_v2_default_v4_signature(storage):
    issued = await storage.issue(module="message", fmt="png")
    client = storage.v2_client(issued)
    data = png_bytes()
    result = await in_thread(client.put_object, ossv2.PutObjectRequest(bucket=BUCKET, key=key_of(issued), body=data))
    assert result.status_code == 200
    assert storage.resource.schemes == ["OSS4-HMAC-SHA256"]  # the newer SDK's default
    assert result.etag == f'"{hashlib.md5(data).hexdigest().upper()}"'
    assert storage.store.path_of(key_of(issued)) is not None

    other = await storage.issue(module="message", fmt="png")
    with pytest.raises(ossv2.exceptions.OperationError) as info:
        await in_thread(client.put_object, ossv2.PutObjectRequest(bucket=BUCKET, key=key_of(other), body=data))
    error = info.value.unwrap()
    assert (error.status_code, error.code) == (403, "AccessDenied")

    storage.clock.advance(TTL_S)
    late = await storage.issue(module="message", fmt="png", now_s=storage.clock.seconds() - TTL_S)
    with pytest.raises(ossv2.exceptions.OperationError) as info:
        await in_thread(storage.v2_client(late).put_object,
                        ossv2.PutObjectRequest(bucket=BUCKET, key=key_of(late), body=data))
    assert info.value.unwrap().code == "SecurityTokenExpired"


# -- serving: only our files, nothing else -----------------------------------------------------------


async def raw_request(port: int, request: bytes) -> bytes:
    """One request over a plain socket, exactly as written (no client normalizes the path)."""
    def exchange() -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(request)
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
            return b"".join(chunks)
    return await in_thread(exchange)


@pytest_twisted.ensureDeferred
async def test_no_listing_no_traversal_no_other_files(storage, tmp_path):
    issued = await storage.issue()
    await in_thread(storage.oss2_bucket(issued).put_object, key_of(issued), mp3_bytes(0.5))
    (tmp_path / "objects" / "record" / "notes.txt").write_text("private")
    (tmp_path / "secret.txt").write_text("private")
    port = storage.port.getHost().port
    for path in [f"/{BUCKET}", f"/{BUCKET}/"]:
        answer = await raw_request(port, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        assert answer.startswith(b"HTTP/1.1 403") and b"<Code>AccessDenied</Code>" in answer
    for path in [f"/{BUCKET}/record", f"/{BUCKET}/record/", f"/{BUCKET}/record/notes.txt",
                 f"/{BUCKET}/../secret.txt", f"/{BUCKET}/record/../../secret.txt",
                 f"/{BUCKET}/record/%2e%2e/%2e%2e/secret.txt", f"/{BUCKET}/record%2F..%2F..%2Fsecret.txt",
                 f"/{BUCKET}/.tmp/", f"/{BUCKET}/record/{issued.file.file_name}%00.txt",
                 f"/{BUCKET}/avatar/{issued.file.file_name}"]:
        answer = await raw_request(port, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        assert b"private" not in answer, path
        assert answer.startswith(b"HTTP/1.1 404") or answer.startswith(b"HTTP/1.1 400"), (path, answer[:200])
    answer = await raw_request(port, f"DELETE /{BUCKET}/{key_of(issued)} HTTP/1.1\r\nHost: x\r\n"
                                     "Connection: close\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 405") and b"<Code>MethodNotAllowed</Code>" in answer
    assert storage.store.path_of(key_of(issued)) is not None


@pytest_twisted.ensureDeferred
async def test_errors_are_oss_xml(storage):
    answer = await treq.get(f"{storage.site_url}/{BUCKET}/record/2017020812_1_abcdefghij.mp3")
    assert answer.code == 404
    assert answer.headers.getRawHeaders("content-type") == ["application/xml"]
    assert answer.headers.getRawHeaders("x-oss-request-id")
    body = await answer.content()
    assert b"<Error>" in body and b"<Code>NoSuchKey</Code>" in body and b"<RequestId>" in body
    # anonymous PUT
    answer = await treq.put(f"{storage.site_url}/{BUCKET}/record/2017020812_1_abcdefghij.mp3", data=b"x")
    assert answer.code == 403 and b"<Code>AccessDenied</Code>" in await answer.content()
    # the SDK reads HEAD errors from x-oss-err
    anonymous = oss2.Bucket(oss2.AnonymousAuth(), storage.site_url, BUCKET, session=oss2.Session())
    storage.sessions.append(anonymous.session.session)
    assert await in_thread(anonymous.object_exists, "record/2017020812_1_abcdefghij.mp3") is False
    with pytest.raises(oss2.exceptions.NoSuchKey) as info:
        await in_thread(anonymous.head_object, "record/2017020812_1_abcdefghij.mp3")
    assert info.value.details["Code"] == "NoSuchKey" and info.value.request_id
    head = await treq.head(f"{storage.site_url}/{BUCKET}/")
    assert head.code == 403 and await head.content() == b""
    assert b"<Code>AccessDenied</Code>" in base64.b64decode(head.headers.getRawHeaders("x-oss-err")[0])


@pytest_twisted.ensureDeferred
async def test_as_the_root_of_its_own_site_it_serves_cname_style(storage):
    """Aliyun's SDKs address a custom-domain (CNAME) endpoint as `<endpoint>/<key>`, signing
    `/<bucket>/<key>` all the same; the resource as the root of a site of its own serves that.
    (alibabacloud-oss-v2 with use_cname; oss2 forces path style for IPs and for `localhost`.)"""
    resource = OssResource(storage.oss, storage.store, clock=storage.clock, reactor=reactor)
    site = TrackingSite(resource, max_body_bytes=SITE_MAX_BODY_BYTES, request_deadline_s=30, reactor=reactor)
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    try:
        endpoint = f"http://localhost:{port.getHost().port}"
        issued = await storage.issue(module="avatar", fmt="png")
        client = storage.v2_client(issued, cname_endpoint=endpoint)
        data = png_bytes()
        await in_thread(client.put_object, ossv2.PutObjectRequest(bucket=BUCKET, key=key_of(issued), body=data))
        assert storage.resource.schemes == []  # not through the /<bucket>/ mount
        answer = await treq.get(f"{endpoint}/{key_of(issued)}")
        assert answer.code == 200 and await answer.content() == data
        other = await storage.issue(module="avatar", fmt="png")
        with pytest.raises(ossv2.exceptions.OperationError) as info:
            await in_thread(client.put_object, ossv2.PutObjectRequest(bucket=BUCKET, key=key_of(other), body=data))
        assert info.value.unwrap().code == "AccessDenied"
    finally:
        for session in storage.sessions:
            session.close()
        for channel in site.channels:
            if channel.transport is not None and channel.transport.connected:
                channel.transport.abortConnection()
        await port.stopListening()
