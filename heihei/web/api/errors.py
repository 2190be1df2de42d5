"""
The error codes of seed 001 (`errorcode` in every answer, REST and push
channel alike) and the table that turns the domain's reasons into them.

Codes are the seed's own; the message text is the seed's Chinese text,
optionally followed by `: detail` (e.g. the parameter at fault for 700).
"""

from __future__ import annotations

from heihei.core import errors as core
from heihei.heihei import errors as reasons
from heihei.web.kit.routes import WireError

SUCCESS = 0
NO_SUCH_TOPIC = 100  # 话题或帖子不存在
BAD_FILE = 102  # 文件验证失败
BUSINESS_FAILED = 400  # 业务失败; also 短信发送太频繁 for the SMS endpoint
LATE = 409  # 来晚了~
WRONG_CODE = 401  # 验证码错误
PHONE_TAKEN = 403  # 手机号已被其他账户绑定
ILLEGAL_NAME = 445  # 非法的名称
NAME_TOO_LONG = 447  # 名字太长
BAD_PARAMETER = 700  # 参数错误
BAD_SIGNATURE = 701  # signature错误 (messageserver); weibo token无效 (sign-in)
BAD_OPENID = 702  # openid无效
NO_SUCH_USER = 710  # 用户不存在
NOT_ALLOWED = 711  # 用户权限不足
BAD_TOKEN = 720  # token无效
ACCOUNT_PROBLEM = 721  # 用户账户异常
MUTED = 722  # 您已被禁言
LIVE_NOT_ACTIVE = 725  # live is not inactive
NO_SUCH_LIVE = 731  # 直播无效
NO_SUCH_CHAT = 732  # 对话无效
BAD_ROOM = 733  # room无效
LIVE_ENDED = 735  # 直播已结束
CANNOT_VIEW_USER = 736  # 无法查看该用户信息
RECORD_CORRUPT = 754  # 文件损坏,请重新上传。
RECORD_TOO_SHORT = 755  # 录音时间太短
RECORD_TOO_BIG = 756  # 文件太大啦
NO_SUCH_RECORD = 757  # 录音不存在 / 无法删除不属于自己的录音
CANNOT_WATCH = 737  # 无法观看该用户直播
USER_IS_LIVE = 738  # 该用户正在直播
USER_BUSY = 739  # 对方太火，忙线中~
BAD_USER_STATE = 742  # 用户状态错误
CONNECT_FAILED = 750  # 哎呀，连线失败了
KEEP_SEATS = 502  # 请至少保留2个座位
KNOCKED_RECENTLY = 504  # 刚敲过门啦 歇会~
NO_SEAT = 505  # 没座位了，敲门试试？
NOT_IN_ROOM = 506  # 您不在该队伍
NO_SUCH_GIFT = 730  # 礼物不存在
NO_GOLD = 740  # 余额不足
NO_POINT = 741  # 积分不足
BAD_PACKAGE = 726  # invalid packageId
BAD_ORDER = 727  # invalid order
INTERNAL = 500  # not in the seed: the server failed (logged)
UNAVAILABLE = 503  # not in the seed: Redis or an upstream is unreachable

MESSAGES = {
    SUCCESS: "success",
    NO_SUCH_TOPIC: "话题或帖子不存在",
    BAD_FILE: "文件验证失败",
    BUSINESS_FAILED: "业务失败",
    LATE: "来晚了~",
    WRONG_CODE: "验证码错误",
    PHONE_TAKEN: "手机号已被其他账户绑定",
    ILLEGAL_NAME: "非法的名称",
    NAME_TOO_LONG: "名字太长",
    BAD_PARAMETER: "参数错误",
    BAD_SIGNATURE: "signature错误",
    BAD_OPENID: "openid无效",
    NO_SUCH_USER: "用户不存在",
    NOT_ALLOWED: "用户权限不足",
    BAD_TOKEN: "token无效",
    ACCOUNT_PROBLEM: "用户账户异常",
    MUTED: "您已被禁言",
    LIVE_NOT_ACTIVE: "live is not inactive",
    NO_SUCH_LIVE: "直播无效",
    NO_SUCH_CHAT: "对话无效",
    BAD_ROOM: "room无效",
    LIVE_ENDED: "直播已结束",
    CANNOT_VIEW_USER: "无法查看该用户信息",
    RECORD_CORRUPT: "文件损坏,请重新上传。",
    RECORD_TOO_SHORT: "录音时间太短",
    RECORD_TOO_BIG: "文件太大啦",
    NO_SUCH_RECORD: "录音不存在",
    CANNOT_WATCH: "无法观看该用户直播",
    USER_IS_LIVE: "该用户正在直播",
    USER_BUSY: "对方太火，忙线中~",
    BAD_USER_STATE: "用户状态错误",
    CONNECT_FAILED: "哎呀，连线失败了",
    KEEP_SEATS: "请至少保留2个座位",
    KNOCKED_RECENTLY: "刚敲过门啦 歇会~",
    NO_SEAT: "没座位了，敲门试试？",
    NOT_IN_ROOM: "您不在该队伍",
    NO_SUCH_GIFT: "礼物不存在",
    NO_GOLD: "余额不足",
    NO_POINT: "积分不足",
    BAD_PACKAGE: "invalid packageId",
    BAD_ORDER: "invalid order",
    INTERNAL: "服务器内部错误",
    UNAVAILABLE: "服务暂不可用",
}


