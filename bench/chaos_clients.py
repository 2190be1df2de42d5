"""
The chaos scenario's simulated clients, one asyncio task each, on the raw
WebSocket client of `wsload` (it answers heihei's delivery-confirmation pings
as any WebSocket stack does).

Every client behaves as a real one would: it connects to its node, logs in,
and when the connection dies, a handshake is refused or an answer does not
come within `ACK_TIMEOUT_S`, it drops the connection and tries again with
exponential backoff (0.1 s doubling to 2 s, with jitter). A sender has one
message in flight at a time and resends it after a refusal or a reconnection
until an attempt is acknowledged; a receiver records every copy it gets.
What counts as the acknowledgement is each sender's `send_one`; the ledger
(`chaos_ledger`) does the counting.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from bench import wsload
from bench.chaos_ledger import Ledger, Outgoing, tag

BACKOFF_MIN_S = 0.1
BACKOFF_MAX_S = 2.0
#: longer than heihei's Redis reply timeout (5 s) plus a long freeze: the server's own verdict
#: (an error answer) normally comes first
ACK_TIMEOUT_S = 12.0
LOGIN_TIMEOUT_S = 12.0
CONNECT_TIMEOUT_S = 10.0
#: after an explicit refusal, wait this long before the resend
RETRY_AFTER_REFUSAL_S = 0.5
#: a boss records_ request for a time in the far future: an empty, cheap answer
FAR_FUTURE_S = 4102444800
ACTIVITY = "chaos"


class Refused(Exception):
    """The server said no to a login (it answered; the client backs off and tries again)."""


@dataclass
class NodeAddr:
    name: str
    ports: dict[str, int]

    def url(self, listener: str, path: str = "/", scheme: str = "ws") -> str:
        return f"{scheme}://127.0.0.1:{self.ports[listener]}{path}"


@dataclass
class World:
    """What every client shares: where the nodes are, the ledger, the run's phases."""

    nodes: list[NodeAddr]
    ledger: Ledger
    interval_s: float
    rng: random.Random
    t0: float = field(default_factory=time.monotonic)
    #: the wall clock at t0, to line the ledger up with the nodes' logs
    t0_unix: float = field(default_factory=time.time)
    #: set when the offered load stops: senders finish their message in flight, then end
    stop_new: asyncio.Event = field(default_factory=asyncio.Event)
    #: set when the senders must give up (the drain deadline)
    give_up: asyncio.Event = field(default_factory=asyncio.Event)
    #: set at the very end: every client leaves
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    #: bumped to make every receiver log in afresh (replay / pull), the final check
    relogin: int = 0
    #: bumped to make jim receivers pull their offline messages (cmd 19 type 0) again
    pull: int = 0
    #: receiver offline periods may start only before this (relative seconds)
    offline_until: float = 0.0
    #: heihei accounts: name -> (user id, session token)
    heihei: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: live login tokens: name -> token
    live_tokens: dict[str, str] = field(default_factory=dict)
    #: boss groups of the group traffic: sender name -> group id (the sender and its receiver)
    boss_groups: dict[str, str] = field(default_factory=dict)
    #: re-sign-in of a heihei account whose token was refused (set by the scenario)
    heihei_sign_in: Callable[[str], Any] | None = None
    events: Counter = field(default_factory=Counter)

    def now(self) -> float:
        return time.monotonic() - self.t0


