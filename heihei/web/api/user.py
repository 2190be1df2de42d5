"""`/api/user/...`: sign-in (SMS, WeChat, Weibo), profile, follows and user lists, blocks, discovery,
reports, push devices, config; `/api/usr/report-user` (the seed's other path)."""

from __future__ import annotations

import datetime
import unicodedata

from heihei.web.api import errors as E
from heihei.heihei import profiles
from heihei.heihei.people import USER_TYPES
from heihei.heihei.search import MAX_QUERY_INPUT_CHARS
from heihei.web.api.errors import ApiError, bad_parameter
from heihei.web.kit.params import integer, long, string
from heihei.web.api.base import HEIHEI, ApiModule
from heihei.web.kit.routes import endpoint, new_app
from heihei.textnum import is_digits

PHONE = r"\+?[0-9]{5,20}"
CODE = r"[0-9]{4,8}"
MAX_NAME_CHARS = 20
DATE = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
LATLNG = r"-?[0-9]{1,3}(\.[0-9]{1,12})?[|,]-?[0-9]{1,3}(\.[0-9]{1,12})?"
#: offset/limit of every user list (the seed: offset default 0; limit default 10, max 20)
PAGE = (integer("offset", required=False, default=0, minimum=0, maximum=100000),
        integer("limit", required=False, default=10, minimum=1, maximum=20))
GRAPH_PAGE = (long("userId", minimum=0), *PAGE,
              long("curUserId", required=False, minimum=0,
                   description="isFollowed is computed for this user (default: the caller)"))
SEARCH = (string("queryParameter", max_length=MAX_QUERY_INPUT_CHARS, aliases=("query", "keyword"),
                 description="a heiNum (or its first digits) or part of a display name"), *PAGE)
REPORT = (long("userId", minimum=0), integer("reportType", minimum=1, maximum=4,
                                               description="1 性别不符, 2 广告欺诈, 3 骚扰谩骂, 4 淫秽色情"),
          long("liveId", required=False, description="the live where the report was made"))


def _opt(value) -> str | None:
    return str(value) if value is not None else None


def _number(text: str):
    return int(text) if is_digits(text) and len(text) < 19 else text


async def report(social, call, a) -> dict:
    """`report-user`, at both of the seed's paths."""
    await social.reports.report(call.user, str(a["userId"]), a["reportType"],
                                str(a["liveId"]) if a["liveId"] is not None else None)
    return {"reportmsg": "举报成功!"}


def _check_name(social, name: str) -> str:
    name = name.strip()
    if not name or any(unicodedata.category(ch)[0] == "C" for ch in name):
        raise ApiError(E.ILLEGAL_NAME)
    if social.hub.moderation.clean(name) != name:
        raise ApiError(E.ILLEGAL_NAME)
    return name


def _check_date(name: str, text: str) -> str:
    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        raise bad_parameter(name, "not a date YYYY-MM-DD") from None
    return text


