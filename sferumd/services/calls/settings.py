"""Every limit and default of the call control plane, as one settings value.

Rules:

- Durations are whole seconds, like the rest of the daemon's config (``link_ttl_s``); the
  ``*_ms`` properties give the milliseconds the pure modules compute with.
- Fields are plain scalars so ``sferumd.config`` can load them as a ``[calls]`` table: an
  unknown key or a wrong type is refused there, a nonsensical value is refused here
  (``ValueError`` from ``__post_init__``, which ``dataclasses.replace`` also runs).
- A setting changes what new decisions do; values already made keep what they recorded
  (a scheduled call keeps its opening time, a running breakout plan its timer).
"""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_MS = 1000


@dataclass(frozen=True, slots=True)
class CallSettings:
    # Lifecycle (lifecycle.py). open_lead_s: how long before the start a call is joinable.
    # 0 because R25 and the manual say the "go" link works from the start time.
    open_lead_s: int = 0
    # A new call may start this long in the past: absorbs clock skew between the journal
    # and us, not a licence to schedule lessons that already began.
    schedule_grace_s: int = 60
    max_call_s: int = 6 * 3600  # a lesson call longer than this is a mistake

    # Roster (participants.py).
    max_invitees: int = 2000
    waiting_room: bool = False  # whether new calls start with the waiting room on

    # Breakout rooms (breakout.py).
    max_breakout_rooms: int = 50  # the manual's "до 50"; the SFU's sub-router limit
    breakout_warning_s: int = 60  # the warning comes this long before the rooms close
    max_breakout_s: int = 4 * 3600  # the longest timer
    max_room_name_chars: int = 64
    max_broadcast_chars: int = 1000

    # Whiteboard (whiteboard.py). Coordinates and widths are fractions of the board's width.
    whiteboard_ops_per_s: float = 20.0  # sustained, per person
    whiteboard_burst: int = 60  # ops a person may send at once after a pause
    whiteboard_max_points: int = 2000  # points of one stroke
    whiteboard_max_ops: int = 5000  # ops since the last clear before an admin must clear
    whiteboard_max_text_chars: int = 500
    whiteboard_max_width: float = 0.1  # stroke width and text size, as a fraction

    # Attendance (attendance.py).
    present_min_s: int = 60  # in the lesson at least this long to count as present
    late_grace_s: int = 300  # first join later than start + this is "joined late"
    early_leave_grace_s: int = 300  # last leave earlier than end - this is "left early"

    # Naming (naming.py): the school's time zone for dates and times in call names.
    time_zone: str = "Europe/Moscow"

    # Recording (recordings.py, media/recorder.py; R20). Made under the data directory in
    # recording_dir, then stored as a file in the call's chat. At either limit it stops.
    recording_dir: str = "recordings"  # relative to the data directory
    recording_max_mb: int = 2048
    recording_max_s: int = 6 * 3600
    recording_queue_frames: int = 2000  # frames waiting for the recorder's thread; more drop

    def __post_init__(self) -> None:
        non_negative = {
            "open_lead_s": self.open_lead_s,
            "schedule_grace_s": self.schedule_grace_s,
            "breakout_warning_s": self.breakout_warning_s,
            "present_min_s": self.present_min_s,
            "late_grace_s": self.late_grace_s,
            "early_leave_grace_s": self.early_leave_grace_s,
        }
        positive = {
            "max_call_s": self.max_call_s,
            "max_invitees": self.max_invitees,
            "max_breakout_rooms": self.max_breakout_rooms,
            "max_breakout_s": self.max_breakout_s,
            "max_room_name_chars": self.max_room_name_chars,
            "max_broadcast_chars": self.max_broadcast_chars,
            "whiteboard_burst": self.whiteboard_burst,
            "whiteboard_max_points": self.whiteboard_max_points,
            "whiteboard_max_ops": self.whiteboard_max_ops,
            "whiteboard_max_text_chars": self.whiteboard_max_text_chars,
            "recording_max_mb": self.recording_max_mb,
            "recording_max_s": self.recording_max_s,
            "recording_queue_frames": self.recording_queue_frames,
        }
        for name, value in non_negative.items():
            if value < 0:
                raise ValueError(f"calls.{name} must be >= 0")
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"calls.{name} must be >= 1")
        if not self.whiteboard_ops_per_s > 0:
            raise ValueError("calls.whiteboard_ops_per_s must be > 0")
        if not 0 < self.whiteboard_max_width <= 1:
            raise ValueError("calls.whiteboard_max_width must be in (0, 1]")
        parts = self.recording_dir.replace("\\", "/").split("/")
        if self.recording_dir.startswith("/") or not self.recording_dir or ".." in parts:
            raise ValueError("calls.recording_dir must be a directory inside the data directory")
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"calls.time_zone {self.time_zone!r} is not a known zone") from exc

    @property
    def open_lead_ms(self) -> int:
        return self.open_lead_s * _MS

    @property
    def schedule_grace_ms(self) -> int:
        return self.schedule_grace_s * _MS

    @property
    def max_call_ms(self) -> int:
        return self.max_call_s * _MS

    @property
    def breakout_warning_ms(self) -> int:
        return self.breakout_warning_s * _MS

    @property
    def max_breakout_ms(self) -> int:
        return self.max_breakout_s * _MS

    @property
    def present_min_ms(self) -> int:
        return self.present_min_s * _MS

    @property
    def late_grace_ms(self) -> int:
        return self.late_grace_s * _MS

    @property
    def early_leave_grace_ms(self) -> int:
        return self.early_leave_grace_s * _MS
