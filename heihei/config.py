"""
Settings: defaults, overridden by a TOML file, overridden by the command line.

Every section is a frozen dataclass so a typo in the file is an error at start-up
instead of a setting that silently does nothing. `resources/heihei.example.toml`
documents every key; `tests/test_config.py` checks the two stay in step.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit


class ConfigError(ValueError):
    """A setting is unknown, has the wrong type, or cannot be parsed."""


@dataclass(frozen=True)
class ServerSettings:
    """Listeners and process-wide options (all settable on the command line)."""

    http: str = "tcp:8082"
    live: str = "tcp:9502"
    boss: str = "tcp:6060"
    jim: str = "tcp:8889"
    manhole: str = ""
    manhole_keys: str = ""
    redis: str = ""
    data_dir: str = "./heihei-data"
    node_id: str = ""
    log_format: str = "text"
    #: the demo profile (`--demo`): loopback listeners only, every legacy login on (README)
    demo: bool = False


@dataclass(frozen=True)
class RedisSettings:
    """The embedded redis-server and the client side of any Redis."""

    appendfsync: str = "everysec"
    reply_timeout_s: float = 5.0
    connect_timeout_s: float = 5.0
    pool_size: int = 4
    restart_delay_s: float = 1.0


@dataclass(frozen=True)
class HttpSettings:
    """The `--http` site and every other twisted.web site we serve."""

    public_url: str = "http://127.0.0.1:8082"
    max_body_bytes: int = 1024 * 1024
    request_deadline_s: float = 30.0
    idle_timeout_s: float = 60.0
    #: /metrics answers only loopback clients and the admin token unless this is on
    metrics_public: bool = False


@dataclass(frozen=True)
class WebSocketSettings:
    """Hardened Autobahn options; every realm section carries its own copy."""

    max_message_bytes: int = 64 * 1024
    allowed_origins: tuple[str, ...] = ("*",)
    max_connections: int = 20000
    handshake_timeout_s: float = 10.0
    permessage_deflate: bool = False
    max_decompressed_bytes: int = 256 * 1024
    send_queue_max_bytes: int = 1024 * 1024
    auto_ping_interval_s: float = 30.0
    auto_ping_timeout_s: float = 30.0
    tcp_nodelay: bool = True
    #: until a connection has logged in, a larger message closes it (1009): an anonymous
    #: connection cannot hold a large half-received message in memory
    pre_login_max_message_bytes: int = 8192
    #: a connection that has not logged in this long after it opened is closed (4401); 0 = never
    #: (realms that authenticate in the handshake log in at once; live pages may watch anonymously)
    login_timeout_s: float = 0.0


@dataclass(frozen=True)
class LiveSettings(WebSocketSettings):
    """Seed 000: activity chat room (see docs/live.md)."""

    wechat_appid: str = ""
    wechat_secret: str = ""
    wechat_api: str = "https://api.weixin.qq.com"
    wechat_timeout_s: float = 5.0
    rate: float = 1.0
    burst: int = 3
    max_chars: int = 200
    token_ttl: float = 604800.0
    total_interval_s: float = 1.0


@dataclass(frozen=True)
class BossSettings(WebSocketSettings):
    """Seed 002: underscore text protocol, group API and uploads (see docs/boss.md)."""

    login_timeout_s: float = 30.0

    max_message_bytes: int = 256 * 1024  # transport cap (close 1009); over max_frame_bytes: error_413
    max_frame_bytes: int = 64 * 1024
    login_secret: str = ""
    insecure_login: bool = False
    insecure_http: bool = False
    api_key: str = ""
    heartbeat_interval: float = 30.0
    dead_after: float = 90.0
    rate_per_second: float = 5.0
    rate_burst: int = 20
    records_max_count: int = 100
    max_group_members: int = 100000
    public_url: str = ""
    media_dir: str = ""
    max_upload_bytes: int = 20 * 1024 * 1024
    max_media_seconds: float = 600.0
    profile_avatar_url: str = ""
    profile_nickname_url: str = ""
    profile_timeout_s: float = 5.0
    profile_cache_s: float = 600.0
    default_avatar_url: str = ""
    #: the group API's `code` on success: 1 as wsim's README says, or 0 as its code answers since
    #: March 2017 (clients built against the running original read 0)
    group_success_code: int = 1


@dataclass(frozen=True)
class JimSettings(WebSocketSettings):
    """Seed 003: J-IM customer service, WebSocket and `/im/vanke` API (see docs/jim.md)."""

    api_key: str = ""
    insecure_api: bool = False
    auth_url: str = ""
    auth_secret: str = ""
    auth_timeout_s: float = 5.0
    insecure_login: bool = False
    token_ttl_s: float = 604800.0
    heartbeat_timeout: float = 120.0
    default_groups: tuple[str, ...] = ()
    open_groups: bool = False
    open_conversation_s: float = 1800.0
    recall_window_s: float = 0.0
    max_page_size: int = 100
    chat_rate_per_s: float = 10.0
    chat_burst: int = 30
    default_avatar: str = ("data:image/svg+xml,%3Csvg%20xmlns=%27http://www.w3.org/2000/svg%27%20viewBox=%270%200%208"
                           "%208%27%3E%3Ccircle%20cx=%274%27%20cy=%274%27%20r=%274%27%20fill=%27%23c8ccd2%27/%3E%3Ccircle"
                           "%20cx=%274%27%20cy=%273%27%20r=%271.5%27%20fill=%27%23fff%27/%3E%3C/svg%3E")


@dataclass(frozen=True)
class ChannelSettings(WebSocketSettings):
    """Seed 001: `/ws/channel` push channel."""


@dataclass(frozen=True)
class HeiheiSettings:
    """Seed 001: accounts, `/api`, `/messageserver` and IM (see docs/heihei.md)."""

    server_secret: str = ""
    signature_window_s: float = 300.0
    token_ttl_s: float = 2592000.0
    max_tokens_per_user: int = 20
    first_user_id: int = 10001
    first_hei_num: int = 1000001
    max_text_chars: int = 500
    im_rate_per_second: float = 5.0
    im_rate_burst: int = 20
    message_list_max: int = 100
    max_conversations: int = 1000
    msg_index_ttl_s: int = 2592000
    default_cover_url: str = ""
    img_path: str = ""
    updates_file: str = ""
    push_title: str = "嘿嘿"
    wechat_api_url: str = "https://api.weixin.qq.com"
    weibo_api_url: str = "https://api.weibo.com"
    oauth_timeout_s: float = 10.0
    update_errorcode: int = 1
    link_gender_text: bool = False


@dataclass(frozen=True)
class SmsSettings:
    """Seed 001: SMS sign-in codes and the provider that sends them."""

    provider: str = "log"
    url: str = ""
    text: str = "您的验证码是{code}，{minutes}分钟内有效。"
    code_ttl_s: float = 300.0
    resend_interval_s: float = 60.0
    max_attempts: int = 5
    timeout_s: float = 10.0


@dataclass(frozen=True)
class PushSettings:
    """Seed 001: offline pushes to registered devices."""

    provider: str = "log"
    webhook_url: str = ""
    webhook_secret: str = ""
    timeout_s: float = 10.0
    max_devices_per_user: int = 5
    provider_getui: str = ""
    provider_apns: str = ""
    provider_gcm: str = ""
    getui_app_id: str = ""
    getui_app_key: str = ""
    getui_master_secret: str = ""
    getui_base_url: str = "https://restapi.getui.com"
    getui_click_type: str = "payload"
    getui_intent_component: str = ""
    getui_ttl_s: int = 7200
    getui_vendor_channel: bool = False
    apns_team_id: str = ""
    apns_key_id: str = ""
    apns_key_file: str = ""
    apns_topic: str = ""
    apns_base_url: str = "https://api.push.apple.com"
    apns_ca_file: str = ""
    apns_expiration_s: int = 86400
    apns_priority: int = 10
    fcm_service_account_file: str = ""
    fcm_project_id: str = ""
    fcm_base_url: str = "https://fcm.googleapis.com"
    fcm_token_uri: str = ""


@dataclass(frozen=True)
class PresenceSettings:
    """How the cluster learns who is online where."""

    node_ttl_s: float = 30.0
    refresh_interval_s: float = 10.0


@dataclass(frozen=True)
class MessagingSettings:
    """History retention, idempotency and inbox bounds, for every realm."""

    history_max_count: int = 10000
    history_max_age_s: float = 0.0
    dedupe_ttl_s: int = 86400
    inbox_max: int = 10000
    #: per group log (realms with group logs, docs/groups.md): newest entries kept, and their age
    group_log_max_count: int = 10000
    group_log_max_age_s: float = 0.0


@dataclass(frozen=True)
class ModerationSettings:
    """Banned words for every realm's text messages."""

    banned_words_file: str = ""


