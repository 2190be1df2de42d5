"""`/api/init` (the URL map), `/api/sys/update` and `/api/openapi.json`."""

from __future__ import annotations

import dataclasses

import orjson

from heihei.config import ConfigError
from heihei.heihei.im import api_major
from heihei.jsonsafe import encode_json
from heihei.web.api.base import AUTH_PARAMS, HEIHEI, ApiModule
from heihei.web.api.errors import MESSAGES, bad_parameter
from heihei.web.kit import openapi
from heihei.web.kit.params import long, string
from heihei.web.kit.routes import endpoint, new_app

VERSION = r"[0-9]{1,6}(\.[0-9]{1,6}){0,3}"
#: errormsg of /api/sys/update's answer when an update exists and [heihei] update_errorcode is not 0
UPDATE_AVAILABLE = "有新版本"

#: the seed's URL map: section -> key -> path on this server (`channel` is the push channel)
URL_MAP = {
    "user": {
        "getSMSVerificationCode": "/api/user/get-sms-verification-code",
        "signInCLByPhone": "/api/user/sign-in-cl-by-phone", "signIn": "/api/user/sign-in",
        "signOut": "/api/user/sign-out", "updateUser": "/api/user/update", "userInfo": "/api/user/info",
        "followUser": "/api/user/follow", "unfollowUser": "/api/user/unfollow",
        "listFollower": "/api/user/list-follower", "listFollowing": "/api/user/list-following",
        "listBlockedUser": "/api/user/list-blocked-user", "blockUser": "/api/user/block-user",
        "unblockUser": "/api/user/unblock-user", "listByType": "/api/user/list-user-byType",
        "listActiveUser": "/api/user/list-active-user", "registerPhone": "/api/sms/register-phone",
        "verifyPhone": "/api/sms/verify-phone", "usearch": "/api/user/usearch", "isinlive": "/api/user/isinlive",
        "reportUser": "/api/user/report-user", "bindPhone": "/api/user/bind-phone",
        "pushDeviceInfo": "/api/user/push-device-info", "getConfig": "/api/user/get-config",
        "updateConfig": "/api/user/update-config",
    },
    "social": {"getBanner": "/api/social/get-banner", "giftResources": "/api/social/gift-resources"},
    # beyond the seed's /api/init example: the later versions' sections, under the names they use
    "topic": {k: f"/api/topic/{v}" for k, v in {
        "topicList": "topic-list", "topicDetail": "topic-detail", "createSubject": "create-subject",
        "getSubject": "get-subject", "updateSubject": "update-subject", "subjectDetail": "subject-detail",
        "listenSubject": "listen-subject", "likeSubject": "like-subject", "replySubject": "reply-subject"}.items()},
    "record": {k: f"/api/record/{v}" for k, v in {
        "uploadRecord": "upload-record", "refreshRecord": "refresh-record", "readRecord": "read-record",
        "deleteRecord": "delete-record"}.items()},
    "live": {k: f"/api/live/{v}" for k, v in {
        "createLive": "create-live", "stopLive": "stop-live", "changeLive": "change-live",
        "deleteLive": "delete-live", "setLiveVisible": "set-live-visible", "getLive": "get-live",
        "joinLive": "join-live", "startLive": "start-live", "heartBeat": "heart-beat",
        "listLiveByFollow": "list-live-by-follow", "listLiveByRecommend": "list-live-by-recommend",
        "listLiveByUser": "list-live-by-user", "giftInfo": "gift-info", "buyGift": "buy-gift",
        "buyBullet": "buy-bullet", "liveLike": "live-like", "listLiveUsers": "list-live-users",
        "systemnotify": "systemnotify", "shutupUser": "shutupuser", "shutupOpen": "shutupopen",
        "isshutup": "isshutup", "livemgr": "livemgr", "getuser": "getuser", "shareLive": "share-live",
        "getmgruser": "getmgruser", "pauseLive": "pause-live", "quitLive": "quit-live",
        "continueLive": "continue-live", "listReplayUsers": "list-replay-users"}.items()},
    "message": {
        "sendMsg": "/api/msg/send-msg", "historyMsg": "/api/msg/history-msg", "deleteMsg": "/api/msg/delete-msg",
        "readAllMsg": "/api/msg/read-all-msg", "readOneMsg": "/api/msg/read-one-msg", "channel": None,
        "messageList": "/api/msg/message-list", "messageDel": "/api/msg/message-del",
        "messageReadAll": "/api/msg/message-read-all",
    },
    "payment": {k: f"/api/payment/{v}" for k, v in {
        "createOrder": "create-order", "listPackage": "list-package", "orderNotify": "order-notify",
        "statistic": "statistic", "listP2gPackage": "list-p2g-package", "p2g": "p2g",
        "alipaycallback": "alipaycallback", "wepaycallback": "wepaycallback", "getAlipayInfo": "get-alipay-info",
        "verifyAlipay": "verify-alipay", "payReq": "pay-req", "cash-info": "cash-info"}.items()},
    "chat": {k: f"/api/chat/{v}" for k, v in {
        "matchChat": "match-chat", "stopMatchChat": "stop-match-chat", "joinChat": "join-chat",
        "stopChat": "stop-chat", "buyGift": "buy-gift", "changeTopic": "change-topic", "dueChat": "due-chat",
        "cancelDueChat": "cancel-due-chat", "acceptChat": "accept-chat", "getUserSig": "get-user-sig",
        "heartBeat": "heart-beat"}.items()},
    "sys": {"update": "/api/sys/update", "ossToken": "/api/sys/oss-token", "uploadLog": "/api/sys/upload-log"},
}


