"""Server CPU per message and send→receive latency: one sender, one receiver, fixed rate.

    python -m bench.send --json [--rate 1000] [--seconds 5] [--warmup 1] [--size 100]

Starts sferumd on a temporary directory (rate limiter raised), makes two users, a room
they are both in, and one authenticated websocket each (``bench.common.WsConn``: raw asyncio
on uvloop, in this process; the daemon is a child process). The sender sends ``--rate``
messages per second, open loop on a fixed schedule (late ticks are sent at once, so the
average rate holds), each a ``send`` with a transaction id like the SDK's and a ``--size``
character body that carries a sequence number. Latency is from just before the sender's
socket write to the arrival of the receiver's event frame, both on this process's
``perf_counter`` clock. A warm-up at the same rate precedes the measured window.

``server_cpu_ms_per_msg`` = daemon user+system CPU over the measured window (first measured
send until the last measured message has reached the receiver and its ack the sender)
divided by the messages of the window. Each message costs the daemon a request, a group
commit, an ack and two event frames (the sender is a room member too).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from array import array
from typing import Any

import msgpack

from bench.common import (
    EV_PREFIX,
    BenchDir,
    WsConn,
    base_parser,
    body_with_marker,
    latency_summary,
    log,
    make_room,
    make_users,
    marker_seq,
    pin_load_generator,
    run_bench,
    start_daemon,
)


class SendRun:
    def __init__(self, sender: WsConn, receiver: WsConn, room_id: str, size: int):
        self.sender = sender
        self.receiver = receiver
        self.room_id = room_id
        self.size = size
        self.sent_at: dict[int, float] = {}
        self.received: set[int] = set()
        self.acked = 0
        self.errors: list[Any] = []
        self.latencies = array("d")
        self.measure_from = 0  # sequence numbers from here on are measured
        self.seq = 0
        self.progress: asyncio.Event = asyncio.Event()
        sender.on_message = self._on_sender_frame
        receiver.on_message = self._on_receiver_frame

    def _on_sender_frame(self, payload: bytes, t: float) -> None:
        if payload.startswith(EV_PREFIX):
            return  # the sender's own copy of its event
        frame = msgpack.unpackb(payload, raw=False)
        if "error" in frame:
            self.errors.append(frame["error"])
        elif frame.get("id", 0) > 0:
            self.acked += 1
        self.progress.set()

    def _on_receiver_frame(self, payload: bytes, t: float) -> None:
        if not payload.startswith(EV_PREFIX):
            return
        seq = marker_seq(payload)
        sent = self.sent_at.get(seq)
        if sent is None or seq in self.received:
            return
        self.received.add(seq)
        if seq >= self.measure_from:
            self.latencies.append(t - sent)
        self.progress.set()

    def send_one(self) -> None:
        self.seq += 1
        seq = self.seq
        frame = {
            "id": seq,
            "op": "send",
            "room_id": self.room_id,
            "content": {"body": body_with_marker(seq, self.size)},
            "txn": f"s{seq}",
        }
        payload = msgpack.packb(frame, use_bin_type=True)
        self.sent_at[seq] = time.perf_counter()
        self.sender.send_binary(payload)

    async def run_at_rate(self, rate: float, seconds: float) -> int:
        """Open loop: message i is due at start + i/rate; returns how many were sent."""
        count = max(1, int(rate * seconds))
        interval = 1.0 / rate
        start = time.perf_counter()
        sent = 0
        while sent < count:
            now = time.perf_counter()
            due = min(count, int((now - start) / interval) + 1)
            while sent < due:
                self.send_one()
                sent += 1
            next_due = start + sent * interval
            await asyncio.sleep(max(0.0, next_due - time.perf_counter()))
        return sent

    async def wait_done(self, timeout: float) -> bool:
        deadline = time.perf_counter() + timeout
        while len(self.received) < self.seq or self.acked + len(self.errors) < self.seq:
            left = deadline - time.perf_counter()
            if left <= 0 or self.receiver.closed.done() or self.sender.closed.done():
                return False
            self.progress.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.progress.wait(), min(left, 1.0))
        return True


async def main_async(args: Any) -> dict[str, Any]:
    server_cpus = pin_load_generator(args.pin)
    with BenchDir("send") as workdir:
        users = make_users(workdir, 2)
        with start_daemon(workdir, cpus=server_cpus) as daemon:
            log("daemon at", daemon.url)
            room_id, (sender, receiver) = await make_room(daemon.port, users)
            run = SendRun(sender, receiver, room_id, args.size)
            if args.warmup > 0:
                await run.run_at_rate(args.rate, args.warmup)
                await run.wait_done(10)
            run.measure_from = run.seq + 1
            log(f"measuring {args.seconds}s at {args.rate}/s")
            cpu0, t0 = daemon.cpu_s(), time.perf_counter()
            sent = await run.run_at_rate(args.rate, args.seconds)
            send_s = time.perf_counter() - t0
            complete = await run.wait_done(30)
            cpu1, t1 = daemon.cpu_s(), time.perf_counter()
            rss = daemon.rss()
            for c in (sender, receiver):
                c.close()
        received = sum(1 for s in run.received if s >= run.measure_from)
        cpu = cpu1 - cpu0
        result: dict[str, Any] = {
            "bench": "send",
            "server_cpu_ms_per_msg": round(cpu * 1000 / max(1, sent), 4),
            **latency_summary(run.latencies),
            "messages": sent,
            "received": received,
            "errors": len(run.errors),
            "complete": complete,
            "rate_target": args.rate,
            "rate_achieved": round(sent / send_s, 1),
            "window_s": round(t1 - t0, 3),
            "server_cpu_s": round(cpu, 4),
            "server_cpu_util": round(cpu / (t1 - t0), 3),
            "server_rss_mib": round(rss / 2**20, 1),
            "body_chars": args.size,
            "pinned": server_cpus is not None,
        }
        if run.errors:
            result["first_error"] = run.errors[0]
        return result


def main() -> int:
    p = base_parser(__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, default=1000.0, help="messages per second")
    p.add_argument("--seconds", type=float, default=5.0, help="measured duration")
    p.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first")
    p.add_argument("--size", type=int, default=100, help="characters of message body")
    args = p.parse_args()
    result = run_bench(main_async, args)
    return 0 if result["complete"] and not result["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