@dataclass(frozen=True)
class AdminSettings:
    """Operator HTTP API. An empty token means: generate one in the data dir."""

    token: str = ""


@dataclass(frozen=True)
class UploadsSettings:
    """Seed 001: direct uploads (`/api/sys/oss-token`) and where files live (see docs/uploads.md)."""

    provider: str = "node"
    bucket: str = "heihei"
    secret: str = ""
    ttl_s: int = 900
    public_base_url: str = ""
    storage_dir: str = ""
    max_record_bytes: int = 5 * 1024 * 1024
    max_message_bytes: int = 5 * 1024 * 1024
    max_avatar_bytes: int = 2 * 1024 * 1024
    aliyun_sts_url: str = "https://sts.aliyuncs.com"
    aliyun_access_key_id: str = ""
    aliyun_access_key_secret: str = ""
    aliyun_role_arn: str = ""
    aliyun_oss_endpoint: str = ""
    aliyun_max_duration_s: int = 3600
    aliyun_timeout_s: float = 10.0


@dataclass(frozen=True)
class SocialSettings:
    """Seed 001: the social half (follows, discovery, topics, voice records, reports, client logs;
    see docs/heihei-social.md)."""

    banners_file: str = ""
    banner_expire_s: int = 84600
    topics_file: str = ""
    gift_resources_file: str = ""
    page_size: int = 20
    active_window_s: float = 604800.0
    new_users_max: int = 10000
    reports_per_day: int = 20
    max_title_chars: int = 50
    record_min_s: float = 2.0
    record_max_s: float = 60.0
    record_max_bytes: int = 2 * 1024 * 1024
    client_log_dir: str = ""
    client_log_max_bytes: int = 65536
    client_log_file_bytes: int = 10 * 1024 * 1024
    client_log_files: int = 5


