"""``Sfu``: the embedded selective forwarding unit, the daemon's ``MediaBackend``.

A call's media is one ``Router`` per room (the main room and each breakout room). A
participant (``Peer``) has a send transport (their offer, their producers) and a receive
transport (the SFU's offer, one consumer per slot). The SFU keeps every peer's slots bound to
the producers of the other participants of the peer's room:

- a new producer in the room takes an idle slot of its media (audio, or video for camera and
  screen) of every other peer there, and a gone one leaves its slot idle; when a peer has no
  idle slot left the SFU renegotiates: a new ``media_offer`` (version + 1) with more slots;
- otherwise only the mapping changes, pushed as ``slots``; a move to a breakout room and back
  is such a remap (no new transports, no SDP);
- the active speaker of each room (RFC 6464 audio levels) is pushed as ``speaker``.

Pushes go through ``notify(call_id, user_ids, body)``. aiortc (and the transports) are
imported on first use so a daemon nobody calls with media never loads them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from media.errors import MediaRefused
from media.producer import Producer
from media.router import Router, now_ms
from media.settings import MediaSettings
from media.sinks import ProducerInfo, RtpSink

if TYPE_CHECKING:
    from media.transport import RecvTransport, SendTransport, WebRtcTransport

log = logging.getLogger(__name__)

KINDS = ("audio", "video", "screen")
ALL = frozenset(KINDS)
Notify = Callable[[str, list[str], dict[str, Any]], None]


@dataclass(eq=False)
class Peer:
    call_id: str
    user_id: str
    room_id: str
    paused: set[str]  # kinds held on the server (no capability, force mute, turned off)
    send: SendTransport | None = None
    recv: RecvTransport | None = None
    producers: dict[str, Producer] = field(default_factory=dict)  # by kind
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    sent_slots: dict[str, dict[str, str] | None] | None = None
    closed: bool = False


@dataclass(eq=False)
class CallMedia:
    call_id: str
    routers: dict[str, Router] = field(default_factory=dict)
    peers: dict[str, Peer] = field(default_factory=dict)
    loudest_audio: int = 0  # [media] loudest_audio of its routers

    def router(self, room_id: str) -> Router:
        router = self.routers.get(room_id)
        if router is None:
            router = self.routers[room_id] = Router(self.call_id, room_id, self.loudest_audio)
        return router


def media_of(kind: str) -> str:
    return "audio" if kind == "audio" else "video"


class Sfu:
    def __init__(self, settings: MediaSettings, notify: Notify):
        self.settings = settings
        self.notify = notify
        self.calls: dict[str, CallMedia] = {}
        self.failures = 0  # transports closed for not connecting or failing
        self._ticker: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._hooked = False
        self._producer_seq = 0

    # -- the MediaBackend surface -------------------------------------------------------------

    def check_offer(
        self, offer: str, tracks: Mapping[str, str] | None, allowed: frozenset[str]
    ) -> None:
        """Refuses (``MediaRefused``) an offer before the control plane changes anything."""
        self._tracks(offer, tracks, allowed)

    async def join(
        self,
        call_id: str,
        room_id: str,
        user_id: str,
        offer: str | None,
        *,
        tracks: Mapping[str, str] | None = None,
        allowed: frozenset[str] = ALL,
    ) -> str | None:
        """A participant's media: their send transport (when they offer) and a receive
        transport whose offer is pushed to them. A second join replaces both."""
        checked = None if offer is None else self._tracks(offer, tracks, allowed)
        self._load()
        fresh = CallMedia(call_id, loudest_audio=self.settings.loudest_audio)
        call = self.calls.setdefault(call_id, fresh)
        old = call.peers.get(user_id)
        if old is not None:
            await self._close_peer(call, old)
            self._reassign(call, {old.room_id})
        peer = Peer(call_id, user_id, room_id, set(ALL - allowed))
        call.peers[user_id] = peer
        self._start_ticker()
        answer = None
        async with peer.lock:
            if offer is not None and checked is not None:
                try:
                    answer = await self._publish(call, peer, offer, checked)
                except BaseException:
                    await self._close_peer(call, peer)
                    raise
        self._spawn(self._quietly(peer, self._start_receiving(call, peer)))
        return answer

    async def publish(
        self,
        call_id: str,
        user_id: str,
        offer: str,
        tracks: Mapping[str, str] | None,
        allowed: frozenset[str],
    ) -> str:
        """Renegotiate the send transport (a screen share added or stopped, a camera)."""
        checked = self._tracks(offer, tracks, allowed)
        call, peer = self._peer(call_id, user_id)
        async with peer.lock:
            return await self._publish(call, peer, offer, checked)

    async def media_answer(self, call_id: str, user_id: str, version: int, answer: str) -> None:
        from media.offer import check_answer

        call, peer = self._peer(call_id, user_id)
        async with peer.lock:
            recv = peer.recv
            if recv is None or recv.pending is None:
                raise MediaRefused("conflict", "no media offer is waiting for an answer")
            if version != recv.pending:
                raise MediaRefused(
                    "conflict", f"the media offer waiting for an answer is version {recv.pending}"
                )
            check_answer(answer, recv.pending_mids, self.settings.max_receive_slots)
            await recv.accept(answer)
        self._assign(call, peer)
        if self._wants_more(call, peer):
            self._spawn(self._quietly(peer, self._renegotiate(call, peer)))

    async def move(self, call_id: str, user_id: str, room_id: str) -> None:
        call = self.calls.get(call_id)
        peer = None if call is None else call.peers.get(user_id)
        if call is None or peer is None or peer.room_id == room_id:
            return
        old, new = call.router(peer.room_id), call.router(room_id)
        peer.room_id = room_id
        for producer in peer.producers.values():
            self._unconsume(producer)
            old.remove_producer(producer)
            new.add_producer(producer)
        self._reassign(call, {old.room_id, room_id})

    async def set_producer_paused(
        self, call_id: str, user_id: str, kind: str, paused: bool
    ) -> None:
        call = self.calls.get(call_id)
        peer = None if call is None else call.peers.get(user_id)
        if peer is None or kind not in KINDS:
            return
        if paused:
            peer.paused.add(kind)
        else:
            peer.paused.discard(kind)
        producer = peer.producers.get(kind)
        if producer is None or producer.paused == paused:
            return
        producer.paused = paused
        if not paused:
            now = now_ms()
            for consumer in list(producer.consumers):
                consumer.resume(now)  # one keyframe request serves them all

    async def leave(self, call_id: str, user_id: str) -> None:
        call = self.calls.get(call_id)
        peer = None if call is None else call.peers.get(user_id)
        if call is None or peer is None:
            return
        await self._close_peer(call, peer)
        self._reassign(call, {peer.room_id})

    async def close(self, call_id: str) -> None:
        call = self.calls.pop(call_id, None)
        if call is None:
            return
        for peer in list(call.peers.values()):
            await self._close_peer(call, peer)
        for router in call.routers.values():
            router.close()

    # -- sinks (the recorder) -----------------------------------------------------------------

    async def add_sink(self, call_id: str, room_id: str, sink: RtpSink) -> bool:
        """``sink`` gets the RTP of every producer of that room of that call from now on (the
        call's media is set up if nobody joined with media yet); a keyframe is asked of
        every video producer."""
        fresh = CallMedia(call_id, loudest_audio=self.settings.loudest_audio)
        call = self.calls.setdefault(call_id, fresh)
        call.router(room_id).add_sink(sink)
        return True

    async def remove_sink(self, call_id: str, room_id: str, sink: RtpSink) -> None:
        call = self.calls.get(call_id)
        if call is not None and room_id in call.routers:
            call.routers[room_id].remove_sink(sink)

    def router(self, call_id: str, room_id: str) -> Router | None:
        call = self.calls.get(call_id)
        return None if call is None else call.routers.get(room_id)

    # -- shutdown and statistics --------------------------------------------------------------

    async def stop(self) -> None:
        for call_id in list(self.calls):
            await self.close(call_id)
        if self._ticker is not None:
            self._ticker.cancel()
        for task in list(self._tasks):
            task.cancel()

    def stats(self) -> dict[str, Any]:
        calls: dict[str, Any] = {}
        for call in self.calls.values():
            peers: dict[str, Any] = {}
            for peer in call.peers.values():
                recv = peer.recv
                peers[peer.user_id] = {
                    "room": peer.room_id,
                    "send": None
                    if peer.send is None
                    else {
                        "connected": peer.send.connected,
                        "unknown": peer.send.unknown,
                        "decoded": peer.send.decoded(),
                    },
                    "recv": None
                    if recv is None
                    else {
                        "connected": recv.connected,
                        "version": recv.version,
                        "pending": recv.pending,
                        "buffered": 0 if recv.sender is None else recv.sender.buffered(),
                        "consumers": [c.stats() for c in recv.consumers.values()],
                    },
                }
            calls[call.call_id] = {
                "routers": {
                    room: {
                        "producers": [p.stats() for p in r.producers.values()],
                        "sinks": len(r.sinks),
                        "speaker": r.current_speaker,
                    }
                    for room, r in call.routers.items()
                },
                "peers": peers,
            }
        return {"calls": calls, "failures": self.failures}

    # -- inside -------------------------------------------------------------------------------

    def _load(self) -> None:
        if not self._hooked:
            from media import aiortc_hooks

            aiortc_hooks.allow_loopback(self.settings.loopback_candidates)
            self._hooked = True

    def _tracks(
        self, offer: str, tracks: Mapping[str, str] | None, allowed: frozenset[str]
    ) -> list[Any]:
        from media.offer import check_offer

        s = self.settings
        checked = check_offer(offer, tracks, s.max_mlines, s.max_producers_per_participant)
        if any(t.kind == "screen" for t in checked) and "screen" not in allowed:
            raise MediaRefused("forbidden", "you may not share your screen in this call")
        return checked

    def _peer(self, call_id: str, user_id: str) -> tuple[CallMedia, Peer]:
        call = self.calls.get(call_id)
        peer = None if call is None else call.peers.get(user_id)
        if call is None or peer is None or peer.closed:
            raise MediaRefused("not_joined", "you have no media in this call: join it again")
        return call, peer

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("media work failed", exc_info=task.exception())

    async def _quietly(self, peer: Peer, work: Any) -> None:
        """Signalling work for ``peer``: a failure once they are gone (they left while an
        offer was being made) is expected and not logged."""
        try:
            await work
        except Exception:
            if not peer.closed:
                log.exception("media signalling failed", extra={"user_id": peer.user_id})

    def _failed(self, call: CallMedia, peer: Peer) -> Callable[[WebRtcTransport], None]:
        def failed(transport: WebRtcTransport) -> None:
            if peer.closed:
                return
            self.failures += 1
            self._spawn(self.leave_media(call, peer))

        return failed

    async def leave_media(self, call: CallMedia, peer: Peer) -> None:
        """A transport of ``peer`` never connected or failed: free all of its media (they
        stay in the call and may join again)."""
        if call.peers.get(peer.user_id) is not peer:
            return
        await self._close_peer(call, peer)
        self._reassign(call, {peer.room_id})

    async def _publish(self, call: CallMedia, peer: Peer, offer: str, tracks: list[Any]) -> str:
        from media.transport import SendTransport

        if peer.send is None:
            peer.send = SendTransport(self.settings, self._failed(call, peer))
        send = peer.send
        answer, negotiated = await send.negotiate(offer, tracks)
        router = call.router(peer.room_id)
        kinds = {t.mid: t.kind for t in tracks}
        # Producers whose m-line stopped sending (or changed kind) go.
        for kind, producer in list(peer.producers.items()):
            if kinds.get(producer.mid) != kind or producer.mid not in negotiated:
                self._drop_producer(router, peer, producer)
        for mid, kind in kinds.items():
            neg = negotiated.get(mid)
            if neg is None or kind in peer.producers:
                continue
            self._producer_seq += 1
            info = ProducerInfo(
                producer_id=f"{peer.user_id}:{kind}:{self._producer_seq}",
                user_id=peer.user_id,
                kind=kind,
                mime_type=neg.mime_type,
                clock_rate=neg.clock_rate,
                payload_type=neg.payload_type,
                ssrc=0,
            )
            from media.aiortc_hooks import AUDIO_LEVEL_URI

            s = self.settings
            producer = Producer(
                info,
                mid,
                paused=kind in peer.paused,
                history_packets=s.history_packets,
                history_max_age_ms=s.history_max_age_ms,
                keyframe_interval_ms=s.keyframe_interval_ms,
                max_pps=s.max_packets_per_s,
                audio_level_id=neg.extensions.get(AUDIO_LEVEL_URI) if kind == "audio" else None,
                send_pli=send.pli_sender(mid),
                send_nack=send.nack_sender(mid),
            )
            peer.producers[kind] = producer
            send.bind(producer)
            router.add_producer(producer)
        self._reassign(call, {peer.room_id})
        return answer

    def _drop_producer(self, router: Router, peer: Peer, producer: Producer) -> None:
        producer.closed = True
        self._unconsume(producer)
        router.remove_producer(producer)
        if peer.send is not None:
            peer.send.unbind(producer)
        if peer.producers.get(producer.kind) is producer:
            del peer.producers[producer.kind]

    def _unconsume(self, producer: Producer) -> None:
        now = now_ms()
        for consumer in list(producer.consumers):
            consumer.attach(None, now)

    async def _close_peer(self, call: CallMedia, peer: Peer) -> None:
        if peer.closed:
            return
        peer.closed = True
        if call.peers.get(peer.user_id) is peer:
            del call.peers[peer.user_id]
        router = call.router(peer.room_id)
        for producer in list(peer.producers.values()):
            self._drop_producer(router, peer, producer)
        if peer.recv is not None:
            now = now_ms()
            for consumer in peer.recv.consumers.values():
                consumer.attach(None, now)
        for transport in (peer.send, peer.recv):
            if transport is not None:
                await transport.close()

    async def _start_receiving(self, call: CallMedia, peer: Peer) -> None:
        from media.transport import RecvTransport

        async with peer.lock:
            if peer.closed or peer.recv is not None:
                return
            peer.recv = RecvTransport(self.settings, self._failed(call, peer))
            audio, video = self._needed(call, peer)
            await self._offer(call, peer, max(1, audio), max(1, video))

    async def _renegotiate(self, call: CallMedia, peer: Peer) -> None:
        async with peer.lock:
            recv = peer.recv
            if peer.closed or recv is None or recv.pending is not None:
                return
            audio, video = self._needed(call, peer)
            if audio or video:
                await self._offer(call, peer, audio, video)

    async def _offer(self, call: CallMedia, peer: Peer, audio: int, video: int) -> None:
        recv = peer.recv
        assert recv is not None
        sdp = await recv.offer(audio, video)
        if peer.closed:
            return
        slots = self._planned_slots(call, peer)
        peer.sent_slots = slots
        body = {"type": "media_offer", "sdp": sdp, "version": recv.version, "slots": slots}
        self.notify(call.call_id, [peer.user_id], body)

    def _wanted(self, call: CallMedia, peer: Peer) -> list[Producer]:
        router = call.routers.get(peer.room_id)
        if router is None:
            return []
        return sorted(
            (p for p in router.producers.values() if p.user_id != peer.user_id),
            key=lambda p: (p.user_id, KINDS.index(p.kind)),
        )

    def _needed(self, call: CallMedia, peer: Peer) -> tuple[int, int]:
        """More slots ``peer`` needs (audio, video) than their receive transport has, within
        ``max_receive_slots``."""
        recv = peer.recv
        if recv is None:
            return 0, 0
        wanted = self._wanted(call, peer)
        audio = sum(1 for p in wanted if p.kind == "audio") - recv.capacity("audio")
        video = sum(1 for p in wanted if p.kind != "audio") - recv.capacity("video")
        room = self.settings.max_receive_slots - len(recv.pc.getTransceivers())
        audio = max(0, min(audio, room))
        video = max(0, min(video, room - audio))
        return audio, video

    def _wants_more(self, call: CallMedia, peer: Peer) -> bool:
        return any(self._needed(call, peer))

    def _planned_slots(self, call: CallMedia, peer: Peer) -> dict[str, dict[str, str] | None]:
        """The slots once the pending offer is answered: bound ones as they are, the others
        filled in m-line order (what ``_assign`` will do)."""
        recv = peer.recv
        assert recv is not None
        slots = recv.slots()
        bound = {(s["user_id"], s["kind"]) for s in slots.values() if s is not None}
        missing = [p for p in self._wanted(call, peer) if (p.user_id, p.kind) not in bound]
        for t in recv.pc.getTransceivers():
            if t.mid is None:
                continue
            if slots.get(t.mid) is None:
                p = next((p for p in missing if media_of(p.kind) == t.kind), None)
                slots[t.mid] = None if p is None else {"user_id": p.user_id, "kind": p.kind}
                if p is not None:
                    missing.remove(p)
        return slots

    def _reassign(self, call: CallMedia, rooms: set[str]) -> None:
        for peer in list(call.peers.values()):
            if peer.room_id in rooms:
                self._assign(call, peer)
                if self._wants_more(call, peer):
                    self._spawn(self._quietly(peer, self._renegotiate(call, peer)))

    def _assign(self, call: CallMedia, peer: Peer) -> None:
        """Bind ``peer``'s configured slots to the producers of their room; push the slots if
        the mapping changed."""
        recv = peer.recv
        if recv is None or peer.closed:
            return
        now = now_ms()
        wanted = self._wanted(call, peer)
        keep = set(wanted)
        for consumer in recv.consumers.values():
            if consumer.producer is not None and consumer.producer not in keep:
                consumer.attach(None, now)
        bound = {c.producer for c in recv.consumers.values() if c.producer is not None}
        for producer in wanted:
            if producer in bound:
                continue
            media = media_of(producer.kind)
            idle = next(
                (
                    c
                    for c in recv.consumers.values()
                    if c.media == media and c.producer is None and c.payload_type is not None
                ),
                None,
            )
            if idle is not None:
                idle.attach(producer, now)
        if recv.pending is not None:
            return  # the pending offer carried the slots; they are pushed after its answer
        slots = recv.slots()
        if slots != peer.sent_slots:
            peer.sent_slots = slots
            self.notify(call.call_id, [peer.user_id], {"type": "slots", "slots": slots})

    # -- the active speaker -------------------------------------------------------------------

    def _start_ticker(self) -> None:
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.ensure_future(self._tick())

    async def _tick(self) -> None:
        interval = self.settings.speaker_interval_ms / 1000
        while self.calls:
            await asyncio.sleep(interval)
            now = now_ms()
            for call in list(self.calls.values()):
                for router in list(call.routers.values()):
                    try:
                        speaker = router.update_speaker(now)
                    except Exception:
                        log.exception("active speaker detection failed")
                        continue
                    if speaker is None:
                        continue
                    users = [p.user_id for p in call.peers.values() if p.room_id == router.room_id]
                    body = {"type": "speaker", "user_id": speaker, "room": router.room_id}
                    self.notify(call.call_id, users, body)
