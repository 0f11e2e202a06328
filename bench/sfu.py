"""The embedded SFU: forwarded packets per server CPU-second, added latency, a lesson's CPU.

    python -m bench.sfu --json [--publishers 2] [--subscribers 30] [--pupils 30]
                               [--seconds 9] [--warmup 2] [--rounds 3] [--loudest 3]
                               [--sample 0.1] [--pacing-factor 2.5] [--smoke] [--no-pin]

Everything is real except the media: sferumd runs as a child process on 127.0.0.1 with
``[media] loopback_candidates`` and ``debug_stats``; participants are aiortc peer connections
in this process (ICE host candidates 127.0.0.1 only, DTLS, SRTP) joining a chat call through
the websocket SDK (``call_join`` offers, ``media_offer`` pushes answered with
``call_media_answer``), exactly as clients/rtc.py and the browser do. Publishers replay VP8
(640x360, 30 fps, ~1 Mbit/s; the screen 1280x720, 5 fps) and Opus encoded once at start
(``bench.rtp_load``); subscribers count packets still encrypted and decrypt a sample only to
read the latency marker. Nothing is decoded anywhere.

Phases, each on its own daemon (server pinned to one CPU, this process to the others):

1. ``fanout``: ``--publishers`` participants publish audio + video; ``--subscribers`` more
   only receive (publishers receive each other too). Measures forwarded RTP packets per
   second of server CPU (user + system, psutil, over the measured window) and the latency.
   It runs alone: no other daemon on the server's CPU, no idle connections here.
2. ``lesson``: the teacher publishes audio + video + screen, ``--pupils`` pupils publish
   audio (all microphones stream, 50 packets/s each; one pupil at a time "speaks" by its
   RFC 6464 level, the others report background noise); everybody receives everything.
   Measures the daemon's CPU share of one core.
3. ``lesson_loudest`` (``--loudest N``, 0 to skip): the same with ``[media] loudest_audio =
   N``: only the N loudest microphones of the room (and the active speaker) are forwarded.

Both lessons are set up first, then their rounds take turns (publishers of the other one
silent, its daemon drained to idle first), so the machine's changing load falls on both
alike: the before/after of ``loudest_audio`` comes from the same minutes. Each phase also
reports ``idle_cpu_share`` (every connection up, no media: aiortc's RTCP loop per sender and
receiver, ICE consent), ``demand_per_s`` (copies needed for every stream to reach every
other participant) and ``forwarded_share_of_demand``.

Forwarded packets are the SFU's own counters (``GET /debug/v1/media``: packets each consumer
sent), read before and after each measured round, outside the CPU window. ``received`` is
what subscribers counted in the same rounds.

Latency: every payload ends with the publisher's ``time_ns`` at send; a subscriber in this
process reads the kernel's receive timestamp of the datagram (SIOCGSTAMPNS, when the datagram
reached its socket) and subtracts. Publisher and subscriber share a clock, so no clock sync
is needed. A direct aiortc-to-aiortc pair (same sender, same counting receiver, no server)
runs alongside during the same rounds; ``added_p50_ms``/``added_p99_ms`` are the SFU path's
percentiles minus the direct pair's. The path measured includes what the server's own clock
cannot see: the time a datagram waits in the server's socket and event loop before it is
read, which is where a busy single-threaded forwarder loses time. It excludes the time a
copy waits for this process's own event loop, which receives 30 subscribers' worth of
copies (stamping on arrival in the read callback instead put the p50 ~2 ms higher, all of
it spent here). ``latency_kernel_stamped_share`` says how many samples had a kernel
timestamp (the rest were stamped by this process, as a fallback).

Ceiling: after the fanout, ``bench.srtp_ceiling`` runs on the server's CPU and does nothing
but what each forwarded copy must do (SRTP protect with AES-256-GCM and a UDP send, through
the SFU sender's own primitives) to as many sockets as there are subscribers, drained by this
process. ``ceiling_packets_per_cpu_s`` is this machine's bound for any forwarder built on
them, and ``forwarded_share_of_ceiling`` the share the SFU reaches: a ratio measured in the
same minutes, so it holds when the shared machine's speed drifts. That ceiling sends without
pause; ``ceiling_paced_*`` runs it again with one fan-out per packet the fanout's publishers
sent (``ceiling_paced_interval_ms`` apart, sleeping in between as the daemon waits for the
next packet), and ``forwarded_share_of_paced_ceiling`` compares like with like: on a VM, a
CPU that slept runs the next burst slower, so the paced ceiling is the bound at this load.

Rounds: the measured ``--seconds`` are split into ``--rounds``; per-round rates are reported
with their median. Targets (``target_*``/``met_*``, never failing the run): >= 40,000
forwarded packets per server CPU-second, the lesson under 50 % of one core, added p99 < 5 ms.
Exit status 1 only if nothing was forwarded. Every wait has a timeout; every loop is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import sys
import time
import urllib.request
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

from bench.common import (
    BenchDir,
    ServerProcess,
    base_parser,
    latency_summary,
    log,
    make_users,
    pin_load_generator,
    run_bench,
    start_daemon,
)

TARGET_PACKETS_PER_CPU_S = 40_000
TARGET_LESSON_CPU_SHARE = 0.5
TARGET_ADDED_P99_MS = 5.0
SETUP_TIMEOUT_S = 120.0
MEDIA_CONFIG = """
[limits]
# A 30-pupil lesson's receive answer (33 m-lines) is longer than the default 32,000.
max_sdp_chars = 400000
[media]
loopback_candidates = true
debug_stats = true
max_receive_slots = 128
"""  # a phase's extra [media] lines follow


@dataclass
class Samples:
    """Latency samples, recorded only while ``on`` (the measured rounds)."""

    on: bool = False
    values: array[float] = field(default_factory=lambda: array("d"))


class Media:
    """The pre-encoded loops (made once per run)."""

    def __init__(self, seconds: float):
        from bench.rtp_load import encode_audio, encode_video

        self.video = encode_video(640, 360, 30, seconds, 1_000_000, 1.0)
        self.screen = encode_video(1280, 720, 5, seconds, 500_000, seconds)
        self.audio = encode_audio(seconds)

    def describe(self) -> dict[str, Any]:
        return {
            f"{name}_packets_per_s": round(m.packets_per_s, 1)
            for name, m in (("audio", self.audio), ("video", self.video), ("screen", self.screen))
        }


class Participant:
    """One call participant: a send connection (when publishing) and a receive connection
    that counts packets."""

    def __init__(
        self,
        client: Any,
        call_id: str,
        publish: dict[str, Any],
        levels: Callable[[float], tuple[bool, int]] | None,
        sample: float,
        samples: Samples,
    ):
        from aiortc import RTCConfiguration, RTCPeerConnection

        from bench.rtp_load import Counter

        self.client = client
        self.call_id = call_id
        self.publish = publish  # audio | video | screen -> Encoded
        self.levels = levels
        self.samples = samples
        config = RTCConfiguration(iceServers=[])
        self.send_pc = RTCPeerConnection(config) if publish else None
        self.recv_pc = RTCPeerConnection(config)
        self.counter = Counter(sample, _Recording(samples).append)
        self.tracks: dict[str, str] = {}
        self.offers = 0
        self.answer_chars = 0
        self.errors: list[str] = []
        self.streams: list[Any] = []
        self.sender: Any = None
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        client.call_listeners.append(self._on_push)

    async def join(self) -> None:
        from aiortc import RTCSessionDescription

        from media.transport import SilentTrack

        offer = None
        if self.send_pc is not None:
            added = []
            for kind in self.publish:
                track = SilentTrack("audio" if kind == "audio" else "video")
                added.append((self.send_pc.addTransceiver(track, direction="sendonly"), kind))
            await self.send_pc.setLocalDescription(await self.send_pc.createOffer())
            for transceiver, kind in added:
                assert transceiver.mid is not None
                self.tracks[transceiver.mid] = kind
            offer = self.send_pc.localDescription.sdp
        joined = await self.client.call_join(self.call_id, offer, self.tracks or None)
        if joined.get("answer") and self.send_pc is not None:
            await self.send_pc.setRemoteDescription(
                RTCSessionDescription(joined["answer"], "answer")
            )

    def _on_push(self, value: dict[str, Any]) -> None:
        if value.get("call_id") == self.call_id and value.get("type") == "media_offer":
            task = asyncio.ensure_future(self._answer(value))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _answer(self, offer: dict[str, Any]) -> None:
        from aiortc import RTCSessionDescription

        async with self._lock:
            pc = self.recv_pc
            try:
                await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
                await pc.setLocalDescription(await pc.createAnswer())
                self.counter.install(pc)
                self.answer_chars = max(self.answer_chars, len(pc.localDescription.sdp))
                await self.client.call_media_answer(
                    self.call_id, offer["version"], pc.localDescription.sdp
                )
                self.offers += 1
            except Exception as exc:
                self.errors.append(repr(exc))

    def receiving_ready(self, slots: int) -> bool:
        return (
            not self._lock.locked()
            and len(self.recv_pc.getTransceivers()) >= slots
            and self.recv_pc.connectionState == "connected"
        )

    def loopback_only(self) -> bool:
        """Every local ICE candidate of both connections is 127.0.0.1."""
        for pc in (self.send_pc, self.recv_pc):
            for t in [] if pc is None else pc.getTransceivers()[:1]:
                gatherer = t.sender.transport.transport.iceGatherer
                if any(c.ip != "127.0.0.1" for c in gatherer.getLocalCandidates()):
                    return False
        return True

    def sending_ready(self) -> bool:
        return self.send_pc is None or self.send_pc.connectionState == "connected"

    def start_sending(self, pacer: Any, max_buffer: int) -> None:
        from bench.rtp_load import answer_keyframe_requests, stream_for
        from media import aiortc_hooks as hooks

        pc = self.send_pc
        if pc is None:
            return
        transport = hooks.bundle_transport(pc)
        assert transport is not None
        sender = self.sender = hooks.Sender(transport, max_buffer)
        for t in pc.getTransceivers():
            kind = self.tracks.get(t.mid or "")
            if kind is None:
                continue
            levels = self.levels if kind == "audio" else None
            self.streams.append(stream_for(pc, t, self.publish[kind], sender, levels))
        answer_keyframe_requests(pc, self.streams)
        for s in self.streams:
            pacer.add(s)

    async def close(self) -> None:
        from clients.rtc import close_media

        if self.sender is not None:
            self.sender.close()
        await close_media(self.client, self._on_push, self._tasks, (self.send_pc, self.recv_pc))


class _Recording:
    """An ``array.append`` that records only while the samples are on."""

    def __init__(self, samples: Samples):
        self.samples = samples

    def append(self, value: float) -> None:
        if self.samples.on:
            self.samples.values.append(value)


class DirectPair:
    """The baseline: one publisher connection straight to one subscriber connection in this
    process (no server), the same sender and counting receiver as through the SFU."""

    def __init__(self, media: Media, sample: float, samples: Samples):
        from aiortc import RTCConfiguration, RTCPeerConnection

        from bench.rtp_load import Counter

        config = RTCConfiguration(iceServers=[])
        self.pub = RTCPeerConnection(config)
        self.sub = RTCPeerConnection(config)
        self.media = media
        self.counter = Counter(sample, _Recording(samples).append)
        self.streams: list[Any] = []
        self.sender: Any = None
        self.kinds: dict[int, str] = {}  # id(transceiver) -> audio | video

    async def connect(self, timeout: float) -> None:
        from media.transport import SilentTrack

        kinds = {"audio": self.media.audio, "video": self.media.video}
        for kind in kinds:
            t = self.pub.addTransceiver(SilentTrack(kind), direction="sendonly")
            self.kinds[id(t)] = kind
        await self.pub.setLocalDescription(await self.pub.createOffer())
        await self.sub.setRemoteDescription(self.pub.localDescription)
        await self.sub.setLocalDescription(await self.sub.createAnswer())
        self.counter.install(self.sub)
        await self.pub.setRemoteDescription(self.sub.localDescription)
        await until(lambda: self.pub.connectionState == "connected", timeout, "direct pair")

    def start_sending(self, pacer: Any) -> None:
        from bench.rtp_load import steady_level, stream_for
        from media import aiortc_hooks as hooks

        transport = hooks.bundle_transport(self.pub)
        assert transport is not None
        sender = self.sender = hooks.Sender(transport, 1 << 20)
        media = {"audio": self.media.audio, "video": self.media.video}
        for t in self.pub.getTransceivers():
            kind = self.kinds[id(t)]
            level = steady_level(30) if kind == "audio" else None
            s = stream_for(self.pub, t, media[kind], sender, level)
            self.streams.append(s)
            pacer.add(s)

    async def close(self) -> None:
        if self.sender is not None:
            self.sender.close()
        for pc in (self.pub, self.sub):
            with contextlib.suppress(Exception):
                await pc.close()


async def until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def media_stats(server: ServerProcess) -> dict[str, Any]:
    with urllib.request.urlopen(server.url + "/debug/v1/media", timeout=30) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


Counters = dict[tuple[str, str, str], tuple[int, int]]


def consumer_counters(stats: dict[str, Any]) -> Counters:
    """(call, subscriber, mid) -> (packets sent, packets dropped for a full send buffer)."""
    out: Counters = {}
    for call_id, call in stats["calls"].items():
        for user_id, peer in call["peers"].items():
            recv = peer.get("recv") or {}
            for c in recv.get("consumers", ()):
                out[(call_id, user_id, c["mid"])] = (c["packets"], c.get("dropped", 0))
    return out


def connected_receivers(stats: dict[str, Any]) -> int:
    return sum(
        1
        for call in stats["calls"].values()
        for peer in call["peers"].values()
        if (peer.get("recv") or {}).get("connected")
    )


def counter_deltas(before: Counters, after: Counters) -> tuple[int, int]:
    """Packets (sent, dropped) between two readings, consumer by consumer: one that went
    away meanwhile (its subscriber's transport failed) counts nothing."""
    sent = dropped = 0
    for key, (s1, d1) in after.items():
        s0, d0 = before.get(key, (0, 0))
        sent += max(0, s1 - s0)
        dropped += max(0, d1 - d0)
    return sent, dropped


@dataclass
class Shape:
    """Who publishes what in one phase."""

    name: str
    publishers: list[dict[str, Any]]  # per publishing participant: kind -> Encoded
    levels: list[Callable[[float], tuple[bool, int]] | None]
    listeners: int  # participants that only receive
    extra_config: str = ""
    loudest: int = 0  # [media] loudest_audio


class Phase:
    """One shape on its own daemon: set up once, then measured in rounds. Between its
    rounds its publishers are silent (the pacer is stopped), so the phases of a run can
    take turns: a change in the machine's other load falls on all of them alike."""

    def __init__(self, shape: Shape, media: Media, args: Any, workdir: Path, cpus: set[int] | None):
        from bench.rtp_load import Pacer

        self.shape = shape
        self.media = media
        self.args = args
        self.dir = workdir / shape.name
        self.cpus = cpus
        self.samples, self.direct_samples = Samples(), Samples()
        self.pacer = Pacer(args.pacing_factor)
        self.people: list[Participant] = []
        self.direct: DirectPair | None = None
        self.daemon: ServerProcess | None = None
        self.rounds: list[dict[str, float]] = []
        self.late = self.skipped = 0
        self.receivers_connected = 1 << 30
        self.busy_after_drain = 0
        self.idle_shares: list[float] = []  # CPU share with every connection up, no media

    async def start(self, stack: contextlib.AsyncExitStack[Any], latency: bool) -> None:
        from clients.sdk import Client

        shape, args = self.shape, self.args
        count = len(shape.publishers) + shape.listeners
        self.dir.mkdir()
        users = make_users(self.dir, count)
        config = MEDIA_CONFIG + shape.extra_config
        daemon = start_daemon(self.dir, cpus=self.cpus, extra_config=config)
        stack.callback(daemon.stop)
        self.daemon = daemon
        stack.push_async_callback(self.close)
        log(f"{shape.name}: daemon at {daemon.url}, {count} participants")
        clients = []
        for u in users:
            clients.append(await stack.enter_async_context(Client(daemon.url, u.token)))
        owner = clients[0]
        room = await owner.create_room("bench", invite=[u.user_id for u in users[1:]])
        await asyncio.gather(*(c.join(room) for c in clients[1:]))
        call_id = (await owner.call_start(room))["call_id"]
        for i, client in enumerate(clients):
            pub = shape.publishers[i] if i < len(shape.publishers) else {}
            lv = shape.levels[i] if i < len(shape.levels) else None
            self.people.append(Participant(client, call_id, pub, lv, args.sample, self.samples))
        people = self.people
        # The first participant (the teacher, a publisher) joins alone, everybody else at
        # once (a few at a time): joins that overlap share renegotiations (the SFU folds the
        # slots needed meanwhile into its next media_offer).
        await people[0].join()
        sem = asyncio.Semaphore(args.join_concurrency)

        async def join(p: Participant) -> None:
            async with sem:
                await p.join()

        await asyncio.gather(*(join(p) for p in people[1:]))
        expected = expected_streams(shape)
        # Media flows only once every connection is up and every slot negotiated, so the
        # set-up is not measured and does not compete with the load.
        await until(
            lambda: all(
                p.sending_ready() and p.receiving_ready(want)
                for p, want in zip(people, expected, strict=True)
            ),
            args.setup_timeout,
            f"{shape.name}: every connection up",
        )
        for p in people:
            p.start_sending(self.pacer, 1 << 20)
        if latency:
            self.direct = DirectPair(self.media, 1.0, self.direct_samples)
            await self.direct.connect(args.setup_timeout)
            self.direct.start_sending(self.pacer)
        self.pacer.start()
        visible = visible_streams(shape)
        try:
            await until(
                lambda: all(
                    len(p.counter.by_ssrc) >= want for p, want in zip(people, visible, strict=True)
                ),
                args.setup_timeout,
                f"{shape.name}: every subscriber receiving every stream",
            )
        except TimeoutError:
            for i, (p, want) in enumerate(zip(people, visible, strict=True)):
                if len(p.counter.by_ssrc) < want:
                    log(
                        f"participant {i}: {len(p.counter.by_ssrc)}/{want} streams,"
                        f" {p.offers} offers answered, errors {p.errors[-2:]},"
                        f" recv {p.recv_pc.connectionState}"
                    )
            log("daemon log tail:\n" + daemon.log_tail(40))
            raise
        await self.pacer.stop()
        log(f"{shape.name}: all receiving")

    async def round(self, seconds: float) -> None:
        """Publishers on, ``--warmup`` seconds, then ``seconds`` measured, publishers off."""
        daemon, people, pacer = self.daemon, self.people, self.pacer
        assert daemon is not None
        me = psutil.Process()
        await self.idle(daemon)
        pacer.start()
        await asyncio.sleep(self.args.warmup)
        late0, skipped0 = pacer.late_frames, pacer.skipped_frames
        counters0 = consumer_counters(await asyncio.to_thread(media_stats, daemon))
        recv0 = sum(p.counter.packets for p in people)
        sent0s = [s.sent for p in people for s in p.streams]
        cpu0, mine0, t0 = daemon.cpu_s(), sum(me.cpu_times()[:2]), time.perf_counter()
        self.samples.on = self.direct_samples.on = True
        await asyncio.sleep(seconds)
        self.samples.on = self.direct_samples.on = False
        cpu1, mine1, t1 = daemon.cpu_s(), sum(me.cpu_times()[:2]), time.perf_counter()
        recv1 = sum(p.counter.packets for p in people)
        sent1s = [s.sent for p in people for s in p.streams]
        stats = await asyncio.to_thread(media_stats, daemon)
        fwd, dropped = counter_deltas(counters0, consumer_counters(stats))
        await pacer.stop()
        self.receivers_connected = min(self.receivers_connected, connected_receivers(stats))
        others = len(people) - 1
        demand = sum((s1 - s0) * others for s0, s1 in zip(sent0s, sent1s, strict=True))
        self.late += pacer.late_frames - late0
        self.skipped += pacer.skipped_frames - skipped0
        self.rounds.append(
            {
                "forwarded": fwd,
                "dropped": dropped,
                "demand": demand,
                "received": recv1 - recv0,
                "published": sum(sent1s) - sum(sent0s),
                "cpu": cpu1 - cpu0,
                "wall": t1 - t0,
                "client_cpu": mine1 - mine0,
            }
        )

    async def idle(self, daemon: ServerProcess, timeout: float = 20.0) -> None:
        """Until the daemon uses under a tenth of a core (a saturated one drains its
        backlog after its publishers stop; that must not fall into another phase's round).
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            cpu0, t0 = daemon.cpu_s(), time.perf_counter()
            await asyncio.sleep(1.0)
            share = (daemon.cpu_s() - cpu0) / (time.perf_counter() - t0)
            if share < 0.2:
                self.idle_shares.append(share)
                return
        self.busy_after_drain += 1

    def result(self) -> dict[str, Any]:
        rounds, people, daemon = self.rounds, self.people, self.daemon
        assert daemon is not None
        fwd = sum(r["forwarded"] for r in rounds)
        demand = sum(r["demand"] for r in rounds)
        cpu = sum(r["cpu"] for r in rounds)
        wall = sum(r["wall"] for r in rounds)
        per_cpu = [r["forwarded"] / r["cpu"] for r in rounds if r["cpu"] > 0]
        shares = [r["cpu"] / r["wall"] for r in rounds]
        out: dict[str, Any] = {
            "participants": len(people),
            "streams_published": sum(len(p.streams) for p in people),
            "packets_per_server_cpu_s": round(statistics.median(per_cpu)) if per_cpu else None,
            "packets_per_server_cpu_s_rounds": [round(x) for x in per_cpu],
            "server_cpu_share": round(statistics.median(shares), 3),
            "server_cpu_share_rounds": [round(x, 3) for x in shares],
            "forwarded": int(fwd),
            "forwarded_per_s": round(fwd / wall) if wall else None,
            # Copies needed for every stream to reach every other participant, and the
            # share of them forwarded (below 1: saturated, or streams held back on purpose).
            "demand_per_s": round(demand / wall) if wall else None,
            "forwarded_share_of_demand": round(fwd / demand, 3) if demand else None,
            # Without loudest_audio: the CPU share the whole demand would take at the rate
            # measured (above 1: more than one core; the lesson without loudest_audio).
            "cpu_share_for_demand": round(demand * cpu / fwd / wall, 3)
            if fwd and wall and self.shape.loudest <= 0
            else None,
            # With every connection up and no media (aiortc's RTCP loop per sender and
            # receiver, ICE consent checks): part of the share above.
            "idle_cpu_share": round(statistics.median(self.idle_shares), 3)
            if self.idle_shares
            else None,
            "receivers_connected_min": self.receivers_connected,
            "rounds_not_idle_before": self.busy_after_drain,
            "published_per_s": round(sum(r["published"] for r in rounds) / wall) if wall else None,
            "received": int(sum(r["received"] for r in rounds)),
            "send_buffer_drops": int(sum(r["dropped"] for r in rounds)),
            "server_cpu_s": round(cpu, 3),
            "measured_s": round(wall, 3),
            "client_cpu_share": round(sum(r["client_cpu"] for r in rounds) / wall, 3),
            "late_frames": self.late,
            "skipped_frames": self.skipped,
            "server_rss_mib": round(daemon.rss() / 2**20, 1),
            "answer_errors": sum(len(p.errors) for p in people),
            "loopback_only": all(p.loopback_only() for p in people),
            "media_offers": sum(p.offers for p in people),
            "max_answer_sdp_chars": max(p.answer_chars for p in people),
            "keyframe_requests": sum(s.keyframe_requests for p in people for s in p.streams),
        }
        sfu = latency_summary(self.samples.values)
        out.update({f"sfu_{k}": v for k, v in sfu.items()})
        out["latency_samples"] = len(self.samples.values)
        counters = [p.counter for p in people]
        if self.direct is not None:
            counters.append(self.direct.counter)
        sampled = sum(c.sampled for c in counters)
        stamped = sum(c.kernel_stamped for c in counters)
        out["latency_kernel_stamped_share"] = round(stamped / sampled, 3) if sampled else None
        if len(self.direct_samples.values):
            base = latency_summary(self.direct_samples.values)
            out.update({f"direct_{k}": v for k, v in base.items()})
            out["added_p50_ms"] = round(sfu["p50_ms"] - base["p50_ms"], 3)
            out["added_p99_ms"] = round(sfu["p99_ms"] - base["p99_ms"], 3)
        return out

    async def close(self) -> None:
        await self.pacer.stop()
        if self.direct is not None:
            await self.direct.close()
        for p in self.people:
            await p.close()


def expected_streams(shape: Shape) -> list[int]:
    """How many distinct streams each participant receives (everybody else's)."""
    total = sum(len(p) for p in shape.publishers)
    n = len(shape.publishers) + shape.listeners
    return [
        total - (len(shape.publishers[i]) if i < len(shape.publishers) else 0) for i in range(n)
    ]


def visible_streams(shape: Shape) -> list[int]:
    """How many distinct streams each participant must be receiving before the measurement:
    every other stream, or with ``loudest`` every other video and at least one audio."""
    slots = expected_streams(shape)
    if shape.loudest <= 0:
        return slots
    out = []
    for i, want in enumerate(slots):
        video = sum(
            1 for j, p in enumerate(shape.publishers) for kind in p if kind != "audio" and j != i
        )
        out.append(min(want, video + 1))
    return out


def fanout_shape(media: Media, args: Any) -> Shape:
    from bench.rtp_load import steady_level

    pubs = [{"audio": media.audio, "video": media.video} for _ in range(args.publishers)]
    levels: list[Callable[[float], tuple[bool, int]] | None] = [
        steady_level(30) for _ in range(args.publishers)
    ]
    return Shape("fanout", pubs, levels, args.subscribers)


def lesson_shape(media: Media, args: Any, loudest: int) -> Shape:
    from bench.rtp_load import steady_level, turn_level

    teacher = {"audio": media.audio, "video": media.video, "screen": media.screen}
    pubs = [teacher] + [{"audio": media.audio} for _ in range(args.pupils)]
    levels: list[Callable[[float], tuple[bool, int]] | None] = [steady_level(20)]
    levels += [turn_level(i, args.pupils, 2.0, seed=i) for i in range(args.pupils)]
    name = "lesson" if loudest <= 0 else "lesson_loudest"
    config = f"loudest_audio = {max(loudest, 0)}\n"  # 0: every microphone, whatever the default
    return Shape(name, pubs, levels, 0, config, loudest)


async def run_group(
    shapes: list[Shape], media: Media, args: Any, workdir: Path, cpus: set[int] | None
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with contextlib.AsyncExitStack() as stack:
        phases = [Phase(shape, media, args, workdir, cpus) for shape in shapes]
        for phase in phases:
            await phase.start(stack, latency=phase.shape.name == "fanout")
        for r in range(args.rounds):
            for phase in phases:
                log(f"round {r + 1}/{args.rounds}: {phase.shape.name}")
                await phase.round(args.seconds / args.rounds)
        for phase in phases:
            res = phase.result()
            name = phase.shape.name
            if name == "fanout":
                out["forwarded_packets_per_server_cpu_s"] = res["packets_per_server_cpu_s"]
                out["added_p50_ms"] = res.get("added_p50_ms")
                out["added_p99_ms"] = res.get("added_p99_ms")
            else:
                out[f"{name}_cpu_share"] = res.pop("server_cpu_share")
            out.update({f"{name}_{k}": v for k, v in res.items()})
    return out


class _Drain(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received = 0

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.received += 1


async def ceiling(
    args: Any, cpus: set[int] | None, count: int, interval_ms: float = 0.0
) -> dict[str, Any]:
    """``bench.srtp_ceiling`` on the server's CPU, sending to ``count`` sockets this process
    drains: the machine's protect-and-send packets per CPU-second, median of the rounds;
    with ``interval_ms``, one fan-out per interval (``ceiling_paced_*``)."""
    loop = asyncio.get_running_loop()
    endpoints = [
        await loop.create_datagram_endpoint(_Drain, local_addr=("127.0.0.1", 0))
        for _ in range(count)
    ]
    ports = ",".join(str(t.get_extra_info("sockname")[1]) for t, _ in endpoints)
    seconds = min(2.0, args.seconds / args.rounds)
    rates: list[float] = []
    try:
        for _ in range(args.rounds):
            child = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.srtp_ceiling",
                "--ports",
                ports,
                "--seconds",
                str(seconds),
                "--interval-ms",
                str(interval_ms),
                stdout=asyncio.subprocess.PIPE,
                preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
            )
            stdout, _ = await asyncio.wait_for(child.communicate(), timeout=seconds + 30)
            rates.append(json.loads(stdout.decode().strip().splitlines()[-1])["packets_per_cpu_s"])
    finally:
        for transport, _ in endpoints:
            transport.close()
    name = "ceiling_paced" if interval_ms else "ceiling"
    return {
        f"{name}_packets_per_cpu_s": round(statistics.median(rates)),
        f"{name}_rounds": [round(x) for x in rates],
        f"{name}_received": sum(p.received for _, p in endpoints),
    }


async def main_async(args: Any) -> dict[str, Any]:
    from media import aiortc_hooks as hooks

    hooks.loopback_only()
    server_cpus = pin_load_generator(args.pin)
    load_before = os.getloadavg()
    log("encoding the media loops")
    media = Media(args.loop_seconds)
    out: dict[str, Any] = {
        "bench": "sfu",
        "smoke": args.smoke,
        "cpus": os.cpu_count(),
        "pinned": server_cpus is not None,
        "rounds": args.rounds,
        "seconds": args.seconds,
        "latency_sample": args.sample,
        "publisher_pacing_factor": args.pacing_factor,
        "latency_method": "publisher's send time to the kernel's receive timestamp at the "
        "subscriber's socket, minus a direct pair",
        **media.describe(),
    }
    names = {x.strip() for x in args.phases.split(",") if x.strip()}
    shapes = []
    if "fanout" in names:
        shapes.append(fanout_shape(media, args))
        out.update({"publishers": args.publishers, "subscribers": args.subscribers})
    if "lesson" in names:
        shapes.append(lesson_shape(media, args, 0))
    if "lesson_loudest" in names and args.loudest > 0:
        shapes.append(lesson_shape(media, args, args.loudest))
    if any(s.name.startswith("lesson") for s in shapes):
        out["pupils"] = args.pupils
        out["loudest_audio"] = args.loudest
    # The fanout runs alone (its latency then has no other daemon on the server's CPU and
    # no idle connections in this process); the lessons, with and without loudest_audio,
    # take turns round by round (each on its own daemon, the other silent), so the
    # machine's changing load falls on both alike.
    groups = [[s for s in shapes if s.name == "fanout"], [s for s in shapes if s.name != "fanout"]]
    with BenchDir("sfu") as workdir:
        for group in groups:
            if group:
                out.update(await run_group(group, media, args, workdir, server_cpus))
    if any(s.name == "fanout" for s in shapes):
        # The same machine's protect-and-send ceiling, in the same minutes: the share of it
        # the SFU reaches holds when the machine's speed drifts (the absolute figure does not).
        log("the protect-and-send ceiling")
        out.update(await ceiling(args, server_cpus, args.subscribers))
        rate = out.get("forwarded_packets_per_server_cpu_s")
        top = out["ceiling_packets_per_cpu_s"]
        out["forwarded_share_of_ceiling"] = round(rate / top, 3) if rate and top else None
        # Paced as the fanout was: one fan-out per packet the publishers sent, on average.
        published = out.get("fanout_published_per_s")
        if published:
            interval = round(1000 / published, 3)
            log(f"the protect-and-send ceiling, a fan-out every {interval} ms")
            out.update(await ceiling(args, server_cpus, args.subscribers, interval))
            top = out["ceiling_paced_packets_per_cpu_s"]
            out["ceiling_paced_interval_ms"] = interval
            out["forwarded_share_of_paced_ceiling"] = round(rate / top, 3) if rate and top else None
    out["target_packets_per_server_cpu_s"] = TARGET_PACKETS_PER_CPU_S
    rate = out.get("forwarded_packets_per_server_cpu_s")
    out["met_packets_per_server_cpu_s"] = rate is not None and rate >= TARGET_PACKETS_PER_CPU_S
    out["target_lesson_cpu_share"] = TARGET_LESSON_CPU_SHARE
    share = out.get("lesson_loudest_cpu_share", out.get("lesson_cpu_share"))
    out["met_lesson_cpu_share"] = share is not None and share < TARGET_LESSON_CPU_SHARE
    out["target_added_p99_ms"] = TARGET_ADDED_P99_MS
    added = out.get("added_p99_ms")
    out["met_added_p99"] = added is not None and added < TARGET_ADDED_P99_MS
    out["loadavg_before"] = [round(x, 2) for x in load_before]
    out["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    return out


def main() -> int:
    from bench.rtp_load import PACING_FACTOR

    p = base_parser(__doc__.splitlines()[0])
    p.add_argument("--publishers", type=int, default=2, help="fanout: audio+video publishers")
    p.add_argument("--subscribers", type=int, default=30, help="fanout: receive-only peers")
    p.add_argument("--pupils", type=int, default=30, help="lesson: pupils (audio publishers)")
    p.add_argument("--seconds", type=float, default=9.0, help="measured seconds per phase")
    p.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each round")
    p.add_argument("--rounds", type=int, default=3, help="rounds the seconds are split into")
    p.add_argument(
        "--loudest",
        type=int,
        default=3,
        help="also run the lesson with [media] loudest_audio = N (0: skip that phase)",
    )
    p.add_argument(
        "--sample", type=float, default=0.1, help="share of packets decrypted for latency"
    )
    p.add_argument(
        "--pacing-factor",
        type=float,
        default=PACING_FACTOR,
        help="publishers pace video at this x its bitrate, as libwebrtc does (0: a frame's "
        "packets at once)",
    )
    p.add_argument("--loop-seconds", type=float, default=3.0, help="seconds of media encoded")
    p.add_argument("--smoke", action="store_true", help="tiny and fast (tests)")
    p.add_argument(
        "--phases",
        default="fanout,lesson,lesson_loudest",
        help="comma-separated phases to run (lesson_loudest only when --loudest > 0)",
    )
    p.add_argument("--join-concurrency", type=int, default=8, help="participants joining at a time")
    p.add_argument(
        "--setup-timeout", type=float, default=SETUP_TIMEOUT_S, help="seconds to connect"
    )
    args = p.parse_args()
    if args.smoke:
        args.publishers, args.subscribers, args.pupils = 1, 2, 3
        args.seconds, args.warmup, args.rounds, args.loop_seconds = 1.0, 0.5, 1, 1.0
    if min(args.publishers, args.subscribers, args.pupils, args.rounds) < 1 or not (
        0 < args.sample <= 1
    ):
        p.error("--publishers, --subscribers, --pupils, --rounds >= 1; 0 < --sample <= 1")
    result = run_bench(main_async, args)
    ok = all(result.get(f"{x}_forwarded", 1) > 0 for x in ("fanout", "lesson", "lesson_loudest"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