class Agent:
    proto = ""
    role = ""

    def __init__(self, world: World, name: str, node: int) -> None:
        self.world = world
        self.name = name
        self.node = node
        self.conn: wsload.WSClient | None = None
        self.serial = 0
        self.logged_in = False
        self.logins = 0
        self.failures: Counter = Counter()
        self.done = False

    @property
    def ledger(self) -> Ledger:
        return self.world.ledger

    def url(self) -> str:
        raise NotImplementedError

    async def login(self) -> None:
        raise NotImplementedError

    async def session(self) -> None:
        raise NotImplementedError

    def handle(self, payload: bytes) -> None:
        """Every frame the client reads goes through here (receivers record deliveries)."""

    def opened(self) -> None:
        """Logged in (receivers: the ledger starts a window)."""

    def closed(self) -> None:
        """The connection ended (receivers: the window closes)."""

    async def expect(self, matches: Callable[[bytes], Any], timeout: float) -> Any:
        """Read frames until `matches(frame)` is truthy and return that value."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise asyncio.TimeoutError
            payload = await self.conn.next_text(remaining)
            self.handle(payload)
            value = matches(payload)
            if value:
                return value

    async def wait_before_connecting(self) -> None:
        """Receivers stay away during their offline periods."""

    async def connect_failed(self, error: BaseException) -> None:
        """The connection or its handshake failed (before the backoff)."""

    async def main(self) -> None:
        backoff = BACKOFF_MIN_S
        while not self.done and not self.world.finished.is_set():
            await self.wait_before_connecting()
            if self.done or self.world.finished.is_set():
                break
            try:
                self.conn = await wsload.WSClient.connect(self.url(), timeout=CONNECT_TIMEOUT_S)
            except (OSError, ConnectionError, asyncio.TimeoutError) as e:
                self.failures["connect: " + _short(e)] += 1
                await self.connect_failed(e)
                await asyncio.sleep(backoff * (0.5 + self.world.rng.random()))
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            self.serial += 1
            clean = False
            try:
                await self.login()
                self.logged_in = True
                self.logins += 1
                self.opened()
                backoff = BACKOFF_MIN_S
                clean = await self.session()
            except Refused as e:
                self.failures["login refused: " + str(e)[:80]] += 1
            except (ConnectionError, OSError) as e:
                self.failures["connection lost: " + _short(e)] += 1
            except asyncio.TimeoutError:
                self.failures["no answer in time"] += 1
            finally:
                self.logged_in = False
                self.conn.abort()
                self.closed()
            if not clean:
                await asyncio.sleep(backoff * (0.5 + self.world.rng.random()))
                backoff = min(backoff * 2, BACKOFF_MAX_S)


def _short(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    if "handshake refused" in text:
        return text[:80]
    return type(e).__name__


# -- senders and receivers, whatever the protocol -----------------------------------------------


class Sender(Agent):
    role = "sender"

    def __init__(self, world: World, name: str, node: int, to: str) -> None:
        super().__init__(world, name, node)
        self.to = to
        self.seq = 0
        self.current: Outgoing | None = None
        self.next_at = 0.0

    def client_id(self, seq: int) -> str | None:
        return None

    async def wait_before_connecting(self) -> None:
        # nothing left to send, or past the deadline: a sender does not come back for nothing
        if self.world.give_up.is_set() or (self.world.stop_new.is_set() and self.current is None):
            self.done = True

    async def send_one(self, out: Outgoing, attempt: int) -> tuple[str, str]:
        """Send one attempt; ("acked", "") or ("refused", why). Raises when the connection
        fails or the answer does not come (the attempt is then "unanswered")."""
        raise NotImplementedError

    async def session(self) -> bool:
        world = self.world
        while True:
            if self.current is None:
                if world.stop_new.is_set():
                    self.done = True
                    return True
                delay = self.next_at - world.now()
                if delay > 0:
                    try:
                        await asyncio.wait_for(world.stop_new.wait(), delay)
                        continue
                    except asyncio.TimeoutError:
                        pass
                self.seq += 1
                self.current = self.ledger.new(self.proto, self.name, self.seq, self.to, self.client_id(self.seq))
                self.next_at = world.now() + self.interval()
            if world.give_up.is_set():
                self.done = True
                return True
            out = self.current
            attempt = self.ledger.attempt(out, world.now())
            try:
                outcome, detail = await self.send_one(out, attempt)
            except BaseException as e:
                self.ledger.end_attempt(out, attempt, "unanswered", world.now(), _short(e))
                raise
            self.ledger.end_attempt(out, attempt, outcome, world.now(), detail)
            if outcome == "acked":
                self.current = None
            else:
                await asyncio.sleep(RETRY_AFTER_REFUSAL_S)

    def interval(self) -> float:
        base = self.world.interval_s
        return base * (0.75 + 0.5 * self.world.rng.random())


class Receiver(Agent):
    role = "receiver"

    def __init__(self, world: World, name: str, node: int, offline: list[tuple[float, float]]) -> None:
        super().__init__(world, name, node)
        #: (start, end) in seconds since the start, when this receiver is away
        self.offline = offline
        self._relogin_seen = 0

    def away(self) -> float:
        """Seconds left of the current offline period (0: not away)."""
        now = self.world.now()
        if now >= self.world.offline_until:
            return 0.0
        for start, end in self.offline:
            if start <= now < end:
                return min(end, self.world.offline_until) - now
        return 0.0

    async def wait_before_connecting(self) -> None:
        left = self.away()
        if left > 0:
            try:
                await asyncio.wait_for(self.world.finished.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def session(self) -> bool:
        self._relogin_seen = self.world.relogin
        while True:
            if self.world.finished.is_set():
                self.done = True
                return True
            if self.world.relogin != self._relogin_seen or self.away() > 0:
                self.conn.close()
                return True
            self.tick()
            try:
                payload = await self.conn.next_text(0.25)
            except asyncio.TimeoutError:
                continue
            self.handle(payload)

    def tick(self) -> None:
        """Something to do between frames (jim pulls)."""

    def opened(self) -> None:
        self.ledger.logged_in(self.proto, self.user_id, self.world.now(), self.serial)

    def closed(self) -> None:
        self.ledger.left(self.proto, self.user_id, self.world.now())

    def got(self, payload: bytes | str, via: str = "push") -> None:
        self.ledger.delivered(self.proto, self.user_id, payload, self.world.now(), self.serial, via)

    @property
    def user_id(self) -> str:
        return self.name


# -- boss: login_<id>, text_<to>_<content>_unicast, no answer on success -------------------------


class BossAgent(Agent):
    proto = "boss"

    def url(self) -> str:
        return self.world.nodes[self.node].url("boss", "/entry")

    async def login(self) -> None:
        self.conn.send_text(f"login_{self.name}")
        answer = await self.expect(lambda p: p if p == b"ok" or p.startswith(b"error_") else None, LOGIN_TIMEOUT_S)
        if answer != b"ok":
            raise Refused(answer.decode("utf-8", "replace"))


class BossSender(BossAgent, Sender):
    async def send_one(self, out: Outgoing, attempt: int) -> tuple[str, str]:
        return await self.send_and_ask(out.to, "unicast", tag(out.sender, out.seq, attempt))

    async def send_and_ask(self, to: str, kind: str, text: str) -> tuple[str, str]:
        # The protocol answers nothing to a good send. Frames are handled strictly in order, so
        # the answer to a records_ request sent right after it comes after any error for the
        # send: records answer with no error before it = accepted.
        self.conn.send_text(f"text_{to}_{text}_{kind}")
        self.conn.send_text(f"records_{to}_{FAR_FUTURE_S}_{kind}")
        errors: list[bytes] = []
        while True:
            p = await self.expect(lambda p: p if p.startswith((b"error_", b"records_")) else None, ACK_TIMEOUT_S)
            if p.startswith(b"records_"):
                if not errors:
                    return "acked", ""
                return "refused", errors[0].decode("utf-8", "replace")[:60]
            errors.append(p)
            if len(errors) == 2:  # both frames refused (e.g. 503 twice): no records answer comes
                return "refused", errors[0].decode("utf-8", "replace")[:60]


class BossReceiver(BossAgent, Receiver):
    def handle(self, payload: bytes) -> None:
        if payload.startswith(b"text_"):
            self.got(payload)


# -- boss groups: a group of the sender and its receiver, text_<group>_<content>_group ------------


class BossGroupSender(BossSender):
    """Boss group traffic (issue 15: one log per group, a cursor per member): the same
    acknowledgement as boss 1:1 (no `error_` before the answer to a `records_` of the group)."""

    proto = "bossgroup"

    async def send_one(self, out: Outgoing, attempt: int) -> tuple[str, str]:
        return await self.send_and_ask(self.world.boss_groups[self.name], "group", tag(out.sender, out.seq, attempt))


class BossGroupReceiver(BossReceiver):
    proto = "bossgroup"


# -- jim: cmd 11 answered by cmd 12 (10000 receiver online, 10001 stored for later) ---------------


class JimAgent(Agent):
    proto = "jim"

    def url(self) -> str:
        query = urllib.parse.urlencode({"username": self.name, "password": "x"})
        return self.world.nodes[self.node].url("jim", "/?" + query)

    async def login(self) -> None:
        # the server pushes cmd 6 after the handshake: 10007 logged in, 10008 failed (then closes)
        answer = await self.expect(lambda p: _jim_command(p, 6), LOGIN_TIMEOUT_S)
        if answer.get("code") != 10007:
            raise Refused(f"cmd 6 code {answer.get('code')}")


def _json(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except ValueError:
        return None


def _jim_command(payload: bytes, command: int) -> dict | None:
    frame = _json(payload)
    if isinstance(frame, dict) and frame.get("command") == command:
        return frame
    return None


class JimSender(JimAgent, Sender):
    def client_id(self, seq: int) -> str:
        return f"{self.name}-{seq}"

    async def send_one(self, out: Outgoing, attempt: int) -> tuple[str, str]:
        self.conn.send_text(json.dumps({"cmd": 11, "from": self.name, "to": out.to, "chatType": 2, "msgType": 0,
                                        "content": tag(out.sender, out.seq, attempt), "id": out.client_id}))
        # inputs are answered in order and this is the only request in flight: the next cmd 12 is ours
        answer = await self.expect(lambda p: _jim_command(p, 12), ACK_TIMEOUT_S)
        code = answer.get("code")
        if code in (10000, 10001):
            return "acked", ""
        reason = (answer.get("data") or {}).get("reason", "")
        return "refused", f"{code} {reason}"[:60]


class JimReceiver(JimAgent, Receiver):
    """Gets live pushes (cmd 11) and pulls what waited (cmd 19 type 0) after each login, as
    J-IM's page does, again whenever an answer was not empty, and when the scenario asks."""

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self._pull_wanted = False
        self._pull_in_flight = False
        self._pull_seen = 0
        self._retry_pull_at = 0.0

    async def login(self) -> None:
        await super().login()
        self._pull_wanted, self._pull_in_flight = True, False

    def tick(self) -> None:
        if self._pull_seen != self.world.pull:
            self._pull_seen = self.world.pull
            self._pull_wanted = True
        if self._pull_wanted and not self._pull_in_flight and self.world.now() >= self._retry_pull_at:
            self.conn.send_text(json.dumps({"cmd": 19, "type": 0, "userId": self.name}))
            self._pull_wanted, self._pull_in_flight = False, True

    def handle(self, payload: bytes) -> None:
        frame = _json(payload)
        if not isinstance(frame, dict):
            return
        command = frame.get("command")
        if command == 11:
            self.got(json.dumps(frame.get("data")))
        elif command == 20:
            self._pull_in_flight = False
            if frame.get("code") != 10016:
                self._pull_wanted = True
                self._retry_pull_at = self.world.now() + 1.0
                self.world.events["jim pull refused"] += 1
                return
            data = frame.get("data") or {}
            chats = [c for lists in (data.get("friends") or {}, data.get("groups") or {})
                     for chat_list in lists.values() for c in chat_list]
            for chat in chats:
                self.got(json.dumps(chat), via="pull")
            if chats:
                self._pull_wanted = True


