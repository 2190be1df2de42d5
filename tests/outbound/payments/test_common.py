"""Key loading, the signature helper, raw JSON spans, yuan/fen and Alipay certificate SNs: no network."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from heihei.jsonsafe import BadJSON
from heihei.outbound.payments import keys as k
from heihei.outbound.payments.alipay import cert_sn, fen_from_yuan, root_cert_sn, yuan_from_fen
from heihei.outbound.payments.errors import ConfigError
from heihei.outbound.payments.rawjson import member_spans
from tests.outbound.payments.conftest import alipay_cert_sns, pem
from tests.outbound.payments.fakes import pem_private, pem_public


def _der_b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_private_key_from_pem_file_and_alipay_style_base64(keys, tmp_path):
    key = keys.alipay_app
    pkcs8_pem = pem_private(key)
    pkcs1_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.NoEncryption()).decode()
    # Alipay's key tool prints the bare base64 of PKCS#8 ("for Java") or PKCS#1 ("for other languages")
    bare_pkcs8 = _der_b64(key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
    bare_pkcs1 = _der_b64(key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL,
                                            serialization.NoEncryption()))
    path = tmp_path / "app_private_key.pem"
    path.write_text(pkcs1_pem)
    bare_path = tmp_path / "app_private_key.txt"
    bare_path.write_text(bare_pkcs8 + "\n")
    expected = key.private_numbers()
    for setting in (pkcs8_pem, pkcs1_pem, bare_pkcs8, bare_pkcs1, str(path), str(bare_path), "\n" + pkcs8_pem):
        assert k.load_private_key(setting, what="x").private_numbers() == expected


def test_public_key_from_pem_certificate_and_base64(keys, tmp_path):
    expected = keys.alipay.public_key().public_numbers()
    spki_der = keys.alipay.public_key().public_bytes(serialization.Encoding.DER,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo)
    cert_path = tmp_path / "alipayCertPublicKey_RSA2.crt"
    cert_path.write_text(pem(keys.alipay_cert))
    for setting in (pem_public(keys.alipay), _der_b64(spki_der), pem(keys.alipay_cert), str(cert_path)):
        assert k.load_public_key(setting, what="x").public_numbers() == expected


def test_bad_key_settings_are_config_errors_that_do_not_echo_the_setting(keys, tmp_path):
    secret_looking = pem_private(keys.alipay_app)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_pem = ec_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()).decode()
    cases = {
        "": "is not set",
        str(tmp_path / "missing.pem"): "not a readable file",
        "not a key at all!": "not a readable file",
        secret_looking.replace("A", "B", 40): "private key",
        ec_pem: "not an RSA key",
    }
    for setting, message in cases.items():
        with pytest.raises(ConfigError) as info:
            k.load_private_key(setting, what="wechatpay merchant_private_key")
        assert message in info.value.reason and "merchant_private_key" in info.value.reason
        assert "MII" not in info.value.reason
    with pytest.raises(ConfigError, match="not a public key"):
        k.load_public_key(secret_looking, what="x")
    with pytest.raises(ConfigError, match="expected one certificate"):
        k.load_certificate(keys.alipay_root_pem, what="x")


def test_verify_is_false_for_anything_but_a_genuine_signature(keys):
    message = b"2018\nnonce\n{}\n"
    good = k.sign(keys.alipay, message)
    public = keys.alipay.public_key()
    assert k.verify(public, message, good)
    for bad in (None, 42, "", "not base64!", good[:-4], good + "AAAA", "A" * 5000, k.sign(keys.stranger, message)):
        assert not k.verify(public, message, bad)
    assert not k.verify(public, message + b" ", good)
    assert len(k.nonce()) == 32 and k.nonce() != k.nonce()


def test_member_spans_are_the_exact_text_even_with_braces_and_escapes_in_strings():
    node = '{\n  "code": "10000",\n  "remark": "a \\"}{\\" and \\\\",\n  "list": [{"a": "]"}, 2]\n}'
    raw = ('{ "alipay_trade_query_response" : ' + node + ' , "sign":"c2lnbg==", "n": -1.5e3 , "t": true}').encode()
    spans = member_spans(raw, max_bytes=4096)
    assert raw[slice(*spans["alipay_trade_query_response"])].decode() == node
    assert raw[slice(*spans["sign"])] == b'"c2lnbg=="'
    assert raw[slice(*spans["n"])] == b"-1.5e3"
    assert raw[slice(*spans["t"])] == b"true"
    assert json.loads(raw[slice(*spans["alipay_trade_query_response"])])["remark"] == 'a "}{" and \\'
    assert member_spans(b"{}", max_bytes=10) == {}
    for bad in (b'{"a":1,"a":2}', b"[1]", b"{", b'{"a":1}x'):
        with pytest.raises(BadJSON):
            member_spans(bad, max_bytes=100)


def test_yuan_and_fen():
    assert [fen_from_yuan(t) for t in ("0.01", "6", "6.0", "6.00", "12.3", "100000000.00")] == \
        [1, 600, 600, 600, 1230, 10_000_000_000]
    for bad in ("", "6.001", "-1", "1e3", " 6.00", "06.00", "6.", ".5", "6,00", None, 6):
        with pytest.raises(ValueError):
            fen_from_yuan(bad)
    assert [yuan_from_fen(n) for n in (0, 1, 600, 1230, 97000)] == ["0.00", "0.01", "6.00", "12.30", "970.00"]
    for bad in (-1, 1.5, True, "600"):
        with pytest.raises(ValueError):
            yuan_from_fen(bad)


def test_alipay_certificate_sns_agree_with_python_alipay_sdk(keys):
    """app_cert_sn and alipay_root_cert_sn computed the way python-alipay-sdk (and Alipay's Java SDK) do:
    MD5 of issuer DN + decimal serial; the root SN joins the RSA-signed certificates' SNs only."""
    expected = alipay_cert_sns(keys)
    assert cert_sn(keys.app_cert) == expected["app_cert_sn"]
    assert cert_sn(keys.alipay_cert) == expected["alipay_cert_sn"]
    roots = x509.load_pem_x509_certificates(keys.alipay_root_pem.encode())
    assert root_cert_sn(roots) == expected["alipay_root_cert_sn"]
    assert root_cert_sn(roots).count("_") == 1  # the EC-signed root is left out
