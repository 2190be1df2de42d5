"""
`Money`: the heihei app's money on one node, built from `[payment]` — the
ledger, the operators' money freezes, the money catalog, the payment providers that are configured, the
payments and the paid items of live rooms. The composition root
(heihei/realms.py) makes one and hands it to the REST sections
(`social.money`), the operators and the live rooms.

A Service so that the providers' HTTP connection pool closes at stop. A
provider whose settings are empty is left out (its channel lists no packages
and create-order refuses it); a provider with half its settings, or a key that
does not load, stops the start (a ConfigError).
"""

from __future__ import annotations

from twisted.application.service import Service
from twisted.internet import defer
from twisted.logger import Logger

from heihei.config import ConfigError
from heihei.heihei.catalogs import CatalogError, load_file
from heihei.heihei.identity import IdentityBox
from heihei.heihei.ledger import Ledger
from heihei.heihei.moneycatalog import MoneyCatalog, check_money
from heihei.heihei.moneyfreeze import MoneyFreezes
from heihei.heihei.payments import Payments
from heihei.outbound.payments.errors import ConfigError as ProviderConfigError
from heihei.paths import resource

#: how many times a gift is priced again when the catalog changed under it
STALE_PRICE_TRIES = 4


def _providers(s, http, clock) -> dict:
    from heihei.outbound.payments.alipay import Alipay, AlipayConfig
    from heihei.outbound.payments.iap import AppleIAP, AppleIAPConfig
    from heihei.outbound.payments.wechatpay import WeChatPay, WeChatPayConfig
    out: dict = {"wechat": None, "alipay": None, "iap": None}
    if (s.wechat_mchid or s.wechat_appid) and not (s.wechat_notify_url.startswith("https://")
                                                  and "?" not in s.wechat_notify_url):
        raise ConfigError("[payment] wechat_notify_url must be the https URL of /api/payment/wepaycallback")
    if s.alipay_app_id and not s.alipay_notify_url.startswith(("https://", "http://")):
        raise ConfigError("[payment] alipay_notify_url must be the URL of /api/payment/alipaycallback")
    try:
        if s.wechat_mchid or s.wechat_appid:
            out["wechat"] = WeChatPay(WeChatPayConfig(
                appid=s.wechat_appid, mchid=s.wechat_mchid, merchant_serial_no=s.wechat_merchant_serial_no,
                merchant_private_key=s.wechat_merchant_private_key, apiv3_key=s.wechat_apiv3_key,
                platform_certificates=tuple(s.wechat_platform_certificates),
                platform_public_key=s.wechat_platform_public_key,
                platform_public_key_id=s.wechat_platform_public_key_id, api_url=s.wechat_api_url,
                timeout_s=s.timeout_s, notification_window_s=s.wechat_notification_window_s), http, clock=clock)
        if s.alipay_app_id:
            out["alipay"] = Alipay(AlipayConfig(
                app_id=s.alipay_app_id, app_private_key=s.alipay_app_private_key,
                alipay_public_key=s.alipay_public_key, app_public_cert=s.alipay_app_public_cert,
                alipay_public_cert=s.alipay_public_cert, alipay_root_cert=s.alipay_root_cert,
                seller_id=s.alipay_seller_id, gateway_url=s.alipay_gateway_url, timeout_s=s.timeout_s,
                notification_max_age_s=s.alipay_notification_max_age_s), http, clock=clock)
        if s.iap_enabled:
            out["iap"] = AppleIAP(AppleIAPConfig(
                shared_secret=s.iap_shared_secret, bundle_id=s.iap_bundle_id, production_url=s.iap_production_url,
                sandbox_url=s.iap_sandbox_url, accept_sandbox=s.iap_accept_sandbox, timeout_s=s.timeout_s),
                http, clock=clock)
    except ProviderConfigError as e:
        raise ConfigError(f"[payment] {e}") from None
    return out


#: a combo (one gift_uuid, `amount` counting up) longer than this is not a client's
MAX_COMBO = 100_000


def check_combo(amount: int) -> None:
    """A gift's `amount` (the combo's counter) within 1..MAX_COMBO; else BAD_PARAMETER (700)."""
    if not 1 <= amount <= MAX_COMBO:
        from heihei.core.errors import Refused
        from heihei.heihei.errors import BAD_PARAMETER
        raise Refused(BAD_PARAMETER, f"amount (1 to {MAX_COMBO})")


