"""
Numbers written as text, the way the wire formats mean them: ASCII digits.

`str.isdigit()` also says yes to "²" or "١" (any Unicode digit), which `int()`
then refuses or reads as another number, so a check built on it lets a client
turn a refusal into a ValueError. Every "is this a number" test of client
input goes through here.
"""

from __future__ import annotations

import re

_INT = re.compile(r"-?[0-9]+")


def is_digits(text: object) -> bool:
    """Only ASCII digits, at least one."""
    return isinstance(text, str) and text.isascii() and text.isdigit()


def is_int_text(text: object) -> bool:
    """An optional minus sign, then ASCII digits."""
    return isinstance(text, str) and _INT.fullmatch(text) is not None
