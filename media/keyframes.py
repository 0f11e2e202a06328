"""Keyframe request rate limiting per producer, sans-IO.

Every subscriber of a video producer may ask for a keyframe (PLI, RFC 4585 §6.3.1, or FIR,
RFC 5104 §4.3.1): on join, on loss, on a slot switch. Relaying each one would make the
publisher's encoder emit keyframes back to back (each one several times a normal frame's
size). Like mediasoup, at most one request per ``min_interval_ms`` reaches the publisher;
one keyframe serves every subscriber that asked meanwhile.

A request refused because it came too soon is remembered: ``poll(now_ms)`` reports it due
once the interval has passed, unless a keyframe arrived after it (``on_keyframe``), so a
subscriber that asked just after the previous keyframe is not left waiting for its own
retry. Using ``poll``/``on_keyframe`` is optional.
"""

from __future__ import annotations

__all__ = ["KeyframeGate"]


class KeyframeGate:
    __slots__ = ("_last_ms", "_min_interval_ms", "_pending")

    def __init__(self, min_interval_ms: int = 1000) -> None:
        if min_interval_ms < 0:
            raise ValueError("min_interval_ms must be >= 0")
        self._min_interval_ms = min_interval_ms
        self._last_ms: int | None = None
        self._pending = False

    @property
    def pending(self) -> bool:
        """A request was held back and no keyframe has come since."""
        return self._pending

    def allow(self, now_ms: int) -> bool:
        """Should a keyframe request made now be relayed to the publisher?"""
        last = self._last_ms
        # A clock that steps backwards (now < last) must not block requests forever.
        if last is None or now_ms - last >= self._min_interval_ms or now_ms < last:
            self._last_ms = now_ms
            self._pending = False
            return True
        self._pending = True
        return False

    def poll(self, now_ms: int) -> bool:
        """True (once) when a held-back request is due now; call it on a timer or per packet."""
        return self._pending and self.allow(now_ms)

    def on_keyframe(self) -> None:
        """A keyframe came from the publisher: it satisfies any held-back request."""
        self._pending = False
