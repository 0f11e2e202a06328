"""Who is connected, and fan-out of events to them.

Encode once, send many: an event becomes one ``Frame`` holding the finished websocket frame
bytes per wire format, built the first time a connection of that format needs it and then
shared by every recipient. Each connection queues frame references; once per event-loop
turn the hub writes each dirty connection's queue with a single socket write. A connection
whose unsent bytes (what the socket has not taken after that write) pass ``max_queue_bytes``
is closed as a slow consumer; it resumes from its position, and the log has everything.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from protocol import wsframe
from protocol.codec import JSON, MSGPACK
from protocol.errors import CloseCode
from sferumd.metrics import Metrics
from sferumd.model import Event


class Frame:
    """One server frame, encoded lazily at most once per wire format."""

    __slots__ = ("_bin", "_txt", "pos", "value")

    def __init__(self, value: Any, pos: int = 0):
        self.value = value
        self.pos = pos  # stream position for events, 0 for everything else
        self._bin: bytes | None = None
        self._txt: bytes | None = None

    def wire(self, binary: bool) -> bytes:
        if binary:
            if self._bin is None:
                self._bin = wsframe.frame(MSGPACK.encode(self.value), True)
            return self._bin
        if self._txt is None:
            self._txt = wsframe.frame(JSON.encode(self.value), False)
        return self._txt


def event_frame(event: Event) -> Frame:
    return Frame({"ev": event.to_wire()}, event.pos)


CloseFn = Callable[[int, str], None]


class Connection:
    """One websocket's outgoing side. ``transport`` is the socket's asyncio transport."""

    __slots__ = (
        "_close",
        "backlog",
        "binary",
        "catching_up",
        "closed",
        "device_id",
        "dirty",
        "hub",
        "queue",
        "queued",
        "transport",
        "user_id",
    )

    def __init__(self, hub: Hub, transport: asyncio.Transport, binary: bool, close: CloseFn):
        self.hub = hub
        self.transport = transport
        self.binary = binary
        self._close = close
        self.user_id: str | None = None
        self.device_id: str | None = None
        self.queue: list[bytes] = []
        self.queued = 0
        self.dirty = False
        self.closed = False
        # While the catch-up is being sent, live events wait here in order.
        self.catching_up = False
        self.backlog: list[Frame] = []

    def send(self, value: Any) -> None:
        """A response or push meant for this connection alone."""
        self.send_frame(Frame(value))

    def send_frame(self, frame: Frame) -> None:
        if self.closed:
            return
        data = frame.wire(self.binary)
        self.queue.append(data)
        self.queued += len(data)
        if not self.dirty:
            self.dirty = True
            self.hub.mark_dirty(self)

    def deliver(self, frame: Frame) -> None:
        """A fanned-out frame: held back while this connection is catching up."""
        if self.catching_up:
            self.backlog.append(frame)
            if len(self.backlog) > self.hub.max_backlog:
                self.close(CloseCode.SLOW_CONSUMER, "too many live events during catch-up")
            return
        self.send_frame(frame)

    def flush(self) -> None:
        self.dirty = False
        if self.closed or not self.queue:
            return
        transport = self.transport
        if transport.is_closing():
            self.closed = True
            return
        queue = self.queue
        transport.write(queue[0] if len(queue) == 1 else b"".join(queue))
        metrics = self.hub.metrics
        metrics.frames_sent += len(queue)
        metrics.socket_writes += 1
        self.queue = []
        self.queued = 0
        # Slow is what the socket could not take: judged after the write, so one large
        # burst (a group commit of big events) to a consumer that keeps up closes nothing.
        # The transport's buffer stays under the bound plus one loop turn's frames.
        if transport.get_write_buffer_size() > self.hub.max_queue_bytes and not self.catching_up:
            metrics.slow_consumer_closes += 1
            self.close(CloseCode.SLOW_CONSUMER, "outgoing queue full: resume from your position")

    def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        if code != CloseCode.SLOW_CONSUMER:
            self.flush()  # what was queued before the close still reaches the client
        self.closed = True
        self._close(code, reason)


class Hub:
    def __init__(self, metrics: Metrics, *, max_queue_bytes: int, max_backlog: int):
        self.metrics = metrics
        self.max_queue_bytes = max_queue_bytes
        self.max_backlog = max_backlog
        self.by_user: dict[str, list[Connection]] = {}
        self.committed_pos = 0  # every event at or below this position is committed
        self._dirty: list[Connection] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- registry --------------------------------------------------------------------------

    def attach(self, conn: Connection) -> bool:
        """Registers an authenticated connection; True if it is the user's first."""
        assert conn.user_id is not None
        conns = self.by_user.setdefault(conn.user_id, [])
        conns.append(conn)
        self.metrics.authenticated += 1
        return len(conns) == 1

    def detach(self, conn: Connection) -> bool:
        """Unregisters; True if the user has no connection left."""
        if conn.user_id is None:
            return False
        conns = self.by_user.get(conn.user_id)
        if not conns or conn not in conns:
            return False
        conns.remove(conn)
        self.metrics.authenticated -= 1
        if conns:
            return False
        del self.by_user[conn.user_id]
        return True

    def is_online(self, user_id: str) -> bool:
        return user_id in self.by_user

    # -- fan-out ---------------------------------------------------------------------------

    def publish(self, event: Event, recipients: Iterable[str]) -> None:
        """Deliver a committed event to every connection of every recipient."""
        if event.pos > self.committed_pos:
            self.committed_pos = event.pos
        self.metrics.events_appended += 1
        self.fan_out(event_frame(event), recipients)

    def fan_out(self, frame: Frame, recipients: Iterable[str]) -> None:
        """The per-recipient loop of every event: ``Connection.deliver`` written out inline
        (it runs 200 times for an event in a class-sized room), no allocation per recipient."""
        by_user = self.by_user
        dirty = self._dirty
        was_clean = not dirty
        for user_id in recipients:
            conns = by_user.get(user_id)
            if not conns:
                continue
            for conn in conns:
                if conn.closed:
                    continue
                if conn.catching_up:
                    conn.deliver(frame)
                    continue
                data = frame.wire(conn.binary)
                conn.queue.append(data)
                conn.queued += len(data)
                if not conn.dirty:
                    conn.dirty = True
                    dirty.append(conn)
        if was_clean and dirty:
            self._schedule_flush()

    def mark_dirty(self, conn: Connection) -> None:
        if not self._dirty:
            self._schedule_flush()
        self._dirty.append(conn)

    def _schedule_flush(self) -> None:
        loop = self._loop or asyncio.get_running_loop()
        self._loop = loop
        loop.call_soon(self.flush)

    def flush(self) -> None:
        """Once per loop turn: one socket write per connection with anything queued."""
        dirty, self._dirty = self._dirty, []
        for conn in dirty:
            conn.flush()
