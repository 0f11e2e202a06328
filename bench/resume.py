"""Catching up: how long a reconnecting client takes to receive 10,000 missed events.

    python -m bench.resume --json [--events 10000] [--repeats 3] [--size 100]

Set-up (not timed): sferumd on a temporary directory (rate limiter raised), users A and B in
one public room. A connects, authenticates, joins and records its stream position, then
disconnects. B sends ``--events`` messages (``--size``-character bodies, with transaction
ids, 256 in flight) and waits for every ack.

Measured: A reconnects with ``since`` = its recorded position and a per-room sync limit of
``--events`` (so no gap marker), and ``seconds`` runs from the start of the reconnect (TCP
connect, websocket handshake, auth) until the last missed event has been received and
decoded. This is done through the SDK (``clients.sdk.Client``, aiohttp, each push decoded
and queued, read from ``stream()``): that is ``seconds``, the median of ``--repeats``
reconnects with the same position. The same is measured with the bench's raw asyncio
client (``bench.common.WsConn``, every frame msgpack-decoded): ``raw_seconds``. ``events``
is what the SDK run received before ``synced`` (must equal ``--events`` exactly, in
ascending positions, no gap); ``server_cpu_s`` is the daemon's CPU over the SDK reconnects.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from typing import Any

import msgpack

from bench.common import (
    EV_PREFIX,
    BenchDir,
    BenchError,
    WsConn,
    authed,
    base_parser,
    body_with_marker,
    log,
    make_room,
    make_users,
    pin_load_generator,
    run_bench,
    start_daemon,
    ws_connect,
)


class _Sends:
    def __init__(self) -> None:
        self.sent = 0
        self.acked = 0
        self.last_pos = 0
        self.error: Any = None


async def send_many(conn: WsConn, room_id: str, count: int, size: int, window: int = 256) -> int:
    """``count`` sends with ``window`` in flight; returns the position of the last one."""
    done = asyncio.Event()
    state = _Sends()

    def send_next() -> None:
        state.sent += 1
        seq = state.sent
        conn.send_obj(
            {
                "id": seq,
                "op": "send",
                "room_id": room_id,
                "content": {"body": body_with_marker(seq, size)},
                "txn": f"r{seq}",
            }
        )

    def on_message(payload: bytes, t: float) -> None:
        if payload.startswith(EV_PREFIX):
            return
        frame = msgpack.unpackb(payload, raw=False)
        if "error" in frame:
            state.error = frame["error"]
            done.set()
            return
        if "ok" not in frame:
            return
        state.acked += 1
        state.last_pos = max(state.last_pos, frame["ok"]["event"]["pos"])
        if state.sent < count:
            send_next()
        elif state.acked == count:
            done.set()

    conn.on_message = on_message
    for _ in range(min(window, count)):
        send_next()
    await asyncio.wait_for(done.wait(), 120)
    if state.error:
        raise BenchError(f"send failed: {state.error}")
    return state.last_pos


async def resume_sdk(url: str, token: str, since: int, expect: int) -> tuple[float, int, bool]:
    from clients.sdk import Client

    client = Client(url, token, since=since, sync_limit=expect, reconnect=False)
    t0 = time.perf_counter()
    await client.connect()
    t_last = 0.0
    events = 0
    ordered = True
    last = since
    gap = False
    try:
        while True:
            push = await client.next_push(timeout=60)
            if "ev" in push:
                events += 1
                pos = push["ev"]["pos"]
                ordered = ordered and pos > last
                last = pos
                if events == expect:
                    t_last = time.perf_counter()
            elif "gap" in push:
                gap = True
            elif "synced" in push or "closed" in push:
                break
    finally:
        await client.close()
    return t_last - t0, events, ordered and not gap


async def resume_raw(port: int, token: str, since: int, expect: int) -> tuple[float, int]:
    t0 = time.perf_counter()
    conn = await ws_connect(port)
    count = 0
    t_last = 0.0
    synced = asyncio.Event()
    unpack = msgpack.unpackb

    def on_message(payload: bytes, t: float) -> None:
        nonlocal count, t_last
        frame = unpack(payload, raw=False)
        if "ev" in frame:
            count += 1
            if count == expect:
                t_last = time.perf_counter()
        elif "synced" in frame:
            synced.set()

    conn.on_message = on_message
    conn.send_obj({"id": 1, "op": "auth", "token": token, "since": since, "limit": expect})
    await asyncio.wait_for(synced.wait(), 60)
    conn.close()
    return t_last - t0, count


async def main_async(args: Any) -> dict[str, Any]:
    server_cpus = pin_load_generator(args.pin)
    with BenchDir("resume") as workdir:
        users = make_users(workdir, 2)
        a, b = users[1], users[0]
        with start_daemon(workdir, cpus=server_cpus) as daemon:
            log("daemon at", daemon.url)
            room_id, (b_conn, a_conn) = await make_room(daemon.port, [b, a])
            # A's position: the newest one its client has seen, after its own join.
            a_conn.close()
            probe = await authed(daemon.port, a)
            since = int(probe.auth_result["synced_pos"])
            probe.close()
            await asyncio.wait_for(asyncio.gather(a_conn.closed, probe.closed), 10)
            log(f"A recorded position {since}; B sends {args.events} events")
            t = time.perf_counter()
            last = await send_many(b_conn, room_id, args.events, args.size)
            log(f"sent in {time.perf_counter() - t:.2f}s (last position {last})")
            assert last - since == args.events, (since, last)
            sdk_runs: list[float] = []
            raw_runs: list[float] = []
            events_seen: list[int] = []
            all_ok = True
            cpu0 = daemon.cpu_s()
            for _ in range(args.repeats):
                secs, n, ok = await resume_sdk(daemon.url, a.token, since, args.events)
                sdk_runs.append(secs)
                events_seen.append(n)
                all_ok = all_ok and ok
            cpu1 = daemon.cpu_s()
            raw_counts: list[int] = []
            for _ in range(args.repeats):
                secs, n = await resume_raw(daemon.port, a.token, since, args.events)
                raw_runs.append(secs)
                raw_counts.append(n)
            rss = daemon.rss()
            b_conn.close()
    events = events_seen[0] if len(set(events_seen)) == 1 else min(events_seen)
    return {
        "bench": "resume",
        "seconds": round(statistics.median(sdk_runs), 4),
        "events": events,
        "expected": args.events,
        "client": "clients.sdk.Client (aiohttp), sync_limit=events",
        "in_order_no_gap": all_ok,
        "seconds_runs": [round(s, 4) for s in sdk_runs],
        "events_per_s": round(events / statistics.median(sdk_runs)),
        "server_cpu_s_per_resume": round((cpu1 - cpu0) / args.repeats, 4),
        "raw_seconds": round(statistics.median(raw_runs), 4),
        "raw_events": min(raw_counts),
        "raw_seconds_runs": [round(s, 4) for s in raw_runs],
        "server_rss_mib": round(rss / 2**20, 1),
        "body_chars": args.size,
        "pinned": server_cpus is not None,
    }


def main() -> int:
    p = base_parser(__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=10_000, help="missed events to catch up")
    p.add_argument("--repeats", type=int, default=3, help="reconnects measured per client")
    p.add_argument("--size", type=int, default=100, help="characters of message body")
    args = p.parse_args()
    result = run_bench(main_async, args)
    ok = result["events"] == result["expected"] and result["raw_events"] == result["expected"]
    return 0 if ok and result["in_order_no_gap"] else 1


if __name__ == "__main__":
    sys.exit(main())