@dataclass(frozen=True)
class MediaSettings:
    """The media server that carries the heihei app's live video: signed addresses, callbacks,
    recordings (see docs/heihei-live.md; the signing is heihei/outbound/streams.py)."""

    secret: str = ""
    app: str = "live"
    push_rtmp: str = ""
    pull_flv: str = ""
    pull_rtmp: str = ""
    pull_hls: str = ""
    push_ttl_s: int = 15000
    pull_ttl_s: int = 15000
    callback_key: str = ""
    require_push_key: bool = True
    recording_url: str = ""


@dataclass(frozen=True)
class LivesSettings:
    """Seed 001's live rooms: lifecycle timers, seats, lists, sharing and the busy-room lanes
    (see docs/heihei-live.md)."""

    first_live_id: int = 1000000001
    title_max_chars: int = 30
    utc_offset_h: float = 8.0
    heartbeat_s: int = 15
    heartbeat_timeout_s: float = 35.0
    stream_grace_s: float = 60.0
    pause_max_s: float = 1200.0
    sweep_interval_s: float = 1.0
    idle_sweep_s: float = 10.0
    seat_count: int = 0
    min_open_seats: int = 2
    knock_interval_s: float = 30.0
    max_managers: int = 20
    list_expire_s: int = 60
    recommend_max: int = 50
    replays_max: int = 20
    share_title: str = "嘿嘿直播"
    share_url: str = ""
    inefficient_time_s: int = 1200
    count_down_time_s: int = 60
    alert_title: str = "队长，你在吗？"
    alert_content: str = "60秒内不点击‘在的’按钮将结束此次直播"
    help_link: str = ""
    chat_budget_per_s: int = 20
    chat_sample_every: int = 10
    lane_flush_s: float = 0.1
    like_interval_s: float = 1.0
    count_interval_s: float = 2.0
    replay_max_items: int = 10000


