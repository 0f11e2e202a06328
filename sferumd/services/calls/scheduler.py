"""The clock of calls and the one timer task that makes them happen on time (R17).

Rules:

- Every time the call control plane reads comes from one ``Clock``: real time, unless a test
  set it (``[debug] test_clock``, ``POST /debug/v1/clock``). A set clock stays where it was set
  until it is set again, so a test decides exactly when each lesson starts and ends and how
  many minutes everybody attended, without sleeping.
- ``Scheduler`` runs ``tick(now)`` whenever something may be due: at the earliest wake-up
  time ``tick`` reported, when ``wake`` is called (a new call, an edit, a breakout timer, the
  clock set), and at least every ``MAX_SLEEP_S`` (the wall clock may jump). Ticks never
  overlap; ``run_now`` runs one at once and returns when it is done.
- A tick that fails is logged and retried at the next wake-up; it never stops the task.
- A wake-up time that has passed but that ``tick`` could not act on (a lesson held back
  while another lesson of its class runs, R24) does not make the task spin: it waits for
  the next ``wake`` or ``MAX_SLEEP_S``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

MAX_SLEEP_S = 30.0


class Clock:
    """Milliseconds since the epoch, as the call control plane sees them."""

    __slots__ = ("_fixed",)

    def __init__(self) -> None:
        self._fixed: int | None = None

    def now_ms(self) -> int:
        return self._fixed if self._fixed is not None else time.time_ns() // 1_000_000

    def set(self, now_ms: int | None) -> None:
        """Stop the clock at ``now_ms`` (``None``: back to real time). Tests only."""
        self._fixed = now_ms

    @property
    def fixed(self) -> bool:
        return self._fixed is not None


Tick = Callable[[int], Awaitable[int | None]]


class Scheduler:
    def __init__(self, clock: Clock, tick: Tick):
        self.clock = clock
        self._tick = tick
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._next: int | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="calls-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def wake(self) -> None:
        self._wake.set()

    async def run_now(self) -> None:
        """One tick at the clock's time now, after any tick already running."""
        async with self._lock:
            now = self.clock.now_ms()
            try:
                self._next = await self._tick(now)
            except Exception:
                log.exception("calls scheduler tick failed", extra={"now_ms": now})
                self._next = None

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            await self.run_now()
            delay = MAX_SLEEP_S
            if self._next is not None:
                ahead = (self._next - self.clock.now_ms()) / 1000
                if ahead > 0:
                    delay = min(delay, ahead)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