# -- jim groups: a group of the sender and its receiver, joined with cmd 7 (`[jim] open_groups`) ------


def jim_group_of(receiver: str) -> str:
    return f"g-{receiver}"


async def _jim_join(agent: Agent, group: str) -> None:
    """cmd 7 after the login answer: creates the group the first time, a no-op afterwards."""
    agent.conn.send_text(json.dumps({"cmd": 7, "group_id": group}))
    answer = await agent.expect(lambda p: _jim_command(p, 8), LOGIN_TIMEOUT_S)
    if answer.get("code") != 10011:
        raise Refused(f"cmd 7 code {answer.get('code')}")


class JimGroupSender(JimSender):
    """J-IM group traffic (issue 15: one log per group, a cursor that moves only over what is
    contiguous): cmd 11 with chatType 1, acknowledged by cmd 12 code 10000."""

    proto = "jimgroup"

    async def login(self) -> None:
        await super().login()
        await _jim_join(self, jim_group_of(self.to))

    async def send_one(self, out: Outgoing, attempt: int) -> tuple[str, str]:
        self.conn.send_text(json.dumps({"cmd": 11, "from": self.name, "chatType": 1, "msgType": 0,
                                        "groupId": jim_group_of(out.to),
                                        "content": tag(out.sender, out.seq, attempt), "id": out.client_id}))
        answer = await self.expect(lambda p: _jim_command(p, 12), ACK_TIMEOUT_S)
        code = answer.get("code")
        if code == 10000:
            return "acked", ""
        reason = (answer.get("data") or {}).get("reason", "")
        return "refused", f"{code} {reason}"[:60]


