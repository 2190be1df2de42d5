"""The `driver` fixture: one realm's driver, its outside world started (parametrized indirectly)."""

from __future__ import annotations

import pytest_twisted


@pytest_twisted.async_yield_fixture
async def driver(request):
    """`request.param` is a Driver class from `drivers.realms_with(...)`."""
    instance = request.param()
    await instance.setup()
    yield instance
    await instance.teardown()
