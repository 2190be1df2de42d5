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
#: a message or parameter is malformed (the detail names it)
BAD_PARAMETER = BAD_REQUEST
#: sending too fast
SENDING_TOO_FAST = TOO_FAST


def bad_parameter(name: str, why: str = "") -> Refused:
    """A malformed parameter, named: `参数错误: phoneNo (required)` on the wire."""
    return Refused(BAD_PARAMETER, f"{name} ({why})" if why else name)
