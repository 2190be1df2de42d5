"""Fuzz target: the live chat room's frames (heihei.protocols.live.LiveProtocol._parse).

A frame is parsed as the connection does it (max_message_bytes as the
default settings say), then the command's arguments are read with the helpers
its handlers use. The documented refusals: `_parse` answers a refusal tuple
(no exception at all), the argument helpers raise `LiveError`.
"""

from types import SimpleNamespace

import atheris

from common import INSTRUMENTED, main

with atheris.instrument_imports(include=INSTRUMENTED):
    from heihei.config import LiveSettings
    from heihei.live.service import LiveError
    from heihei.protocols import live

CONNECTION = SimpleNamespace(factory=SimpleNamespace(settings=LiveSettings()))


def check(data: bytes) -> None:
    cmd, handler, args, refusal = live.LiveProtocol._parse(CONNECTION, data)
    if refusal is not None:
        if handler is not None or not isinstance(cmd, str) or len(cmd) > live.MAX_CMD_ECHO:
            raise AssertionError(f"bad refusal {(cmd, handler, args, refusal)!r:.200}")
        live.answer(cmd, refusal[0], refusal[1], {})
        return
    if not isinstance(args, dict):
        raise AssertionError("a handler would get no dict")
    # what the handlers read first (each raises LiveError on bad input)
    if cmd in ("Open", "Total", "Message", "History"):
        live._required_id(args)
    if cmd == "Login":
        live._required_text(args, "type")
        live._required_text(args, "code")
    if cmd == "History":
        live._count(args.get("count", live.HISTORY_DEFAULT))


REFUSALS = (LiveError,)

if __name__ == "__main__":
    main(check, REFUSALS)
