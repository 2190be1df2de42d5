"""`[chat]` and `[rtc]` settings: refused at start-up with a message naming the setting, never a secret."""

from __future__ import annotations

import json

import pytest
from twisted.internet import task

from heihei.config import ChatSettings, ConfigError, RtcSettings
from heihei.heihei.chatrtc import ChatRtc
from heihei.heihei.chatservice import check_settings, load_lines


def test_rtc_settings_are_checked_without_showing_secrets():
    clock = task.Clock()
    assert ChatRtc(RtcSettings(), clock).video is None and ChatRtc(RtcSettings(), clock).trtc is None
    with pytest.raises(ConfigError, match="video_provider"):
        ChatRtc(RtcSettings(video_provider="agora"), clock)
    with pytest.raises(ConfigError, match="secret_key") as e:
        ChatRtc(RtcSettings(video_provider="qiniu", qiniu_app_id="app", qiniu_access_key="ak"), clock)
    assert "app" not in str(e.value).replace("app_id", "")
    with pytest.raises(ConfigError, match="api_secret"):
        ChatRtc(RtcSettings(video_provider="livekit", livekit_api_key="k"), clock)
    with pytest.raises(ConfigError, match="secret_key"):
        ChatRtc(RtcSettings(trtc_sdk_app_id=1400000000), clock)
    with pytest.raises(ConfigError, match="token_ttl_s"):
        ChatRtc(RtcSettings(token_ttl_s=0), clock)
    rtc = ChatRtc(RtcSettings(video_provider="qiniu", qiniu_app_id="app", qiniu_access_key="ak",
                              qiniu_secret_key="very-secret-key"), clock)
    assert "very-secret-key" not in repr(rtc.video)
    # a short uid is padded to Qiniu's 3 characters
    import base64
    token = rtc.video_fields("7", "5")["qiniu"]["roomToken"]
    access = json.loads(base64.urlsafe_b64decode(token.split(":")[2]))
    assert access["userId"] == "005" and access["roomName"] == "chat-7"


def test_chat_settings_and_catalogs(tmp_path):
    check_settings(ChatSettings())
    for bad in ({"match_expire_s": 0}, {"heartbeat_timeout_s": 1.0, "heartbeat_s": 5}, {"match_scan": -1}):
        with pytest.raises(ConfigError):
            check_settings(ChatSettings(**bad))
    good = tmp_path / "tips.json"
    good.write_text(json.dumps(["一", "二"]), encoding="utf-8")
    assert load_lines(str(good), "tips_file") == ["一", "二"]
    for text in ("[]", "{}", "not json", json.dumps([""]), json.dumps([1]), json.dumps(["x" * 201])):
        bad = tmp_path / "bad.json"
        bad.write_text(text)
        with pytest.raises(ConfigError, match="tips_file"):
            load_lines(str(bad), "tips_file")
    with pytest.raises(ConfigError, match="tips_file"):
        load_lines(str(tmp_path / "missing.json"), "tips_file")
