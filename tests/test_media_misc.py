"""media/history.py, keyframes.py, speaker.py, clock.py: the small per-packet helpers."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media import rtp
from media.clock import SrMapper, ms_to_ntp, ntp_middle32, ntp_to_ms
from media.history import PacketHistory
from media.keyframes import KeyframeGate
from media.speaker import ActiveSpeaker, audio_level

# -- PacketHistory ------------------------------------------------------------------------


def test_history_returns_recent_packets_by_seq() -> None:
    h = PacketHistory(max_packets=4, max_age_ms=1000)
    for seq in range(10, 15):
        h.put(seq, b"p%d" % seq, now_ms=seq)
    assert len(h) == 4
    assert h.get(10) is None  # evicted by 14 (same slot)
    assert [h.get(s) for s in range(11, 15)] == [b"p11", b"p12", b"p13", b"p14"]
    assert h.get(15) is None


def test_history_forgets_packets_older_than_max_age() -> None:
    h = PacketHistory(max_packets=100, max_age_ms=500)
    h.put(1, b"old", now_ms=0)
    h.put(2, b"new", now_ms=400)
    assert h.get(1) == b"old"
    h.put(3, b"newer", now_ms=501)
    assert h.get(1) is None  # 501 ms older than the newest packet
    assert h.get(2) == b"new"
    assert h.get(2, now_ms=2000) is None  # the stream stalled: explicit clock
    h.clear()
    assert (len(h), h.get(3)) == (0, None)


@pytest.mark.parametrize("size", [7, 1000, 4096])
def test_history_keeps_exactly_the_last_packets_across_the_seq_wrap(size: int) -> None:
    h = PacketHistory(max_packets=size, max_age_ms=1 << 40)
    seqs = [(65536 - size // 2 + i) & 0xFFFF for i in range(size * 2)]
    for i, seq in enumerate(seqs):
        h.put(seq, bytes(str(i), "ascii"), now_ms=i)
    for i, seq in enumerate(seqs):
        expected = bytes(str(i), "ascii") if i >= size else None
        assert h.get(seq) == expected
    # A late packet older than the ring is not stored (it would evict a newer one).
    h.put(seqs[0], b"late", now_ms=0)
    assert h.get(seqs[0]) is None
    assert h.get(seqs[size]) == bytes(str(size), "ascii")


def test_history_knobs() -> None:
    with pytest.raises(ValueError):
        PacketHistory(0, 10)
    assert PacketHistory(3, 0).max_packets == 3


@settings(max_examples=150)
@given(
    start=st.integers(0, 0xFFFF),
    ops=st.lists(st.tuples(st.integers(-20, 40), st.integers(0, 30)), max_size=300),
)
def test_history_never_returns_a_wrong_packet_and_stays_bounded(
    start: int, ops: list[tuple[int, int]]
) -> None:
    """A realistic stream: mostly forward, some reordering and duplicates, across the wrap."""
    size, max_age = 16, 100
    h = PacketHistory(max_packets=size, max_age_ms=max_age)
    now = 0
    ext = top = start
    stored: dict[int, tuple[bytes, int]] = {}  # extended seq -> (data, put time)
    for step, dt in ops:
        ext += step
        now += dt
        data = b"%d@%d" % (ext, now)
        h.put(ext & 0xFFFF, data, now)
        if top - ext < size:
            stored[ext] = (data, now)
        top = max(top, ext)
        assert len(h) <= size
        for e in range(top - size + 1, top + 1):
            got = h.get(e & 0xFFFF)
            if e in stored and now - stored[e][1] <= max_age:
                assert got == stored[e][0]
            else:
                assert got is None


# -- KeyframeGate -------------------------------------------------------------------------


def test_keyframe_gate_lets_one_request_per_interval() -> None:
    g = KeyframeGate(min_interval_ms=1000)
    assert g.allow(0)
    assert not g.allow(1)
    assert not g.allow(999)
    assert g.allow(1000)
    assert not g.allow(1500)
    assert g.allow(2000)


def test_keyframe_gate_remembers_a_held_back_request() -> None:
    g = KeyframeGate(1000)
    assert g.allow(0)
    assert not g.poll(10)  # nothing pending
    assert not g.allow(300)
    assert g.pending
    assert not g.poll(999)
    assert g.poll(1000)  # due now, once
    assert not g.poll(1001)
    assert not g.allow(1200)
    g.on_keyframe()  # a keyframe arrived: nothing left to ask for
    assert not g.pending
    assert not g.poll(5000)


def test_keyframe_gate_survives_a_clock_step_back() -> None:
    g = KeyframeGate(1000)
    assert g.allow(10_000)
    assert g.allow(5)
    with pytest.raises(ValueError):
        KeyframeGate(-1)


@given(times=st.lists(st.integers(0, 100_000), max_size=100).map(sorted))
def test_keyframe_gate_allowed_requests_are_spaced(times: list[int]) -> None:
    g = KeyframeGate(1000)
    allowed = [t for t in times if g.allow(t)]
    assert all(b - a >= 1000 for a, b in itertools.pairwise(allowed))
    if times:
        assert allowed[0] == times[0]


# -- audio level / ActiveSpeaker ----------------------------------------------------------


def test_audio_level_reads_rfc6464() -> None:
    assert audio_level(b"\x80") == (True, 0)
    assert audio_level(b"\x7f") == (False, -127)
    assert audio_level(b"\x9e\x00") == (True, -30)
    with pytest.raises(ValueError):
        audio_level(b"")


@given(ext=st.binary(max_size=4))
def test_audio_level_parses_any_value(ext: bytes) -> None:
    if not ext:
        with pytest.raises(ValueError):
            audio_level(ext)
        return
    voice, level = audio_level(ext)
    assert voice == bool(ext[0] & 0x80)
    assert -127 <= level <= 0
    assert -level == ext[0] & 0x7F


def test_audio_level_from_an_aiortc_packet() -> None:
    # aiortc's sender writes the level with its own extension map: read it back raw.
    from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
    from aiortc.rtp import HeaderExtensionsMap, RtpPacket

    ext_map = HeaderExtensionsMap()
    ext_map.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(
                    id=1, uri="urn:ietf:params:rtp-hdrext:ssrc-audio-level"
                )
            ]
        )
    )
    packet = RtpPacket(payload_type=111, sequence_number=1, timestamp=2, ssrc=3, payload=b"o")
    # aiortc's sender stores RFC 6464's positive 0..127 "-dBov" value (rtcrtpsender.py).
    packet.extensions.audio_level = (True, 42)
    data = packet.serialize(ext_map)
    value = rtp.read_extension(data, 1)
    assert value is not None
    assert audio_level(value) == (True, -42)


def _talk(s: ActiveSpeaker, key: str, level: int, start: int, end: int) -> None:
    for t in range(start, end, 20):
        s.feed(key, level, t)


def _run(s: ActiveSpeaker, talkers: dict[str, int], start: int, end: int) -> list[tuple[int, str]]:
    """Feed every talker each 20 ms packet and call update per packet, like the router."""
    changes = []
    for t in range(start, end, 20):
        for key, level in talkers.items():
            s.feed(key, level, t)
        new = s.update(t)
        if new is not None:
            changes.append((t, new))
    return changes


def test_first_speaker_is_immediate_and_silence_keeps_it() -> None:
    s = ActiveSpeaker()
    assert s.update(0) is None
    assert _run(s, {"ann": -127, "bob": -127}, 0, 1000) == []  # silence: nobody
    # Smoothing: ann is elected after a few packets of speech, not on the first one.
    changes = _run(s, {"ann": -30, "bob": -127}, 1000, 1400)
    assert [c[1] for c in changes] == ["ann"]
    assert 1100 <= changes[0][0] <= 1300
    assert _run(s, {"ann": -127, "bob": -127}, 1400, 5000) == []
    assert s.current == "ann"


def test_a_louder_speaker_takes_over_only_after_about_a_second() -> None:
    s = ActiveSpeaker()
    assert _run(s, {"ann": -40}, 0, 100) == [(0, "ann")]
    changes = _run(s, {"ann": -40, "bob": -20}, 100, 3000)
    assert [c[1] for c in changes] == ["bob"]
    assert 1100 <= changes[0][0] <= 1400
    # A short burst (a cough) from ann does not switch back.
    assert _run(s, {"ann": -10, "bob": -20}, 3000, 3500) == []
    assert _run(s, {"ann": -127, "bob": -20}, 3500, 4000) == []
    assert s.current == "bob"


def test_a_speaker_who_stops_sending_is_silent_and_can_leave() -> None:
    s = ActiveSpeaker()
    assert _run(s, {"ann": -30}, 0, 100) == [(0, "ann")]
    # ann's packets stop (muted, DTX): bob, quieter but speaking, takes over after 1 s.
    changes = _run(s, {"bob": -50}, 100, 2000)
    assert [c[1] for c in changes] == ["bob"]
    s.remove("bob")
    assert s.current is None
    assert _run(s, {"cat": -45}, 2000, 2100) == [(2000, "cat")]


def test_update_is_throttled() -> None:
    s = ActiveSpeaker(interval_ms=100)
    s.feed("ann", -30, 0)
    assert s.update(0) == "ann"
    s.feed("bob", 0, 10)
    assert s.update(50) is None  # not re-evaluated yet


@settings(max_examples=100)
@given(
    script=st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(-127, 0), st.integers(1, 60)),
        max_size=80,
    )
)
def test_speaker_changes_are_spaced_and_only_to_audible_keys(
    script: list[tuple[str, int, int]],
) -> None:
    s = ActiveSpeaker()
    now = 0
    changes: list[tuple[int, str]] = []
    for key, level, step in script:
        now += step
        s.feed(key, level, now)
        new = s.update(now)
        if new is not None:
            changes.append((now, new))
            assert new == s.current
    # After the first election, a switch needs at least switch_after_ms of challenge.
    for (t1, k1), (t2, k2) in itertools.pairwise(changes):
        assert k1 != k2
        assert t2 - t1 >= 1000


# -- SrMapper ------------------------------------------------------------------------------


def test_sr_mapping_keeps_ntp_and_shifts_rtp_ts() -> None:
    assert SrMapper.map(123 << 32, 1000, 500) == (123 << 32, 1500)
    assert SrMapper.map(1, 0xFFFFFFFF, 2) == (1, 1)


def test_sr_extrapolated_to_send_time() -> None:
    m = SrMapper(90000)
    assert m.report(0, 0) is None
    ntp = ms_to_ntp(1_700_000_000_000)
    m.on_sender_report(ntp, 4_000_000_000, arrival_ms=10_000)
    out = m.report(10_500, ts_offset=1_000_000)
    assert out is not None
    assert ntp_to_ms(out[0]) == 1_700_000_000_500
    assert out[1] == (4_000_000_000 + 45_000 + 1_000_000) & 0xFFFFFFFF
    with pytest.raises(ValueError):
        SrMapper(0)


def test_lip_sync_holds_through_two_consumers_with_different_offsets() -> None:
    """Audio and video of one publisher, each with its own offset: mapping a shared instant
    back through each consumer's SR gives the same wall clock."""
    sr_ntp = ms_to_ntp(50_000)
    audio_sr, video_sr = (sr_ntp, 960_000), (sr_ntp, 3_000_000)
    audio_off, video_off = 123_456, 0xFFFF0000
    a_ntp, a_ts = SrMapper.map(*audio_sr, audio_off)
    v_ntp, v_ts = SrMapper.map(*video_sr, video_off)
    # A packet pair captured 200 ms after the SR instant, as the subscriber sees them:
    a_pkt = (960_000 + 200 * 48 + audio_off) & 0xFFFFFFFF
    v_pkt = (3_000_000 + 200 * 90 + video_off) & 0xFFFFFFFF
    a_wall = ntp_to_ms(a_ntp) + ((a_pkt - a_ts) & 0xFFFFFFFF) * 1000 // 48000
    v_wall = ntp_to_ms(v_ntp) + ((v_pkt - v_ts) & 0xFFFFFFFF) * 1000 // 90000
    assert a_wall == v_wall == 50_200


@given(ms=st.integers(0, 1 << 40))
def test_ntp_ms_round_trip(ms: int) -> None:
    assert ntp_to_ms(ms_to_ntp(ms)) in (ms - 1, ms)
    assert ntp_middle32(ms_to_ntp(ms)) == (ms_to_ntp(ms) >> 16) & 0xFFFFFFFF
