"""Fuzz target: the boss underscore frames (heihei.protocols.boss_frames.parse).

A client text frame (Autobahn hands over valid UTF-8 only) is parsed; the
documented refusal is `FrameError`. A parsed send frame must format back into
a delivery frame, as the server does with it.
"""

import atheris

from common import INSTRUMENTED, main

with atheris.instrument_imports(include=INSTRUMENTED):
    from heihei.protocols import boss_frames as wire


def check(data: bytes) -> None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return  # not a text frame Autobahn would deliver
    frame = wire.parse(text)
    if isinstance(frame, wire.Send):
        wire.format_delivery(frame.kind, "1", frame.content, frame.type, frame.to, 0, frame.extension)


REFUSALS = (wire.FrameError,)

if __name__ == "__main__":
    main(check, REFUSALS)
