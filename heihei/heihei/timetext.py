"""How times and stored numbers are shown in the answers of seed 001's topics and records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from heihei.heihei.uploads import FILE_NAME_TZ
from heihei.textnum import is_int_text


def as_int(value: Any) -> int:
    """A stored counter or id as a number (0 when absent or not a number)."""
    text = str(value) if value is not None else ""
    return int(text) if is_int_text(text) else 0


def create_time(ms: int) -> str:
    """The seed's `createTime`, `2017-03-10 18:30:30`, in China time (as the upload file names)."""
    return datetime.fromtimestamp(ms / 1000, FILE_NAME_TZ).strftime("%Y-%m-%d %H:%M:%S")


def time_tip(now_s: float, then_s: float) -> str:
    """The seed's `timeTip`: 刚刚, 2分钟前, 3小时前, 4天前, then the date."""
    ago = max(0, int(now_s - then_s))
    if ago < 60:
        return "刚刚"
    if ago < 3600:
        return f"{ago // 60}分钟前"
    if ago < 86400:
        return f"{ago // 3600}小时前"
    if ago < 30 * 86400:
        return f"{ago // 86400}天前"
    return datetime.fromtimestamp(then_s, FILE_NAME_TZ).strftime("%Y-%m-%d")
