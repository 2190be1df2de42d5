"""
Why the heihei app's domain refuses something: its reasons, beyond the core's
(heihei.core.errors). Every refusal is a `Refused(reason, detail)`; the REST
surfaces and the push channel turn a reason into the seed's `errorcode`
with one table (heihei.web.api.errors.REASON_CODES).
"""

from __future__ import annotations

from heihei.core.errors import BAD_REQUEST, FORBIDDEN, TOO_FAST, Refused

#: a step the seed calls 业务失败: a provider out of reach, a list full
BUSINESS_FAILED = "business-failed"
#: an SMS code that is wrong, expired or burnt
WRONG_CODE = "wrong-code"
#: the phone number belongs to another account
PHONE_TAKEN = "phone-taken"
#: a display name with control characters or banned words
ILLEGAL_NAME = "illegal-name"
#: WeChat did not vouch for the token and openid
BAD_OPENID = "bad-openid"
#: Weibo did not vouch for the token (the seed's 701 "weibo token无效")
WEIBO_REJECTED = "weibo-rejected"
#: no such user
NO_SUCH_USER = "no-such-user"
#: the user may not do this to that user (blocked either way)
NOT_ALLOWED = FORBIDDEN
#: no such session (unknown, expired, signed out)
BAD_TOKEN = "bad-token"
#: no such room, not open, or the user is not in it
BAD_ROOM = "bad-room"
#: the user blocked the viewer
CANNOT_VIEW_USER = "cannot-view-user"
#: a phone asked for SMS codes too often
SMS_TOO_FREQUENT = "sms-too-frequent"
#: the SMS provider did not take the message
SMS_FAILED = "sms-failed"
#: no such topic or subject (the seed's 100 话题或帖子不存在)
NO_SUCH_TOPIC = "no-such-topic"
#: an uploaded file's sign does not check out, or the file is not there (102 文件验证失败)
BAD_FILE = "bad-file"
#: a voice record that is not what it claims (754: wrong MD5, not audio, undecodable)
RECORD_CORRUPT = "record-corrupt"
#: a voice record shorter than [social] record_min_s (755)
RECORD_TOO_SHORT = "record-too-short"
#: a voice record over [social] record_max_bytes or record_max_s (756)
RECORD_TOO_BIG = "record-too-big"
#: no such voice record (757 录音不存在)
NO_SUCH_RECORD = "no-such-record"
#: someone else's voice record (757 无法删除不属于自己的录音)
NOT_YOUR_RECORD = "not-your-record"
#: the account is banned by an operator
BANNED = "banned"
#: no such live, or deleted or banned (the seed's 731 直播无效)
NO_SUCH_LIVE = "no-such-live"
#: the live has ended: it cannot be paused, continued or started again (735)
LIVE_ENDED = "live-ended"
#: the live is not (or no longer) on: a heart-beat for it (725 live is not inactive)
LIVE_NOT_ACTIVE = "live-not-active"
#: the viewer may not watch this live: kicked out, blocked by the anchor, or a hidden live (737)
CANNOT_WATCH = "cannot-watch"
#: the user is muted in this live room (722 您已被禁言)
MUTED_IN_LIVE = "muted-in-live"
#: the user is not in the live room (506 您不在该队伍)
NOT_IN_ROOM = "not-in-room"
#: every open seat of the room is taken (505 没座位了，敲门试试？)
NO_SEAT = "no-seat"
#: the user knocked on this room a moment ago (504 刚敲过门啦 歇会~)
KNOCKED_RECENTLY = "knocked-recently"
#: locking one more seat would leave fewer open than allowed (502 请至少保留2个座位)
KEEP_SEATS = "keep-seats"
#: the account may not do this (721 用户账户异常)
ACCOUNT_PROBLEM = "account-problem"
#: the other user is live right now (738 该用户正在直播)
USER_IS_LIVE = "user-is-live"
#: the other user is busy (739 对方太火，忙线中~)
USER_BUSY = "user-busy"
#: the user's state does not allow this step (742 用户状态错误)
BAD_USER_STATE = "bad-user-state"
#: a connection between users could not be made (750 哎呀，连线失败了)
CONNECT_FAILED = "connect-failed"
#: no such 1:1 chat, not the caller's, or not (any more) in the state the step needs (732 对话无效)
NO_SUCH_CHAT = "no-such-chat"
#: an offer (a co-hosting invitation or request) expired or was withdrawn (409 来晚了~)
LATE = "late"
#: a message or parameter is malformed (the detail names it)
BAD_PARAMETER = BAD_REQUEST
#: sending too fast
SENDING_TOO_FAST = TOO_FAST


def bad_parameter(name: str, why: str = "") -> Refused:
    """A malformed parameter, named: `参数错误: phoneNo (required)` on the wire."""
    return Refused(BAD_PARAMETER, f"{name} ({why})" if why else name)

# -- money (issue 19; heihei.heihei.ledger, heihei.heihei.payments) --
#: not enough diamonds (740 余额不足)
NO_GOLD = "no-gold"
#: not enough 黑票 (741 积分不足)
NO_POINT = "no-point"
#: no such gift in the catalog (730 礼物不存在)
NO_SUCH_GIFT = "no-such-gift"
#: no such package, or an Alipay account that does not check out (726)
BAD_PACKAGE = "bad-package"
#: no such order of this user (727 invalid order)
BAD_ORDER = "bad-order"
