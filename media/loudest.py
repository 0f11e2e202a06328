"""Forward only the loudest microphones of a room (``[media] loudest_audio``), sans-IO.

A class of 30 with every microphone open is 31 audio streams to 30 receivers: about 46,000
packets a second to forward, most of them background noise nobody needs to hear. Jitsi
Videobridge's "route loudest only" (``videobridge.loudest``: ``route-loudest-only``,
``num-loudest = 3``, ``always-route-dominant = true``, ``energy-expire-time = 150 ms``,
``energy-alpha-pct = 50``) forwards an audio packet only when its sender is among the N
loudest of the conference by the RFC 6464 level each packet carries, or is the dominant
speaker. This module makes the same decision per packet; the router drops the others
before any per-consumer work (the sinks, i.e. the recorder, and the active speaker
detection still see every packet).

Rules:

- each key (a user id) has an energy, ``127 - level`` (0 = silence, 127 = loudest), smoothed
  per packet: ``energy = (alpha * energy + (100 - alpha) * (127 - level)) // 100``;
- a key whose last packet is older than ``expire_ms`` has no energy (it stopped sending);
- the ``count`` keys with the highest energy are the loudest, silent ones included (with
  ``count`` or fewer microphones every one is heard, however quiet); the ranking is
  recomputed at most every ``refresh_ms`` (a new talker is heard within that time);
- the dominant speaker (``decide``'s ``dominant``) is always forwarded;
- ``decide`` says DROP, FORWARD, or RESUME: forward, and this key was dropped before, so its
  receivers' streams resume (the router makes sequence numbers continue without a gap).
"""

from __future__ import annotations

__all__ = ["DROP", "FORWARD", "RESUME", "LoudestAudio"]

DROP = 0
FORWARD = 1
RESUME = 2


class LoudestAudio:
    __slots__ = (
        "_dropped",
        "_energy",
        "_last",
        "_ranked",
        "_ranked_at",
        "alpha_pct",
        "count",
        "expire_ms",
        "refresh_ms",
    )

    def __init__(
        self, count: int, *, expire_ms: int = 150, alpha_pct: int = 50, refresh_ms: int = 20
    ):
        if count < 1 or expire_ms < 1 or refresh_ms < 0 or not 0 <= alpha_pct < 100:
            raise ValueError("count, expire_ms >= 1; refresh_ms >= 0; 0 <= alpha_pct < 100")
        self.count = count
        self.expire_ms = expire_ms
        self.alpha_pct = alpha_pct
        self.refresh_ms = refresh_ms
        self._energy: dict[str, int] = {}
        self._last: dict[str, int] = {}
        self._dropped: set[str] = set()
        self._ranked: frozenset[str] = frozenset()
        self._ranked_at: int | None = None

    def decide(self, key: str, level: int, now_ms: int, dominant: str | None = None) -> int:
        """One audio packet of ``key`` with RFC 6464 ``level`` (0 loudest .. 127 silence)."""
        level = min(127, max(0, level))
        last = self._last.get(key)
        old = 0 if last is None or now_ms - last > self.expire_ms else self._energy[key]
        alpha = self.alpha_pct
        self._energy[key] = (alpha * old + (100 - alpha) * (127 - level)) // 100
        self._last[key] = now_ms
        at = self._ranked_at
        if at is None or now_ms - at >= self.refresh_ms or now_ms < at:
            self._rank(now_ms)
        if key in self._ranked or key == dominant:
            if key in self._dropped:
                self._dropped.discard(key)
                return RESUME
            return FORWARD
        self._dropped.add(key)
        return DROP

    def loudest(self) -> frozenset[str]:
        """The keys forwarded now (besides the dominant speaker)."""
        return self._ranked

    def remove(self, key: str) -> None:
        """``key`` left (its producer closed or moved to another room)."""
        self._energy.pop(key, None)
        self._last.pop(key, None)
        self._dropped.discard(key)
        if key in self._ranked:
            self._ranked = self._ranked - {key}

    def _rank(self, now_ms: int) -> None:
        expire = self.expire_ms
        live = [
            (energy, key)
            for key, energy in self._energy.items()
            if now_ms - self._last[key] <= expire
        ]
        live.sort(reverse=True)
        self._ranked = frozenset(key for _, key in live[: self.count])
        self._ranked_at = now_ms