class JimGroupReceiver(JimReceiver):
    """Pushed group messages (cmd 11) and pulled ones (cmd 19 type 0, `groups`), as a J-IM page."""

    proto = "jimgroup"

    async def login(self) -> None:
        await super().login()
        await _jim_join(self, jim_group_of(self.name))


# -- heihei push channel: a v2 IM with clientMsgId; the sender's own copy is the ack ----------------


class ChannelAgent(Agent):
    proto = "heihei"

    @property
    def user_id(self) -> str:
        return self.world.heihei[self.name][0]

    def url(self) -> str:
        token = self.world.heihei[self.name][1]
        # apiVersion=2: only apps that ask for them get v2 IM items (docs/heihei-social.md)
        return self.world.nodes[self.node].url("http", "/ws/channel?apiVersion=2&token=" + urllib.parse.quote(token))

    async def login(self) -> None:
        # the handshake authenticates; the unread count follows the replay once registered
        await self.expect(lambda p: any(_item_action(i) == "message-unread-count" for i in _items(p)),
                          LOGIN_TIMEOUT_S)

    async def connect_failed(self, error: BaseException) -> None:
        # a client whose session is gone (401 in the handshake) signs in again
        if "401" in str(error) and self.world.heihei_sign_in is not None:
            self.world.events["heihei token refused (401), signed in again"] += 1
            try:
                await self.world.heihei_sign_in(self.name)
            except Exception as e:  # the node or Redis may be away: the next attempt tries again
                self.failures["sign-in again: " + _short(e)] += 1


