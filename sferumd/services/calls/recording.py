"""Recording a call (R20): the rules, as pure decisions on the call's document.

Rules:

- Only a call admin starts or stops the recording (``forbidden`` otherwise). Starting it
  while it runs, or stopping it while it doesn't, changes nothing (the op answers ``{}``).
- It starts only while the call is open or running (``call_state`` otherwise).
- ``Recording`` is what the call's document keeps while it runs (``codec``): since when,
  who started it (a person of the call) and the stem of its files under the recordings
  directory. The state push shows it as ``"recording": {"since_ms", "by"}`` (the indicator
  everyone sees), ``null`` when off.
- It stops when an admin stops it, at a limit (``calls.recording_max_s``,
  ``calls.recording_max_mb``), when the call ends, or when the daemon restarts (the file is
  then made from what was written before; see ``recordings``).
- The file is posted in the call's own chat by whoever stopped it; at a limit, by whoever
  started it; at the end of the call (or after a restart), by the call's owner when they
  are one of its users, else by whoever started it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sferumd.services.calls import lifecycle as lc
from sferumd.services.calls import participants as pt
from sferumd.services.calls.errors import CallCode, CallError
from sferumd.services.calls.participants import CallRoster

RECORDABLE = frozenset({lc.CallState.OPEN, lc.CallState.RUNNING})
STEM = re.compile(r"C[A-Za-z0-9_-]{1,64}\.[0-9]{1,16}")


@dataclass(frozen=True, slots=True)
class Recording:
    since_ms: int
    by: str  # the person who started it
    stem: str  # its files: <recordings dir>/<stem>.webm (+ .spool, .json while it runs)


def stem_of(call_id: str, since_ms: int) -> str:
    return f"{call_id}.{since_ms}"


def start(
    call: lc.Call, roster: CallRoster, current: Recording | None, actor: str, now_ms: int
) -> Recording | None:
    """The recording to start, or None when one runs already."""
    pt.require_admin(roster, actor, "record the call")
    if current is not None:
        return None
    if call.state not in RECORDABLE:
        raise CallError(CallCode.CALL_STATE, f"a call that is {call.state.value} is not recorded")
    return Recording(now_ms, actor, stem_of(call.call_id, now_ms))


def stop(roster: CallRoster, current: Recording | None, actor: str) -> bool:
    """Whether ``actor``'s stop ends a running recording (False: none runs)."""
    pt.require_admin(roster, actor, "stop the recording")
    return current is not None


def poster(owner_user: str | None, started_by_user: str | None) -> str | None:
    """Who posts the file when nobody pressed stop (the end of the call, a restart)."""
    return owner_user if owner_user is not None else started_by_user
