"""The reference point for ``bench.fanout``: a bare aiohttp websocket broadcast server.

No store, no authentication, no rooms, no encoding: every message that arrives on any
connection is sent, as the same bytes, to every connected websocket (the sender included,
as a room member would receive its own message), one ``send_bytes``/``send_str`` per
message per member. It runs on uvloop like the daemon, with compression and heartbeats off.
It accepts the daemon's msgpack subprotocol so the same client handshake works on both.

    python -m bench.baseline_server [--host 127.0.0.1] [--port 0]

prints ``baseline listening on http://HOST:PORT`` once ready; SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

from aiohttp import WSMsgType, web

from bench.common import MSGPACK_SUBPROTOCOL

MEMBERS = web.AppKey("members", set)  # of web.WebSocketResponse


async def ws_handler(request: web.Request) -> web.WebSocketResponse:
    members = request.app[MEMBERS]
    ws = web.WebSocketResponse(protocols=(MSGPACK_SUBPROTOCOL,), compress=False)
    await ws.prepare(request)
    members.add(ws)
    try:
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                for member in list(members):
                    if not member.closed:
                        await member.send_bytes(msg.data)
            elif msg.type == WSMsgType.TEXT:
                for member in list(members):
                    if not member.closed:
                        await member.send_str(msg.data)
    finally:
        members.discard(ws)
    return ws


async def serve(host: str, port: int) -> None:
    app = web.Application()
    app[MEMBERS] = set()
    app.router.add_get("/v1/ws", ws_handler)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopped.set)
    server: Any = site._server
    for sock in server.sockets if server else ():
        h, p = sock.getsockname()[:2]
        print(f"baseline listening on http://{h}:{p}", flush=True)
    await stopped.wait()
    members: set[Any] = app[MEMBERS]
    for ws in list(members):
        await ws.close()
    await runner.cleanup()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    args = p.parse_args()
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        asyncio.run(serve(args.host, args.port))
        return 0
    if sys.version_info >= (3, 12):
        asyncio.run(serve(args.host, args.port), loop_factory=uvloop.new_event_loop)
    else:
        uvloop.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
