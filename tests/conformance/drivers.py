"""
One driver per realm: the uniform face the conformance suite talks to.

The four protocols share a contract (docs/core.md, docs/architecture.md):
authenticated connections, delivery across nodes, offline storage replayed in
order, idempotent client ids, errors in the protocol's own format without
losing the connection, bounded message sizes, a going-away close at shutdown,
silent peers closed, and a node that leaves no presence behind. The tests in
this folder state each promise once; a driver translates it into one realm's
wire format, so a test never contains a frame of its own.

The driver interface
--------------------
Class attributes
    realm             the hub realm, which is also the config section name
                      (`live`, `channel`, `boss`, `jim`)
    listener          the node listener the realm's WebSocket is on
    capabilities      which shared promises the realm makes (the constants
                      below); `realms_with(CAP)` builds a test's
                      parametrization from them, so a test that cannot apply
                      to a realm is never generated for it (no skips)
    refusal           (stage, code) of a login with bad credentials:
                      ("handshake", 401) or ("login", <the protocol's code>)
    bad_frame, bad_frame_error
                      a frame the protocol cannot parse, and the code of the
                      error frame that answers it
    liveness_settings, liveness_timeout_s
                      the realm's section keys that set its liveness timeout
                      on the node clock, and that timeout in seconds
Methods
    setup()/teardown()          the realm's outside world (fake WeChat, SMS sink)
    settings()                  extra config layers: the realm's auth set up
    start_node(nodes, name, section=..., clock=...)
                                a node for this realm, `section` merged into
                                the realm's config section, then `prepare`d
    prepare(node)               what must exist before users connect (live: the activity)
    credentials(node, i)        valid credentials of the realm's i-th test user (i < 3)
    bad_credentials(creds)      the same user with credentials the server must refuse
    connect(node, creds)        a `Session` once the realm confirmed the login;
                                raises `Refused(stage, code)` otherwise
    send(session, to, text, client_id=None)
                                a 1:1 message (live: a room message), returning
                                once the server has handled it (the realm's ack,
                                or a round trip behind it where there is none)
    decode(raw)                 a received frame as `Event`s (MESSAGE, ERROR, OTHER)
    probe(session)              a harmless request/answer round trip
    oversize_frame(n)           a frame of more than `n` bytes
    fetch_offline(session)      the messages stored while the user was away, for
                                realms whose clients pull them (jim); [] where the
                                server pushes them at login (they are in the stream)
    history(session, peer)      the conversation's stored texts (client-id realms)

Adding a realm
--------------
Write a `Driver` subclass with the attributes and methods above (see the four
below: each is a page of code built on the realm's own test helpers), list
only the capabilities the realm has, and append it to `DRIVERS`. Every test
whose capability it lists is then generated for it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable

import pytest
import treq
from twisted.internet import defer, reactor
from twisted.web.server import Site

from tests.boss.conftest import boss_settings, ticket
from tests.conformance.client import Client, HandshakeRefused, connect
from tests.conftest import http_url, ws_url
from tests.jim.helpers import extra as jim_extra, register
from tests.live.conftest import APPID, SECRET as WECHAT_SECRET, USERS as WECHAT_USERS, FakeWeChat
from tests.heihei.conftest import Outside
from tests.heihei.helpers import api, sign_in
from tests.wsclient import DEFAULT_TIMEOUT_S

# -- capabilities ---------------------------------------------------------------------------
AUTH = "auth"                # accepted and refused logins
CROSS_NODE = "cross_node"    # delivery from a user on one node to a user on another
OFFLINE = "offline"          # messages to a user with no connection, replayed at the next login
OFFLINE_PULL = "offline_pull"  # ... which the client pulls (and so takes out of the inbox) itself
CLIENT_ID = "client_id"      # a repeated client message id is stored and delivered once
BAD_FRAME = "bad_frame"      # unparsable frames get the protocol's own error, the connection stays
OVERSIZE = "oversize"        # a message over max_message_bytes closes with 1009
SHUTDOWN = "shutdown"        # SIGTERM: every client gets 1001
SILENT_PEER = "silent_peer"  # a peer that stops answering is closed, on the node clock
CLEANUP = "cleanup"          # a stopped node leaves no presence in Redis
LOGIN_FIRST = "login_first"  # the login answer comes first, then the replay, then live traffic

# -- events -------------------------------------------------------------------------------------
MESSAGE = "message"
ERROR = "error"
OTHER = "other"


@dataclass
class Event:
    """One thing a client received, in the realm-neutral terms the tests use."""

    kind: str
    sender: str | None = None
    text: str | None = None
    code: int | None = None
    client_id: str | None = None
    #: the decoded frame (or item), for the driver's own checks
    frame: Any = None


@dataclass(frozen=True)
class Credentials:
    #: the user as delivered frames name the sender (live: the WeChat nickname)
    user: str
    #: the user id under which the hub keeps presence (`hh:pres:<realm>:<id>`)
    presence_id: str
    #: what the client presents: a token, a login ticket, a WeChat OAuth code
    secret: str


class Refused(Exception):
    """The server refused a login: in the handshake (HTTP status) or with the protocol's own frame."""

    def __init__(self, stage: str, code: int | None) -> None:
        super().__init__(f"login refused at {stage} with {code}")
        self.stage = stage
        self.code = code


