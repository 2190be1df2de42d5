"""Fuzz target: J-IM frames (heihei.protocols.jim), parsing included in the handlers.

A client frame goes through `JimProtocol._handle` on a connection whose domain
is a stand-in (`FakeJim`: every call answers at once with plausible data), so
the whole wire layer runs: the JSON decoder, `as_int`, `as_id`,
`content_text`, each command's checks and the formatting of every answer.
`_handle` turns the documented refusals (`BadRequest`, `JimError`) into
answer frames itself and logs anything else as "internal error": here that
log raises, so an unexpected exception is a crash. Every answer must be a
JSON object with a `command`.
"""

import sys
from types import SimpleNamespace

import atheris

from common import INSTRUMENTED, main

with atheris.instrument_imports(include=INSTRUMENTED):
    from heihei.config import JimSettings
    from heihei.core.hub import SendResult
    from heihei.core.model import Message
    from heihei.jim.service import JimError, NotAllowed, Recalled
    from heihei.jsonsafe import decode_json
    from heihei.protocols import jim

USER = "u1"


def _message(kind: str, sender: str, target: str, n: int) -> Message:
    body = {"chatType": 1 if kind == "group" else 2, "msgType": 0, "content": f"hi {n}", "createTime": n,
            "id": f"{n:032x}"}
    return Message(realm="jim", conversation=f"c{n}", sender=sender, body=body, kind=kind, target=target,
                   created_ms=n, id=n, entry=f"{n}|{{}}")


class FakeJim:
    """The domain's answers, at once and without storage."""

    settings = JimSettings(default_avatar="https://example.invalid/a.png")

    def now_ms(self) -> int:
        return 1_700_000_000_000

    async def user_of_token(self, token):
        return USER if token == "tok" else None

    async def user_of_password(self, name, password):
        return USER if (name, password) == (USER, "pw") else None

    async def user(self, user):
        return {"nick": "N", "avatar": "https://example.invalid/n.png"}

    async def users(self, users):
        return {u: {"nick": u} for u in users}

    async def may_join(self, user, group):
        return {"1": True, "2": False}.get(group)

    async def announce(self, *args, **kwargs):
        return None

    async def send_private(self, sender, to, body, *, client_id, exclude=None):
        if to == "nobody":
            raise JimError("no such user")
        return SendResult(_message("user", sender, to, 1), online=[to] if to.startswith("on") else [])

    async def send_group(self, sender, group, body, *, client_id, exclude=None):
        if group != "1":
            raise NotAllowed(f"not a member of group {group}")
        return SendResult(_message("group", sender, group, 2))

    async def recall(self, user, msg_id, *, skip=None):
        if msg_id.startswith("x"):
            raise NotAllowed("not yours")
        if msg_id.startswith("y"):
            raise JimError("unknown message")
        return Recalled(msg_id, user, "user", "u2", 2)

    async def friends(self, user):
        return ["u2", "u3"]

    async def groups_with_online_members(self, user):
        return [("1", "group one", [USER, "u2"])]

    async def online_friends(self, user):
        return ["u2"]

    async def friend_details(self, user, pull_type, search):
        return [("u2", [_message("user", "u2", user, 3)], 1)]

    async def history(self, user, **kwargs):
        return [_message("user", user, "u2", 4), _message("group", "u2", "1", 5)]

    async def offline(self, user, **kwargs):
        return [_message("user", "u2", user, 6)]

    async def pulled(self, user, messages):
        return None


class Raising:
    """The connection's logger: what `_handle` would log as a failure is raised instead."""

    def failure(self, *args, **kwargs):
        raise sys.exc_info()[1]

    def info(self, *args, **kwargs):
        pass


class Session:
    id = "s1"

    def rooms(self):
        return []

    async def join(self, room):
        return None


class FuzzConnection(jim.JimProtocol):
    connection_open = True
    _log = Raising()

    def __init__(self) -> None:  # no Autobahn state: only what the command handlers use
        self.token = "tok"
        self._pulling = set()
        self.user = USER
        self.session = Session()
        self.factory = SimpleNamespace(context=FakeJim(), settings=JimSettings())
        self.sent: list[bytes] = []

    def send_text(self, text, on_delivered=None):
        self.sent.append(text)
        return True

    def close(self, code=1000, reason=""):
        pass

    def spawn(self, coro, what):
        coro.close()


def check(data: bytes) -> None:
    connection = FuzzConnection()
    coro = connection._handle(data)
    try:
        coro.send(None)
    except StopIteration:
        pass
    else:
        coro.close()
        raise AssertionError("a handler waited on something the stand-in domain never does")
    for payload in connection.sent:
        answer = decode_json(payload, max_bytes=1 << 24)
        if not isinstance(answer, dict) or "command" not in answer:
            raise AssertionError(f"answer without a command: {payload[:200]!r}")


REFUSALS = ()

if __name__ == "__main__":
    main(check, REFUSALS)