def url_map(base: str, channel_url: str, img_path: str) -> dict:
    out: dict = {}
    for section, entries in URL_MAP.items():
        out[section] = {k: (channel_url if v is None else base + v) for k, v in entries.items()}
    out["payment"]["payAgreement"] = base + "/static/app/pay-agreement.html"
    out["aboutus"] = {"socialPact": base + "/static/app/social-pact.html",
                      "serviceTerms": base + "/static/app/service-terms.html",
                      "contactUs": base + "/static/app/contact-us.html"}
    out["tips"] = {}
    out["function"] = {"chat": True}
    out["imgPath"] = img_path or base
    out["actionCode"] = "0"
    return out


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


def load_updates(path: str) -> dict:
    """`[heihei] updates_file`: {"android": {versionCode, url, force, title, text, fileName, channel?}, "ios": ...}."""
    if not path:
        return {}
    try:
        with open(path, "rb") as f:
            data = orjson.loads(f.read())
    except (OSError, orjson.JSONDecodeError) as e:
        raise ConfigError(f"[heihei] updates_file {path}: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"[heihei] updates_file {path}: expected a JSON object")
    for device, info in data.items():
        if device not in ("android", "ios") or not isinstance(info, dict) \
                or not isinstance(info.get("versionCode"), str):
            raise ConfigError(f"[heihei] updates_file {path}: {device!r} needs an object with a versionCode")
        try:
            _version_tuple(info["versionCode"])
        except ValueError:
            raise ConfigError(f"[heihei] updates_file {path}: bad versionCode {info['versionCode']!r}") from None
    return data


class RootApi(ApiModule):
    """`/api/init` and `/api/openapi.json` (the fallback of the `/api` resource)."""

    app = new_app(HEIHEI)
    prefix = "/api"

    def __init__(self, social, modules: list[type[ApiModule]]) -> None:
        super().__init__(social)
        self.modules = modules
        self._document: bytes | None = None

    @endpoint(app, "/init", "The URL map: where every endpoint of this server is",
              string("ap", enum=("heihei",)), string("version", max_length=32),
              string("versionType", required=False, max_length=32),
              string("buildNumber", required=False, max_length=32),
              string("local", enum=("zh_CN", "en_US")),
              string("uuid", required=False, max_length=128,
                     description="the device id; optional (Android 10+ and a denied phone permission give none)"),
              string("model", required=False, max_length=64), string("resolution", required=False, max_length=32),
              string("apiVersion", max_length=16,
                     description="the app's API version; with a valid token, 2 or more also means the session's "
                                 "push channel gets v2 IM items"),
              string("osVersion", required=False, max_length=64),
              string("apnsType", required=False, enum=("apns", "gcm", "getui")),
              string("apnsToken", required=False, max_length=512),
              string("deveiceType", enum=("android", "ios"), aliases=("deviceType",)),
              string("token", required=False, max_length=128,
                     description="if valid and apnsType/apnsToken are given, the device is registered for pushes"),
              string("channel", required=False, max_length=64), long("userId", required=False),
              auth="open", returns=("user", "social", "live", "message", "payment", "chat", "aboutus", "tips", "sys",
                                  "function", "imgPath", "actionCode"))
    async def init(self, call, a):
        social = self.social
        if a["token"]:
            uid = await social.tokens.user_of(a["token"])
            if uid is not None:
                await social.tokens.remember_api_version(a["token"], api_major(a["apiVersion"]))
                if a["apnsType"] and a["apnsToken"]:
                    await social.devices.register(uid, a["token"], a["uuid"], a["apnsType"], a["apnsToken"],
                                                  a["deveiceType"])
        return url_map(social.public_url, social.channel_url, social.settings.img_path)

    def document(self) -> dict:
        always = {"token": {700, 720}, "signature": {700, 701}}  # what every endpoint can answer
        endpoints = [dataclasses.replace(ep, errors=tuple(sorted(set(ep.errors) | always.get(ep.auth, {700}))))
                     for module in self.modules for ep in module.endpoints()]
        return openapi.document([{"endpoints": endpoints, "envelope": "Envelope", "schema": HEIHEI.envelope_schema,
                                  "auth_params": AUTH_PARAMS, "error_text": MESSAGES}],
                                title="heihei API (seed 001)", server_url=self.social.public_url, version="1.0",
                                description="Parameters may be sent in the query string, a form body or a JSON "
                                            "body, with GET or POST. Every answer is {errorcode, errormsg, ...}.")

    @app.route("/openapi.json", methods=["GET"])
    def openapi(self, request):
        if self._document is None:
            self._document = encode_json(self.document())
        request.setHeader(b"content-type", b"application/json; charset=utf-8")
        return self._document


class SysApi(ApiModule):
    app = new_app(HEIHEI)
    prefix = "/api/sys"

    def __init__(self, social) -> None:
        super().__init__(social)
        self.updates = load_updates(social.settings.updates_file)

    @endpoint(app, "/update", "Is there a newer app version for this device?",
              string("versionCode", pattern=VERSION, max_length=32),
              string("devicesType", enum=("android", "ios"), aliases=("deviceType", "deveiceType")),
              string("channel", required=False, max_length=64), auth="open", returns=("info",))
    async def update(self, call, a):
        latest = self.updates.get(a["devicesType"])
        if not latest or _version_tuple(latest["versionCode"]) <= _version_tuple(a["versionCode"]):
            return None
        info = {"force": bool(latest.get("force", False)), "url": latest.get("url", ""),
                "title": latest.get("title", ""), "text": latest.get("text", ""),
                "fileName": latest.get("fileName", ""), "versionCode": latest["versionCode"],
                "channel": a["channel"] or latest.get("channel", "")}
        code = self.social.settings.update_errorcode
        if code:
            # the shipped client reads `info` only from an answer whose errorcode is not 0
            # (MainFragment.update); [heihei] update_errorcode = 0 gives the seed's answer
            return {"errorcode": code, "errormsg": UPDATE_AVAILABLE, "info": info}
        return {"info": info}

    @endpoint(app, "/oss-token", "Temporary credentials to upload one file, and where it goes",
              string("format", enum=("mp3", "png", "jpeg", "jepg", "jpg"), description="jepg is the seed's jpeg"),
              string("module", enum=("record", "message", "avatar", "avator"), description="avator is the seed's avatar"),
              auth="token", errors=(400,), returns=("Credentials", "FileInfo"))
    async def oss_token(self, call, a):
        return await self.social.files.issue(call.user, a["format"], a["module"])

    @endpoint(app, "/upload-log", "Keep a log the app sends (for the operators)",
              string("log", max_length=1_000_000, description="at most [social] client_log_max_bytes (UTF-8)"),
              auth="token", errors=(400,))
    async def upload_log(self, call, a):
        logs = self.social.client_logs
        if len(a["log"].encode("utf-8")) > logs.max_bytes:
            raise bad_parameter("log", f"larger than {logs.max_bytes} bytes")
        logs.write(call.user, a["log"])