class Session:
    """A connected, logged-in client and everything it received, decoded as events."""

    def __init__(self, driver: "Driver", node, client: Client, creds: Credentials) -> None:
        self.driver = driver
        #: the node it is connected to
        self.node = node
        self.client = client
        self.creds = creds
        self.events: list[Event] = []
        self._decoded = 0

    @property
    def user(self) -> str:
        return self.creds.user

    def _catch_up(self) -> None:
        received = self.client.received
        while self._decoded < len(received):
            self.events.extend(self.driver.decode(received[self._decoded]))
            self._decoded += 1

    def mark(self) -> int:
        """The index the next event will have: wait from here for answers to what is sent next."""
        self._catch_up()
        return len(self.events)

    def send_raw(self, payload: str | bytes) -> None:
        self.client.send(payload)

    async def wait(self, predicate: Callable[[Event], bool], start: int = 0,
                   timeout: float = DEFAULT_TIMEOUT_S, what: str = "the awaited event") -> int:
        """The index of the first event at or after `start` that matches; waits for it to arrive."""
        deadline = reactor.seconds() + timeout
        while True:
            self._catch_up()
            for i in range(start, len(self.events)):
                if predicate(self.events[i]):
                    return i
            if self.client.is_closed:
                raise AssertionError(f"{self.driver.realm}: connection closed ({self.client.close_code} "
                                     f"{self.client.close_reason!r}) while waiting for {what}; got "
                                     f"{self.events[start:]!r}")
            left = deadline - reactor.seconds()
            try:
                if left <= 0:
                    raise defer.TimeoutError()
                await self.client.changed(left)
            except defer.TimeoutError:
                raise AssertionError(f"{self.driver.realm}: {what} did not arrive within {timeout} s; got "
                                     f"{self.events[start:]!r}") from None

    async def texts_until(self, sender: str, marker: str, start: int = 0) -> list[str]:
        """Texts of every message from someone else, in arrival order, up to `sender`'s `marker`.

        Anything a second copy, a stray replay or a reordering would add shows
        up in the list, because the marker proves everything sent before it
        has arrived."""
        end = await self.wait(lambda e: e.kind == MESSAGE and e.sender == sender and e.text == marker, start,
                              what=f"message {marker!r} from {sender}")
        return [e.text for e in self.events[start:end + 1] if e.kind == MESSAGE and e.sender != self.user]


def _merge(*layers: dict) -> dict:
    out: dict[str, dict] = {}
    for layer in layers:
        for section, values in layer.items():
            out.setdefault(section, {}).update(values)
    return out


