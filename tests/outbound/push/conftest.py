"""Keys, certificates and clocks for the push adapter tests (keys are made once per session: RSA is slow)."""

from __future__ import annotations

import pytest

from tests.outbound.push.fakes import FakeTime, ThrowawayTLS, ec_p256_pem, rsa_pem


@pytest.fixture(scope="session")
def tls() -> ThrowawayTLS:
    return ThrowawayTLS.make()


@pytest.fixture(scope="session")
def apns_key():
    return ec_p256_pem()


@pytest.fixture(scope="session")
def other_ec_key():
    return ec_p256_pem()


@pytest.fixture(scope="session")
def fcm_key():
    return rsa_pem()


@pytest.fixture(scope="session")
def other_rsa_key():
    return rsa_pem()


@pytest.fixture
def now() -> FakeTime:
    return FakeTime()
