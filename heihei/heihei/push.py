"""
Offline push: device registrations, and who is notified when their user has
no live channel.

A push is the seed's `push` structure, one per registered device:

    {"title", "text", "action", "link", "msgId", "fromUserName", "fromUserId",
     "gender", "data": {}, "deviceType", "clientid", "pushType"}

(`clientid` is the device's `apnsToken` — the Getui cid on Android, the APNs
token on iOS — and `pushType` its `apnsType`, so an adapter knows where to
send it.) `link` follows the seed's "link的值" table (`link_for`).

A `PushProvider` delivers each one: the node's router
(`heihei.outbound.push_factory`), which hands it to the provider for the
device's `apnsType` (Getui, APNs, FCM, the log or a webhook). When the service
says the device's token is dead (`DeviceGone`), the device is unregistered.

Redis: `pushdev:heihei:<user>` HASH uuid -> JSON {apnsType, apnsToken,
deviceType, t}; `devowner:heihei:<uuid>` -> user (a device belongs to the
last user who registered it); `tokdev:heihei:<token hash>` -> uuid (sign-out
unregisters the device the session registered).
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import quote

import orjson
from twisted.internet import defer
from twisted.internet.task import deferLater
from twisted.logger import Logger

from heihei.heihei.accounts import GC_SLACK_MS, REALM, token_hash
from heihei.incidents import STORE, report
from heihei.store.client import StoreUnavailable
from heihei.outbound.push import PushProvider
from heihei.outbound.push_errors import CredentialsRejected, DeviceGone, PushError
from heihei.store.keys import key
from heihei.store.scripts import Script
from heihei.textnum import is_int_text

LINK_BASE = "wmlives_heihei://"

REGISTER_DEVICE = Script("heihei_register_device", r"""
-- KEYS: 1 the user's device hash, 2 the device's owner key, 3 token -> device key
-- ARGV: 1 user, 2 uuid, 3 device json, 4 device-hash key prefix, 5 max devices, 6 token key px
local prev = redis.call('GET', KEYS[2])
if prev and prev ~= ARGV[1] then redis.call('HDEL', ARGV[4] .. prev, ARGV[2]) end
redis.call('SET', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[6])
local all = redis.call('HGETALL', KEYS[1])
while #all / 2 > tonumber(ARGV[5]) do
  local oldest, oldest_t, at = nil, nil, nil
  for i = 1, #all, 2 do
    local ok, d = pcall(cjson.decode, all[i + 1])
    local t = (ok and type(d) == 'table' and tonumber(d.t)) or 0
    if oldest_t == nil or t < oldest_t then oldest, oldest_t, at = all[i], t, i end
  end
  redis.call('HDEL', KEYS[1], oldest)
  table.remove(all, at + 1); table.remove(all, at)
