"""
Node-Media-Server signed addresses and the qiniuObj, without a media server.

`nms_verify_auth` below is Node-Media-Server's own check transcribed line by
line from its source (v4 src/server/broadcast_server.js `verifyAuth`, the
same computation as v2's src/node_core_utils.js), JavaScript's parseInt
included, so every verdict of `MediaSigner.verify` is compared with NMS's.
test_nms.py runs the real server.
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import parse_qs

import pytest

from heihei.outbound.streams import (
    MediaSigner,
    SignRefused,
    nms_sign,
    pili_publish_url,
)

NOW = 1473403686  # seed 001's first live, createTime 2016-09-09 14:48:06 (UTC+8)
SECRET = "nms-test-secret"


def js_parse_int(text: str) -> float:
    """JavaScript's parseInt(text) for the decimal strings NMS sees (NaN as float('nan'))."""
    match = re.match(r"\s*([+-]?\d+)", text)
    return int(match.group(1)) if match else float("nan")


def nms_verify_auth(auth_key: str, stream_path: str, sign: str | None, now_s: int) -> bool:
    """Node-Media-Server's verifyAuth, transcribed."""
    if auth_key == "":
        return True
    if sign is None or len(sign.split("-")) != 2:
        return False
    exp = js_parse_int(sign.split("-")[0])
    shv = sign.split("-")[1]
    if exp != exp:  # NaN: JS builds the string "NaN" and the comparison is false
        exp_text = "NaN"
    else:
        exp_text = str(exp)
        if exp < now_s:
            return False
    ohv = hashlib.md5(f"{stream_path}-{exp_text}-{auth_key}".encode()).hexdigest()
    return shv == ohv


def signer(**kw) -> MediaSigner:
    settings = dict(secret=SECRET, push_rtmp="rtmp://push.wmlive.cn", pull_flv="http://back.wmlive.cn:8000",
                    pull_rtmp="rtmp://pull.wmlive.cn", pull_hls="https://hls.wmlive.cn")
    settings.update(kw)
    return MediaSigner(**settings)


def test_sign_known_answer():
    digest = hashlib.md5(b"/live/1577899525-1473418685-" + SECRET.encode()).hexdigest()
    assert nms_sign("/live/1577899525", 1473418685, SECRET) == f"1473418685-{digest}"
    assert signer().sign("1577899525", expires_at_s=1473418685) == f"1473418685-{digest}"


def test_addresses_have_the_seeds_shape():
    pull = signer(pull_ttl_s=14999).pull("1577899525", now_s=NOW + 0.7)
    sign = nms_sign("/live/1577899525", 1473418685, SECRET)
    assert pull.expires_at_s == 1473418685
    assert pull.flv == f"http://back.wmlive.cn:8000/live/1577899525.flv?sign={sign}"
    assert pull.rtmp == f"rtmp://pull.wmlive.cn/live/1577899525?sign={sign}"
    assert pull.hls == f"https://hls.wmlive.cn/live/1577899525/index.m3u8?sign={sign}"
    push = signer(push_ttl_s=600).push("1577899525", now_s=NOW)
    assert push.rtmp == f"rtmp://push.wmlive.cn/live/1577899525?sign={nms_sign('/live/1577899525', NOW + 600, SECRET)}"
    bare = signer(pull_rtmp="", pull_hls="").pull("1577899525", now_s=NOW)
    assert bare.rtmp == "" and bare.hls == ""


def test_our_signs_pass_nms_check_until_expiry():
    s = signer(pull_ttl_s=60)
    pull = s.pull("1577899525", now_s=NOW)
    for now in (NOW, NOW + 60):
        assert nms_verify_auth(SECRET, "/live/1577899525", pull.sign, now)
        assert s.verify("/live/1577899525", pull.sign, now_s=now).expires_at_s == NOW + 60
    assert not nms_verify_auth(SECRET, "/live/1577899525", pull.sign, NOW + 61)
    with pytest.raises(SignRefused) as refused:
        s.verify("/live/1577899525", pull.sign, now_s=NOW + 61)
    assert refused.value.reason == "expired"


