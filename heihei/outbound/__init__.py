"""
Outbound services: every HTTP call heihei makes to someone else, each behind a
small interface, all over one `HttpClient` per node.

    http.py      HttpClient: one pool, a deadline and a bounded read per call, typed errors
    wechat.py    WeChatApi: exchange_code (live Login), userinfo (heihei sign-in)
    weibo.py     WeiboApi: verify (heihei sign-in)
    sms.py       SmsProvider: log | http
    demo.py      the demo profile's WeChat and SMS stand-ins ([server] demo only)
    push.py      PushProvider: log | webhook
    push_factory.py  the push router: each device to its service (push_getui, push_apns, push_fcm, log, webhook)
    profiles.py  ProfileSource: boss profile lookups and avatar downloads
    jim_auth.py  AuthHook: the J-IM username/password hook
    aliyun_oss.py AliyunOss: upload credentials from Aliyun STS ([uploads] provider = "aliyun")

`Outbound.from_settings` builds them once per node from the settings; the
realms receive the providers they need and map the providers' errors to their
own. Nothing else in heihei imports treq or builds an HTTP client.
"""

from __future__ import annotations

from dataclasses import dataclass

from heihei.config import ConfigError
from heihei.outbound.aliyun_oss import AliyunOss
from heihei.outbound.demo import DemoSms, DemoWeChat
from heihei.outbound.http import HttpClient
from heihei.outbound.jim_auth import AuthHook, HttpAuthHook
from heihei.outbound.profiles import HttpProfiles, ProfileSource
from heihei.outbound.push import PushProvider, make_push_provider
from heihei.outbound.push_factory import PushRouter, make_push_router, trust_root_from
from heihei.outbound.sms import SmsProvider, make_sms_provider
from heihei.outbound.wechat import NoWeChat, WeChatApi, WeChatClient
from heihei.outbound.weibo import WeiboApi, WeiboClient


@dataclass
class Outbound:
    http: HttpClient
    #: the live realm's WeChat web app: [live] wechat_api, wechat_appid, wechat_secret
    wechat_for_live: WeChatApi
    #: the heihei app's WeChat sign-in: [heihei] wechat_api_url
    wechat_for_heihei: WeChatApi
    weibo: WeiboApi
    sms: SmsProvider
    #: routes each push to the provider for its device's apnsType ([push] provider, provider_<apnsType>)
    push: PushRouter
    profiles: ProfileSource
    #: None without [jim] auth_url
    jim_auth: AuthHook | None
    #: the heihei app's upload storage when [uploads] provider = "aliyun", else None
    aliyun_oss: AliyunOss | None = None

    @classmethod
    def from_settings(cls, settings, *, reactor, clock=None) -> "Outbound":
        """Every provider the settings ask for, over one HttpClient whose deadlines run on `clock`.

        Raises ConfigError for a provider that cannot work as configured."""
        http = HttpClient(reactor, clock=clock)
        live, heihei, boss, jim = settings.live, settings.heihei, settings.boss, settings.jim
        if live.wechat_appid and live.wechat_secret:
            wechat_for_live: WeChatApi = WeChatClient(http, live.wechat_api, appid=live.wechat_appid,
                                                      secret=live.wechat_secret, timeout_s=live.wechat_timeout_s)
        else:
            wechat_for_live = NoWeChat()
        wechat_for_heihei: WeChatApi = WeChatClient(http, heihei.wechat_api_url, timeout_s=heihei.oauth_timeout_s)
        sms = make_sms_provider(settings.sms, http)
        if settings.server.demo:  # loopback-only demo node: no login or code leaves the machine
            wechat_for_live = wechat_for_heihei = DemoWeChat()
            sms = DemoSms()
        return cls(
            http=http,
            wechat_for_live=wechat_for_live,
            wechat_for_heihei=wechat_for_heihei,
            weibo=WeiboClient(http, heihei.weibo_api_url, timeout_s=heihei.oauth_timeout_s),
            sms=sms,
            push=make_push_router(settings.push, reactor=reactor, clock=clock,
                                  other=lambda kind: make_push_provider(settings.push, http, kind),
                                  trust_root=trust_root_from(settings.push.apns_ca_file)),
            profiles=HttpProfiles(http, nickname_url=boss.profile_nickname_url, avatar_url=boss.profile_avatar_url,
                                  timeout_s=boss.profile_timeout_s),
            jim_auth=(HttpAuthHook(http, jim.auth_url, secret=jim.auth_secret, timeout_s=jim.auth_timeout_s)
                      if jim.auth_url else None),
            aliyun_oss=_aliyun_oss(settings.uploads, http),
        )

    async def close(self) -> None:
        """At node stop (after the services, whose pushes have drained): the push adapters' connections
        (APNs' HTTP/2 connection, ...), then the pool."""
        await self.push.close()
        await self.http.close()


def _aliyun_oss(u, http: HttpClient) -> AliyunOss | None:
    if u.provider != "aliyun":
        return None
    try:
        return AliyunOss(http, access_key_id=u.aliyun_access_key_id, access_key_secret=u.aliyun_access_key_secret,
                         role_arn=u.aliyun_role_arn, bucket=u.bucket, oss_endpoint=u.aliyun_oss_endpoint,
                         public_base_url=u.public_base_url, sts_base_url=u.aliyun_sts_url,
                         timeout_s=u.aliyun_timeout_s, max_duration_s=u.aliyun_max_duration_s)
    except ValueError as e:
        raise ConfigError(f"[uploads] {e}") from None
