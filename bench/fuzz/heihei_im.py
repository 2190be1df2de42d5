"""Fuzz target: the heihei push channel's IM items (heihei.heihei.im.parse_client_im).

A client frame goes the way ChannelProtocol.onMessage and _send_im take it:
decoded by the JSON decoder (max_message_bytes of the channel's defaults),
one item or an array of up to MAX_FRAME_ITEMS, each checked by
`parse_client_im` (the default max_text_chars). An accepted item is built into
the stored message the way the domain does and read back (`item_of`,
`preview`). The documented refusals: `BadJSON`, `ImError` (a `Refused`).
"""

import atheris

from common import INSTRUMENTED, main

with atheris.instrument_imports(include=INSTRUMENTED):
    from heihei.config import ChannelSettings, HeiheiSettings
    from heihei.core.errors import Refused
    from heihei.heihei import im
    from heihei.jsonsafe import BadJSON, decode_json, encode_json

MAX_MESSAGE_BYTES = ChannelSettings().max_message_bytes
MAX_TEXT_CHARS = HeiheiSettings().max_text_chars


def check(data: bytes) -> None:
    value = decode_json(data, max_bytes=MAX_MESSAGE_BYTES)
    items = value if isinstance(value, list) else [value]
    if not items or len(items) > im.MAX_FRAME_ITEMS:
        return  # refused by the connection: "a frame carries 1 to 20 messages"
    for item in items:
        try:
            m = im.parse_client_im(item, MAX_TEXT_CHARS)
        except Refused:
            continue
        msg = im.build_msg(to=m.to, sender="10001", msg_type=m.msg_type, content=m.content, jump=m.jump,
                           msg_id=1, create_time=0, client_msg_id=m.client_msg_id)
        body = {"t": "im", "msg": msg, "users": {"s": {}, "r": {}}}
        encode_json(im.item_of(body, 0, True))
        im.preview(msg)
        im.preview({"msgType": "IM", "msg": msg})


REFUSALS = (BadJSON, Refused)

if __name__ == "__main__":
    main(check, REFUSALS)
