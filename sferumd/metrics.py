"""Counters and gauges for ``GET /metrics`` in the Prometheus text format.

Plain integer attributes rather than a metrics library: the fan-out path bumps them per
write, and an attribute increment is the cheapest thing there is.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(slots=True)
class Metrics:
    connections: int = 0
    authenticated: int = 0
    events_appended: int = 0
    commits: int = 0
    frames_sent: int = 0
    socket_writes: int = 0
    slow_consumer_closes: int = 0
    flood_closes: int = 0
    requests: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    def render(self) -> str:
        lines = [
            *_metric(
                "sferumd_connections", "gauge", "Open websocket connections.", self.connections
            ),
            *_metric(
                "sferumd_authenticated_connections",
                "gauge",
                "Authenticated websocket connections.",
                self.authenticated,
            ),
            *_metric(
                "sferumd_events_appended_total",
                "counter",
                "Events committed to the log.",
                self.events_appended,
            ),
            *_metric("sferumd_commits_total", "counter", "Group commits.", self.commits),
            *_metric(
                "sferumd_frames_sent_total",
                "counter",
                "Websocket frames queued to clients.",
                self.frames_sent,
            ),
            *_metric(
                "sferumd_socket_writes_total",
                "counter",
                "Socket writes (several frames may share one).",
                self.socket_writes,
            ),
            *_metric(
                "sferumd_slow_consumer_closes_total",
                "counter",
                "Connections closed because their outgoing queue overflowed.",
                self.slow_consumer_closes,
            ),
            *_metric(
                "sferumd_flood_closes_total",
                "counter",
                "Connections closed for flooding or broken framing.",
                self.flood_closes,
            ),
            "# HELP sferumd_requests_total Requests by op.",
            "# TYPE sferumd_requests_total counter",
            *(f'sferumd_requests_total{{op="{k}"}} {v}' for k, v in sorted(self.requests.items())),
            "# HELP sferumd_errors_total Error responses by code.",
            "# TYPE sferumd_errors_total counter",
            *(f'sferumd_errors_total{{code="{k}"}} {v}' for k, v in sorted(self.errors.items())),
        ]
        return "\n".join(lines) + "\n"


def _metric(name: str, kind: str, help_text: str, value: int) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {value}"]
