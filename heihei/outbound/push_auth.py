"""
Credentials for the push services: JSON Web Tokens signed with our keys, and a
cache for the short-lived tokens the services hand out.

JWTs (RFC 7519, compact JWS form `base64url(header).base64url(claims).base64url(signature)`):

    ES256   APNs provider tokens, signed with the team's .p8 key (EC P-256).
            The signature is r || s, 32 bytes each -- not the DER that
            `cryptography` returns, a classic source of "InvalidProviderToken".
    RS256   Google OAuth2 service-account assertions (RSA, PKCS#1 v1.5, SHA-256).

The tests verify what this module signs with PyJWT, a second implementation.

`TokenCache` keeps one token and its expiry (by the injected `now_s`), renews
it `refresh_margin_s` before it expires, fetches it once however many callers
ask at the same moment, and can be told a token was refused (`invalidate`).

Keys are never logged and never part of an exception's message.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from heihei.jsonsafe import encode_json
from heihei.outbound.singleflight import SingleFlight


class BadKey(ValueError):
    """A configured private key cannot be used (unreadable, or the wrong kind). Never shows the key."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def load_ec_p256_key(pem: bytes, what: str) -> ec.EllipticCurvePrivateKey:
    """An APNs .p8 key: PKCS#8 PEM of an EC key on P-256."""
    key = _load_pem(pem, what)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise BadKey(f"{what} is not an EC P-256 private key (an APNs .p8 key is one)")
    return key


def load_rsa_key(pem: bytes, what: str) -> rsa.RSAPrivateKey:
    key = _load_pem(pem, what)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise BadKey(f"{what} is not an RSA private key")
    return key


def _load_pem(pem: bytes, what: str):
    try:
        return serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # the library's message may quote the input: say only what failed
        raise BadKey(f"{what} is not a readable unencrypted PEM private key") from None


def sign_es256(key: ec.EllipticCurvePrivateKey, header: dict[str, Any], claims: dict[str, Any]) -> str:
    signing_input = _signing_input({**header, "alg": "ES256"}, claims)
    der = key.sign(signing_input, ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return signing_input.decode("ascii") + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def sign_rs256(key: rsa.RSAPrivateKey, header: dict[str, Any], claims: dict[str, Any]) -> str:
    signing_input = _signing_input({**header, "alg": "RS256"}, claims)
    signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return signing_input.decode("ascii") + "." + b64url(signature)


def _signing_input(header: dict[str, Any], claims: dict[str, Any]) -> bytes:
    return (b64url(encode_json({"typ": "JWT", **header})) + "." + b64url(encode_json(claims))).encode("ascii")


@dataclass(frozen=True)
class Token:
    value: str
    expires_at_s: float


class TokenCache:
    """One service token, fetched by `fetch()` (which returns a `Token`) when missing or about to expire."""

    def __init__(self, fetch: Callable[[], Awaitable[Token]], now_s: Callable[[], float], *,
                 refresh_margin_s: float) -> None:
        self._fetch = fetch
        self._now_s = now_s
        self._margin_s = refresh_margin_s
        self._token: Token | None = None
        self._flight = SingleFlight()
        self.fetches = 0

    def current(self) -> str | None:
        """The cached token if it is still good for `refresh_margin_s`, else None."""
        token = self._token
        if token is None or self._now_s() >= token.expires_at_s - self._margin_s:
            return None
        return token.value

    async def get(self) -> str:
        value = self.current()
        if value is not None:
            return value
        return await self._flight.run(self._refresh)

    def invalidate(self, value: str) -> None:
        """The service refused `value`: fetch a new token next time (unless one was fetched meanwhile)."""
        if self._token is not None and self._token.value == value:
            self._token = None

    async def _refresh(self) -> str:
        self.fetches += 1
        token = await self._fetch()
        self._token = token
        return token.value
