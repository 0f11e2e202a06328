"""Fan-out to one room: deliveries per second of server CPU, beside a bare aiohttp server.

    python -m bench.fanout --json [--members 200] [--seconds 10] [--window 4] [--senders 1]
                               [--rounds 2] [--rate MSGS_PER_S] [--no-baseline]

Two servers in one run, with the same load generator, the same N and the same offered load:

1. sferumd (temporary data directory, rate limiter raised): N users, one public room they
   all joined, one authenticated websocket each. The first ``--senders`` members send.
2. ``bench.baseline_server``: bare aiohttp on uvloop, no store, no auth, one ``send_bytes``
   per message per connected member. N plain websockets; the first ``--senders`` send.

Both run side by side (the one not being measured is idle). After a warm-up of each, the
measured ``--seconds`` are split into ``--rounds`` rounds that alternate between the two
servers, so a change in the machine's other load falls on both alike; figures add up over
the rounds.

Offered load: closed loop with a fixed window. ``--window`` messages are in flight; a message
is complete when all N members (the senders included: a room member gets its own message)
have received it, and each completion sends the next message, round-robin over the senders.
So both servers face the same shape: up to ``window`` messages queued, never more, each
fanned out to N connections. The default window of 4 is the shape of the reference
measurements in ``research/performance-anchors.md`` (their closed-loop rates and medians
give about 4 messages in flight by Little's law for every server listed). The result depends
on it: a larger window lets the daemon put more frames in one socket write (see
``frames_per_socket_write``); with window 1 there is nothing to batch. ``--rate R`` replaces
the closed loop by an open loop at R messages/s (same for both servers).

Each message is a ``send`` request (with a transaction id, as the SDK sends) whose
100-character body carries a sequence number; the baseline echoes those same bytes. A
warm-up precedes each measured window.

Load generator: this process (uvloop), raw asyncio websockets (``bench.common.WsConn``); the
server is a child process. By default the server is pinned to one CPU and this process to
the others (``--no-pin`` to turn that off), as in the reference measurements.

``deliveries_per_server_cpu_s`` = deliveries counted at the members of the measured
messages / the server's user+system CPU seconds over the measured rounds (each from its
first send until its last message reached every member). A delivery is an event frame
carrying a measured sequence number (on the daemon, frames starting with the ``{"ev": ...}``
map; acks are not counted). ``delivered``/``expected`` checks that every member received
every measured message (expected = messages x N). Latency is from just before the sender's
socket write to the arrival of the member's frame, over every delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import psutil  # type: ignore[import-untyped]

from bench.common import (
    EV_PREFIX,
    MARKER,
    BenchDir,
    ServerProcess,
    WsConn,
    base_parser,
    body_with_marker,
    connect_many,
    latency_summary,
    log,
    make_room,
    make_users,
    pin_load_generator,
    run_bench,
    start_baseline,
    start_daemon,
)


class ClosedLoop:
    """Sends, counts deliveries per message, and keeps ``window`` messages in flight."""

    def __init__(
        self,
        members: list[WsConn],
        senders: int,
        make_payload: Callable[[int], bytes],
        is_delivery: Callable[[bytes], bool],
    ):
        self.members = members
        self.n = len(members)
        self.senders = members[:senders]
        self.make_payload = make_payload
        self.is_delivery = is_delivery
        self.seq = 0
        self.sent_at: list[float] = [0.0]  # index = sequence number
        self.counts: list[int] = [0]
        self.inflight = 0
        self.sending = False
        self.measuring = False
        self.measured = bytearray(1)  # index = sequence number: 1 if sent while measuring
        self.latencies = array("d")
        self.errors: list[Any] = []
        self.progress = asyncio.Event()
        self.closed_members = 0
        for i, conn in enumerate(members):
            conn.on_message = self._sender_handler(conn) if i < senders else self._member_handler()

    def _member_handler(self) -> Callable[[bytes, float], None]:
        is_delivery = self.is_delivery
        counts = self.counts
        sent_at = self.sent_at
        lat = self.latencies
        measured = self.measured
        n = self.n

        def on_message(payload: bytes, t: float) -> None:
            if not is_delivery(payload):
                return
            i = payload.find(MARKER)
            if i < 0:
                return
            seq = int(payload[i + 2 : i + 12])
            c = counts[seq] + 1
            counts[seq] = c
            if measured[seq]:
                lat.append(t - sent_at[seq])
            if c == n:
                self._complete()

        return on_message

    def _sender_handler(self, conn: WsConn) -> Callable[[bytes, float], None]:
        deliver = self._member_handler()
        is_delivery = self.is_delivery

        def on_message(payload: bytes, t: float) -> None:
            if is_delivery(payload):
                deliver(payload, t)
            elif b"error" in payload:
                frame = msgpack.unpackb(payload, raw=False)
                if isinstance(frame, dict) and "error" in frame:
                    self.errors.append(frame["error"])
                    self.progress.set()

        return on_message

    def _complete(self) -> None:
        self.inflight -= 1
        if self.sending:
            self._send_next()
        elif self.inflight == 0:
            self.progress.set()

    def _send_next(self) -> None:
        self.seq += 1
        seq = self.seq
        self.counts.append(0)
        self.measured.append(self.measuring)
        payload = self.make_payload(seq)
        self.sent_at.append(time.perf_counter())
        self.inflight += 1
        self.senders[seq % len(self.senders)].send_binary(payload)

    async def phase(
        self, window: int, seconds: float, rate: float = 0.0, drain_timeout: float = 15.0
    ) -> bool:
        """Send for ``seconds`` (closed loop with ``window`` in flight, or open loop at
        ``rate`` messages/s when rate > 0), then wait until every message is delivered."""
        if rate > 0:
            interval = 1.0 / rate
            count = max(1, int(rate * seconds))
            start = time.perf_counter()
            sent = 0
            while sent < count and not self.errors:
                due = min(count, int((time.perf_counter() - start) / interval) + 1)
                while sent < due:
                    self._send_next()
                    sent += 1
                await asyncio.sleep(max(0.0, start + sent * interval - time.perf_counter()))
        else:
            self.sending = True
            for _ in range(window):
                self._send_next()
            await asyncio.sleep(seconds)
            self.sending = False
        deadline = time.perf_counter() + drain_timeout
        while self.inflight > 0:
            left = deadline - time.perf_counter()
            if left <= 0 or self.errors:
                return False
            if any(c.closed.done() for c in self.members):
                self.closed_members = sum(1 for c in self.members if c.closed.done())
                return False
            self.progress.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.progress.wait(), min(left, 0.5))
        return True


class Target:
    """One server under test with its N connected members, measured in one or more rounds."""

    METRICS = (
        "sferumd_frames_sent_total",
        "sferumd_socket_writes_total",
        "sferumd_commits_total",
        "sferumd_slow_consumer_closes_total",
    )

    def __init__(
        self,
        name: str,
        server: ServerProcess,
        members: list[WsConn],
        args: Any,
        make_payload: Callable[[int], bytes],
        is_delivery: Callable[[bytes], bool],
        metrics: bool,
    ):
        self.name = name
        self.server = server
        self.members = members
        self.args = args
        self.loop = ClosedLoop(members, args.senders, make_payload, is_delivery)
        self.metrics = self.METRICS if metrics else ()
        self.cpu = 0.0
        self.client_cpu = 0.0
        self.wall = 0.0
        self.complete = True
        self.metric_deltas = dict.fromkeys(self.metrics, 0.0)

    async def warm_up(self) -> None:
        if self.args.warmup > 0:
            await self.loop.phase(self.args.window, self.args.warmup, self.args.rate)

    async def round(self, seconds: float) -> None:
        loop, server, me = self.loop, self.server, psutil.Process()
        before = {m: server.metric(m) or 0.0 for m in self.metrics}
        loop.measuring = True
        cpu0, t0, mine0 = server.cpu_s(), time.perf_counter(), sum(me.cpu_times()[:2])
        complete = await loop.phase(self.args.window, seconds, self.args.rate)
        cpu1, t1, mine1 = server.cpu_s(), time.perf_counter(), sum(me.cpu_times()[:2])
        loop.measuring = False
        for m in self.metrics:
            self.metric_deltas[m] += (server.metric(m) or 0.0) - before[m]
        self.cpu += cpu1 - cpu0
        self.wall += t1 - t0
        self.client_cpu += mine1 - mine0
        self.complete = self.complete and complete

    def result(self) -> dict[str, Any]:
        loop, cpu, wall = self.loop, self.cpu, self.wall
        measured = [seq for seq, m in enumerate(loop.measured) if m]
        delivered = sum(loop.counts[seq] for seq in measured)
        out: dict[str, Any] = {
            "deliveries_per_server_cpu_s": round(delivered / cpu) if cpu > 0 else None,
            **latency_summary(loop.latencies),
            "delivered": delivered,
            "expected": len(measured) * loop.n,
            "messages": len(measured),
            "complete": self.complete,
            "errors": len(loop.errors),
            "measured_s": round(wall, 3),
            "server_cpu_s": round(cpu, 3),
            "server_cpu_util": round(cpu / wall, 3) if wall else None,
            "client_cpu_util": round(self.client_cpu / wall, 3) if wall else None,
            "deliveries_per_s": round(delivered / wall) if wall else None,
            "server_rss_mib": round(self.server.rss() / 2**20, 1),
        }
        d = self.metric_deltas
        if self.metrics:
            if d["sferumd_socket_writes_total"]:
                out["frames_per_socket_write"] = round(
                    d["sferumd_frames_sent_total"] / d["sferumd_socket_writes_total"], 2
                )
            if d["sferumd_commits_total"]:
                out["events_per_commit"] = round(len(measured) / d["sferumd_commits_total"], 2)
            out["slow_consumer_closes"] = int(d["sferumd_slow_consumer_closes_total"])
        if loop.errors:
            out["first_error"] = loop.errors[0]
        if loop.closed_members:
            out["closed_members"] = loop.closed_members
        return out

    def close(self) -> None:
        for c in self.members:
            c.close()


def send_payload(room_id: str, size: int) -> Callable[[int], bytes]:
    """The ``send`` request for message ``seq``: the daemon stores it, the baseline echoes it."""

    def payload(seq: int) -> bytes:
        frame = {
            "id": seq,
            "op": "send",
            "room_id": room_id,
            "content": {"body": body_with_marker(seq, size)},
            "txn": f"f{seq}",
        }
        return msgpack.packb(frame, use_bin_type=True)  # type: ignore[no-any-return]

    return payload


def is_event_push(data: bytes) -> bool:
    return data.startswith(EV_PREFIX)


def any_frame(data: bytes) -> bool:
    return True


async def run(args: Any, workdir: Path, server_cpus: set[int] | None) -> dict[str, Any]:
    users = make_users(workdir, args.members)
    with contextlib.ExitStack() as stack:
        daemon = stack.enter_context(start_daemon(workdir, cpus=server_cpus))
        log("daemon at", daemon.url, f"- joining {args.members} members")
        room_id, conns = await make_room(daemon.port, users)
        targets = [
            Target(
                "daemon",
                daemon,
                conns,
                args,
                send_payload(room_id, args.size),
                is_event_push,
                True,
            )
        ]
        if args.baseline:
            base = stack.enter_context(start_baseline(workdir, cpus=server_cpus))
            log("baseline at", base.url)
            base_conns = await connect_many(base.port, args.members)
            payload = send_payload("!baseline", args.size)
            targets.append(Target("baseline", base, base_conns, args, payload, any_frame, False))
        shape = f"rate {args.rate}/s" if args.rate > 0 else f"closed loop, window {args.window}"
        for target in targets:
            await target.warm_up()
        # Rounds alternate between the servers so that a change in the machine's other load
        # falls on both alike.
        for r in range(args.rounds):
            for target in targets:
                log(f"round {r + 1}/{args.rounds}: {target.name}, {shape}")
                await target.round(args.seconds / args.rounds)
        results = [t.result() for t in targets]
        for target in targets:
            target.close()
        await asyncio.sleep(0.1)
    ours = results[0]
    out: dict[str, Any] = {
        "bench": "fanout",
        "members": args.members,
        "senders": args.senders,
        "window": args.window if args.rate <= 0 else None,
        "rate": args.rate if args.rate > 0 else None,
        "rounds": args.rounds,
        "body_chars": args.size,
        "pinned": server_cpus is not None,
        **ours,
    }
    if len(results) > 1:
        base_result = results[1]
        ratio = None
        if ours["deliveries_per_server_cpu_s"] and base_result["deliveries_per_server_cpu_s"]:
            ratio = round(
                ours["deliveries_per_server_cpu_s"] / base_result["deliveries_per_server_cpu_s"], 3
            )
        out["baseline_deliveries_per_server_cpu_s"] = base_result["deliveries_per_server_cpu_s"]
        out["ratio_to_baseline"] = ratio
        for key, value in base_result.items():
            if key != "deliveries_per_server_cpu_s":
                out[f"baseline_{key}"] = value
    return out


async def main_async(args: Any) -> dict[str, Any]:
    server_cpus = pin_load_generator(args.pin)
    with BenchDir("fanout") as workdir:
        return await run(args, workdir, server_cpus)


def main() -> int:
    p = base_parser(__doc__.splitlines()[0])
    p.add_argument("--members", type=int, default=200, help="connected room members (N)")
    p.add_argument("--seconds", type=float, default=10.0, help="measured seconds per server")
    p.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first")
    p.add_argument("--window", type=int, default=4, help="messages in flight (closed loop)")
    p.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="open loop at this many messages/s instead of the closed loop (0: closed loop)",
    )
    p.add_argument("--senders", type=int, default=1, help="members that send, round-robin")
    p.add_argument("--size", type=int, default=100, help="characters of message body")
    p.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="measured rounds per server, alternating; --seconds is split among them",
    )
    p.add_argument(
        "--no-baseline",
        dest="baseline",
        action="store_false",
        help="skip the bare aiohttp baseline",
    )
    args = p.parse_args()
    if not 1 <= args.senders <= args.members:
        p.error("--senders must be between 1 and --members")
    result = run_bench(main_async, args)
    ok = result["complete"] and result["delivered"] == result["expected"]
    if "baseline_complete" in result:
        ok = ok and result["baseline_complete"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