@dataclass(frozen=True)
class PaymentSettings:
    """Seed 001's money: the catalog of gifts, packages and rates, the ledger's memory of gifts, and
    the payment providers (see docs/heihei.md, "Money", and docs/providers-payments.md). A provider
    whose settings are empty is not offered."""

    money_file: str = ""
    gift_once_s: int = 3600
    order_ttl_s: int = 30 * 86400
    identity_key: str = field(default="", repr=False)
    timeout_s: float = 10.0
    connect_timeout_s: float = 5.0
    wechat_appid: str = ""
    wechat_mchid: str = ""
    wechat_merchant_serial_no: str = ""
    wechat_merchant_private_key: str = field(default="", repr=False)
    wechat_apiv3_key: str = field(default="", repr=False)
    wechat_platform_public_key: str = ""
    wechat_platform_public_key_id: str = ""
    wechat_platform_certificates: tuple[str, ...] = ()
    wechat_api_url: str = "https://api.mch.weixin.qq.com"
    wechat_notify_url: str = ""
    wechat_notification_window_s: float = 300.0
    alipay_app_id: str = ""
    alipay_app_private_key: str = field(default="", repr=False)
    alipay_public_key: str = ""
    alipay_app_public_cert: str = ""
    alipay_public_cert: str = ""
    alipay_root_cert: str = ""
    alipay_seller_id: str = ""
    alipay_gateway_url: str = "https://openapi.alipay.com/gateway.do"
    alipay_notify_url: str = ""
    alipay_notification_max_age_s: float = 172800.0
    iap_enabled: bool = False
    iap_shared_secret: str = field(default="", repr=False)
    iap_bundle_id: str = ""
    iap_production_url: str = "https://buy.itunes.apple.com/verifyReceipt"
    iap_sandbox_url: str = "https://sandbox.itunes.apple.com/verifyReceipt"
    iap_accept_sandbox: bool = False


@dataclass(frozen=True)
class ChatSettings:
    """Seed 001's 1:1 video chats: matching, invitations, heart-beats (see docs/heihei.md, "Chat")."""

    match_expire_s: int = 15
    invite_expire_s: int = 15
    join_timeout_s: float = 20.0
    heartbeat_s: int = 5
    heartbeat_timeout_s: float = 15.0
    pause_max_s: float = 120.0
    match_scan: int = 50
    sweep_interval_s: float = 0.5
    idle_sweep_s: float = 5.0
    tips_file: str = ""
    topics_file: str = ""


@dataclass(frozen=True)
class RtcSettings:
    """Keys of the real-time video services whose credentials the chats hand out
    (heihei/outbound/rtc.py, docs/providers-rtc.md)."""

    video_provider: str = ""
    token_ttl_s: int = 3600
    qiniu_app_id: str = ""
    qiniu_access_key: str = ""
    qiniu_secret_key: str = ""
    qiniu_pili_token_version: str = "2.0"
    trtc_sdk_app_id: int = 0
    trtc_secret_key: str = ""
    livekit_url: str = ""
    livekit_api_key: str = ""
    livekit_api_secret: str = ""


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    presence: PresenceSettings = field(default_factory=PresenceSettings)
    messaging: MessagingSettings = field(default_factory=MessagingSettings)
    admin: AdminSettings = field(default_factory=AdminSettings)
    moderation: ModerationSettings = field(default_factory=ModerationSettings)
    live: LiveSettings = field(default_factory=LiveSettings)
    boss: BossSettings = field(default_factory=BossSettings)
    jim: JimSettings = field(default_factory=JimSettings)
    channel: ChannelSettings = field(default_factory=ChannelSettings)
    heihei: HeiheiSettings = field(default_factory=HeiheiSettings)
    sms: SmsSettings = field(default_factory=SmsSettings)
    push: PushSettings = field(default_factory=PushSettings)
    uploads: UploadsSettings = field(default_factory=UploadsSettings)
    social: SocialSettings = field(default_factory=SocialSettings)
    media: MediaSettings = field(default_factory=MediaSettings)
    lives: LivesSettings = field(default_factory=LivesSettings)
    payment: PaymentSettings = field(default_factory=PaymentSettings)
    chat: ChatSettings = field(default_factory=ChatSettings)
    rtc: RtcSettings = field(default_factory=RtcSettings)