class Money(Service):
    _log = Logger()
    name = "heihei-money"

    def __init__(self, settings, *, store, clock, reactor, accounts, img_base: str, http=None) -> None:
        s = self.settings = settings.payment
        if s.gift_once_s <= 0 or s.order_ttl_s <= 0 or s.timeout_s <= 0:
            raise ConfigError("[payment] gift_once_s, order_ttl_s and timeout_s must be positive")
        try:
            initial = load_file(s.money_file or str(resource("money.json")), check_money)
        except CatalogError as e:
            raise ConfigError(f"[payment] {e}") from None
        base = img_base.rstrip("/")
        self.catalog = MoneyCatalog(store, initial, absolute=lambda u: base + u if u.startswith("/") else u)
        self.ledger = Ledger(store, clock, gift_once_s=s.gift_once_s)
        #: operators' money freezes (721), enforced by the ledger's scripts
        self.freezes = MoneyFreezes(store, clock)
        self._pool = None
        if http is None and reactor is not None:
            from heihei.outbound.payments.transport import make_http_client_with_pool
            http, self._pool = make_http_client_with_pool(reactor, connect_timeout_s=s.connect_timeout_s)
        self.http = http
        providers = _providers(s, http, clock)
        identity = IdentityBox(s.identity_key) if s.identity_key else None
        self.payments = Payments(store=store, clock=clock, ledger=self.ledger, catalog=self.catalog,
                                 accounts=accounts, settings=s, identity=identity, **providers)
        #: the paid items of live rooms (heihei.heihei.livegifts.LiveGifts), set with the live rooms
        self.live_gifts = None

    async def send_gift(self, sender: str, receiver: str, gift_id: int, *, gift_uuid: str | None = None,
                        amount: int = 1, live_id: str | None = None, cause: str = "gift",
                        count: str | None = None, sender_fields: tuple[str, ...] = ()):
        """A catalog gift from `sender` to `receiver`, charged once per (sender, gift_uuid, amount):
        (the gift's catalog entry, heihei.heihei.ledger.GiftResult). What 1:1 chat gifts
        (`chat/buy-gift`) and live gifts call; 730 (NO_SUCH_GIFT) for a gift not on sale, 740 (NO_GOLD),
        710. The price comes from the catalog in memory and is charged only if the catalog is still
        that version (else priced again: see heihei.heihei.moneycatalog). `count` and `sender_fields`:
        heihei.heihei.ledger.Ledger.send_gift."""
        from heihei.core.errors import Refused
        from heihei.heihei.errors import BUSINESS_FAILED, NO_SUCH_GIFT
        from heihei.heihei.ledger import StaleCatalog
        fresh = False
        for _ in range(STALE_PRICE_TRIES):
            gift, version = await self.catalog.priced_gift(gift_id, fresh=fresh)
            if gift is None:
                if not fresh:  # maybe a gift added since the copy in memory was read
                    fresh = True
                    continue
                raise Refused(NO_SUCH_GIFT, f"giftId {gift_id}")
            try:
                done = await self.ledger.send_gift(
                    sender, receiver, gift["gold"], gift["point"], gift_uuid=gift_uuid, amount=amount,
                    live_id=live_id, cause=cause, note=str(gift_id), price_version=(self.catalog.version_key, version),
                    count=count, sender_fields=sender_fields)
            except StaleCatalog:
                fresh = True  # an operator changed the catalog: price it again
                continue
            return gift, done
        # a catalog changing faster than a gift can be charged is no operator's pace: a refusal, not a loop
        raise Refused(BUSINESS_FAILED, "the gift catalog keeps changing; try again")

    def attach_lives(self, lives) -> None:
        from heihei.heihei.livegifts import LiveGifts
        self.live_gifts = LiveGifts(lives, self)

    def startService(self) -> None:
        super().startService()
        p = self.payments
        offered = [c for c in ("wechat", "alipay", "iap") if p.provider(c) is not None]
        self._log.info("payment channels: {channels}", channels=", ".join(offered) or "none")
        if p.identity is None:
            self._log.warn("[payment] identity_key is empty: verify-alipay and withdrawals are refused")

    def stopService(self) -> defer.Deferred | None:
        super().stopService()
        if self._pool is not None:
            return self._pool.closeCachedConnections()
        return None
