"""`/api/social/...` (home-page banners, gift resources) and `/api/sms/...` (binding a phone)."""

from __future__ import annotations

from heihei.heihei.catalogs import parse_gift_ids
from heihei.web.api.base import HEIHEI, ApiModule
from heihei.web.api.user import CODE, PHONE
from heihei.web.kit.params import string
from heihei.web.kit.routes import endpoint, new_app


class SocialApi(ApiModule):
    app = new_app(HEIHEI)
    prefix = "/api/social"

    @endpoint(app, "/get-banner", "The home page's banners (operators manage them)",
              returns=("expireTime", "banners"))
    async def get_banner(self, call, a):
        return await self.social.catalogs.banner_answer()

    @endpoint(app, "/gift-resources", "Downloadable resources of the gifts (current and retired)",
              string("giftIds", required=False, max_length=2200, description="gift ids separated by commas; "
                                                                             "none: every gift"),
              returns=("resources", "historyGiftRes"))
    async def gift_resources(self, call, a):
        return await self.social.catalogs.gift_answer(parse_gift_ids(a["giftIds"]))


class SmsApi(ApiModule):
    """The URL map's `registerPhone` and `verifyPhone` (no parameter tables in the seed: the names are
    the other endpoints', see docs/heihei-social.md)."""

    app = new_app(HEIHEI)
    prefix = "/api/sms"

    @endpoint(app, "/register-phone", "Send an SMS code for binding a phone number to the account",
              string("phoneNo", pattern=PHONE, max_length=21, aliases=("phone", "mobile")),
              errors=(400, 403), returns=("timeout",))
    async def register_phone(self, call, a):
        return {"timeout": await self.social.people.register_phone(call.user, a["phoneNo"], self.social.sms)}

    @endpoint(app, "/verify-phone", "Check the SMS code and bind the phone number to the account",
              string("phoneNo", pattern=PHONE, max_length=21, aliases=("phone", "mobile")),
              string("verifyCode", pattern=CODE, max_length=8, aliases=("code",)),
              errors=(401, 403))
    async def verify_phone(self, call, a):
        await self.social.people.verify_phone(call.user, a["phoneNo"], a["verifyCode"], self.social.sms)