@pytest.mark.parametrize("path, sign, reason", [
    ("/live/1577899526", "{good}", "forged"),            # another stream's sign
    ("/live/1577899525", "{other_secret}", "forged"),
    ("/live/1577899525", "{later_exp}", "forged"),       # expiry moved, hash kept
    ("/live/1577899525", "{good_upper}", "malformed"),   # NMS compares lower-case hex
    ("/live/1577899525", None, "malformed"),
    ("/live/1577899525", "", "malformed"),
    ("/live/1577899525", "1473418685", "malformed"),
    ("/live/1577899525", "1473418685-abc", "malformed"),
    ("/live/1577899525", "-{hash}", "malformed"),
    ("/other/1577899525", "{good}", "foreign"),
    ("/live/1577899525/x", "{good}", "foreign"),
    ("/live/../live/1577899525", "{good}", "foreign"),
    ("live/1577899525", "{good}", "foreign"),
    ("/live/1577899525.flv", "{good}", "foreign"),
])
def test_refusals_agree_with_nms(path, sign, reason):
    s = signer()
    good = s.sign("1577899525", expires_at_s=NOW + 100)
    values = {
        "good": good,
        "hash": good.split("-")[1],
        "good_upper": good.upper(),
        "other_secret": nms_sign("/live/1577899525", NOW + 100, "another-secret"),
        "later_exp": f"{NOW + 10000}-{good.split('-')[1]}",
    }
    sign = sign.format(**values) if sign is not None else None
    with pytest.raises(SignRefused) as refused:
        s.verify(path, sign, now_s=NOW)
    assert refused.value.reason == reason
    if reason != "foreign":  # NMS itself has no notion of "our" app
        assert not nms_verify_auth(SECRET, path, sign, NOW)


def test_forms_only_parse_int_accepts_are_malformed():
    s = signer()
    exp, digest = s.sign("1577899525", expires_at_s=NOW + 100).split("-")
    for loose in (f"0{exp}-{digest}", f"{exp}abc-{digest}", f" {exp}-{digest}"):
        assert nms_verify_auth(SECRET, "/live/1577899525", loose, NOW)  # parseInt drops what we refuse
        with pytest.raises(SignRefused) as refused:
            s.verify("/live/1577899525", loose, now_s=NOW)
        assert refused.value.reason == "malformed"


def test_names_nms_would_drop_are_refused():
    s = signer()
    for bad in ("", "a/b", "a.b", "a b", "a?b", "直播", "a&sign=1"):
        with pytest.raises(ValueError):
            s.push(bad, now_s=NOW)
    with pytest.raises(ValueError):
        signer(app="li/ve")


def test_configuration_is_checked():
    with pytest.raises(ValueError, match="secret"):
        signer(secret="")
    with pytest.raises(ValueError, match="push_rtmp"):
        signer(push_rtmp="http://push.wmlive.cn")
    with pytest.raises(ValueError, match="pull_flv"):
        signer(pull_flv="back.wmlive.cn:8000")
    with pytest.raises(ValueError, match="pull_hls"):
        signer(pull_hls="https://hls.wmlive.cn/prefix")
    with pytest.raises(ValueError, match="push_ttl_s"):
        signer(push_ttl_s=0)
    assert signer(push_rtmp="rtmp://push.wmlive.cn:1935/").push_rtmp == "rtmp://push.wmlive.cn:1935"


def test_reprs_hide_secret_and_signs():
    s = signer()
    assert SECRET not in repr(s)
    push, pull = s.push("1", now_s=NOW), s.pull("1", now_s=NOW)
    assert push.sign not in repr(push) and pull.sign not in repr(pull)


# --- qiniuObj ------------------------------------------------------------------

PILI_REQUIRED = ("id", "hub", "title", "publishKey", "publishSecurity")


def nms_reads_rtmp_publish(url: str) -> tuple[str, dict[str, list[str]]]:
    """What NMS makes of an RTMP URL: app from the connect, stream name split at '?' (rtmp.js onPublish)."""
    rest = url.removeprefix("rtmp://")
    _host, app, stream_name = rest.split("/", 2)
    name, _, query = stream_name.partition("?")
    return f"/{app}/{name}", parse_qs(query)