class Driver:
    realm: str = ""
    listener: str = ""
    capabilities: frozenset[str] = frozenset()
    refusal: tuple[str, int] = ("", 0)
    bad_frame: str = ""
    bad_frame_error: int = 0
    liveness_settings: dict[str, Any] = {}
    liveness_timeout_s: float = 0.0

    async def setup(self) -> None:
        pass

    async def teardown(self) -> None:
        pass

    def settings(self) -> dict:
        return {}

    async def start_node(self, nodes, name: str = "a", *, section: dict | None = None, clock=None):
        node = await nodes.start(name, _merge(self.settings(), {self.realm: section or {}}), clock=clock)
        await self.prepare(node)
        return node

    async def prepare(self, node) -> None:
        pass

    async def credentials(self, node, index: int) -> Credentials:
        raise NotImplementedError

    def bad_credentials(self, creds: Credentials) -> Credentials:
        raise NotImplementedError

    async def connect(self, node, creds: Credentials, *, answer_pings: bool = True) -> Session:
        raise NotImplementedError

    async def send(self, session: Session, to: Credentials, text: str, client_id: str | None = None) -> None:
        raise NotImplementedError

    def decode(self, raw: str | bytes) -> list[Event]:
        raise NotImplementedError

    async def probe(self, session: Session) -> None:
        raise NotImplementedError

    def oversize_frame(self, nbytes: int) -> str:
        return json.dumps({"pad": "x" * nbytes})

    async def fetch_offline(self, session: Session) -> list[Event]:
        return []

    async def history(self, session: Session, peer: Credentials) -> list[str]:
        raise NotImplementedError

    async def _error_round_trip(self, session: Session) -> Event:
        start = session.mark()
        session.send_raw(self.bad_frame)
        i = await session.wait(lambda e: e.kind == ERROR, start, what="the error frame")
        return session.events[i]


def _json(raw: str | bytes) -> Any:
    return json.loads(raw)


# -- live (seed 000) ----------------------------------------------------------------------------


class LiveDriver(Driver):
    """Room chat: "1:1" is a room message, seen by the other viewer; login is WeChat OAuth."""

    realm = "live"
    listener = "live"
    capabilities = frozenset({AUTH, CROSS_NODE, BAD_FRAME, OVERSIZE, SHUTDOWN, SILENT_PEER, CLEANUP})
    refusal = ("login", -1009)
    bad_frame = "this is not JSON"
    bad_frame_error = -1006
    # no clock-driven sweep yet: these are the keys the coming one is expected to honour
    liveness_settings = {"auto_ping_interval_s": 30.0, "auto_ping_timeout_s": 30.0}
    liveness_timeout_s = 60.0
    ACTIVITY = "conformance"
    ADMIN_TOKEN = "conformance-admin-token"
    CODES = ("code-alice", "code-bob", "code-carol")

    async def setup(self) -> None:
        self.wechat = FakeWeChat()
        site = Site(self.wechat)
        site.timeOut = None
        self._port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.wechat.url = f"http://127.0.0.1:{self._port.getHost().port}"

    async def teardown(self) -> None:
        await self._port.stopListening()

    def settings(self) -> dict:
        # a high rate limit: the suite checks delivery, not the realm's flood control
        return {"live": {"wechat_appid": APPID, "wechat_secret": WECHAT_SECRET, "wechat_api": self.wechat.url,
                         "rate": 100.0, "burst": 100},
                "admin": {"token": self.ADMIN_TOKEN}}

    async def prepare(self, node) -> None:
        # through the operators' HTTP API, so it works on a twistd process too;
        # open from 1970 to 2286, whatever the node's clock says
        body = {"title": "conformance", "startTime": 0, "endTime": 9_999_999_998}
        response = await treq.put(http_url(node, f"/admin/live/activities/{self.ACTIVITY}"),
                                  data=json.dumps(body).encode(),
                                  headers={b"Authorization": [f"Bearer {self.ADMIN_TOKEN}".encode()],
                                           b"Content-Type": [b"application/json"]})
        await response.content()
        assert response.code in (200, 201), response.code

    async def credentials(self, node, index: int) -> Credentials:
        code = self.CODES[index]
        user = WECHAT_USERS[code]
        return Credentials(user=user["nickname"], presence_id=user["openid"], secret=code)

    def bad_credentials(self, creds: Credentials) -> Credentials:
        return Credentials(user=creds.user, presence_id=creds.presence_id, secret="code-nobody-issued")

    async def _call(self, session: Session, cmd: str, **data) -> Event:
        start = session.mark()
        session.send_raw(json.dumps({"cmd": cmd, "data": data}, ensure_ascii=False))
        i = await session.wait(lambda e: isinstance(e.frame, dict) and e.frame.get("cmd") == cmd, start,
                               what=f"the {cmd} answer")
        return session.events[i]

    async def connect(self, node, creds: Credentials, *, answer_pings: bool = True) -> Session:
        client = await connect(ws_url(node, "live", "/"), answer_pings=answer_pings)
        session = Session(self, node, client, creds)
        opened = await self._call(session, "Open", activityId=self.ACTIVITY)
        assert opened.code == 1, opened
        login = await self._call(session, "Login", activityId=self.ACTIVITY, type="wechat", code=creds.secret)
        if login.code != 1:
            await client.close()
            raise Refused("login", login.code)
        return session

    async def send(self, session: Session, to: Credentials, text: str, client_id: str | None = None) -> None:
        assert client_id is None, "live frames carry no client message id"
        start = session.mark()
        session.send_raw(json.dumps({"cmd": "Message", "data": {"activityId": self.ACTIVITY, "msg": text}},
                                    ensure_ascii=False))
        # the sender's own copy ("my": "1") is the only acknowledgement
        i = await session.wait(lambda e: (e.kind == MESSAGE and e.sender == session.user and e.text == text)
                               or (e.kind == ERROR and e.frame.get("cmd") == "Message"), start,
                               what=f"the own copy of {text!r}")
        assert session.events[i].kind == MESSAGE, session.events[i]

    def decode(self, raw: str | bytes) -> list[Event]:
        frame = _json(raw)
        code = frame.get("code")
        if code != 1:
            return [Event(ERROR, code=code, frame=frame)]
        if frame.get("cmd") == "Message":
            data = frame["data"]
            return [Event(MESSAGE, sender=data["userName"], text=data["msg"], code=code, frame=frame)]
        return [Event(OTHER, code=code, frame=frame)]  # Open, Login, Total pushes, History ...

    async def probe(self, session: Session) -> None:
        answer = await self._call(session, "History", activityId=self.ACTIVITY, count=1)
        assert answer.code == 1, answer


