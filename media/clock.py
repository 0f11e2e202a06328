"""Sender report mapping for lip-sync through the SFU (RFC 3550 §6.4.1), sans-IO.

A receiver lines audio up with video by mapping each stream's RTP timestamps to the wall
clock through the (NTP, RTP timestamp) pairs of the sender reports (RFC 3550 §6.4.1,
"used ... to synchronize"). A consumer rewrites timestamps by a per-source offset
(``seqts.SeqTsMapper.ts_offset``), so the SR it sends must carry the publisher's NTP time
with the RTP timestamp moved by that same offset: then both of a publisher's consumers
(audio and video) map to the same wall clock, whatever their offsets.

``SrMapper.map`` is that pure mapping. An ``SrMapper`` instance also remembers the
publisher's last SR and extrapolates it to the moment the consumer sends its own (an SR's NTP
field should be the send time, RFC 3550 §6.4.1, since receivers echo it in LSR/DLSR for
round-trip time).
"""

from __future__ import annotations

__all__ = ["SrMapper", "ms_to_ntp", "ntp_middle32", "ntp_to_ms"]

_NTP_FRACTION = 1 << 32
_U64 = (1 << 64) - 1


def ntp_to_ms(ntp: int) -> int:
    """64-bit NTP timestamp (32.32 fixed point seconds) to milliseconds."""
    return (ntp >> 32) * 1000 + ((ntp & 0xFFFFFFFF) * 1000 >> 32)


def ms_to_ntp(ms: int) -> int:
    """Milliseconds to a 64-bit NTP timestamp (wrapping at 2**64, like the era rollover)."""
    seconds, rest = divmod(ms, 1000)
    return ((seconds << 32) | (rest * _NTP_FRACTION // 1000)) & _U64


def ntp_middle32(ntp: int) -> int:
    """The middle 32 bits, as receiver reports echo them in LSR (RFC 3550 §6.4.1)."""
    return (ntp >> 16) & 0xFFFFFFFF


class SrMapper:
    """The SR a consumer should send, from its publisher's last SR."""

    __slots__ = ("_arrival_ms", "_clock_rate", "_ntp", "_rtp_ts")

    def __init__(self, clock_rate: int) -> None:
        if clock_rate <= 0:
            raise ValueError("clock_rate must be positive")
        self._clock_rate = clock_rate
        self._ntp: int | None = None
        self._rtp_ts = 0
        self._arrival_ms = 0

    @staticmethod
    def map(ntp: int, rtp_ts: int, ts_offset: int) -> tuple[int, int]:
        """(NTP, RTP ts) of the publisher's SR → the consumer's: same instant, its timeline."""
        return ntp & _U64, (rtp_ts + ts_offset) & 0xFFFFFFFF

    def on_sender_report(self, ntp: int, rtp_ts: int, arrival_ms: int) -> None:
        """Remember the publisher's SR and when it arrived."""
        self._ntp = ntp & _U64
        self._rtp_ts = rtp_ts & 0xFFFFFFFF
        self._arrival_ms = arrival_ms

    def report(self, now_ms: int, ts_offset: int) -> tuple[int, int] | None:
        """(NTP, RTP ts) for an SR the consumer sends at ``now_ms``; None before any SR.

        Both fields advance by the time since the publisher's SR arrived (NTP by wall time,
        RTP by wall time × clock rate), which keeps their relation, hence lip-sync.
        """
        if self._ntp is None:
            return None
        elapsed = max(0, now_ms - self._arrival_ms)
        ntp = (self._ntp + ms_to_ntp(elapsed)) & _U64
        rtp_ts = self._rtp_ts + elapsed * self._clock_rate // 1000
        return self.map(ntp, rtp_ts, ts_offset)