end
return 1
""")

UNREGISTER_DEVICE = Script("heihei_unregister_device", r"""
-- KEYS: 1 the user's device hash, 2 the device's owner key, 3 token -> device key. ARGV: 1 user, 2 uuid
redis.call('HDEL', KEYS[1], ARGV[2])
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
redis.call('DEL', KEYS[3])
return 1
""")


DROP_DEVICE = Script("heihei_drop_device", r"""
-- KEYS: 1 the user's device hash, 2 the device's owner key. ARGV: 1 user, 2 uuid, 3 the dead push token.
-- Only if the device still has that token (it may have registered a new one meanwhile). Returns 1 if dropped.
local device = redis.call('HGET', KEYS[1], ARGV[2])
if not device then return 0 end
local ok, d = pcall(cjson.decode, device)
if ARGV[3] ~= '' and (not ok or type(d) ~= 'table' or d.apnsToken ~= ARGV[3]) then return 0 end
redis.call('HDEL', KEYS[1], ARGV[2])
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return 1
""")


#: the shipped client's gender numbers (User.java: MALE 0, FEMALE 1, UNSPECIFIED -1)
GENDER_NUMBERS = {"Male": 0, "Female": 1, "Unspecified": -1}


def gender_number(gender: Any) -> int:
    if isinstance(gender, int) and not isinstance(gender, bool) and gender in (-1, 0, 1):
        return gender
    if isinstance(gender, str) and is_int_text(gender) and int(gender) in (-1, 0, 1):
        return int(gender)
    return GENDER_NUMBERS.get(gender, -1) if isinstance(gender, str) else -1


def link_for(action: str, gender_text: bool = False, **values: Any) -> str:
    """The seed's link for an action (live, message, homepage, webview, user, replay, duechat).

    A chat invite (`duechat` -> `acceptchat?...`) is parsed by the shipped client
    (OutLinkActivity.handleDueChat): it reads the inviter's name as `userName` and `gender` as
    an int (0 male, 1 female, -1 unspecified). So the link carries `userName` besides the seed's
    `fromUserName`, and the gender as that number, or as the seed's text with `gender_text`."""
    def q(v: Any) -> str:
        return quote(str(v), safe="")

    if action == "live":
        return f"{LINK_BASE}live?id={q(values.get('id', ''))}"
    if action == "homepage":
        return f"{LINK_BASE}homepage"
    if action == "webview":
        return f"{LINK_BASE}webview?url={q(values.get('url', ''))}&type={q(values.get('type', 0))}"
    if action == "user":
        return f"{LINK_BASE}user?id={q(values.get('id', ''))}"
    if action == "replay":
        return f"{LINK_BASE}replay?id={q(values.get('id', ''))}"
    if action == "duechat":
        gender = values.get("gender", "")
        gender = gender if gender_text else gender_number(gender)
        link = (f"{LINK_BASE}acceptchat?chatId={q(values.get('chatId', ''))}&type={q(values.get('type', 0))}"
                f"&userId={q(values.get('userId', ''))}&fromUserName={q(values.get('fromUserName', ''))}"
                f"&userName={q(values.get('fromUserName', ''))}&gender={q(gender)}")
        if values.get("msgId"):
            link += f"&msgId={q(values['msgId'])}"
        return link
    return f"{LINK_BASE}message"


def device_id_of(apns_type: str, apns_token: str) -> str:
    """A stable device id for a device that sent none: from its push service and token."""
    return "tok-" + hashlib.sha256(f"{apns_type}|{apns_token}".encode("utf-8")).hexdigest()[:32]


class Devices:
    def __init__(self, store, clock, *, max_per_user: int, token_ttl_s: float) -> None:
        self.store = store
        self.clock = clock
        self.max_per_user = max_per_user
        self.token_ttl_ms = int(token_ttl_s * 1000)

    async def register(self, uid: str, token: str, uuid: str | None, apns_type: str, apns_token: str,
                       device_type: str) -> None:
        """Register a device; without a `uuid` (Android 10+, a denied phone permission) the device is
        known by its push token."""
        uuid = uuid or device_id_of(apns_type, apns_token)
        device = {"apnsType": apns_type, "apnsToken": apns_token, "deviceType": device_type,
                  "t": int(self.clock.seconds() * 1000)}
        await REGISTER_DEVICE(self.store, [key("pushdev", REALM, uid), key("devowner", REALM, uuid),
                                           key("tokdev", REALM, token_hash(token))],
                              [uid, uuid, orjson.dumps(device).decode(), key("pushdev", REALM) + ":",
                               self.max_per_user, self.token_ttl_ms + GC_SLACK_MS])

    async def unregister_session(self, uid: str, token: str) -> None:
        """Sign-out: the device this session registered stops getting the user's pushes."""
        tk = key("tokdev", REALM, token_hash(token))
        uuid = await self.store.get(tk)
        if uuid:
            await UNREGISTER_DEVICE(self.store, [key("pushdev", REALM, uid), key("devowner", REALM, uuid), tk],
                                    [uid, uuid])

    async def unregister_device(self, uid: str, uuid: str, apns_token: str = "") -> bool:
        """The push service says this device's token is dead: the device stops getting pushes (only
        if it still has `apns_token`, when given). True if it was dropped."""
        return int(await DROP_DEVICE(self.store, [key("pushdev", REALM, uid), key("devowner", REALM, uuid)],
                                     [uid, uuid, apns_token])) == 1

    async def of(self, uid: str) -> dict[str, dict[str, Any]]:
        raw = await self.store.hgetall(key("pushdev", REALM, uid))
        out = {}
        for uuid, text in raw.items():
            try:
                out[uuid] = orjson.loads(text)
            except orjson.JSONDecodeError:
                continue
        return out