# -- heihei push channel (seed 001) ------------------------------------------------------------------


class ChannelDriver(Driver):
    """v2 IM on /ws/channel; users sign in by SMS; the token is checked in the handshake."""

    realm = "channel"
    listener = "http"
    capabilities = frozenset({AUTH, CROSS_NODE, OFFLINE, CLIENT_ID, BAD_FRAME, OVERSIZE, SHUTDOWN, SILENT_PEER,
                              CLEANUP})
    refusal = ("handshake", 401)
    bad_frame = "this is not JSON"
    bad_frame_error = 700
    # no clock-driven sweep yet: these are the keys the coming one is expected to honour
    liveness_settings = {"auto_ping_interval_s": 30.0, "auto_ping_timeout_s": 30.0}
    liveness_timeout_s = 60.0

    async def setup(self) -> None:
        self.outside = Outside()
        site = Site(self.outside)
        site.noisy = False
        self._port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.outside.url = f"http://127.0.0.1:{self._port.getHost().port}"

    async def teardown(self) -> None:
        await self._port.stopListening()

    def settings(self) -> dict:
        return {"sms": {"provider": "http", "url": self.outside.url + "/sms"}}

    async def credentials(self, node, index: int) -> Credentials:
        token, uid = await sign_in(node, self.outside, f"1390000000{index}")
        return Credentials(user=uid, presence_id=uid, secret=token)

    def bad_credentials(self, creds: Credentials) -> Credentials:
        return Credentials(user=creds.user, presence_id=creds.presence_id, secret="not-a-session-token")

    async def connect(self, node, creds: Credentials, *, answer_pings: bool = True) -> Session:
        try:
            client = await connect(ws_url(node, "http", f"/ws/channel?token={creds.secret}&apiVersion=2"),
                                   answer_pings=answer_pings)
        except HandshakeRefused as e:
            raise Refused("handshake", e.status) from None
        session = Session(self, node, client, creds)
        # the unread count closes the login (after any stored messages)
        await session.wait(lambda e: e.kind == OTHER and e.frame["msg"].get("action") == "message-unread-count",
                           what="the unread count")
        return session

    async def send(self, session: Session, to: Credentials, text: str, client_id: str | None = None) -> None:
        msg: dict[str, Any] = {"toUserId": int(to.user), "msgType": "text", "content": {"text": text}}
        if client_id is not None:
            msg["clientMsgId"] = client_id
        start = session.mark()
        session.send_raw(json.dumps({"msgType": "IM", "msg": msg}, ensure_ascii=False))
        # the sender's copy, with the new msgId, is the acknowledgement (a resend gets the stored copy)
        i = await session.wait(lambda e: (e.kind == MESSAGE and e.sender == session.user and e.text == text)
                               or e.kind == ERROR, start, what=f"the echo of {text!r}")
        assert session.events[i].kind == MESSAGE, session.events[i]

    def decode(self, raw: str | bytes) -> list[Event]:
        events = []
        for item in _json(raw):
            msg = item["msg"]
            if item.get("msgType") == "IM":
                events.append(Event(MESSAGE, sender=str(msg["fromUserId"]), text=msg["content"].get("text"),
                                    client_id=msg.get("clientMsgId"), frame=item))
            elif msg.get("action") == "im-error":
                events.append(Event(ERROR, code=msg["errorcode"], frame=item))
            else:
                events.append(Event(OTHER, frame=item))
        return events

    async def probe(self, session: Session) -> None:
        # the channel has no request with an answer but IM: an unparsable frame is the round trip
        event = await self._error_round_trip(session)
        assert event.code == self.bad_frame_error, event

    async def history(self, session: Session, peer: Credentials) -> list[str]:
        body = await api(session.node, "/api/msg/history-msg", {"token": session.creds.secret})
        assert body["errorcode"] == 0, body
        items = body["unReadMsg"] + body["readMsg"]
        items = [i for i in items if str(i["msg"]["fromUserId"]) == peer.user]
        return [i["msg"]["content"]["text"] for i in sorted(items, key=lambda i: i["msg"]["msgId"])]


