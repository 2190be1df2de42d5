"""
Key material for the payment providers, and the one signature scheme they all use.

A key or certificate setting may be any of:

- PEM text (`-----BEGIN ...`): a private key (PKCS#8 or PKCS#1), a public key
  (SubjectPublicKeyInfo or PKCS#1), or a certificate (its public key is used);
- the bare base64 of the DER form, as Alipay's key tool prints keys and as
  Alipay's console shows its public key;
- the path of a file holding either of the above.

Everything is loaded once, at construction: a bad setting is a `ConfigError`
at start-up, not a failed payment. Error messages name the setting, never its
content (it may be a private key pasted in the wrong place).

WeChat Pay ("WECHATPAY2-SHA256-RSA2048") and Alipay ("RSA2") both sign with
RSA PKCS#1 v1.5 over SHA-256, the signature in standard base64: `sign` and
`verify` below are that scheme. (Apple's verifyReceipt answers are not signed.)
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from heihei.outbound.payments.errors import ConfigError

#: a key file is a few KB; a certificate chain a few more
MAX_KEY_FILE_BYTES = 64 * 1024
#: base64 of a 4096-bit RSA signature is 684 characters
MAX_SIGNATURE_CHARS = 1024

_BARE_BASE64 = re.compile(r"^[A-Za-z0-9+/=\s]+$")


def _material(setting: str, what: str) -> bytes:
    """The key text behind a setting: the text itself, or the content of the file it names."""
    if not isinstance(setting, str) or not setting.strip():
        raise ConfigError(f"{what} is not set")
    text = setting.strip()
    if text.startswith("-----BEGIN"):
        return text.encode("ascii", "replace")
    if "\n" not in text and len(text) < 4096 and os.path.isfile(text):
        try:
            with open(text, "rb") as f:
                data = f.read(MAX_KEY_FILE_BYTES + 1)
        except OSError as e:
            raise ConfigError(f"{what}: cannot read {text}: {e.strerror}") from None
        if len(data) > MAX_KEY_FILE_BYTES:
            raise ConfigError(f"{what}: {text} is larger than {MAX_KEY_FILE_BYTES} bytes")
        return data.strip()
    return text.encode("ascii", "replace")


def _der(material: bytes, what: str) -> bytes:
    text = material.decode("ascii", "replace")
    if not _BARE_BASE64.match(text):
        raise ConfigError(f"{what}: not a readable file, PEM text or base64 key")
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{what}: not a readable file, PEM text or base64 key") from None


def load_private_key(setting: str, *, what: str) -> RSAPrivateKey:
    """An RSA private key from PEM, bare base64 DER or a file (unencrypted)."""
    material = _material(setting, what)
    try:
        if material.startswith(b"-----BEGIN"):
            key = serialization.load_pem_private_key(material, password=None)
        else:
            key = serialization.load_der_private_key(_der(material, what), password=None)
    except ConfigError:
        raise
    except (ValueError, TypeError):
        raise ConfigError(f"{what}: not an unencrypted private key") from None
    except Exception as e:  # cryptography raises UnsupportedAlgorithm and friends
        raise ConfigError(f"{what}: cannot load the private key ({type(e).__name__})") from None
    if not isinstance(key, RSAPrivateKey):
        raise ConfigError(f"{what}: not an RSA key")
    return key


_PEM_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


def load_certificates(setting: str, *, what: str, skip_unparseable: bool = False) -> list[x509.Certificate]:
    """Every certificate in a PEM file or text (a chain is several), in order.

    With `skip_unparseable`, certificates this library cannot read are left out
    instead of failing the whole setting."""
    material = _material(setting, what)
    certs = []
    try:
        if material.startswith(b"-----BEGIN"):
            for block in _PEM_CERTIFICATE.findall(material):
                try:
                    certs.append(x509.load_pem_x509_certificate(block))
                except Exception:
                    if not skip_unparseable:
                        raise
        else:
            certs = [x509.load_der_x509_certificate(_der(material, what))]
    except ConfigError:
        raise
    except Exception:
        raise ConfigError(f"{what}: not a certificate") from None
    if not certs:
        raise ConfigError(f"{what}: no certificate in it")
    return certs


def load_certificate(setting: str, *, what: str) -> x509.Certificate:
    certs = load_certificates(setting, what=what)
    if len(certs) != 1:
        raise ConfigError(f"{what}: expected one certificate, found {len(certs)}")
    return certs[0]


def load_public_key(setting: str, *, what: str) -> RSAPublicKey:
    """An RSA public key from a public key or a certificate (PEM, bare base64 DER, or a file)."""
    material = _material(setting, what)
    try:
        if material.startswith(b"-----BEGIN CERTIFICATE"):
            key = x509.load_pem_x509_certificate(material).public_key()
        elif material.startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(material)
        else:
            key = serialization.load_der_public_key(_der(material, what))
    except ConfigError:
        raise
    except Exception:
        raise ConfigError(f"{what}: not a public key or certificate") from None
    if not isinstance(key, RSAPublicKey):
        raise ConfigError(f"{what}: not an RSA key")
    return key


def sign(key: RSAPrivateKey, message: bytes) -> str:
    """RSA PKCS#1 v1.5 over SHA-256, in standard base64 on one line."""
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode("ascii")


def verify(key: RSAPublicKey, message: bytes, signature: object) -> bool:
    """Whether `signature` (base64 text) is `key`'s RSA-SHA256 signature of `message`.

    False, never an exception, for anything that is not: a non-string, bad base64,
    an oversized value, a signature of something else."""
    if not isinstance(signature, str) or not signature or len(signature) > MAX_SIGNATURE_CHARS:
        return False
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    try:
        key.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def nonce() -> str:
    """32 random upper-case hex characters: WeChat's nonce_str/noncestr allow at most 32."""
    return secrets.token_hex(16).upper()