#: domain reason -> (code, message when it is not the code's own)
REASON_CODES: dict[str, tuple[int, str | None]] = {
    reasons.BUSINESS_FAILED: (BUSINESS_FAILED, None),
    reasons.SMS_TOO_FREQUENT: (BUSINESS_FAILED, "短信发送太频繁"),
    reasons.SMS_FAILED: (BUSINESS_FAILED, "短信发送失败"),
    reasons.WRONG_CODE: (WRONG_CODE, None),
    reasons.PHONE_TAKEN: (PHONE_TAKEN, None),
    reasons.ILLEGAL_NAME: (ILLEGAL_NAME, None),
    reasons.BAD_OPENID: (BAD_OPENID, None),
    reasons.WEIBO_REJECTED: (BAD_SIGNATURE, "weibo token无效"),
    reasons.NO_SUCH_USER: (NO_SUCH_USER, None),
    reasons.BAD_TOKEN: (BAD_TOKEN, None),
    reasons.BAD_ROOM: (BAD_ROOM, None),
    reasons.CANNOT_VIEW_USER: (CANNOT_VIEW_USER, None),
    reasons.NO_SUCH_TOPIC: (NO_SUCH_TOPIC, None),
    reasons.BAD_FILE: (BAD_FILE, None),
    reasons.RECORD_CORRUPT: (RECORD_CORRUPT, None),
    reasons.RECORD_TOO_SHORT: (RECORD_TOO_SHORT, None),
    reasons.RECORD_TOO_BIG: (RECORD_TOO_BIG, None),
    reasons.NO_SUCH_RECORD: (NO_SUCH_RECORD, None),
    reasons.NOT_YOUR_RECORD: (NO_SUCH_RECORD, "无法删除不属于自己的录音"),
    reasons.BANNED: (NOT_ALLOWED, None),
    reasons.ACCOUNT_PROBLEM: (ACCOUNT_PROBLEM, None),
    reasons.MUTED_IN_LIVE: (MUTED, None),
    reasons.LIVE_NOT_ACTIVE: (LIVE_NOT_ACTIVE, None),
    reasons.NO_SUCH_LIVE: (NO_SUCH_LIVE, None),
    reasons.NO_SUCH_CHAT: (NO_SUCH_CHAT, None),
    reasons.LATE: (LATE, None),
    reasons.LIVE_ENDED: (LIVE_ENDED, None),
    reasons.CANNOT_WATCH: (CANNOT_WATCH, None),
    reasons.USER_IS_LIVE: (USER_IS_LIVE, None),
    reasons.USER_BUSY: (USER_BUSY, None),
    reasons.BAD_USER_STATE: (BAD_USER_STATE, None),
    reasons.CONNECT_FAILED: (CONNECT_FAILED, None),
    reasons.KEEP_SEATS: (KEEP_SEATS, None),
    reasons.KNOCKED_RECENTLY: (KNOCKED_RECENTLY, None),
    reasons.NO_SEAT: (NO_SEAT, None),
    reasons.NOT_IN_ROOM: (NOT_IN_ROOM, None),
    reasons.NO_SUCH_GIFT: (NO_SUCH_GIFT, None),
    reasons.NO_GOLD: (NO_GOLD, None),
    reasons.NO_POINT: (NO_POINT, None),
    reasons.BAD_PACKAGE: (BAD_PACKAGE, None),
    reasons.BAD_ORDER: (BAD_ORDER, None),
    core.BAD_REQUEST: (BAD_PARAMETER, None),
    core.FORBIDDEN: (NOT_ALLOWED, None),
    core.NOT_A_MEMBER: (NOT_ALLOWED, None),
    core.TOO_FAST: (BUSINESS_FAILED, None),
    core.TOO_LONG: (BAD_PARAMETER, None),
    core.NOT_FOUND: (BAD_PARAMETER, None),
    core.NO_SUCH_GROUP: (BAD_ROOM, None),
    core.MUTED: (NOT_ALLOWED, None),
    core.FULL: (BUSINESS_FAILED, None),
}


class ApiError(WireError):
    """A refusal with the seed's code; `errormsg` is what the client sees."""

    def __init__(self, code: int, detail: str = "", message: str | None = None, *, status: int = 200) -> None:
        super().__init__(code, detail, status=status, message=message)
        base = message if message is not None else MESSAGES.get(code, "error")
        self.errormsg = f"{base}: {detail}" if detail else base

    def body(self) -> dict:
        return {"errorcode": self.code, "errormsg": self.errormsg}


def of_refusal(reason: str, detail: str = "") -> ApiError:
    """The seed's error for a domain refusal (an unknown reason is 业务失败, never a 500)."""
    code, message = REASON_CODES.get(reason, (BUSINESS_FAILED, None))
    return ApiError(code, detail, message)


def bad_parameter(name: str, why: str = "") -> ApiError:
    """700 naming the parameter, e.g. `参数错误: phoneNo (required)`."""
    return ApiError(BAD_PARAMETER, f"{name} ({why})" if why else name)