def _items(payload: bytes) -> list[dict]:
    frame = _json(payload)
    if isinstance(frame, list):
        return [i for i in frame if isinstance(i, dict)]
    return []


def _item_action(item: dict) -> str | None:
    msg = item.get("msg")
    return msg.get("action") if isinstance(msg, dict) and msg.get("msgType") == "action" else None


class ChannelSender(ChannelAgent, Sender):
    def client_id(self, seq: int) -> str:
        return f"{self.name}-{seq}"

    async def send_one(self, out: Outgoing, attempt: int) -> tuple[str, str]:
        cid = out.client_id
        self.conn.send_text(json.dumps({"msgType": "IM", "msg": {
            "toUserId": int(out.to), "msgType": "text", "content": {"text": tag(out.sender, out.seq, attempt)},
            "clientMsgId": cid}}))

        def verdict(payload: bytes):
            for item in _items(payload):
                msg = item.get("msg") or {}
                if msg.get("clientMsgId") != cid:
                    continue
                if item.get("msgType") == "IM" and str(msg.get("fromUserId")) == self.user_id and "msgId" in msg:
                    return "acked", ""
                if _item_action(item) == "im-error":
                    return "refused", f"{msg.get('errorcode')} {msg.get('errormsg', '')}"[:60]
            return None

        return await self.expect(verdict, ACK_TIMEOUT_S)


