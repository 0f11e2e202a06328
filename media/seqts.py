"""Sequence number and timestamp continuity for one consumer stream, sans-IO.

A consumer sends one RTP stream (one SSRC) to its subscriber, but what feeds it changes: a
slot is remapped to another producer, a producer is paused and resumed, a breakout move
swaps every source. The subscriber's jitter buffer must see one continuous stream, so (as
mediasoup's SeqManager/RtpStreamSend and Jitsi's "SSRC rewriting principles" do) each source
is mapped with a fixed offset chosen when it starts:

- sequence: the first packet of a new source gets ``last_sent + 1``; later packets keep
  their distance to it, so a packet lost upstream stays a gap downstream (the subscriber
  NACKs it, and ``unmap_seq`` finds it in the producer's history);
- timestamp: the first packet of a new source gets the last sent timestamp advanced by the
  wall-clock time since that packet × the clock rate (at least 1 tick), so playout timing
  is right and the timestamp never goes backwards (RFC 3550 §5.1: "monotonically");
- duplicates and packets older than the reorder window, or older than the source's first
  forwarded packet (their output numbers would collide with the previous source's), are
  dropped: ``map`` returns None.

All arithmetic is on "extended" sequence numbers (RFC 3550 Appendix A.1: 16-bit seq + wrap
count) and modulo 2**32 for timestamps, so 16- and 32-bit wrap-around is transparent.
A publisher that restarts its numbering (a jump beyond ``max_dropout`` forward or beyond the
reorder window backward) is re-synchronised like a source switch once two consecutive packets
confirm the new numbering (RFC 3550 Appendix A.1 "bad_seq" rule); the first one is dropped.

Helpers beyond the media contract: ``unmap_seq`` (outgoing seq from a NACK → incoming seq, for
the packet history), ``seq_offset``/``ts_offset`` (for ``clock.SrMapper`` and for
retransmissions), constructor knobs.
"""

from __future__ import annotations

__all__ = ["SeqTsMapper"]

_SEQ_MOD = 1 << 16
_TS_MOD = 1 << 32
_HALF_SEQ = 1 << 15


