"""Apple verifyReceipt against the fake on loopback: production, the sandbox retry, and every refusal."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import reactor, task

from heihei.outbound.payments.errors import OrderMismatch, ProviderRejected, ProviderUnavailable, ReceiptRejected
from heihei.outbound.payments.iap import AppleIAP, AppleIAPConfig
from tests.outbound.payments.conftest import APPLE_BUNDLE, APPLE_SECRET


def apple(http, fake, **changes) -> AppleIAP:
    values = dict(shared_secret=APPLE_SECRET, bundle_id=APPLE_BUNDLE, production_url=fake.url + "/verifyReceipt",
                  sandbox_url=fake.url + "/sandbox/verifyReceipt", timeout_s=5.0)
    values.update(changes)
    return AppleIAP(AppleIAPConfig(**values), http, clock=reactor)


@pytest_twisted.ensureDeferred
async def test_a_production_receipt_gives_its_purchases_the_same_every_time(http, apple_fake):
    receipt_data = apple_fake.add("Production", APPLE_BUNDLE, [("productId_60", "1000000401234567"),
                                                                ("productId_380", "1000000401234568")])
    iap = apple(http, apple_fake)
    receipt = await iap.verify_receipt(receipt_data)
    assert (receipt.environment, receipt.bundle_id) == ("Production", APPLE_BUNDLE)
    assert [(p.product_id, p.transaction_id, p.quantity, p.purchase_date_ms) for p in receipt.purchases] == \
        [("productId_60", "1000000401234567", 1, 1528425296000),
         ("productId_380", "1000000401234568", 1, 1528425296000)]
    assert receipt.require("1000000401234568", "productId_380").original_transaction_id == "1000000401234568"
    with pytest.raises(OrderMismatch) as info:
        receipt.require("1000000401234568", "productId_980")
    assert info.value.field == "product_id"
    with pytest.raises(OrderMismatch) as info:
        receipt.require("1000000409999999", "productId_60")
    assert info.value.field == "transaction_id"
    assert apple_fake.requests == [("POST", "/verifyReceipt")]
    for _ in range(3):
        assert await iap.verify_receipt(receipt_data) == receipt
    # the heihei client's unencoded form posts turn a receipt's "+" into " "
    assert await iap.verify_receipt(receipt_data.replace("+", " ")) == receipt


@pytest_twisted.ensureDeferred
async def test_a_sandbox_receipt_is_retried_at_the_sandbox_or_refused(http, apple_fake):
    receipt_data = apple_fake.add("Sandbox", APPLE_BUNDLE, [("productId_60", "1000000401230001")])
    receipt = await apple(http, apple_fake).verify_receipt(receipt_data)
    assert receipt.environment == "Sandbox" and receipt.purchases[0].transaction_id == "1000000401230001"
    assert apple_fake.requests == [("POST", "/verifyReceipt"), ("POST", "/sandbox/verifyReceipt")]
    with pytest.raises(ReceiptRejected) as info:
        await apple(http, apple_fake, accept_sandbox=False).verify_receipt(receipt_data)
    assert info.value.code == "21007"
    # a production URL that is in fact the sandbox cannot smuggle sandbox receipts in either
    with pytest.raises(ReceiptRejected):
        await apple(http, apple_fake, accept_sandbox=False,
                    production_url=apple_fake.url + "/sandbox/verifyReceipt").verify_receipt(receipt_data)


@pytest_twisted.ensureDeferred
async def test_refusals(http, apple_fake):
    good = apple_fake.add("Production", APPLE_BUNDLE, [("productId_60", "1000000401230002")])
    other_app = apple_fake.add("Production", "com.example.other", [("productId_60", "1000000401230003")])
    with pytest.raises(ProviderRejected) as info:
        await apple(http, apple_fake, shared_secret="wrong").verify_receipt(good)
    assert info.value.code == "21004" and not isinstance(info.value, ReceiptRejected)
    with pytest.raises(ReceiptRejected) as info:
        await apple(http, apple_fake).verify_receipt("bm90IGEgcmVjZWlwdA==")
    assert info.value.code == "21002"
    with pytest.raises(ReceiptRejected, match="not of our app"):
        await apple(http, apple_fake).verify_receipt(other_app)
    calls = len(apple_fake.requests)
    for bad in ("", "not base64!", "A" * (512 * 1024 + 4), None):
        with pytest.raises(ReceiptRejected):
            await apple(http, apple_fake).verify_receipt(bad)
    assert len(apple_fake.requests) == calls  # refused before asking Apple


@pytest.mark.parametrize("mode", ["retryable", "http500"])
@pytest_twisted.ensureDeferred
async def test_apple_saying_try_again_is_unavailable(http, apple_fake, mode):
    receipt_data = apple_fake.add("Production", APPLE_BUNDLE, [("productId_60", "1000000401230004")])
    apple_fake.mode = mode
    with pytest.raises(ProviderUnavailable):
        await apple(http, apple_fake).verify_receipt(receipt_data)


@pytest_twisted.ensureDeferred
async def test_a_silent_apple_is_unavailable_after_the_deadline(http, apple_fake):
    receipt_data = apple_fake.add("Production", APPLE_BUNDLE, [("productId_60", "1000000401230005")])
    apple_fake.mode = "hang"
    with pytest.raises(ProviderUnavailable, match="no answer within"):
        await apple(http, apple_fake, timeout_s=0.3).verify_receipt(receipt_data)
    for _ in range(100):
        if apple_fake.aborted:
            break
        await task.deferLater(reactor, 0.02, lambda: None)
    assert apple_fake.aborted


@pytest_twisted.ensureDeferred
async def test_ios6_style_receipts_are_one_purchase(http, apple_fake):
    receipt_data = apple_fake.add("Production", APPLE_BUNDLE, [("productId_60", "1000000401230006")], ios6=True)
    receipt = await apple(http, apple_fake).verify_receipt(receipt_data)
    assert receipt.bundle_id == APPLE_BUNDLE
    assert [(p.product_id, p.transaction_id) for p in receipt.purchases] == [("productId_60", "1000000401230006")]


def test_the_shared_secret_is_not_in_the_configs_repr():
    assert APPLE_SECRET not in repr(AppleIAPConfig(shared_secret=APPLE_SECRET))
