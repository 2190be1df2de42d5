"""
Reference peer: a broadcast server on the `websockets` library with uvloop.

Every text message a client sends goes to every connected client through
`websockets.broadcast` (one frame built once), the work heihei does for a room
message. Usage: websockets_broadcast.py PORT; prints "ready" once listening.
"""

import asyncio
import sys

import uvloop
import websockets

clients: set = set()


async def handler(ws):
    clients.add(ws)
    try:
        async for message in ws:
            websockets.broadcast(clients, message)
    finally:
        clients.discard(ws)


async def main(port: int) -> None:
    async with websockets.serve(handler, "127.0.0.1", port, compression=None, max_size=65536, backlog=4096,
                                ping_interval=None):
        print("ready", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    uvloop.install()
    asyncio.run(main(int(sys.argv[1])))