def test_qiniu_obj_has_what_the_sdk_requires():
    obj = signer(push_rtmp="rtmp://push.wmlive.cn:1935").qiniu_obj("1577899525", now_s=NOW)
    # StreamingProfile.Stream(JSONObject): getString on each, then non-blank checks.
    for name in PILI_REQUIRED:
        assert isinstance(obj[name], str) and obj[name].strip(), name
    assert isinstance(obj["hosts"]["publish"]["rtmp"], str) and obj["hosts"]["publish"]["rtmp"]
    assert obj["id"] == "z1.live.1577899525"
    assert obj["hub"] == "live" and obj["title"] == "1577899525"
    assert obj["publishSecurity"] == "static"
    assert obj["hosts"] == {"publish": {"rtmp": "push.wmlive.cn:1935"},
                            "live": {"rtmp": "pull.wmlive.cn", "hdl": "back.wmlive.cn:8000",
                                     "hls": "hls.wmlive.cn"}}
    assert obj["createdAt"] == obj["updatedAt"] == "2016-09-09T06:48:06Z"


def test_qiniu_obj_publishes_to_our_signed_push_address():
    s = signer(push_ttl_s=15000)
    obj = s.qiniu_obj("1577899525", now_s=NOW)
    push = s.push("1577899525", now_s=NOW)
    url = pili_publish_url(obj)
    assert url == f"rtmp://push.wmlive.cn/live/1577899525?key={push.sign}&sign={push.sign}"
    path, query = nms_reads_rtmp_publish(url)
    assert path == "/live/1577899525" and query["sign"] == [push.sign]
    assert nms_verify_auth(SECRET, path, query["sign"][0], NOW + 15000)
    assert s.verify(path, query["sign"][0], now_s=NOW + 15000).stream == "1577899525"


def test_qiniu_obj_needs_plain_rtmp():
    with pytest.raises(ValueError, match="rtmp://"):
        signer(push_rtmp="rtmps://push.wmlive.cn").qiniu_obj("1", now_s=NOW)


# --- the publish proof (pk) --------------------------------------------------------

def test_push_proof_separates_push_addresses_from_play_addresses():
    s = signer()
    push = s.push("1577899525", now_s=NOW, with_proof=True)
    assert push.rtmp == f"rtmp://push.wmlive.cn/live/1577899525?sign={push.sign}&pk={push.proof}"
    assert len(push.proof) == 32 and push.proof not in repr(push)
    # the sign alone is still what NMS checks
    assert nms_verify_auth(SECRET, "/live/1577899525", push.sign, NOW)
    assert s.verify_push("/live/1577899525", push.sign, push.proof, now_s=NOW).stream == "1577899525"
    # a play address has a valid sign for the same path, but no proof: refused as a publish
    play = s.pull("1577899525", now_s=NOW)
    for proof in (None, "", push.proof.upper(), "0" * 32, s.push_proof("other", expires_at_s=push.expires_at_s)):
        with pytest.raises(SignRefused) as refused:
            s.verify_push("/live/1577899525", play.sign, proof, now_s=NOW)
        assert refused.value.reason in ("unproven",)
    # a proof does not rescue a bad sign: the sign's own reason comes first
    with pytest.raises(SignRefused) as refused:
        s.verify_push("/live/1577899525", push.sign, push.proof, now_s=push.expires_at_s + 1)
    assert refused.value.reason == "expired"


def test_qiniu_obj_with_proof_publishes_with_sign_and_proof():
    s = signer()
    obj = s.qiniu_obj("1577899525", now_s=NOW, with_proof=True)
    push = s.push("1577899525", now_s=NOW, with_proof=True)
    path, query = nms_reads_rtmp_publish(pili_publish_url(obj))
    assert query["sign"] == [push.sign] and query["pk"] == [push.proof]
    assert s.verify_push(path, query["sign"][0], query["pk"][0], now_s=NOW).stream == "1577899525"