class ChannelReceiver(ChannelAgent, Receiver):
    def handle(self, payload: bytes) -> None:
        for item in _items(payload):
            msg = item.get("msg") or {}
            if item.get("msgType") == "IM" and str(msg.get("toUserId")) == self.user_id:
                self.got(json.dumps(msg.get("content")))


# -- live: a room message; the sender's own copy (my "1") is the ack ------------------------------


class LiveAgent(Agent):
    proto = "live"

    def url(self) -> str:
        return self.world.nodes[self.node].url("live", "/")

    def request(self, cmd: str, **data) -> None:
        self.conn.send_text(json.dumps({"cmd": cmd, "data": data}, ensure_ascii=False))

    async def answer(self, cmd: str) -> dict:
        return await self.expect(lambda p: _live(p, cmd), LOGIN_TIMEOUT_S)

    async def login(self) -> None:
        self.request("Open", activityId=ACTIVITY)
        opened = await self.answer("Open")
        if opened.get("code") != 1:
            raise Refused(f"Open {opened.get('code')} {opened.get('msg')}")


def _live(payload: bytes, cmd: str) -> dict | None:
    frame = _json(payload)
    if isinstance(frame, dict) and frame.get("cmd") == cmd:
        return frame
    return None


class LiveSender(LiveAgent, Sender):
    async def login(self) -> None:
        await super().login()
        token = self.world.live_tokens.get(self.name)
        if token:
            # a page keeps its token and checks it when it comes back
            self.request("CheckLogin", activityId=ACTIVITY, token=token)
            checked = await self.answer("CheckLogin")
            if checked.get("code") == 1:
                return
            self.world.events["live token refused at CheckLogin"] += 1
        self.request("Login", activityId=ACTIVITY, type="wechat", code=self.name)
        login = await self.answer("Login")
        if login.get("code") != 1:
            raise Refused(f"Login {login.get('code')} {login.get('msg')}")
        self.world.live_tokens[self.name] = login["data"]["token"]

    async def send_one(self, out: Outgoing, attempt: int) -> tuple[str, str]:
        text = tag(out.sender, out.seq, attempt)
        self.request("Message", activityId=ACTIVITY, msg=text, token=self.world.live_tokens[self.name])

        def verdict(payload: bytes):
            frame = _live(payload, "Message")
            if frame is None:
                return None
            if frame.get("code") != 1:
                # answers come in order and this is the only request in flight
                return "refused", f"{frame.get('code')} {frame.get('msg')}"[:60]
            data = frame.get("data") or {}
            if data.get("my") == "1" and data.get("msg") == text:
                return "acked", ""
            return None

        return await self.expect(verdict, ACK_TIMEOUT_S)


class LiveReceiver(LiveAgent, Receiver):
    def handle(self, payload: bytes) -> None:
        frame = _live(payload, "Message")
        if frame is not None and frame.get("code") == 1 and (frame.get("data") or {}).get("my") == "0":
            self.got(frame["data"].get("msg", ""))


SENDERS = {"boss": BossSender, "jim": JimSender, "heihei": ChannelSender, "live": LiveSender,
           "bossgroup": BossGroupSender, "jimgroup": JimGroupSender}
RECEIVERS = {"boss": BossReceiver, "jim": JimReceiver, "heihei": ChannelReceiver, "live": LiveReceiver,
             "bossgroup": BossGroupReceiver, "jimgroup": JimGroupReceiver}