class UserApi(ApiModule):
    app = new_app(HEIHEI)
    prefix = "/api/user"

    async def _signed_in(self, uid: str, created: bool) -> dict:
        await self.social.people.check_not_banned(uid)
        profile = await self.social.accounts.get(uid)
        token = await self.social.tokens.issue(uid)
        need = created or profile.get("registered") != "1"
        return {"token": token, "needRegist": need, "userInfo": profiles.sign_in_info(profile)}

    @endpoint(app, "/get-sms-verification-code", "Send a 6-digit sign-in code by SMS",
              string("phoneNo", pattern=PHONE, max_length=21), auth="open", errors=(400,), returns=("timeout",))
    async def get_sms_code(self, call, a):
        return {"timeout": await self.social.sms.send_code(a["phoneNo"])}

    @endpoint(app, "/sign-in-cl-by-phone", "Sign in with a phone number and its SMS code",
              string("phoneNo", pattern=PHONE, max_length=21), string("verifyCode", pattern=CODE, max_length=8),
              auth="open", errors=(401, 711), returns=("token", "needRegist", "userInfo"))
    async def sign_in_by_phone(self, call, a):
        await self.social.sms.check(a["phoneNo"], a["verifyCode"])
        found = await self.social.accounts.find_or_create(("phone", a["phoneNo"]),
                                                          {"phone": a["phoneNo"], "source": "Phone"})
        return await self._signed_in(found.user, found.created)

    @endpoint(app, "/sign-in", "Sign in with a WeChat or Weibo access token",
              string("accountSource", enum=("Weibo", "Wechat")),
              string("accountToken", max_length=512, description="the WeChat or Weibo access token"),
              string("openId", required=False, required_if=("accountSource", "Wechat"), max_length=128,
                     description="WeChat openid; for Weibo, if given, must be the token's uid"),
              string("unionId", required=False, max_length=128),
              auth="open", errors=(701, 702, 400, 711), returns=("token", "needRegist", "userInfo"))
    async def sign_in(self, call, a):
        if a["accountSource"] == "Wechat":
            ext = await self.social.wechat.verify(a["accountToken"], a["openId"])
        else:
            ext = await self.social.weibo.verify(a["accountToken"], a["openId"])
        found = await self.social.accounts.find_or_create(
            ("extid", ext.source, ext.external_id),
            {"source": ext.source, "openId": ext.external_id, "unionId": ext.union_id or a["unionId"] or "",
             "displayName": ext.display_name, "coverUrl": ext.cover_url or None, "gender": ext.gender,
             "description": ext.description})
        return await self._signed_in(found.user, found.created)

    @endpoint(app, "/sign-out", "End this session: the token stops working on every node")
    async def sign_out(self, call, a):
        await self.social.sign_out(call.user, call.token)

    @endpoint(app, "/update", "Update the signed-in user's profile",
              string("displayName", max_length=MAX_NAME_CHARS, too_long_code=E.NAME_TOO_LONG),
              string("gender", enum=("Male", "Female", "Unspecified")),
              string("birthDay", pattern=DATE, max_length=10, description="YYYY-MM-DD"),
              string("description", required=False, max_length=200),
              string("address", required=False, max_length=128),
              string("latlng", required=False, pattern=LATLNG, max_length=40,
                     description="lat,lng (what the shipped client sends) or lat|lng; stored as lat|lng"),
              errors=(445, 447), returns=("userId",))
    async def update(self, call, a):
        fields = {"displayName": _check_name(self.social, a["displayName"]), "gender": a["gender"],
                  "birthDay": _check_date("birthDay", a["birthDay"]), "registered": "1"}
        for name in ("description", "address", "latlng"):
            if a[name] is not None:
                fields[name] = a[name]
        if "description" in fields:
            fields["description"] = self.social.hub.moderation.clean(fields["description"])
        if "latlng" in fields:
            fields["latlng"] = fields["latlng"].replace(",", "|")
        await self.social.people.save_profile(call.user, fields)
        return {"userId": int(call.user)}

    @endpoint(app, "/info", "A user's profile, with follower and following counts",
              long("uid", minimum=0), long("cuid", required=False, minimum=0,
                                           description="if given, isFollowed/isBlocked are computed for this user"),
              long("liveId", required=False), errors=(710, 736), returns=("result", "userStatus"))
    async def info(self, call, a):
        cuid = str(a["cuid"]) if a["cuid"] is not None else None
        answer = {"result": await self.social.people.info(call.user, str(a["uid"]), cuid)}
        if self.social.chats is not None:  # the chat / co-hosting button (heihei.heihei.userstatus)
            live_id = str(a["liveId"]) if a["liveId"] is not None else None
            status = await self.social.chats.user_status.of(call.user, str(a["uid"]), live_id)
            if status is not None:
                answer["userStatus"] = status
        return answer

    @endpoint(app, "/user-gold", "The caller's diamonds and 黑票 (issue 19)", returns=("user",))
    async def user_gold(self, call, a):
        figures = await self.social.money.payments.statistic(call.user)
        return {"user": {"userId": int(call.user), **figures}}

    @endpoint(app, "/follow", "Follow a user (idempotent)", long("userId", minimum=0),
              long("liveId", required=False, description="the live where the follow happened (accepted, unused "
                                                          "until live rooms exist)"),
              errors=(710, 711, 400))
    async def follow(self, call, a):
        await self.social.people.follow(call.user, str(a["userId"]))

    @endpoint(app, "/unfollow", "Stop following a user (idempotent)", long("userId", minimum=0), errors=(710,))
    async def unfollow(self, call, a):
        await self.social.people.unfollow(call.user, str(a["userId"]))

    @endpoint(app, "/list-follower", "A user's followers, the most recent first", *GRAPH_PAGE,
              errors=(710, 736), returns=("totalSize", "result"))
    async def list_follower(self, call, a):
        total, users = await self.social.people.followers_page(call.user, str(a["userId"]), a["offset"], a["limit"],
                                                               _opt(a["curUserId"]))
        return {"totalSize": total, "result": users}

    @endpoint(app, "/list-following", "The users a user follows, the most recent first", *GRAPH_PAGE,
              errors=(710, 736), returns=("totalSize", "result"))
    async def list_following(self, call, a):
        total, users = await self.social.people.following_page(call.user, str(a["userId"]), a["offset"], a["limit"],
                                                               _opt(a["curUserId"]))
        return {"totalSize": total, "result": users}

    @endpoint(app, "/block-user", "Block a user (no IM either way; follows both ways end)", long("userId", minimum=0),
              errors=(710, 400))
    async def block_user(self, call, a):
        await self.social.people.block(call.user, str(a["userId"]))

    @endpoint(app, "/unblock-user", "Unblock a user", long("targetId", minimum=0, aliases=("userId",)),
              errors=(710,))
    async def unblock_user(self, call, a):
        await self.social.people.unblock(call.user, str(a["targetId"]))

    @endpoint(app, "/list-blocked-user", "The signed-in user's block list, most recent first", *PAGE,
              returns=("totalSize", "result"))
    async def list_blocked(self, call, a):
        total, users = await self.social.people.blocked_page(call.user, a["offset"], a["limit"])
        return {"totalSize": total, "result": users}

    @endpoint(app, "/list-user-byType", "Users of a kind: recommended by operators, the newest, anchors",
              string("type", required=False, default="recommend", enum=tuple(USER_TYPES), aliases=("userType",),
                     description="recommend (0), new (1) or anchor (2)"), *PAGE, returns=("totalSize", "result"))
    async def list_by_type(self, call, a):
        total, users = await self.social.people.by_type(call.user, a["type"], a["offset"], a["limit"])
        return {"totalSize": total, "result": users}

    @endpoint(app, "/list-active-user", "Users active recently, the most recent first", *PAGE,
              returns=("totalSize", "result"))
    async def list_active(self, call, a):
        total, users = await self.social.people.active(call.user, a["offset"], a["limit"])
        return {"totalSize": total, "result": users}

    @endpoint(app, "/search", "Users by heiNum or display name: the exact heiNum first, then heiNum "
              "prefixes, then names (a match at the start first, shorter names first)", *SEARCH,
              errors=(700,), returns=("users",))
    async def search(self, call, a):
        return await self._search(call, a)

    @endpoint(app, "/usearch", "The same search under the name the init URL map gives", *SEARCH,
              errors=(700,), returns=("users",))
    async def usearch(self, call, a):
        return await self._search(call, a)

    async def _search(self, call, a):
        found = await self.social.search.search(a["queryParameter"], a["offset"], a["limit"])
        return {"users": await self.social.people.list_users(call.user, found.uids)}

    @endpoint(app, "/isinlive", "Is a user broadcasting a live now?", long("userId", minimum=0, aliases=("uid",)),
              errors=(710,), returns=("isinlive", "liveId"))
    async def isinlive(self, call, a):
        live = await self.social.people.live_status(str(a["userId"]))
        return {"isinlive": 1 if live else 0, "liveId": _number(live.live_id) if live else 0}

    @endpoint(app, "/report-user", "Report a user to the operators", *REPORT, errors=(710, 400),
              returns=("reportmsg",))
    async def report_user(self, call, a):
        return await report(self.social, call, a)

    @endpoint(app, "/bind-phone", "Bind a phone number (checked with an SMS code) to the account",
              string("phone", pattern=PHONE, max_length=21, aliases=("phoneNo",)),
              string("verifyCode", pattern=CODE, max_length=8, aliases=("code",)),
              errors=(401, 403))
    async def bind_phone(self, call, a):
        await self.social.sms.check(a["phone"], a["verifyCode"])
        if not await self.social.accounts.bind_phone(call.user, a["phone"]):
            raise ApiError(E.PHONE_TAKEN)

    @endpoint(app, "/push-device-info", "Register this device for offline pushes",
              string("uuid", required=False, max_length=128,
                     description="the device id; optional (Android 10+ and a denied phone permission give none): "
                                 "without it the device is known by its apnsToken"),
              string("apnsType", enum=("apns", "getui", "gcm")),
              string("apnsToken", max_length=512, description="APNs token (iOS) or Getui cid (Android)"),
              string("deveiceType", enum=("android", "ios"), aliases=("deviceType",)))
    async def push_device_info(self, call, a):
        await self.social.devices.register(call.user, call.token, a["uuid"], a["apnsType"], a["apnsToken"],
                                           a["deveiceType"])

    @endpoint(app, "/get-config", "The user's settings and server settings", returns=("configuration",))
    async def get_config(self, call, a):
        profile = await self.social.accounts.get(call.user) or {}
        return {"configuration": {"user": {"push_enable": profile.get("push_enable", "1")},
                                  "sys": {"serverTime": int(self.social.clock.seconds()),
                                          "channel": self.social.channel_url}}}

    @endpoint(app, "/update-config", "Change the user's settings", string("push_enable", enum=("0", "1")))
    async def update_config(self, call, a):
        await self.social.accounts.update(call.user, {"push_enable": a["push_enable"]})


class UsrApi(ApiModule):
    """`/api/usr/report-user`: the path the seed's report-user section gives (the URL map says /api/user)."""

    app = new_app(HEIHEI)
    prefix = "/api/usr"

    @endpoint(app, "/report-user", "Report a user to the operators (the seed's other path)", *REPORT,
              errors=(710, 400), returns=("reportmsg",))
    async def report_user(self, call, a):
        return await report(self.social, call, a)
