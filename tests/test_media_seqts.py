"""media/seqts.py: continuous outgoing seq/ts across source switches, losses and wraps."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media.seqts import SeqTsMapper

VIDEO = 90000
AUDIO = 48000


def _serial_diff(a: int, b: int, bits: int) -> int:
    """b - a as a signed serial-number difference (RFC 1982)."""
    mod = 1 << bits
    d = (b - a) % mod
    return d - mod if d >= mod // 2 else d


def test_first_source_passes_through_unchanged_by_default() -> None:
    m = SeqTsMapper()
    assert m.map(100, 5000, 0, VIDEO) == (100, 5000)
    assert m.map(101, 8000, 33, VIDEO) == (101, 8000)
    assert (m.seq_offset, m.ts_offset) == (0, 0)


def test_initial_values() -> None:
    m = SeqTsMapper(initial_seq=7, initial_ts=1000)
    assert m.map(500, 123456, 0, VIDEO) == (7, 1000)
    assert m.map(501, 123456 + 3000, 33, VIDEO) == (8, 4000)


def test_sequence_wraps_16_bit_and_timestamp_wraps_32_bit() -> None:
    m = SeqTsMapper(initial_seq=65534, initial_ts=0xFFFFFF00)
    out = [
        m.map(seq & 0xFFFF, (10 + 960 * i) & 0xFFFFFFFF, 20 * i, AUDIO)
        for i, seq in enumerate(range(65000, 65005))
    ]
    assert [o[0] for o in out if o] == [65534, 65535, 0, 1, 2]
    assert [o[1] for o in out if o] == [(0xFFFFFF00 + 960 * i) & 0xFFFFFFFF for i in range(5)]
    # Input wrapping too.
    m = SeqTsMapper()
    got = [
        m.map(s, 0xFFFFFFF0 + 16 * i & 0xFFFFFFFF, i, AUDIO)
        for i, s in enumerate([65534, 65535, 0, 1])
    ]
    assert [g[0] for g in got if g] == [65534, 65535, 0, 1]
    assert [g[1] for g in got if g] == [0xFFFFFFF0, 0, 16, 32]


def test_losses_stay_gaps() -> None:
    m = SeqTsMapper(initial_seq=0)
    assert m.map(10, 0, 0, VIDEO) == (0, 0)
    assert m.map(13, 0, 1, VIDEO) == (3, 0)
    # The late packet 11 fills its own gap.
    assert m.map(11, 0, 2, VIDEO) == (1, 0)


def test_duplicates_and_too_old_are_dropped() -> None:
    m = SeqTsMapper(window=8)
    assert m.map(100, 0, 0, VIDEO) == (100, 0)
    assert m.map(100, 0, 1, VIDEO) is None
    assert m.map(105, 0, 2, VIDEO) == (105, 0)
    assert m.map(102, 0, 3, VIDEO) == (102, 0)
    assert m.map(102, 0, 4, VIDEO) is None
    assert m.map(110, 0, 5, VIDEO) == (110, 0)
    assert m.map(101, 0, 6, VIDEO) is None  # 9 behind: outside the 8-packet window
    # Older than the source's first packet: would collide with the previous source.
    m2 = SeqTsMapper(window=64)
    m2.map(500, 0, 0, VIDEO)
    assert m2.map(499, 0, 1, VIDEO) is None


def test_switch_continues_seq_and_advances_ts_by_wall_clock() -> None:
    m = SeqTsMapper(initial_seq=1000, initial_ts=50_000)
    assert m.map(7, 111, 1000, VIDEO) == (1000, 50_000)
    assert m.map(8, 111 + 3000, 1033, VIDEO) == (1001, 53_000)
    m.switch_source(1100)
    # New source, unrelated numbers, first packet 200 ms after the last forwarded one.
    assert m.map(40000, 999_999, 1233, VIDEO) == (1002, 53_000 + 200 * 90)
    assert m.map(40001, 999_999 + 3000, 1266, VIDEO) == (1003, 53_000 + 18_000 + 3000)
    # A switch with no wall-clock gap (or a clock going backwards) still advances 1 tick.
    m.switch_source(1266)
    assert m.map(5, 0, 1200, VIDEO) == (1004, 74_001)


def test_switch_before_any_packet_uses_the_switch_time() -> None:
    m = SeqTsMapper(initial_seq=1, initial_ts=10)
    m.switch_source(0)
    assert m.map(9, 9, 500, AUDIO) == (1, 10)


def test_old_source_state_is_forgotten_after_switch() -> None:
    m = SeqTsMapper()
    m.map(100, 0, 0, AUDIO)
    m.switch_source(10)
    assert m.map(100, 0, 20, AUDIO) == (101, 960)  # same numbers as before: not a duplicate


def test_publisher_restart_resyncs_after_two_packets() -> None:
    m = SeqTsMapper(initial_seq=0, max_dropout=100, window=16)
    for i in range(3):
        assert m.map(10 + i, 960 * i, 20 * i, AUDIO) == (i, 960 * i)
    assert m.map(30_000, 5, 60, AUDIO) is None  # jump: suspected restart, held back
    # Resync: ts continues from the last sent one (1920 at 40 ms) by the 40 ms gap.
    assert m.map(30_001, 965, 80, AUDIO) == (3, 1920 + 40 * 48)
    assert m.map(30_002, 1925, 100, AUDIO) == (4, 1920 + 40 * 48 + 960)
    # A jump backwards past the window, confirmed by its successor, also resyncs.
    assert m.map(5, 0, 120, AUDIO) is None
    assert m.map(6, 960, 140, AUDIO) == (5, 1920 + 40 * 48 + 960 + 40 * 48)


def test_unmap_seq_finds_the_incoming_packet() -> None:
    m = SeqTsMapper(initial_seq=65530, window=16)
    assert m.unmap_seq(65530) is None
    for i in range(10):
        m.map((65000 + i) & 0xFFFF, 0, i, VIDEO)
    assert m.unmap_seq(65530) == 65000
    assert m.unmap_seq(3) == 65009  # outgoing wrapped
    assert m.unmap_seq(4) is None  # not sent yet
    assert m.unmap_seq(65529) is None  # before this source
    m.switch_source(100)
    assert m.unmap_seq(3) is None


def test_bad_knobs() -> None:
    with pytest.raises(ValueError):
        SeqTsMapper(window=0)


# -- properties ----------------------------------------------------------------------------


@dataclass
class Source:
    start_seq: int
    start_ts: int
    # per packet: (seq step >= 1 (steps > 1 are upstream losses), ts step, ms step, duplicate)
    steps: list[tuple[int, int, int, bool]]


SOURCE = st.builds(
    Source,
    start_seq=st.integers(0, 0xFFFF),
    start_ts=st.integers(0, 0xFFFFFFFF),
    steps=st.lists(
        st.tuples(st.integers(1, 4), st.integers(0, 6000), st.integers(0, 70), st.booleans()),
        min_size=1,
        max_size=30,
    ),
)


@settings(max_examples=200)
@given(
    sources=st.lists(SOURCE, min_size=1, max_size=6),
    gaps=st.lists(st.integers(0, 5000), min_size=6, max_size=6),
    rate=st.sampled_from([AUDIO, VIDEO, 8000]),
    initial=st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF)),
)
def test_any_interleaving_of_switches_is_continuous(
    sources: list[Source], gaps: list[int], rate: int, initial: tuple[int, int]
) -> None:
    m = SeqTsMapper(initial_seq=initial[0], initial_ts=initial[1])
    now = 0
    prev: tuple[int, int] | None = None  # last (out seq, out ts)
    for index, source in enumerate(sources):
        if index:
            now += gaps[index]
            m.switch_source(now)
        seq, ts = source.start_seq, source.start_ts
        first = True
        for seq_step, ts_step, ms_step, duplicate in source.steps:
            if not first:
                seq = (seq + seq_step) & 0xFFFF
                ts = (ts + ts_step) & 0xFFFFFFFF
                now += ms_step
            out = m.map(seq, ts, now, rate)
            assert out is not None
            if prev is None:
                assert out == initial
            elif first:
                # The switch: next seq, and time moves forward (at least one tick).
                assert _serial_diff(prev[0], out[0], 16) == 1
                assert _serial_diff(prev[1], out[1], 32) >= 1
            else:
                # Within a source: gaps (upstream losses) and ts steps are preserved.
                assert _serial_diff(prev[0], out[0], 16) == seq_step
                assert _serial_diff(prev[1], out[1], 32) == ts_step
            if duplicate:
                assert m.map(seq, ts, now, rate) is None
            prev = out
            first = False


@settings(max_examples=200)
@given(
    start=st.integers(0, 0xFFFF),
    order=st.permutations(list(range(12))),
    lost=st.sets(st.integers(1, 11), max_size=4),
)
def test_reordering_within_window_maps_every_packet_once(
    start: int, order: list[int], lost: set[int]
) -> None:
    # Packet 0 goes first (it anchors the source); the rest arrive in any order.
    m = SeqTsMapper(initial_seq=0, window=64)
    assert m.map(start, 0, 0, VIDEO) == (0, 0)
    outs = []
    for i in order:
        if i == 0 or i in lost:
            continue
        out = m.map((start + i) & 0xFFFF, 90 * i, i, VIDEO)
        assert out == (i, 90 * i)
        outs.append(out[0])
        assert m.map((start + i) & 0xFFFF, 90 * i, i, VIDEO) is None
    assert sorted(outs) == [i for i in range(1, 12) if i not in lost]
