"""
Throwaway keys and certificates for the payment tests, the fakes on loopback,
and a small non-persistent HTTP client (nothing is left open for the leak check).
"""

from __future__ import annotations

import datetime
import os
import warnings
from dataclasses import dataclass

import pytest
import pytest_twisted
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.web.client import Agent, HTTPConnectionPool

from tests.outbound.payments.fakes import (
    FakeAlipay, FakeAppleVerifyReceipt, FakeWeChatPay, listen, pem_private, pem_public)

WECHAT_APPID = "wxd678efh567hg6787"
WECHAT_MCHID = "1230000109"
WECHAT_MERCHANT_SERIAL = "444F4864EA9B34415A1B2C3D4E5F60718293A4B5"
WECHAT_PUBLIC_KEY_ID = "PUB_KEY_ID_0112340000000000000000000000000000"
APIV3_KEY = "a12d3924fd499edac8a5efc9b3e0c8b2"
ALIPAY_APP_ID = "2016091200494382"
ALIPAY_SELLER_ID = "2088102177846880"
APPLE_SECRET = "9d6c0fdc6a2c4a1ab3a6b8f1d0c7e5aa"
APPLE_BUNDLE = "com.wmlives.heihei"


def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def name(cn: str, *, org: str = "Ant Financial", unit: str = "Certification Authority") -> x509.Name:
    # built C, O, OU, CN: its RFC 4514 form (what Alipay's SN hashes) is CN=...,OU=...,O=...,C=CN
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                      x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def certificate(subject: x509.Name, public_key, issuer: x509.Name, issuer_key, *, serial: int | None = None,
                hash_algorithm=None) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(serial or x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=365))
            .sign(issuer_key, hash_algorithm or hashes.SHA256()))


def pem(cert: x509.Certificate) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding

    return cert.public_bytes(Encoding.PEM).decode()


@dataclass
class Keys:
    wechat_merchant: object
    wechat_platform: object
    wechat_platform_cert: x509.Certificate
    alipay_app: object
    alipay: object
    alipay_root_rsa: object
    alipay_root_ec: object
    alipay_root_pem: str  # an RSA root, an EC root and a second RSA root, as Alipay's file mixes algorithms
    alipay_cert: x509.Certificate
    app_cert: x509.Certificate
    stranger: object  # a key nobody configured

    @property
    def wechat_platform_serial(self) -> str:
        return format(self.wechat_platform_cert.serial_number, "X")


@pytest.fixture(scope="session")
def keys() -> Keys:
    wechat_merchant, wechat_platform, alipay_app, alipay_key = rsa_key(), rsa_key(), rsa_key(), rsa_key()
    tenpay = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Tenpay.com"),
                        x509.NameAttribute(NameOID.COMMON_NAME, "Tenpay.com Root CA")])
    # 19 bytes: WeChat writes serials as 40 hex digits, so this one's header value has leading zeros
    platform_cert = certificate(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tenpay.com platform")]),
                                wechat_platform.public_key(), tenpay, wechat_platform,
                                serial=int.from_bytes(b"\x05" + os.urandom(18), "big"))
    root_rsa, root_ec, root_rsa2 = rsa_key(), ec.generate_private_key(ec.SECP256R1()), rsa_key()
    root_name = name("Ant Financial Certification Authority R1")
    ec_name = name("Ant Financial Certification Authority E1")
    root2_name = name("iTrusChina Class 2 Root CA - G3", org="iTrusChina", unit="China Trust Network")
    roots = [certificate(root_name, root_rsa.public_key(), root_name, root_rsa),
             certificate(ec_name, root_ec.public_key(), ec_name, root_ec, hash_algorithm=hashes.SHA384()),
             certificate(root2_name, root_rsa2.public_key(), root2_name, root_rsa2, hash_algorithm=hashes.SHA512())]
    class2 = name("Ant Financial Certification Authority Class 2 R1")
    return Keys(
        wechat_merchant=wechat_merchant, wechat_platform=wechat_platform, wechat_platform_cert=platform_cert,
        alipay_app=alipay_app, alipay=alipay_key, alipay_root_rsa=root_rsa, alipay_root_ec=root_ec,
        alipay_root_pem="\n".join(pem(c) for c in roots),
        alipay_cert=certificate(name("支付宝(中国)网络技术有限公司-2088102177846880", org="支付宝(中国)网络技术有限公司",
                                     unit="Alipay.com"), alipay_key.public_key(), class2, root_rsa),
        app_cert=certificate(name("2016091200494382", org="heihei", unit="Alipay.com"), alipay_app.public_key(),
                             class2, root_rsa),
        stranger=rsa_key())


@pytest.fixture
def http():
    return HTTPClient(Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False), connectTimeout=5))


@pytest_twisted.async_yield_fixture
async def wechat_fake(keys):
    fake = FakeWeChatPay(appid=WECHAT_APPID, mchid=WECHAT_MCHID, merchant_serial=WECHAT_MERCHANT_SERIAL,
                         merchant_public_key=keys.wechat_merchant.public_key(),
                         platform_private_key=keys.wechat_platform, platform_serial=WECHAT_PUBLIC_KEY_ID,
                         apiv3_key=APIV3_KEY)
    port, fake.url = listen(fake)
    yield fake
    await port.stopListening()


def alipay_cert_sns(keys: Keys) -> dict[str, str]:
    """The SNs as python-alipay-sdk computes them: the fake expects these."""
    from alipay import DCAliPay

    # python-alipay-sdk splits a chain on blank lines
    chain = "\n".join(pem(c).strip() + "\n" for c in x509.load_pem_x509_certificates(keys.alipay_root_pem.encode()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # its pyOpenSSL X509 calls, not ours
        return {"app_cert_sn": DCAliPay.get_cert_sn(pem(keys.app_cert)),
                "alipay_root_cert_sn": DCAliPay.get_root_cert_sn(chain),
                "alipay_cert_sn": DCAliPay.get_cert_sn(pem(keys.alipay_cert))}


@pytest_twisted.async_yield_fixture
async def alipay_fake(keys):
    fake = FakeAlipay(app_id=ALIPAY_APP_ID, app_public_key_pem=pem_public(keys.alipay_app),
                      alipay_private_key_pem=pem_private(keys.alipay), alipay_public_key_pem=pem_public(keys.alipay),
                      seller_id=ALIPAY_SELLER_ID)
    port, fake.url = listen(fake)
    yield fake
    await port.stopListening()


@pytest_twisted.async_yield_fixture
async def alipay_cert_fake(keys):
    """The gateway of an app in public-key-certificate mode."""
    fake = FakeAlipay(app_id=ALIPAY_APP_ID, app_public_key_pem=pem_public(keys.alipay_app),
                      alipay_private_key_pem=pem_private(keys.alipay), alipay_public_key_pem=pem_public(keys.alipay),
                      seller_id=ALIPAY_SELLER_ID, cert_sns=alipay_cert_sns(keys))
    port, fake.url = listen(fake)
    yield fake
    await port.stopListening()


@pytest_twisted.async_yield_fixture
async def apple_fake():
    fake = FakeAppleVerifyReceipt(shared_secret=APPLE_SECRET)
    port, fake.url = listen(fake)
    yield fake
    await port.stopListening()
