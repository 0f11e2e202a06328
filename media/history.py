"""Recent packets of one producer by sequence number, for answering NACKs, sans-IO.

A subscriber NACKs what it lost (RFC 4585 §6.2.1); the SFU retransmits from here instead of
asking the publisher (whose own copy may be gone, and who should not pay for every
subscriber's losses). Memory is bounded twice: at most ``max_packets`` packets (a ring
indexed by the extended sequence number, so ``put`` and ``get`` are O(1) with no allocation beyond
the stored bytes) and nothing older than ``max_age_ms`` is returned — a retransmission that
late would arrive after the subscriber's jitter buffer gave up (mediasoup's RtpStreamSend
keeps about the same: a few seconds of video).

Packets are stored as received (decrypted, publisher's numbering); the consumer rewrites a
retransmission like any packet.
"""

from __future__ import annotations

__all__ = ["PacketHistory"]


class PacketHistory:
    __slots__ = (
        "_count",
        "_data",
        "_exts",
        "_max_age_ms",
        "_max_ext",
        "_newest_ms",
        "_size",
        "_times",
    )

    def __init__(self, max_packets: int, max_age_ms: int) -> None:
        if max_packets < 1 or max_age_ms < 0:
            raise ValueError("max_packets must be >= 1 and max_age_ms >= 0")
        self._size = max_packets
        self._max_age_ms = max_age_ms
        # Slots hold extended sequence numbers (16-bit seq + wrap count, RFC 3550 A.1), so
        # the ring keeps exactly the last ``max_packets`` numbers even across the 16-bit wrap
        # (``seq % max_packets`` alone would jump at the wrap when 65536 % size != 0).
        self._exts = [-1] * max_packets
        self._data: list[bytes | None] = [None] * max_packets
        self._times = [0] * max_packets
        self._max_ext: int | None = None
        self._newest_ms: int | None = None
        self._count = 0

    @property
    def max_packets(self) -> int:
        return self._size

    def __len__(self) -> int:
        """Packets currently stored (ageing is applied on ``get``, not here)."""
        return self._count

    def _extend(self, seq: int) -> int:
        top = self._max_ext
        if top is None:
            return (1 << 20) + (seq & 0xFFFF)  # room below for late packets
        delta = (seq - top) & 0xFFFF
        return top + delta - (0x10000 if delta >= 0x8000 else 0)

    def put(self, seq: int, data: bytes, now_ms: int) -> None:
        """Store ``data`` (the packet numbered ``seq``), evicting its slot's older owner.

        A packet older than the ring (a very late one) is not stored.
        """
        if self._newest_ms is None or now_ms > self._newest_ms:
            self._newest_ms = now_ms
        ext = self._extend(seq)
        top = self._max_ext
        if top is not None and top - ext >= self._size:
            return
        if top is None or ext > top:
            self._max_ext = ext
        i = ext % self._size
        if self._data[i] is None:
            self._count += 1
        self._exts[i] = ext
        self._data[i] = data
        self._times[i] = now_ms

    def get(self, seq: int, now_ms: int | None = None) -> bytes | None:
        """The packet numbered ``seq`` if still held and younger than ``max_age_ms``.

        Age counts from ``now_ms`` when given, else from the newest ``put`` (the stream's own
        clock), so a stale packet is never returned for a recycled sequence number.
        """
        if self._max_ext is None:
            return None
        ext = self._extend(seq)
        i = ext % self._size
        data = self._data[i]
        if data is None or self._exts[i] != ext:
            return None
        ref = self._newest_ms if now_ms is None else now_ms
        if ref is not None and ref - self._times[i] > self._max_age_ms:
            return None
        return data

    def clear(self) -> None:
        self._exts = [-1] * self._size
        self._data = [None] * self._size
        self._times = [0] * self._size
        self._max_ext = None
        self._newest_ms = None
        self._count = 0
