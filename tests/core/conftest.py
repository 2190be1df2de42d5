import pytest_twisted

from tests.core.chatproto import ChatListeners


@pytest_twisted.async_yield_fixture
async def chat(nodes):
    """`url = chat.add(node)`: a TestChat listener on that node."""
    listeners = ChatListeners()
    yield listeners
    await listeners.stop_all()
