"""Active (dominant) speaker from RFC 6464 audio levels, sans-IO.

Deviations from the media contract: keys are ``str`` (user ids); ``audio_level`` returns
the level as dBov, -127 (silence) .. 0 (loudest), i.e. the negated RFC 6464 field, and
``feed`` takes that value; ``audio_level`` raises ``ValueError`` on an empty value.

Publishers tag each audio packet with its level (the ``ssrc-audio-level`` header extension,
RFC 6464); the SFU reads it without decoding (Jitsi's dominant speaker identification and
mediasoup's ActiveSpeakerObserver work on the same input). Rules:

- each key's level is smoothed per packet (about 8 packets, ~160 ms of Opus) so one loud
  packet is not a speaker, and is treated as silent when its packets stop coming;
- a key speaks while its smoothed level is above ``threshold_dbov``;
- with no current speaker, the loudest one speaking becomes it at once;
- otherwise another speaker replaces the current one only after being louder than it,
  continuously, for ``switch_after_ms`` (hysteresis: no flapping between two talkers);
- silence never changes the speaker (the last one stays highlighted).

``update`` re-evaluates at most every ``interval_ms``, so calling it per packet is cheap.
Keys are user ids (``str``).

Helpers beyond the media contract: ``remove(key)``, the ``current`` property and the tuning
keywords.
"""

from __future__ import annotations

__all__ = ["ActiveSpeaker", "audio_level"]

_SILENT = -127


def audio_level(ext: bytes) -> tuple[bool, int]:
    """RFC 6464 §3 extension value → (voice activity flag, level in dBov, -127..0).

    The value is one byte: V (1 bit) and the level as 0..127 meaning -0..-127 dBov (louder
    is closer to 0). A longer value (two-byte header form with padding) uses its first byte.
    """
    if not ext:
        raise ValueError("the audio level extension is empty")
    b = ext[0]
    return bool(b & 0x80), -(b & 0x7F)


class ActiveSpeaker:
    __slots__ = (
        "_challenger",
        "_challenger_since",
        "_current",
        "_interval_ms",
        "_levels",
        "_next_eval_ms",
        "_seen",
        "_stale_ms",
        "_switch_after_ms",
        "_threshold",
    )

    def __init__(
        self,
        *,
        threshold_dbov: int = -60,
        switch_after_ms: int = 1000,
        stale_ms: int = 500,
        interval_ms: int = 100,
    ) -> None:
        self._threshold = threshold_dbov
        self._switch_after_ms = switch_after_ms
        self._stale_ms = stale_ms
        self._interval_ms = interval_ms
        self._levels: dict[str, float] = {}
        self._seen: dict[str, int] = {}
        self._current: str | None = None
        self._challenger: str | None = None
        self._challenger_since = 0
        self._next_eval_ms: int | None = None

    @property
    def current(self) -> str | None:
        return self._current

    def feed(self, key: str, level_dbov: int, now_ms: int) -> None:
        """One audio packet's level (as ``audio_level`` returns it) from ``key``."""
        level = max(_SILENT, min(0, level_dbov))
        old = self._levels.get(key)
        if old is None or now_ms - self._seen.get(key, now_ms) > self._stale_ms:
            self._levels[key] = float(level)
        else:
            self._levels[key] = old + (level - old) / 8
        self._seen[key] = now_ms

    def remove(self, key: str) -> None:
        """``key`` left (or stopped publishing audio); it stops being the current speaker."""
        self._levels.pop(key, None)
        self._seen.pop(key, None)
        if self._current == key:
            self._current = None
        if self._challenger == key:
            self._challenger = None

    def _level(self, key: str, now_ms: int) -> float:
        if now_ms - self._seen.get(key, -(1 << 62)) > self._stale_ms:
            return _SILENT
        return self._levels.get(key, _SILENT)

    def update(self, now_ms: int) -> str | None:
        """The new dominant speaker if it changed now, else None."""
        if self._next_eval_ms is not None and now_ms < self._next_eval_ms:
            return None
        self._next_eval_ms = now_ms + self._interval_ms
        best: str | None = None
        best_level = float(self._threshold)
        for key in self._levels:
            level = self._level(key, now_ms)
            if level > best_level:
                best, best_level = key, level
        if best is None or best == self._current:
            # Silence, or the current speaker is still the loudest: nothing changes.
            self._challenger = None
            return None
        if self._current is None:
            self._current = best
            self._challenger = None
            return best
        if best != self._challenger:
            self._challenger = best
            self._challenger_since = now_ms
            return None
        if now_ms - self._challenger_since >= self._switch_after_ms:
            self._current = best
            self._challenger = None
            return best
        return None
