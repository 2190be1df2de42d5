"""
RTC credentials for the 1:1 video chats, from the `[rtc]` keys.

Two credentials, because the seed uses two services: `join-chat` carries the
video call's room credential as `qiniu{roomName, roomToken}` (the shipped
client's pldroid-rtc-streaming SDK: kind `qiniu-pili`; Qiniu's current RTC:
`qiniu`), or, for teams who self-host an SFU, `livekit{url, token}`; and
`get-user-sig` hands out a Tencent TRTC UserSig. The algorithms are
heihei.outbound.rtc's (checked there against each provider's own library);
this module only picks the provider, names the room and the user, and reads
the clock.
"""

from __future__ import annotations

from typing import Any

from heihei.config import ConfigError
from heihei.outbound.rtc import RtcConfigError, make_rtc_provider

VIDEO_KINDS = ("", "qiniu", "qiniu-pili", "livekit")


def room_name(chat_id: str) -> str:
    """The chat's RTC room: `chat-<chatId>` (fits Qiniu's [A-Za-z0-9_-]{3,64} and LiveKit's names)."""
    return f"chat-{chat_id}"


class ChatRtc:
    def __init__(self, settings, clock) -> None:
        s = settings
        self.clock = clock
        self.ttl_s = s.token_ttl_s
        if s.video_provider not in VIDEO_KINDS:
            raise ConfigError('[rtc] video_provider must be "", "qiniu", "qiniu-pili" or "livekit"')
        if s.token_ttl_s <= 0:
            raise ConfigError("[rtc] token_ttl_s must be positive")
        self.video_kind = s.video_provider
        try:
            if s.video_provider == "qiniu":
                self.video = make_rtc_provider("qiniu", app_id=s.qiniu_app_id, access_key=s.qiniu_access_key,
                                               secret_key=s.qiniu_secret_key)
            elif s.video_provider == "qiniu-pili":
                self.video = make_rtc_provider("qiniu-pili", access_key=s.qiniu_access_key,
                                               secret_key=s.qiniu_secret_key,
                                               token_version=s.qiniu_pili_token_version)
            elif s.video_provider == "livekit":
                self.video = make_rtc_provider("livekit", api_key=s.livekit_api_key,
                                               api_secret=s.livekit_api_secret, url=s.livekit_url)
            else:
                self.video = None
            self.trtc = (make_rtc_provider("trtc", sdk_app_id=s.trtc_sdk_app_id, secret_key=s.trtc_secret_key)
                         if s.trtc_sdk_app_id else None)
        except RtcConfigError as e:
            raise ConfigError(f"[rtc] {e}") from None

    def _user(self, uid: str) -> str:
        # Qiniu RTC wants 3-50 characters: short ids are zero-padded (the client pads the same way)
        return uid.rjust(3, "0") if self.video_kind == "qiniu" else uid

    def video_fields(self, chat_id: str, uid: str) -> dict[str, Any]:
        """join-chat's credential fields: {"qiniu": {roomName, roomToken}}, or {"livekit": {url, token}}
        (plus an empty `qiniu` so the shipped client's parser finds its object). Without a provider the
        room is named and the token is empty: the call cannot start, and the server log says why."""
        return self.room_fields(room_name(chat_id), uid)

    def room_fields(self, room: str, uid: str) -> dict[str, Any]:
        """The video credential of `uid` in `room`, as video_fields shapes it."""
        if self.video is None:
            return {"qiniu": {"roomName": room, "roomToken": ""}}
        creds = self.video.issue(room, self._user(uid), ttl_s=self.ttl_s, now_s=self.clock.seconds())
        if self.video_kind == "livekit":
            return {"qiniu": {"roomName": room, "roomToken": ""}, "livekit": dict(creds.fields)}
        return {"qiniu": dict(creds.fields)}

    def user_sig(self, uid: str, chat_id: str | None = None) -> dict[str, Any] | None:
        """get-user-sig's answer: {sdkAppId, userId, userSig, expireTime (s), expireAt}, with the chat's
        `strRoomId` when a chat is named; None when no TRTC app is configured."""
        if self.trtc is None:
            return None
        creds = self.trtc.issue(room_name(chat_id or "0"), uid, ttl_s=self.ttl_s, now_s=self.clock.seconds())
        out = {"sdkAppId": creds.fields["sdkAppId"], "userId": uid, "userSig": creds.fields["userSig"],
               "expireTime": self.ttl_s, "expireAt": creds.expires_at_s}
        if chat_id:
            out["strRoomId"] = room_name(chat_id)
        return out
