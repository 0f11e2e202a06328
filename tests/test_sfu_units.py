"""The SFU's per-packet objects without sockets (media.producer, media.consumer,
media.router): what a subscriber gets on the wire, NACKs, keyframe requests, floods, pauses,
source switches, sender reports, sinks."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from media import rtp
from media.aiortc_hooks import AUDIO_LEVEL_URI, MID_URI
from media.consumer import BytesOutput, Consumer
from media.producer import Producer
from media.router import Router
from media.sinks import ProducerInfo
from media.vp8 import Vp8Rewriter

OPUS, VP8 = 111, 96
KEY = bytes([0x90, 0x80, 0x80, 0x01, 0x50, 0x01, 0x00, 0x9D, 0x01, 0x2A, 0x40, 0x01, 0xF0, 0x00])
DELTA = bytes([0x90, 0x80, 0x80, 0x02, 0x51, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00])


def producer(
    kind: str = "audio", *, max_pps: int = 1000, user: str = "@a", ssrc: int = 7
) -> Producer:
    video = kind != "audio"
    info = ProducerInfo(
        f"{user}:{kind}",
        user,
        kind,
        "video/VP8" if video else "audio/opus",
        90000 if video else 48000,
        VP8 if video else OPUS,
        ssrc,
    )
    plis: list[int] = []
    p = Producer(
        info,
        "1" if video else "0",
        paused=False,
        history_packets=64,
        history_max_age_ms=3000,
        keyframe_interval_ms=1000,
        max_pps=max_pps,
        audio_level_id=None if video else 2,
        send_pli=plis.append,
    )
    return p


def plis(p: Producer) -> list[int]:
    """The PLIs ``p`` sent to its publisher (its ``send_pli`` is a list's append)."""
    sent: list[int] = p.send_pli.__self__  # type: ignore[attr-defined]
    return sent


class Wire:
    def __init__(self) -> None:
        self.packets: list[bytes] = []
        self.reports: list[tuple[int, int, int, int]] = []

    def send(self, data: bytes) -> int:
        self.packets.append(data)
        return 1

    def report(self, ntp: int, ts: int, packets: int, octets: int) -> None:
        self.reports.append((ntp, ts, packets, octets))


def consumer(media: str = "audio", level: bool = False) -> tuple[Consumer, Wire]:
    wire = Wire()
    c = Consumer("5", media, 0xABCD, BytesOutput(wire.send), wire.report)
    ext = {MID_URI: 4}
    if level:
        ext[AUDIO_LEVEL_URI] = 9
    c.configure(120 if media == "audio" else 100, ext)
    return c, wire


def packet(
    seq: int,
    ts: int,
    *,
    pt: int = OPUS,
    ssrc: int = 7,
    payload: bytes = b"op",
    level: int | None = 40,
) -> bytes:
    ext = {} if level is None else {2: bytes([0x80 | level])}
    return rtp.serialize(
        payload_type=pt, sequence=seq, timestamp=ts, ssrc=ssrc, payload=payload, extensions=ext
    )


def test_a_subscriber_gets_its_ssrc_pt_mid_and_audio_level() -> None:
    p = producer()
    c, wire = consumer(level=True)
    c.attach(p, 1000)
    p.receive(packet(100, 4800), 1000)
    out = rtp.parse(wire.packets[0])
    assert (out.ssrc, out.payload_type) == (0xABCD, 120)
    assert out.extensions == {4: b"5", 9: bytes([0x80 | 40])}
    assert wire.packets[0][out.payload_offset :] == b"op"
    plain, plain_wire = consumer(level=False)
    plain.attach(p, 1000)
    p.receive(packet(101, 5760), 1020)
    assert rtp.parse(plain_wire.packets[0]).extensions == {4: b"5"}


def test_nacks_are_answered_from_the_producer_history() -> None:
    p = producer()
    c, wire = consumer()
    c.attach(p, 0)
    for i in range(10):
        p.receive(packet(100 + i, 960 * i), i * 20)
    sent = {rtp.parse(d).sequence: d for d in wire.packets}
    lost = [rtp.parse(wire.packets[3]).sequence, rtp.parse(wire.packets[5]).sequence]
    c.nack([*lost, 12345])  # one the history never had
    assert wire.packets[10:] == [sent[lost[0]], sent[lost[1]]]
    assert c.retransmitted == 2


def test_keyframe_requests_reach_the_publisher_once_a_second() -> None:
    p = producer("video")
    assert p.request_keyframe(10_000) and not p.request_keyframe(10_500)
    assert p.request_keyframe(10_600, force=True)  # a consumer starting
    assert not p.request_keyframe(10_650, force=True)  # another one at once: the same PLI
    assert p.request_keyframe(11_700)
    assert plis(p) == [7, 7, 7]
    assert not producer("audio").request_keyframe(0)


def test_a_flood_is_cut_at_the_rate_and_nothing_else_changes() -> None:
    p = producer(max_pps=10)
    c, wire = consumer()
    c.attach(p, 0)
    for i in range(50):
        p.receive(packet(i, 960 * i), 5_000)
    assert len(wire.packets) == 10 and p.dropped_flood == 40
    p.receive(packet(50, 960 * 50), 6_000)  # the next second
    assert len(wire.packets) == 11
    p.receive(b"\x00" * 20, 6_001)
    assert p.dropped_malformed == 1
    p.receive(packet(51, 0, pt=0), 6_002)
    assert p.dropped_other == 1


def test_a_paused_producer_sends_nothing_and_a_slot_switch_stays_continuous() -> None:
    a, b = producer(user="@a", ssrc=1), producer(user="@b", ssrc=2)
    c, wire = consumer()
    c.attach(a, 0)
    for i in range(3):
        a.receive(packet(1000 + i, 10_000 + 960 * i, ssrc=1), i * 20)
    a.paused = True
    a.receive(packet(1003, 12_880, ssrc=1), 60)
    assert len(wire.packets) == 3 and a.dropped_paused == 1
    c.attach(b, 100)  # the slot now shows @b, whose numbers are elsewhere
    b.receive(packet(50_000, 7, ssrc=2), 100)
    seqs = [rtp.parse(d).sequence for d in wire.packets]
    stamps = [rtp.parse(d).timestamp for d in wire.packets]
    assert seqs[3] == (seqs[2] + 1) & 0xFFFF
    assert (stamps[3] - stamps[2]) & 0xFFFFFFFF > 0
    assert {rtp.parse(d).ssrc for d in wire.packets} == {0xABCD}
    assert a.consumers == [] and b.consumers == [c]


def test_a_video_slot_waits_for_a_keyframe_after_a_switch() -> None:
    p = producer("video")
    c, wire = consumer("video")
    c.attach(p, 0)
    assert c.waiting_keyframe and plis(p) == [7]
    p.receive(packet(10, 90_000, pt=VP8, payload=DELTA, level=None), 0)
    assert wire.packets == []
    p.receive(packet(11, 93_000, pt=VP8, payload=KEY, level=None), 1_500)
    p.receive(packet(12, 96_000, pt=VP8, payload=DELTA, level=None), 1_533)
    assert len(wire.packets) == 2 and not c.waiting_keyframe
    out = rtp.parse(wire.packets[0])
    assert wire.packets[0][out.payload_offset + 1] & 0x80  # picture id kept (15-bit form)


def test_sender_reports_carry_the_slot_timestamps() -> None:
    p = producer()
    c, wire = consumer()
    c.attach(p, 0)
    p.receive(packet(5, 1_000), 0)
    p.on_sender_report(0x1234_0000_0000, 1_000)
    ntp, ts, packets, _ = wire.reports[-1]
    assert ntp == 0x1234_0000_0000 and ts == rtp.parse(wire.packets[0]).timestamp
    assert packets == 1


class Sink:
    def __init__(self, fail: bool = False) -> None:
        self.got: list[tuple[str, bytes]] = []
        self.closed: list[str] = []
        self.fail = fail

    def on_rtp(self, producer: ProducerInfo, packet: bytes, arrival_ms: int) -> None:
        if self.fail:
            raise RuntimeError("broken sink")
        self.got.append((producer.producer_id, packet))

    def on_producer_closed(self, producer_id: str) -> None:
        self.closed.append(producer_id)


def test_sinks_get_the_publisher_packets_and_a_broken_one_is_removed() -> None:
    router = Router("C1", "main")
    p = producer()
    router.add_producer(p)
    good, bad = Sink(), Sink(fail=True)
    router.add_sink(good)
    router.add_sink(bad)
    data = packet(9, 9)
    p.receive(data, 0)
    assert good.got == [(p.producer_id, data)] and router.sinks == [good]
    router.remove_producer(p)
    assert good.closed == [p.producer_id]
    assert router.request_keyframe("nobody") is False


def test_the_loudest_voice_becomes_the_speaker() -> None:
    router = Router("C1", "main")
    loud, quiet = producer(user="@loud", ssrc=1), producer(user="@quiet", ssrc=2)
    router.add_producer(loud)
    router.add_producer(quiet)
    speaker = None
    for i in range(200):
        loud.receive(packet(i, 960 * i, ssrc=1, level=10), i * 20)
        quiet.receive(packet(i, 960 * i, ssrc=2, level=120), i * 20)
        speaker = speaker or router.update_speaker(i * 20)
    assert speaker == "@loud" and router.current_speaker == "@loud"
    router.remove_producer(loud)
    assert router.current_speaker is None


def test_upstream_loss_is_nacked_and_a_long_video_gap_asks_for_a_keyframe() -> None:
    nacks: list[tuple[int, list[int]]] = []
    p = producer()
    p.send_nack = lambda ssrc, lost: nacks.append((ssrc, lost))
    for seq in (65534, 65535, 2, 1, 3):  # 0 and 1 lost across the wrap; 1 comes late
        p.receive(packet(seq, seq * 960), 0)
    assert nacks == [(7, [0, 1])] and p.nacks_sent == 1
    v = producer("video")
    v.send_nack = lambda ssrc, lost: nacks.append((ssrc, lost))
    v.receive(packet(10, 0, pt=VP8, payload=DELTA, level=None), 5_000)
    v.receive(packet(100, 0, pt=VP8, payload=DELTA, level=None), 5_010)
    assert len(nacks) == 1 and plis(v) == [7]


def _vp8_payload(picture_id: int, wide: bool, tl0: int | None, body: bytes, key: bool) -> bytes:
    ext = 0x80 | (0x40 if tl0 is not None else 0)
    pid = (
        bytes([0x80 | picture_id >> 8 & 0x7F, picture_id & 0xFF])
        if wide
        else bytes([picture_id & 0x7F])
    )
    frame = (KEY[4:] if key else DELTA[4:]) + body
    return bytes([0x90, ext]) + pid + (bytes([tl0]) if tl0 is not None else b"") + frame


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.binary(max_size=1400), st.booleans(), st.booleans()), min_size=1, max_size=8
    ),
    st.integers(0, 0x7FFF),
)
def test_copies_written_into_the_reused_buffer_are_whole_rewritten_packets(
    frames: list[tuple[bytes, bool, bool]], first_pid: int
) -> None:
    """Each copy is written over the previous one in the slot's buffer (longer or shorter):
    what goes out is exactly ``rtp.rewrite`` of the packet with the slot's numbering and the
    picture id and TL0PICIDX of an independent ``Vp8Rewriter``, MID block included."""
    p = producer("video")
    c, wire = consumer("video")
    c.attach(p, 0)
    reference = Vp8Rewriter()
    for i, (body, wide, tl0) in enumerate(frames):
        payload = _vp8_payload(first_pid + i, wide, i & 0xFF if tl0 else None, body, key=i == 0)
        data = rtp.serialize(
            payload_type=VP8, sequence=100 + i, timestamp=3000 * i, ssrc=7, payload=payload
        )
        p.receive(data, 40 * i)
        expected = rtp.rewrite(
            data,
            payload_type=100,
            sequence=(100 + i + c.mapper.seq_offset) & 0xFFFF,
            timestamp=(3000 * i + c.mapper.ts_offset) & 0xFFFFFFFF,
            ssrc=0xABCD,
            extensions={4: b"5"},
            payload=reference.rewrite(payload),
        )
        assert wire.packets[-1] == expected
    assert len(wire.packets) == len(frames)
