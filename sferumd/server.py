"""Running the daemon: listen, print the address, stop cleanly on SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import resource
import signal
import sys

from aiohttp import web

from sferumd.api.app import DAEMON, create_app
from sferumd.config import Settings

log = logging.getLogger(__name__)


def raise_fd_limit() -> None:
    """Every websocket is a file descriptor; the common soft limit of 1024 is far too low."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def serve(settings: Settings, demo: bool = False) -> int:
    raise_fd_limit()
    app = create_app(settings)
    daemon = app[DAEMON]
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.server.host, settings.server.port)
    await site.start()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, daemon.stopped.set)
    for bound in runner.addresses:  # the real port when --port 0 asked for any
        host, port = bound[:2]
        address = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
        log.info("listening", extra={"address": address})
        print(f"sferumd listening on {address}", flush=True)
    if demo:
        daemon.spawn(_demo(address, settings, daemon.stopped))
    await daemon.stopped.wait()
    log.info("stopping")
    await runner.cleanup()
    writer = daemon.store.writer_task
    failed = writer.done() and not writer.cancelled() and writer.exception() is not None
    return 1 if failed else 0


async def _demo(address: str, settings: Settings, stopped: asyncio.Event) -> None:
    """Loads the demo school through the daemon's own journal API and prints how to sign in;
    a failure stops the daemon (``make run`` promises a demo school)."""
    from sferumd.demo_loader import hints_text, load_demo

    try:
        loaded = await load_demo(address, settings.data_path)
    except Exception:
        log.exception("demo school failed to load")
        stopped.set()
        return
    print(hints_text(loaded, address), flush=True)


def run(settings: Settings, demo: bool = False) -> int:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on every supported OS
        return asyncio.run(serve(settings, demo))
    if sys.version_info >= (3, 12):
        return asyncio.run(serve(settings, demo), loop_factory=uvloop.new_event_loop)
    return uvloop.run(serve(settings, demo))
