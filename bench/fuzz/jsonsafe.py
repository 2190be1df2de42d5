"""Fuzz target: the one JSON decoder for client input (heihei.jsonsafe.decode_json).

Bytes and text (lone surrogates included) go in; the documented refusal is
`BadJSON`. A decoded value must encode again and decode to itself.
"""

import atheris

from common import INSTRUMENTED, main

with atheris.instrument_imports(include=INSTRUMENTED):
    from heihei.jsonsafe import BadJSON, decode_json, decode_json_object, encode_json

MAX_BYTES = 64 * 1024


def check(data: bytes) -> None:
    if data[:1] == b"s":
        # the text path (query strings, JSON inside JSON): any str, surrogates too
        value = decode_json(data[1:].decode("utf-8", "surrogateescape"), max_bytes=MAX_BYTES)
    elif data[:1] == b"o":
        value = decode_json_object(data[1:], max_bytes=MAX_BYTES)
    else:
        value = decode_json(data, max_bytes=MAX_BYTES)
    again = decode_json(encode_json(value), max_bytes=4 * MAX_BYTES)
    if again != value:
        raise AssertionError(f"round trip changed {value!r:.200} into {again!r:.200}")


REFUSALS = (BadJSON,)

if __name__ == "__main__":
    main(check, REFUSALS)