LOG_FORMATS = ("text", "json")


def load_settings(path: str | None = None, overrides: dict[str, dict[str, Any]] | None = None) -> Settings:
    """Defaults, then the TOML file at `path`, then `overrides` (the command line)."""
    layers: list[dict[str, Any]] = []
    if path:
        try:
            with open(path, "rb") as f:
                layers.append(tomllib.load(f))
        except OSError as e:
            raise ConfigError(f"cannot read config file {path}: {e.strerror}") from e
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {path} is not valid TOML: {e}") from e
    if overrides:
        layers.append(overrides)
    settings = build_settings(layers)
    if settings.server.log_format not in LOG_FORMATS:
        raise ConfigError(f"log_format must be one of {', '.join(LOG_FORMATS)}")
    return settings


def build_settings(layers: list[dict[str, Any]]) -> Settings:
    """Merge layers (later wins) into a Settings, checking every key and type."""
    sections: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for name, values in layer.items():
            if name not in _SECTION_TYPES:
                raise ConfigError(f"unknown config section [{name}]")
            if not isinstance(values, dict):
                raise ConfigError(f"[{name}] must be a table")
            sections.setdefault(name, {}).update(values)
    built = {name: _build_section(name, _SECTION_TYPES[name], values) for name, values in sections.items()}
    return Settings(**built)


_SECTION_TYPES = {f.name: f.default_factory for f in dataclasses.fields(Settings)}  # type: ignore[misc]


def _build_section(name: str, cls: type, values: dict[str, Any]) -> Any:
    known = {f.name: f for f in dataclasses.fields(cls)}
    converted = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"unknown setting {key!r} in [{name}]")
        converted[key] = _convert(f"[{name}] {key}", known[key].type, value)
    return cls(**converted)


def _convert(where: str, type_name: Any, value: Any) -> Any:
    # Annotations are strings because of `from __future__ import annotations`.
    type_name = str(type_name)
    if type_name == "bool":
        if isinstance(value, bool):
            return value
    elif type_name == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif type_name == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif type_name == "str":
        if isinstance(value, str):
            return value
    elif type_name.startswith("tuple[str"):
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
    else:  # pragma: no cover - a new annotation needs a branch here
        raise ConfigError(f"{where}: unsupported setting type {type_name}")
    raise ConfigError(f"{where} must be of type {type_name}, not {type(value).__name__}")


@dataclass(frozen=True)
class RedisAddress:
    host: str = "127.0.0.1"
    port: int = 6379
    unix_path: str = ""
    password: str | None = None
    db: int = 0

    def describe(self) -> str:
        """For logs: never includes the password."""
        where = f"unix:{self.unix_path}" if self.unix_path else f"{self.host}:{self.port}"
        return f"redis {where} db {self.db}"


def parse_redis_url(url: str) -> RedisAddress:
    """`redis://[:password@]host[:port][/db]` or `unix:///path[?db=N]`."""
    try:
        parts = urlsplit(url)
        password = unquote(parts.password) if parts.password else None
        if parts.scheme == "unix":
            if not parts.path:
                raise ValueError("no socket path")
            query = dict(p.split("=", 1) for p in parts.query.split("&") if p)
            return RedisAddress(unix_path=parts.path, password=password, db=int(query.get("db", 0)))
        if parts.scheme != "redis":
            raise ValueError("scheme must be redis:// or unix://")
        if not parts.hostname:
            raise ValueError("no host")
        db_text = parts.path.lstrip("/")
        db = int(db_text) if db_text else 0
        port = parts.port or 6379
        if db < 0:
            raise ValueError("negative db")
        return RedisAddress(host=parts.hostname, port=port, password=password, db=db)
    except ValueError as e:
        raise ConfigError(f"malformed Redis URL {_without_password(url)!r}: {e}") from e


def _without_password(url: str) -> str:
    """A Redis URL fit for an error message (the password replaced by ***)."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0] if ":" in credentials else ""
    return f"{scheme}://{user}:***@{host}"