class SeqTsMapper:
    """Maps (seq, ts) of whatever source currently feeds a consumer to its outgoing stream."""

    __slots__ = (
        "_bad_seq",
        "_base_ext",
        "_initial_ts",
        "_last_arrival_ms",
        "_last_ts_out",
        "_max_dropout",
        "_max_ext",
        "_next_seq_out",
        "_seen",
        "_seq_off",
        "_started",
        "_ts_off",
        "_window",
        "_window_mask",
    )

    def __init__(
        self,
        *,
        initial_seq: int | None = None,
        initial_ts: int | None = None,
        window: int = 512,
        max_dropout: int = 3000,
    ) -> None:
        """``initial_seq``/``initial_ts``: first outgoing values (default: the first source's
        own numbers, i.e. offset 0). ``window``: how far back a reordered packet may be and
        still be forwarded (and how far back duplicates are detected). ``max_dropout``: a
        forward jump larger than this is a suspected restart (RFC 3550 A.1 MAX_DROPOUT)."""
        if window < 1 or max_dropout < 1:
            raise ValueError("window and max_dropout must be positive")
        self._window = window
        self._window_mask = (1 << window) - 1
        self._max_dropout = max_dropout
        # Outgoing side, kept across sources: the 16-bit seq the next source starts at; the
        # latest (serial-max) ts sent and the arrival time of its packet. None until the
        # first packet (then ``initial_*`` apply).
        self._next_seq_out: int | None = None if initial_seq is None else initial_seq & 0xFFFF
        self._initial_ts = initial_ts
        self._last_ts_out: int | None = None
        self._last_arrival_ms: int | None = None
        # Current source: offsets and receive state (extended sequence numbers).
        self._started = False
        self._seq_off = 0
        self._ts_off = 0
        self._base_ext = 0
        self._max_ext = 0
        self._seen = 0  # bit i set: extended seq (_max_ext - i) was forwarded
        self._bad_seq = -1

    # -- public surface -------------------------------------------------------------------

    @property
    def seq_offset(self) -> int:
        """outgoing seq = (incoming seq + seq_offset) mod 2**16, for the current source."""
        return self._seq_off

    @property
    def ts_offset(self) -> int:
        """outgoing ts = (incoming ts + ts_offset) mod 2**32, for the current source."""
        return self._ts_off

    def switch_source(self, now_ms: int) -> None:
        """The next packet given to ``map`` starts a new source (or a resumed one).

        Its sequence continues at last sent + 1 and its timestamp at the last sent one plus
        the wall-clock gap. ``now_ms`` is when the switch happens: if nothing was forwarded
        yet, the gap is measured from here.
        """
        self._started = False
        self._bad_seq = -1
        if self._last_arrival_ms is None:
            self._last_arrival_ms = now_ms

    def map(self, seq: int, ts: int, arrival_ms: int, clock_rate: int) -> tuple[int, int] | None:
        """Outgoing (seq, ts) for an incoming packet, or None to drop it."""
        if not self._started:
            self._start(seq, ts, arrival_ms, clock_rate)
            return self._emit_new_max(seq, ts, arrival_ms)
        max_ext = self._max_ext
        delta = (seq - max_ext) & 0xFFFF
        # RFC 3550 A.1: the nearer of the two candidates (forward or backward) is the one.
        ext = max_ext + delta if delta < _HALF_SEQ else max_ext + delta - _SEQ_MOD
        if ext > max_ext:
            if ext - max_ext > self._max_dropout:
                return self._suspect_restart(seq, ts, arrival_ms, clock_rate)
            shift = ext - max_ext
            self._seen = ((self._seen << shift) | 1) & self._window_mask
            self._max_ext = ext
            self._bad_seq = -1
            return self._emit_new_max(seq, ts, arrival_ms)
        # Not newer: a duplicate or a reordered (late) packet.
        back = max_ext - ext
        if back >= self._window or ext < self._base_ext:
            if back >= self._window:
                return self._suspect_restart(seq, ts, arrival_ms, clock_rate)
            return None
        bit = 1 << back
        if self._seen & bit:
            return None
        self._seen |= bit
        return (seq + self._seq_off) & 0xFFFF, (ts + self._ts_off) & 0xFFFFFFFF

    def unmap_seq(self, out_seq: int) -> int | None:
        """Incoming seq of an outgoing one, if it belongs to the current source's window."""
        if not self._started:
            return None
        seq = (out_seq - self._seq_off) & 0xFFFF
        delta = (seq - self._max_ext) & 0xFFFF
        ext = self._max_ext + delta - (_SEQ_MOD if delta >= _HALF_SEQ else 0)
        if ext > self._max_ext or ext < self._base_ext or self._max_ext - ext >= self._window:
            return None
        return seq

    # -- internals --------------------------------------------------------------------------

    def _start(self, seq: int, ts: int, arrival_ms: int, clock_rate: int) -> None:
        seq_out = seq if self._next_seq_out is None else self._next_seq_out
        if self._last_ts_out is None:
            ts_out = ts if self._initial_ts is None else self._initial_ts
        else:
            gap_ms = 0 if self._last_arrival_ms is None else arrival_ms - self._last_arrival_ms
            ticks = max(1, gap_ms * clock_rate // 1000)
            ts_out = self._last_ts_out + ticks
        self._seq_off = (seq_out - seq) & 0xFFFF
        self._ts_off = (ts_out - ts) & 0xFFFFFFFF
        # Extended numbering of this source starts well above zero so that packets reordered
        # before the first one still get a sensible extended number (and are then refused
        # for being below the base).
        self._base_ext = self._max_ext = _SEQ_MOD * 4 + seq
        self._seen = 1
        self._bad_seq = -1
        self._started = True

    def _emit_new_max(self, seq: int, ts: int, arrival_ms: int) -> tuple[int, int]:
        seq_out = (seq + self._seq_off) & 0xFFFF
        ts_out = (ts + self._ts_off) & 0xFFFFFFFF
        self._next_seq_out = (seq_out + 1) & 0xFFFF
        # The latest timestamp sent: in serial-number terms (RFC 1982), never step back.
        last = self._last_ts_out
        if last is None or (ts_out - last) & 0xFFFFFFFF < 0x80000000:
            self._last_ts_out = ts_out
            self._last_arrival_ms = arrival_ms
        return seq_out, ts_out

    def _suspect_restart(
        self, seq: int, ts: int, arrival_ms: int, clock_rate: int
    ) -> tuple[int, int] | None:
        # RFC 3550 Appendix A.1: a big jump is believed only when the next packet follows it.
        if seq == self._bad_seq:
            self._started = False
            self._start(seq, ts, arrival_ms, clock_rate)
            return self._emit_new_max(seq, ts, arrival_ms)
        self._bad_seq = (seq + 1) & 0xFFFF
        return None
