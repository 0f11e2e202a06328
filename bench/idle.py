"""Server memory per idle authenticated websocket connection.

    python -m bench.idle --json [--connections 5000] [--devices-per-user 1] [--settle 2]

sferumd starts on a temporary directory (rate limiter raised; the bench also raises the
child's soft RLIMIT_NOFILE to its hard limit before exec, besides the daemon doing so
itself). ``--connections`` devices are created in its database beforehand
(``--devices-per-user`` per user; the users share no rooms). First 100 connections are
opened, authenticated and closed, so one-off allocations (imports, caches, the first
session's objects) are not charged to the measured connections. Then the daemon's RSS is
sampled after a settle pause, N connections are opened (at most 100 handshakes at a time:
the listen backlog is 128) and each authenticates and waits for its ``synced`` push, the
daemon settles again and its RSS is sampled a second time; ``kib_per_connection`` =
(RSS after - RSS before) / N / 1024. ``/metrics`` confirms the daemon holds N authenticated
connections. The clients are raw asyncio websockets (``bench.common.WsConn``) in this
process on uvloop, answering the server's pings; all connections stay idle (no requests
after auth) while measured. "Settle" is a pause with no traffic: the daemon's heap is not
garbage-collected from outside, so RSS is taken as the median of a few samples.

For scale, the same is measured on ``bench.baseline_server`` (bare aiohttp websockets, no
auth, no heartbeat): ``baseline_kib_per_connection``. ``--no-baseline`` skips it.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from typing import Any

from bench.common import (
    BenchDir,
    BenchUser,
    ServerProcess,
    WsConn,
    base_parser,
    connect_many,
    log,
    make_users,
    pin_load_generator,
    raise_nofile,
    run_bench,
    start_baseline,
    start_daemon,
)

WARMUP_CONNECTIONS = 100


async def open_authenticated(
    port: int, users: list[BenchUser], concurrency: int = 100
) -> list[WsConn]:
    conns = await connect_many(port, len(users), concurrency=concurrency)
    sem = asyncio.Semaphore(concurrency)

    async def auth(conn: WsConn, user: BenchUser) -> None:
        async with sem:
            await conn.auth(user.token)
        conn.pushes.clear()

    await asyncio.gather(*(auth(c, u) for c, u in zip(conns, users, strict=True)))
    return conns


async def settled_rss(server: ServerProcess, settle: float, samples: int = 5) -> int:
    await asyncio.sleep(settle)
    values = []
    for _ in range(samples):
        values.append(server.rss())
        await asyncio.sleep(0.1)
    return int(statistics.median(values))


async def main_async(args: Any) -> dict[str, Any]:
    server_cpus = pin_load_generator(args.pin)
    n = args.connections
    with BenchDir("idle") as workdir:
        t = time.perf_counter()
        users = make_users(workdir, n + WARMUP_CONNECTIONS, args.devices_per_user)
        log(f"{len(users)} devices created in {time.perf_counter() - t:.1f}s")
        with start_daemon(workdir, cpus=server_cpus) as daemon:
            log("daemon at", daemon.url, "nofile limit", daemon.nofile_limit())
            warm = await open_authenticated(daemon.port, users[n:])
            for c in warm:
                c.close()
            await asyncio.gather(*(c.closed for c in warm))
            rss0 = await settled_rss(daemon, args.settle)
            fds0 = daemon.num_fds()
            t = time.perf_counter()
            conns = await open_authenticated(daemon.port, users[:n])
            open_s = time.perf_counter() - t
            log(f"{n} connections authenticated in {open_s:.1f}s")
            rss1 = await settled_rss(daemon, args.settle)
            fds1 = daemon.num_fds()
            authenticated = daemon.metric("sferumd_authenticated_connections")
            still_open = sum(1 for c in conns if not c.closed.done())
            for c in conns:
                c.close()
            await asyncio.sleep(0.5)
            nofile = daemon.nofile_limit()
        base = await measure_baseline(workdir, n, args.settle, server_cpus) if args.baseline else {}
    return {
        "bench": "idle",
        "kib_per_connection": round((rss1 - rss0) / n / 1024, 2),
        "connections": n,
        "still_open": still_open,
        "server_authenticated_connections": int(authenticated or 0),
        "rss_before_mib": round(rss0 / 2**20, 1),
        "rss_after_mib": round(rss1 / 2**20, 1),
        "server_fds_added": fds1 - fds0,
        "server_nofile_soft_limit": nofile[0],
        "open_seconds": round(open_s, 2),
        "devices_per_user": args.devices_per_user,
        "pinned": server_cpus is not None,
        **base,
    }


async def measure_baseline(
    workdir: Any, n: int, settle: float, server_cpus: set[int] | None
) -> dict[str, Any]:
    """The same N idle websockets on the bare aiohttp server (no auth, nothing stored)."""
    with start_baseline(workdir, cpus=server_cpus) as server:
        log("baseline at", server.url)
        warm = await connect_many(server.port, WARMUP_CONNECTIONS)
        for c in warm:
            c.close()
        await asyncio.gather(*(c.closed for c in warm))
        rss0 = await settled_rss(server, settle)
        conns = await connect_many(server.port, n)
        rss1 = await settled_rss(server, settle)
        for c in conns:
            c.close()
        await asyncio.sleep(0.5)
    return {
        "baseline_kib_per_connection": round((rss1 - rss0) / n / 1024, 2),
        "baseline_rss_before_mib": round(rss0 / 2**20, 1),
        "baseline_rss_after_mib": round(rss1 / 2**20, 1),
    }


def main() -> int:
    p = base_parser(__doc__.splitlines()[0])
    p.add_argument("--connections", type=int, default=5000, help="idle connections to open")
    p.add_argument("--devices-per-user", type=int, default=1, help="connections per user")
    p.add_argument("--settle", type=float, default=2.0, help="seconds of quiet before RSS")
    p.add_argument(
        "--no-baseline",
        dest="baseline",
        action="store_false",
        help="skip the same measurement on the bare aiohttp server (bench.baseline_server)",
    )
    args = p.parse_args()
    soft, _ = raise_nofile()
    if soft < args.connections + 200:
        p.error(f"RLIMIT_NOFILE {soft} is too low for {args.connections} connections")
    result = run_bench(main_async, args)
    ok = result["still_open"] == result["connections"]
    ok = ok and result["server_authenticated_connections"] == result["connections"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
