"""
Loopback stand-ins for Getui, APNs and FCM that check what the real services
check, so the adapters are tested against the protocols and not against mocks.

- `FakeApns`: a real HTTP/2 server -- Twisted's own (`twisted.web` with h2),
  an implementation independent of our client -- over TLS with a throwaway
  certificate, offering only "h2" by ALPN. It refuses anything that did not
  arrive as HTTP/2, verifies the ES256 provider token with the key's public
  half (PyJWT), its kid, issuer and age, answers TooManyProviderTokenUpdates
  to new tokens more often than every 20 minutes, checks the topic, push type,
  priority, expiration and the 4096-byte payload limit, and answers
  200/400/403/410/413 with Apple's reason strings.
- `FakeGetui`: REST API v2 over HTTP/1.1 -- the auth sign
  (sha256(appkey + timestamp + mastersecret)) and the timestamp's freshness,
  tokens that expire, the `token` header on pushes (10001 when missing or
  expired), the push body's fields and Getui's documented length limits, and
  "target user is invalid" (20001) for dead cids.
- `FakeFcm`: the OAuth2 token endpoint verifying the RS256 assertion (PyJWT,
  the service account's public key: kid, iss, aud, scope, iat/exp), and
  `messages:send` checking the bearer token, the project, string-only data,
  the 4000-byte limit, and answering UNREGISTERED / INVALID_ARGUMENT as FCM does.

Every fake takes `now_s` (a `FakeTime` shared with the adapter under test) so
token expiry can be tested without waiting, records what it accepted, and can
be told to fail the next requests (`fail_next`).
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from twisted.internet import reactor, ssl
from twisted.internet.endpoints import SSL4ServerEndpoint, TCP4ServerEndpoint
from twisted.protocols.tls import TLSMemoryBIOProtocol
from twisted.web.resource import Resource
from twisted.web.server import Site

START_S = 1_700_000_000.0


class FakeTime:
    """Wall-clock seconds that tests move by hand; give the same one to an adapter and its fake."""

    def __init__(self, start: float = START_S) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# --- keys and certificates


def ec_p256_pem() -> tuple[bytes, Any]:
    """An APNs-style .p8 key (PKCS#8 PEM) and its public key."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return pem, key.public_key()


def rsa_pem() -> tuple[bytes, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return pem, key.public_key()


@dataclass
class ThrowawayTLS:
    """A self-signed certificate for 127.0.0.1: server options offering only h2, and the client's trust root."""

    cert_pem: bytes
    key_pem: bytes

    @classmethod
    def make(cls) -> ThrowawayTLS:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake push service")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                               critical=False)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256()))
        return cls(cert.public_bytes(serialization.Encoding.PEM),
                   key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()))

    def server_options(self, protocols=(b"h2",)):
        private = ssl.PrivateCertificate.loadPEM(self.cert_pem + self.key_pem)
        return ssl.CertificateOptions(privateKey=private.privateKey.original, certificate=private.original,
                                      acceptableProtocols=list(protocols))

    def trust_root(self):
        return ssl.Certificate.loadPEM(self.cert_pem)


# --- serving


class Listening:
    """A fake listening on 127.0.0.1:0; `stop()` closes the port and every connection to it."""

    def __init__(self, port, site: Site, scheme: str) -> None:
        self.port = port
        self.site = site
        self.url = f"{scheme}://127.0.0.1:{port.getHost().port}"

    async def stop(self) -> None:
        await self.port.stopListening()


class _TrackingSite(Site):
    """A Site that can drop its connections, so a test ends with nothing open."""

    def __init__(self, resource, alpn: tuple[bytes, ...]) -> None:
        super().__init__(resource)
        self.protocols: list = []
        self.noisy = False
        self._alpn = alpn

    def acceptableProtocols(self) -> list[bytes]:
        # Site offers h2 and http/1.1 whenever h2 is installed; the fake offers what it is told
        return list(self._alpn)

    def buildProtocol(self, addr):
        protocol = super().buildProtocol(addr)
        self.protocols.append(protocol)
        return protocol

    def drop_all(self) -> None:
        """Abort every connection still open, at the TCP level (under TLS)."""
        for protocol in self.protocols:
            # Site's protocols wrap the HTTP/1.1 or HTTP/2 channel chosen by ALPN
            transport = getattr(getattr(protocol, "_channel", protocol), "transport", None)
            if isinstance(transport, TLSMemoryBIOProtocol):
                transport = transport.transport
            if transport is not None and transport.connected:
                transport.abortConnection()


async def serve(resource: Resource, tls: ThrowawayTLS | None = None, protocols=(b"h2",)) -> Listening:
    site = _TrackingSite(resource, tuple(protocols))
    site.timeOut = None  # no idle-timeout timers left in the reactor
    if tls is None:
        endpoint = TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
        return Listening(await endpoint.listen(site), site, "http")
    endpoint = SSL4ServerEndpoint(reactor, 0, tls.server_options(protocols), interface="127.0.0.1")
    return Listening(await endpoint.listen(site), site, "https")


def _json_answer(request, status: int, body: Any, headers: dict[bytes, bytes] | None = None) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json; charset=utf-8")
    for name, value in (headers or {}).items():
        request.setHeader(name, value)
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


# --- APNs

APNS_MAX_PAYLOAD = 4096
APNS_TOKEN_MAX_AGE_S = 3600
APNS_TOKEN_MIN_INTERVAL_S = 20 * 60
_APNS_PATH = re.compile(rb"/3/device/([0-9a-fA-F]+)")


class FakeApns(Resource):
    isLeaf = True

    def __init__(self, *, team_id: str, key_id: str, public_key, topic: str, now_s: FakeTime) -> None:
        super().__init__()
        self.team_id = team_id
        self.key_id = key_id
        self.public_key = public_key
        self.topic = topic
        self.now_s = now_s
        self.unregistered: set[str] = set()
        self.bad_tokens: set[str] = set()
        self.other_app_tokens: set[str] = set()
        self.fail_next: list[tuple[int, str]] = []
        self.delivered: list[dict[str, Any]] = []
        self.requests = 0
        self.protocols: list[bytes] = []
        self.provider_tokens: list[str] = []
        self._token_changed_at: float | None = None

    def render(self, request) -> bytes:
        self.requests += 1
        self.protocols.append(request.clientproto)
        if request.clientproto != b"HTTP/2":
            return self._answer(request, 400, "BadPath")  # APNs speaks nothing but HTTP/2
        match = _APNS_PATH.fullmatch(request.path)
        if match is None:
            return self._answer(request, 404, "BadPath")
        if request.method != b"POST":
            return self._answer(request, 405, "MethodNotAllowed")
        device = match.group(1).decode()
        problem = self._check_provider_token(request.getHeader(b"authorization"))
        if problem is not None:
            return self._answer(request, *problem)
        topic = request.getHeader(b"apns-topic")
        if topic is None:
            return self._answer(request, 400, "MissingTopic")
        if topic.decode() != self.topic:
            return self._answer(request, 400, "TopicDisallowed")
        if request.getHeader(b"apns-push-type") not in (b"alert", b"background"):
            return self._answer(request, 400, "InvalidPushType")
        if request.getHeader(b"apns-priority") not in (None, b"5", b"10", b"1"):
            return self._answer(request, 400, "BadPriority")
        expiration = request.getHeader(b"apns-expiration")
        if expiration is not None and not expiration.isdigit():
            return self._answer(request, 400, "BadExpirationDate")
        body = request.content.read()
        if len(body) > APNS_MAX_PAYLOAD:
            return self._answer(request, 413, "PayloadTooLarge")
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        if not isinstance(payload, dict) or not isinstance(payload.get("aps"), dict):
            return self._answer(request, 400, "PayloadEmpty")
        if self.fail_next:
            return self._answer(request, *self.fail_next.pop(0))
        if device in self.bad_tokens:
            return self._answer(request, 400, "BadDeviceToken")
        if device in self.other_app_tokens:
            return self._answer(request, 400, "DeviceTokenNotForTopic")
        if device in self.unregistered:
            return self._answer(request, 410, "Unregistered", timestamp=int(self.now_s() * 1000))
        self.delivered.append({"device": device, "payload": payload, "size": len(body),
                               "headers": {k.lower(): v for k, v in request.requestHeaders.getAllRawHeaders()}})
        request.setResponseCode(200)
        request.setHeader(b"apns-id", secrets.token_hex(16).encode())
        return b""

    def _check_provider_token(self, authorization: bytes | None) -> tuple[int, str] | None:
        if not authorization or not authorization.lower().startswith(b"bearer "):
            return 403, "MissingProviderToken"
        token = authorization[7:].decode("ascii", "replace")
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(token, self.public_key, algorithms=["ES256"],
                                options={"require": ["iss", "iat"], "verify_iat": False})
        except jwt.InvalidTokenError:
            return 403, "InvalidProviderToken"
        if header.get("kid") != self.key_id:
            return 403, "InvalidProviderToken"
        if claims.get("iss") != self.team_id or not isinstance(claims.get("iat"), int):
            return 403, "InvalidProviderToken"
        age = self.now_s() - claims["iat"]
        if age > APNS_TOKEN_MAX_AGE_S:
            return 403, "ExpiredProviderToken"
        if age < -60:
            return 403, "InvalidProviderToken"
        if not self.provider_tokens or self.provider_tokens[-1] != token:
            if self._token_changed_at is not None and \
                    self.now_s() - self._token_changed_at < APNS_TOKEN_MIN_INTERVAL_S:
                return 429, "TooManyProviderTokenUpdates"
            self.provider_tokens.append(token)
            self._token_changed_at = self.now_s()
        return None

    @staticmethod
    def _answer(request, status: int, reason: str, **extra: Any) -> bytes:
        request.setHeader(b"apns-id", secrets.token_hex(16).encode())
        return _json_answer(request, status, {"reason": reason, **extra})


# --- Getui

GETUI_TIMESTAMP_SLACK_S = 600
GETUI_CLICK_TYPES = {"intent", "url", "payload", "payload_custom", "startapp", "none"}
GETUI_LIMITS = {"title": 50, "body": 256, "payload": 3072, "url": 1024, "intent": 4096}


class FakeGetui(Resource):
    isLeaf = True

    def __init__(self, *, app_id: str, app_key: str, master_secret: str, now_s: FakeTime,
                 token_lifetime_s: float = 24 * 3600) -> None:
        super().__init__()
        self.app_id = app_id
        self.app_key = app_key
        self.master_secret = master_secret
        self.now_s = now_s
        self.token_lifetime_s = token_lifetime_s
        self.tokens: dict[str, float] = {}
        self.auth_calls = 0
        self.push_calls = 0
        self.dead_cids: set[str] = set()
        self.fail_next: list[tuple[int, dict]] = []
        self.pushes: list[dict[str, Any]] = []
        self.request_ids: set[str] = set()

    def revoke_tokens(self) -> None:
        self.tokens.clear()

    def render(self, request) -> bytes:
        parts = request.path.decode().split("/")
        if request.method != b"POST":
            return _json_answer(request, 405, {"code": 405, "msg": "method not allowed"})
        if len(parts) < 4 or parts[:2] != ["", "v2"] or parts[2] != self.app_id:
            return _json_answer(request, 404, {"code": 404, "msg": "url error"})
        if not (request.getHeader(b"content-type") or b"").startswith(b"application/json"):
            return _json_answer(request, 400, {"code": 1, "msg": "not json"})
        try:
            body = json.loads(request.content.read())
        except ValueError:
            return _json_answer(request, 200, {"code": 1, "msg": "not json"})
        if not isinstance(body, dict):
            return _json_answer(request, 200, {"code": 1, "msg": "not json"})
        if parts[3:] == ["auth"]:
            return self._auth(request, body)
        if parts[3:] == ["push", "single", "cid"]:
            return self._push(request, body)
        return _json_answer(request, 404, {"code": 404, "msg": "url error"})

    def _auth(self, request, body: dict) -> bytes:
        self.auth_calls += 1
        sign, timestamp, appkey = body.get("sign"), body.get("timestamp"), body.get("appkey")
        if not all(isinstance(v, str) and v for v in (sign, timestamp, appkey)):
            return _invalid(request, "sign, timestamp and appkey can not be empty")
        if appkey != self.app_key:
            return _invalid(request, "appkey is invalid")
        if not (timestamp.isdigit() and len(timestamp) == 13) or \
                abs(int(timestamp) / 1000 - self.now_s()) > GETUI_TIMESTAMP_SLACK_S:
            return _invalid(request, "timestamp is invalid")
        expected = hashlib.sha256((appkey + timestamp + self.master_secret).encode()).hexdigest()
        if sign != expected:
            return _invalid(request, "sign is invalid")
        token = secrets.token_hex(32)
        expires_at = self.now_s() + self.token_lifetime_s
        self.tokens[token] = expires_at
        return _json_answer(request, 200, {"code": 0, "msg": "success",
                                           "data": {"expire_time": str(int(expires_at * 1000)), "token": token}})

    def _push(self, request, body: dict) -> bytes:
        self.push_calls += 1
        token = (request.getHeader(b"token") or b"").decode()
        if self.tokens.get(token, 0) <= self.now_s():
            return _json_answer(request, 401, {"code": 10001, "msg": "token expired or invalid"})
        request_id = body.get("request_id")
        if not isinstance(request_id, str) or not 10 <= len(request_id) <= 32:
            return _invalid(request, "request_id is invalid")
        if request_id in self.request_ids:
            return _invalid(request, "request_id cannot be repeat.")
        ttl = (body.get("settings") or {}).get("ttl", 7200000)
        if not isinstance(ttl, int) or not (ttl == -1 or 0 < ttl <= 3 * 24 * 3600 * 1000):
            return _invalid(request, "ttl is invalid")
        cids = (body.get("audience") or {}).get("cid")
        if not isinstance(cids, list) or len(cids) != 1 or not isinstance(cids[0], str):
            return _invalid(request, "cid is invalid")
        message = body.get("push_message")
        if not isinstance(message, dict) or len(message) != 1:
            return _invalid(request, "please choose one of notification and transmission and revoke")
        problem = _check_notification(message.get("notification"))
        channel = body.get("push_channel")
        if problem is None and channel is not None:
            problem = _check_notification(((channel.get("android") or {}).get("ups") or {}).get("notification"))
        if problem is not None:
            return _invalid(request, problem)
        if self.fail_next:
            return _json_answer(request, *self.fail_next.pop(0))
        if cids[0] in self.dead_cids:
            return _invalid(request, "target user is invalid")
        self.request_ids.add(request_id)
        self.pushes.append(body)
        return _json_answer(request, 200, {"code": 0, "msg": "",
                                           "data": {f"RASS_{len(self.pushes)}": {cids[0]: "successed_online"}}})


def _check_notification(notification: Any) -> str | None:
    if not isinstance(notification, dict):
        return "notification is invalid"
    for name in ("title", "body", "click_type"):
        if not isinstance(notification.get(name), str) or not notification[name]:
            return f"{name} can not be empty"
    for name, limit in GETUI_LIMITS.items():
        if name in notification and len(notification[name]) > limit:
            return f"{name} size over limit"
    click_type = notification["click_type"]
    if click_type not in GETUI_CLICK_TYPES:
        return "click_type is invalid"
    needs = {"url": "url", "intent": "intent", "payload": "payload", "payload_custom": "payload"}.get(click_type)
    if needs and not notification.get(needs):
        return f"{needs} can not be empty"
    if click_type == "intent" and not notification["intent"].startswith("intent:"):
        return "intent is invalid"
    return None


def _invalid(request, msg: str) -> bytes:
    return _json_answer(request, 400, {"code": 20001, "msg": msg})


# --- FCM

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
FCM_MAX_PAYLOAD = 4000
_FCM_SEND = re.compile(r"/v1/projects/([^/]+)/messages:send")


def service_account(*, private_key_pem: bytes, token_uri: str, project_id: str = "heihei-test",
                    client_email: str = "push@heihei-test.iam.gserviceaccount.com",
                    private_key_id: str = "kid-0001") -> dict[str, str]:
    """A service-account key file as the Google console gives it (the fields FCM uses)."""
    return {"type": "service_account", "project_id": project_id, "private_key_id": private_key_id,
            "private_key": private_key_pem.decode(), "client_email": client_email, "client_id": "1",
            "token_uri": token_uri}


def _fcm_error(request, status: int, name: str, message: str, *details: dict) -> bytes:
    return _json_answer(request, status, {"error": {"code": status, "message": message, "status": name,
                                                    "details": list(details)}})


def _fcm_code(code: str) -> dict:
    return {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}


class FakeFcm(Resource):
    """Google's token endpoint (`/token`) and FCM's `messages:send` in one site."""

    isLeaf = True

    def __init__(self, *, project_id: str, client_email: str, private_key_id: str, public_key, now_s: FakeTime,
                 token_lifetime_s: int = 3599) -> None:
        super().__init__()
        self.project_id = project_id
        self.client_email = client_email
        self.private_key_id = private_key_id
        self.public_key = public_key
        self.now_s = now_s
        self.token_lifetime_s = token_lifetime_s
        self.token_url = ""  # set once listening: the assertion's audience
        self.access_tokens: dict[str, float] = {}
        self.token_calls = 0
        self.send_calls = 0
        self.unregistered: set[str] = set()
        self.invalid: set[str] = set()
        self.other_project: set[str] = set()
        self.fail_next: list[tuple] = []
        self.messages: list[dict] = []

    def revoke_tokens(self) -> None:
        self.access_tokens.clear()

    def render(self, request) -> bytes:
        if request.method != b"POST":
            return _fcm_error(request, 405, "METHOD_NOT_ALLOWED", "method not allowed")
        path = request.path.decode()
        if path == "/token":
            return self._token(request)
        match = _FCM_SEND.fullmatch(path)
        if match:
            return self._send(request, match.group(1))
        return _fcm_error(request, 404, "NOT_FOUND", "not found")

    def _token(self, request) -> bytes:
        self.token_calls += 1
        if request.getHeader(b"content-type") != b"application/x-www-form-urlencoded":
            return _json_answer(request, 400, {"error": "invalid_request"})
        form = parse_qs(request.content.read().decode(), keep_blank_values=True)
        if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"]:
            return _json_answer(request, 400, {"error": "unsupported_grant_type",
                                               "error_description": "Invalid grant_type"})
        [assertion] = form.get("assertion") or [""]
        try:
            header = jwt.get_unverified_header(assertion)
            claims = jwt.decode(assertion, self.public_key, algorithms=["RS256"], audience=self.token_url,
                                issuer=self.client_email, options={"require": ["iss", "aud", "iat", "exp"],
                                                                   "verify_exp": False, "verify_iat": False})
        except jwt.InvalidTokenError as e:
            return _json_answer(request, 400, {"error": "invalid_grant",
                                               "error_description": f"Invalid JWT: {type(e).__name__}"})
        if header.get("kid") != self.private_key_id:
            return _json_answer(request, 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
        now = self.now_s()
        if not (claims["iat"] - 60 <= now < claims["exp"]) or claims["exp"] - claims["iat"] > 3600:
            return _json_answer(request, 400, {"error": "invalid_grant",
                                               "error_description": "Invalid JWT: Token must be a short-lived token "
                                                                    "(60 minutes) and in a reasonable timeframe."})
        if FCM_SCOPE not in str(claims.get("scope", "")).split():
            return _json_answer(request, 400, {"error": "invalid_scope"})
        token = "ya29." + secrets.token_urlsafe(24)
        self.access_tokens[token] = now + self.token_lifetime_s
        return _json_answer(request, 200, {"access_token": token, "expires_in": self.token_lifetime_s,
                                           "token_type": "Bearer"})

    def _send(self, request, project: str) -> bytes:
        self.send_calls += 1
        authorization = (request.getHeader(b"authorization") or b"").decode()
        token = authorization[7:] if authorization.startswith("Bearer ") else ""
        if self.access_tokens.get(token, 0) <= self.now_s():
            return _fcm_error(request, 401, "UNAUTHENTICATED",
                              "Request had invalid authentication credentials. Expected OAuth 2 access token.")
        if project != self.project_id:
            return _fcm_error(request, 403, "PERMISSION_DENIED",
                              f"Permission 'cloudmessaging.messages.create' denied on resource '//fcm/{project}'")
        try:
            body = json.loads(request.content.read())
            message = body["message"]
            device = message["token"]
        except (ValueError, KeyError, TypeError):
            return _fcm_error(request, 400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        data = message.get("data", {})
        for key, value in data.items():
            if not isinstance(value, str):
                return _fcm_error(request, 400, "INVALID_ARGUMENT",
                                  f"Invalid value at 'message.data[0].value' (TYPE_STRING), {value!r}",
                                  {"@type": "type.googleapis.com/google.rpc.BadRequest",
                                   "fieldViolations": [{"field": "message.data[0].value"}]})
        notification = message.get("notification", {})
        size = len(json.dumps({"notification": notification, "data": data}, ensure_ascii=False,
                              separators=(",", ":")).encode())
        if size > FCM_MAX_PAYLOAD:
            return _fcm_error(request, 400, "INVALID_ARGUMENT", "Request contains an invalid argument: "
                              "Message is too big", _fcm_code("INVALID_ARGUMENT"))
        if self.fail_next:
            return _fcm_error(request, *self.fail_next.pop(0))
        if device in self.invalid:
            return _fcm_error(request, 400, "INVALID_ARGUMENT",
                              "The registration token is not a valid FCM registration token",
                              _fcm_code("INVALID_ARGUMENT"),
                              {"@type": "type.googleapis.com/google.rpc.BadRequest",
                               "fieldViolations": [{"field": "message.token",
                                                    "description": "Invalid registration token"}]})
        if device in self.unregistered:
            return _fcm_error(request, 404, "NOT_FOUND", "Requested entity was not found.",
                              _fcm_code("UNREGISTERED"))
        if device in self.other_project:
            return _fcm_error(request, 403, "PERMISSION_DENIED", "SenderId mismatch",
                              _fcm_code("SENDER_ID_MISMATCH"))
        self.messages.append(message)
        return _json_answer(request, 200, {"name": f"projects/{project}/messages/{len(self.messages)}"})