# -- boss (seed 002) ------------------------------------------------------------------------------


class BossDriver(Driver):
    """Underscore frames on /entry; login tickets; stored messages pushed right after `ok`."""

    realm = "boss"
    listener = "boss"
    capabilities = frozenset({AUTH, CROSS_NODE, OFFLINE, BAD_FRAME, OVERSIZE, SHUTDOWN, SILENT_PEER, CLEANUP,
                              LOGIN_FIRST})
    refusal = ("login", 401)
    bad_frame = "nonsense"
    bad_frame_error = 400
    liveness_settings = {"heartbeat_interval": 30.0, "dead_after": 90.0}
    liveness_timeout_s = 90.0
    KINDS = ("emotion", "video", "picture", "text", "audio")
    #: a `records` query far in the future: always answered, always empty
    PROBE_TIMET = "4000000000"

    def settings(self) -> dict:
        return boss_settings()

    async def credentials(self, node, index: int) -> Credentials:
        user = str(1000 + index)
        return Credentials(user=user, presence_id=user, secret=ticket(user))

    def bad_credentials(self, creds: Credentials) -> Credentials:
        return Credentials(user=creds.user, presence_id=creds.presence_id,
                           secret=ticket(creds.user, secret="not-the-login-secret"))

    async def connect(self, node, creds: Credentials, *, answer_pings: bool = True) -> Session:
        client = await connect(ws_url(node, "boss", "/entry"), answer_pings=answer_pings)
        session = Session(self, node, client, creds)
        session.send_raw(f"login_{creds.user}_{creds.secret}")
        i = await session.wait(lambda e: e.frame == "ok" or e.kind == ERROR, what="the login answer")
        event = session.events[i]
        if event.kind == ERROR:
            await client.close()
            raise Refused("login", event.code)
        return session

    async def send(self, session: Session, to: Credentials, text: str, client_id: str | None = None) -> None:
        assert client_id is None, "boss frames carry no client message id"
        assert "_" not in text
        start = session.mark()
        session.send_raw(f"text_{to.user}_{text}_unicast")
        # no answer on success: a query behind it proves the send was handled (frames run in order)
        await self.probe(session)
        errors = [e for e in session.events[start:] if e.kind == ERROR]
        assert not errors, errors

    def decode(self, raw: str | bytes) -> list[Event]:
        text = raw if isinstance(raw, str) else raw.decode("utf-8")
        parts = text.split("_")
        if parts[0] == "error":
            return [Event(ERROR, code=int(parts[1]), frame=text)]
        if parts[0] in self.KINDS and len(parts) >= 7:
            # kind_from_content_type_group_timet_extension (the tests send no `_` in content or extension)
            return [Event(MESSAGE, sender=parts[1], text="_".join(parts[2:-4]), frame=text)]
        return [Event(OTHER, frame=text)]  # ok, heartbeat_<n>, records_..., members_...

    async def probe(self, session: Session) -> None:
        start = session.mark()
        prefix = f"records_{session.user}_{self.PROBE_TIMET}_"
        session.send_raw(f"records_{session.user}_{self.PROBE_TIMET}_unicast")
        await session.wait(lambda e: isinstance(e.frame, str) and e.frame.startswith(prefix), start,
                           what="the records answer")


