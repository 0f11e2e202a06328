"""Errors of the call control plane: one exception family, one code per refusal.

Rules:

- Every refusal raises ``CallError`` (or a subclass) with a ``CallCode`` and a message that
  names what was wrong (the field, the person, the room, the limit). Nothing else escapes
  these modules for bad input: a ``ValueError`` from here would be a bug.
- A refusal changes nothing. Every function works on immutable values and returns new ones,
  so "state intact" holds by construction: the caller simply keeps the old value.
- Illegal lifecycle transitions raise ``CallStateError`` and illegal breakout transitions
  raise ``BreakoutStateError``; both name the current state and the refused event, as h11's
  ``LocalProtocolError`` names the state it was in.
- Codes that mean the same as the wire's ``protocol.errors.ErrorCode`` (``forbidden``,
  ``invalid_field``, ``too_large``, ``not_found``, ``rate_limited``) carry the same string,
  so the websocket layer can pass them through; the rest are new codes it will add.
"""

from __future__ import annotations

from enum import StrEnum


class CallCode(StrEnum):
    # Shared with protocol.errors.ErrorCode (same strings).
    FORBIDDEN = "forbidden"  # the actor is not an admin, or lacks the capability
    INVALID_FIELD = "invalid_field"  # wrong type, format or range of an input field
    TOO_LARGE = "too_large"  # a list or string over its limit
    NOT_FOUND = "not_found"  # no such person in this call, room or whiteboard op
    RATE_LIMITED = "rate_limited"  # whiteboard ops faster than the token bucket allows
    # Lifecycle and scheduling.
    CALL_STATE = "call_state"  # the event is not allowed in the call's state (CallStateError)
    INVALID_TIMES = "invalid_times"  # end not after start
    START_IN_PAST = "start_in_past"
    END_IN_PAST = "end_in_past"
    TOO_LONG = "too_long"  # a call longer than max_call_s
    LESSON_OVERLAP = "lesson_overlap"  # another lesson call of the class overlaps in time
    CLASS_BUSY = "class_busy"  # another lesson call of the class is running (R24)
    # Roster.
    DUPLICATE_INVITEE = "duplicate_invitee"
    NOT_JOINED = "not_joined"  # the person is not in the call right now
    BLOCKED = "blocked"  # the journal blocked this person for this call
    NOT_STAFF = "not_staff"  # only staff can be made co-admins
    OWNER = "owner"  # the lesson's teacher cannot be demoted or removed
    TARGET_IS_ADMIN = "target_is_admin"  # admins are not removed, muted or restricted
    # Breakout rooms.
    BREAKOUT_STATE = "breakout_state"  # the event is not allowed in the plan's phase
    NO_ROOMS = "no_rooms"
    TOO_MANY_ROOMS = "too_many_rooms"
    UNKNOWN_PEOPLE = "unknown_people"  # assigned people who are not (allowed) in the call
    DUPLICATE_ASSIGNMENT = "duplicate_assignment"  # one person in two rooms
    ADMIN_ASSIGNED = "admin_assigned"  # admins visit rooms; they are not assigned
    ROOM_FULL = "room_full"
    NOT_SELF_SELECT = "not_self_select"  # choosing a room in a plan that doesn't allow it
    # Whiteboard.
    BOARD_FULL = "board_full"  # max ops since the last clear: an admin must clear


class CallError(Exception):
    """A refused request: the code says which rule, the message says what was wrong."""

    def __init__(self, code: CallCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code.value!r}, {self.message!r})"


class CallStateError(CallError):
    """An event the call's lifecycle does not allow in its current state."""

    def __init__(self, state: str, event: str, reason: str = "") -> None:
        detail = f": {reason}" if reason else ""
        super().__init__(CallCode.CALL_STATE, f"cannot {event} a call that is {state}{detail}")
        self.state = state
        self.event = event


class BreakoutStateError(CallError):
    """An event a breakout plan does not allow in its current phase."""

    def __init__(self, phase: str, event: str, reason: str = "") -> None:
        detail = f": {reason}" if reason else ""
        super().__init__(
            CallCode.BREAKOUT_STATE, f"cannot {event} breakout rooms that are {phase}{detail}"
        )
        self.phase = phase
        self.event = event
