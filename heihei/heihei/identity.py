"""
Identity data of withdrawals (the Alipay account, real name, ID card number,
phone of `payment/verify-alipay`), sealed before it reaches Redis.

AES-256-GCM with `[payment] identity_key` (32 bytes, base64): a copy of the
database or of a backup shows nothing readable, and a sealed value moved to
another user does not open there (the user id is the associated data). The
plain values are never logged; the operators' look-ups show them masked.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from heihei.config import ConfigError

NONCE_BYTES = 12


class IdentityBox:
    def __init__(self, key_b64: str) -> None:
        try:
            key = base64.b64decode(key_b64, validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError("[payment] identity_key must be base64 of 32 bytes") from None
        if len(key) != 32:
            raise ConfigError("[payment] identity_key must be base64 of 32 bytes")
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "<IdentityBox>"

    def seal(self, uid: str, value: dict[str, Any]) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, json.dumps(value, ensure_ascii=False).encode(), uid.encode())
        return base64.b64encode(nonce + sealed).decode("ascii")

    def open(self, uid: str, text: str) -> dict[str, Any] | None:
        """The sealed value, or None when it does not open (another key, another user, tampered)."""
        try:
            raw = base64.b64decode(text, validate=True)
            return json.loads(self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], uid.encode()))
        except Exception:  # noqa: BLE001 - any failure to open is "not ours"
            return None


def mask(text: str, keep_start: int = 3, keep_end: int = 2) -> str:
    """`13533221223` -> `135******23`: enough for a person to recognise, not to reuse."""
    if len(text) <= keep_start + keep_end:
        return "*" * len(text)
    return text[:keep_start] + "*" * (len(text) - keep_start - keep_end) + text[len(text) - keep_end:]


_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def valid_id_card(text: str) -> bool:
    """A mainland resident ID number: 17 digits and the GB 11643 check character."""
    if len(text) != 18 or not text[:17].isdigit() or not text[:17].isascii():
        return False
    total = sum(int(d) * w for d, w in zip(text[:17], _ID_WEIGHTS))
    return _ID_CHECK[total % 11] == text[17].upper()


def valid_phone(text: str) -> bool:
    return len(text) == 11 and text.isascii() and text.isdigit() and text[0] == "1"