#: a push that cannot read its user's devices waits this long before each further try
PUSH_RETRY_DELAYS_S = (1.0, 5.0, 30.0)


class Pusher:
    """Sends a push to every device of a user who wants pushes, in the background."""

    _log = Logger()

    def __init__(self, accounts, devices: Devices, provider: PushProvider, metrics=None, *, clock=None) -> None:
        self.accounts = accounts
        self.devices = devices
        self.provider = provider
        self.metrics = metrics
        if clock is None:
            from twisted.internet import reactor as clock
        self.clock = clock
        self._in_flight: set[defer.Deferred] = set()
        self._rejected_services: set[str] = set()

    def notify(self, uid: str, push: dict[str, Any]) -> defer.Deferred:
        """Start pushing; never raises, logs failures. The Deferred fires when done."""
        d = defer.Deferred.fromCoroutine(self._notify_retrying(uid, push))
        self._in_flight.add(d)

        d.addErrback(lambda f: report(f, self._log, "push to user {user} failed", user=uid))
        d.addBoth(lambda result: (self._in_flight.discard(d), result)[1])
        return d

    async def _notify_retrying(self, uid: str, push: dict[str, Any]) -> int:
        """A push whose user or devices cannot be read (Redis away) is tried again a few times on the
        node's clock before it is given up (and counted in the storage incident)."""
        for delay in (*PUSH_RETRY_DELAYS_S, None):
            try:
                return await self._notify(uid, push)
            except StoreUnavailable as e:
                if delay is None:
                    raise
                STORE.happened(str(e), during="an offline push (tried again later)")
                await deferLater(self.clock, delay, lambda: None)
        return 0

    async def _notify(self, uid: str, push: dict[str, Any]) -> int:
        profile = await self.accounts.get(uid)
        if not profile or profile.get("push_enable", "1") != "1":
            return 0
        sent = 0
        for uuid, device in (await self.devices.of(uid)).items():
            item = {**push, "deviceType": device.get("deviceType", ""), "clientid": device.get("apnsToken", ""),
                    "pushType": device.get("apnsType", "")}
            try:
                await self.provider.send(item)
                sent += 1
            except DeviceGone as e:
                dropped = await self.devices.unregister_device(uid, uuid, e.clientid)
                self._log.info("{service} says device {uuid} of user {user} is gone ({reason}); {what}",
                               service=e.service, uuid=uuid, user=uid, reason=e.reason,
                               what="unregistered" if dropped else "it has registered again since")
            except CredentialsRejected as e:
                if e.service not in self._rejected_services:  # every push fails until fixed: say it once
                    self._rejected_services.add(e.service)
                    self._log.error("{service} refuses our credentials, no push reaches its devices until the "
                                    "[push] settings are fixed: {error}", service=e.service, error=str(e))
            except PushError as e:
                self._log.warn("push to device {uuid} of user {user} failed: {error}", uuid=uuid, user=uid,
                               error=str(e))
            except Exception:
                self._log.failure("push to device {uuid} of user {user} failed", uuid=uuid, user=uid)
        return sent

    async def drain(self) -> None:
        """Wait for pushes in flight (at shutdown)."""
        pending = list(self._in_flight)
        if pending:
            await defer.DeferredList(pending, consumeErrors=True)