# -- jim (seed 003) -------------------------------------------------------------------------------


class JimDriver(Driver):
    """J-IM JSON frames; ?token= from /im/vanke/initUser; offline messages pulled with cmd 19 type 0."""

    realm = "jim"
    listener = "jim"
    capabilities = frozenset({AUTH, CROSS_NODE, OFFLINE, OFFLINE_PULL, CLIENT_ID, BAD_FRAME, OVERSIZE, SHUTDOWN, LOGIN_FIRST,
                              SILENT_PEER, CLEANUP})
    refusal = ("handshake", 401)
    bad_frame = "this is not JSON"
    bad_frame_error = 10002
    liveness_settings = {"heartbeat_timeout": 120.0}
    liveness_timeout_s = 120.0

    def settings(self) -> dict:
        return jim_extra()

    async def credentials(self, node, index: int) -> Credentials:
        user = f"user{index}"
        token = await register(node, user)
        return Credentials(user=user, presence_id=user, secret=token)

    def bad_credentials(self, creds: Credentials) -> Credentials:
        return Credentials(user=creds.user, presence_id=creds.presence_id, secret="tok-never-bound")

    async def connect(self, node, creds: Credentials, *, answer_pings: bool = True) -> Session:
        try:
            client = await connect(ws_url(node, "jim", f"/?token={creds.secret}"), answer_pings=answer_pings)
        except HandshakeRefused as e:
            raise Refused("handshake", e.status) from None
        session = Session(self, node, client, creds)
        i = await session.wait(lambda e: e.frame.get("command") == 6, what="the cmd 6 login answer")
        if session.events[i].code != 10007:
            await client.close()
            raise Refused("login", session.events[i].code)
        return session

    async def _ask(self, session: Session, request: dict, command: int) -> Event:
        start = session.mark()
        session.send_raw(json.dumps(request, ensure_ascii=False))
        i = await session.wait(lambda e: isinstance(e.frame, dict) and e.frame.get("command") == command, start,
                               what=f"a command {command} answer")
        return session.events[i]

    async def send(self, session: Session, to: Credentials, text: str, client_id: str | None = None) -> None:
        request = {"cmd": 11, "from": session.user, "to": to.user, "chatType": 2, "msgType": 0, "content": text}
        if client_id is not None:
            request["id"] = client_id
        ack = await self._ask(session, request, 12)
        assert ack.code in (10000, 10001), ack  # delivered / receiver offline, stored

    def decode(self, raw: str | bytes) -> list[Event]:
        frame = _json(raw)
        command, code = frame.get("command"), frame.get("code")
        if command == 11:
            data = frame["data"]
            return [Event(MESSAGE, sender=data["from"], text=data["content"], client_id=data.get("id"), frame=frame)]
        if command == 0:
            return [Event(ERROR, code=code, frame=frame)]
        return [Event(OTHER, code=code, frame=frame)]

    async def probe(self, session: Session) -> None:
        await self._ask(session, {"cmd": 13, "hbbyte": "-127"}, 13)

    def _chats(self, answer: Event) -> list[Event]:
        data = answer.frame["data"]
        chats = [c for per_peer in data["friends"].values() for c in per_peer]
        chats += [c for per_group in data["groups"].values() for c in per_group]
        return [Event(MESSAGE, sender=c["from"], text=c["content"], client_id=c.get("id"), frame=c) for c in chats]

    async def fetch_offline(self, session: Session) -> list[Event]:
        answer = await self._ask(session, {"cmd": 19, "type": 0, "userId": session.user}, 20)
        assert answer.code == 10016, answer
        return self._chats(answer)

    async def history(self, session: Session, peer: Credentials) -> list[str]:
        answer = await self._ask(session, {"cmd": 19, "type": 1, "userId": session.user, "fromUserId": peer.user}, 20)
        assert answer.code == 10018, answer
        return [e.text for e in self._chats(answer) if e.sender == peer.user]


DRIVERS: tuple[type[Driver], ...] = (LiveDriver, ChannelDriver, BossDriver, JimDriver)


def realms_with(capability: str) -> list:
    """`parametrize` values for the `driver` fixture: only the realms that have `capability`."""
    return [pytest.param(d, id=d.realm) for d in DRIVERS if capability in d.capabilities]
