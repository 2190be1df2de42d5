"""
Building the offline-push providers from settings, and routing each push to
the provider for its device's `apnsType` (the push's `pushType`).

The `[push]` keys are `heihei.config.PushSettings`'; docs/providers-push.md
describes each key and how to obtain the credentials. `Outbound.from_settings`
builds the router once per node.

    make_push_provider("getui" | "apns" | "fcm", settings, reactor=...)  -> the adapter
    make_push_router(settings, reactor=..., other=make_provider)         -> PushRouter

`provider` stays the provider for every device (log, webhook);
`provider_getui`, `provider_apns`, `provider_gcm` override it for the devices
registered with that apnsType ("" = use `provider`; "none" = no offline push
for them). An adapter only ever gets its own devices: getui <- getui,
apns <- apns, fcm <- gcm; naming another pairing is a ConfigError, and
`provider = "apns"` (say) routes only apns devices, the others get no route
(the router raises PermanentPushError for them). Kinds other than
getui/apns/fcm/none (log, webhook) are built by `other(kind)`, the existing
factory, so this module does not depend on where those providers live.

Settings problems (a missing key file, a key of the wrong kind, an unknown
click type) raise `ConfigError` at start-up, naming the `[push]` key and never
quoting a secret.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from twisted.logger import Logger

from heihei.config import ConfigError
from heihei.outbound.push_apns import ApnsPush
from heihei.outbound.push_auth import BadKey
from heihei.outbound.push_errors import PermanentPushError
from heihei.outbound.push_fcm import BadServiceAccount, FcmPush, ServiceAccount
from heihei.outbound.push_getui import GetuiPush

ADAPTER_KINDS = ("getui", "apns", "fcm")
#: the apnsType values a device registers with (seed 001: apns, gcm, getui)
APNS_TYPES = ("getui", "apns", "gcm")
#: the only adapter that can reach devices of each apnsType
ADAPTER_FOR = {"getui": "getui", "apns": "apns", "gcm": "fcm"}


class PushProvider(Protocol):
    async def send(self, push: dict[str, Any]) -> None:
        """Deliver one push to one device, or raise."""


def make_push_provider(kind: str, settings, *, reactor, clock=None, trust_root=None) -> PushProvider:
    """The adapter `kind` ("getui", "apns" or "fcm") configured from `settings`'s `[push]` keys."""
    try:
        if kind == "getui":
            return GetuiPush(app_id=settings.getui_app_id, app_key=settings.getui_app_key,
                             master_secret=settings.getui_master_secret, base_url=settings.getui_base_url,
                             reactor=reactor, clock=clock, timeout_s=settings.timeout_s, ttl_s=settings.getui_ttl_s,
                             click_type=settings.getui_click_type,
                             intent_component=settings.getui_intent_component,
                             vendor_channel=settings.getui_vendor_channel)
        if kind == "apns":
            return ApnsPush(team_id=settings.apns_team_id, key_id=settings.apns_key_id,
                            private_key_pem=_read("apns_key_file", settings.apns_key_file),
                            topic=settings.apns_topic, base_url=settings.apns_base_url, reactor=reactor,
                            clock=clock, timeout_s=settings.timeout_s, expiration_s=settings.apns_expiration_s,
                            priority=settings.apns_priority, trust_root=trust_root)
        if kind == "fcm":
            account = ServiceAccount.from_json(_read("fcm_service_account_file", settings.fcm_service_account_file))
            return FcmPush(account, project_id=settings.fcm_project_id, base_url=settings.fcm_base_url,
                           token_uri=settings.fcm_token_uri, reactor=reactor, clock=clock,
                           timeout_s=settings.timeout_s)
    except (BadKey, BadServiceAccount) as e:
        key = "apns_key_file" if kind == "apns" else "fcm_service_account_file"
        raise ConfigError(f"[push] {key}: {e}") from None
    except ValueError as e:
        raise ConfigError(f"[push] {kind}: {e}") from None
    raise ConfigError(f"[push] provider kind must be one of {', '.join(ADAPTER_KINDS)}, not {kind!r}")


def _read(key: str, path: str) -> bytes:
    if not path:
        raise ConfigError(f"[push] {key} is not set")
    try:
        with open(path, "rb") as f:
            return f.read(256 * 1024)
    except OSError as e:
        raise ConfigError(f"[push] {key}: cannot read {path}: {e.strerror}") from None


class PushRouter:
    """A PushProvider that hands each push to the provider for its `pushType` (the device's apnsType)."""

    _log = Logger()

    def __init__(self, routes: dict[str, PushProvider]) -> None:
        self.routes = routes

    async def send(self, push: dict[str, Any]) -> None:
        kind = push.get("pushType")
        provider = self.routes.get(kind) if isinstance(kind, str) else None
        if provider is None:
            raise PermanentPushError("push", f"no provider for devices of apnsType {kind!r}")
        await provider.send(push)

    async def close(self) -> None:
        """Close every provider that holds connections (each once)."""
        seen: set[int] = set()
        for provider in self.routes.values():
            close = getattr(provider, "close", None)
            if close is not None and id(provider) not in seen:
                seen.add(id(provider))
                await close()


def make_push_router(settings, *, reactor, clock=None, other: Callable[[str], PushProvider],
                     trust_root=None) -> PushRouter:
    """Routes for getui, apns and gcm devices (see the module's docstring); one instance per kind,
    shared by the routes that name it."""
    built: dict[str, PushProvider] = {}

    def provider(kind: str) -> PushProvider:
        if kind not in built:
            if kind == "none":
                built[kind] = SkipPush()
            elif kind in ADAPTER_KINDS:
                built[kind] = make_push_provider(kind, settings, reactor=reactor, clock=clock, trust_root=trust_root)
            else:
                built[kind] = other(kind)
        return built[kind]

    routes: dict[str, PushProvider] = {}
    for apns_type in APNS_TYPES:
        explicit = getattr(settings, f"provider_{apns_type}", "")
        kind = explicit or settings.provider
        if kind in ADAPTER_KINDS and kind != ADAPTER_FOR[apns_type]:
            # A service answers "invalid token" to another service's tokens, and that
            # would unregister every such device: never route them there.
            if explicit:
                raise ConfigError(f"[push] provider_{apns_type} = {kind!r} cannot reach {apns_type} devices "
                                  f"(use {ADAPTER_FOR[apns_type]!r}, \"log\", \"webhook\" or \"none\")")
            continue
        routes[apns_type] = provider(kind)
    return PushRouter(routes)


class SkipPush:
    """`provider_<apnsType> = "none"`: such devices get no offline push, silently."""

    async def send(self, push: dict[str, Any]) -> None:
        return None


def trust_root_from(path: str):
    """`[push] apns_ca_file`: the CA certificate(s) to trust for APNs instead of the system's."""
    if not path:
        return None
    from twisted.internet import ssl

    try:
        with open(path, "rb") as f:
            return ssl.Certificate.loadPEM(f.read(256 * 1024))
    except OSError as e:
        raise ConfigError(f"[push] apns_ca_file: cannot read {path}: {e.strerror}") from None
    except Exception:
        raise ConfigError(f"[push] apns_ca_file: {path} is not a PEM certificate") from None
