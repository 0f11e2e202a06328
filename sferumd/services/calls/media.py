"""The hook between the call control plane and the media plane (the SFU in ``media/``).

The control plane decides who is in a call, in which room (the main room or a breakout
room, ``breakout.MAIN_ROOM`` or a breakout room id) and what they may send; the media plane
carries the audio and video. ``MediaBackend`` is everything the control plane asks of it, in
mediasoup's terms: a call is a router with one sub-router per room, a participant has one
WebRTC transport, and their microphone, camera and screen are producers.

Rules for an implementation:

- ``join`` takes the participant's SDP offer (already checked to be a string within
  ``limits.max_sdp_chars``; its contents are the backend's to validate) and returns the SDP
  answer, or ``None`` when there is no media (no offer, or no SFU). A second ``join`` of a
  participant already in the call renegotiates.
- ``move`` puts a participant's transport in another room's sub-router (breakout rooms).
- ``set_producer_paused`` stops (or lets through again) a participant's audio, video or
  screen producer: the control plane calls it when a permission is revoked or a force mute
  turns a microphone off, so a client that ignores the state push is silenced anyway.
- ``leave`` and ``close`` free the participant's and the call's resources; both are
  idempotent.
- None of these may raise for a participant or call they don't know; a failure of the
  media plane is logged by the caller and never undoes a control-plane decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from sferumd.services.calls import breakout as bo
from sferumd.services.calls.participants import CallRoster, MediaKind


class MediaBackend(Protocol):
    async def join(
        self, call_id: str, room_id: str, user_id: str, offer: str | None
    ) -> str | None: ...

    async def move(self, call_id: str, user_id: str, room_id: str) -> None: ...

    async def set_producer_paused(
        self, call_id: str, user_id: str, kind: str, paused: bool
    ) -> None: ...

    async def leave(self, call_id: str, user_id: str) -> None: ...

    async def close(self, call_id: str) -> None: ...


class NoMedia:
    """The default: signalling only, no SFU. Joins get no answer."""

    async def join(self, call_id: str, room_id: str, user_id: str, offer: str | None) -> str | None:
        return None

    async def move(self, call_id: str, user_id: str, room_id: str) -> None:
        return None

    async def set_producer_paused(
        self, call_id: str, user_id: str, kind: str, paused: bool
    ) -> None:
        return None

    async def leave(self, call_id: str, user_id: str) -> None:
        return None

    async def close(self, call_id: str) -> None:
        return None


@dataclass(frozen=True, slots=True)
class MediaStep:
    """One thing the media plane must do after a control-plane change: ``leave``, ``move``
    (``value``: the room) or ``pause`` / ``resume`` (``value``: audio, video or screen)."""

    action: str
    person_id: str
    value: str = ""


def media_steps(
    before: tuple[CallRoster, Mapping[str, str]], after: tuple[CallRoster, Mapping[str, str]]
) -> list[MediaStep]:
    """From (roster, placement) before and after a change: who left, who moved to another
    room, whose producers must stop or may flow again. Joins are not here: a join carries
    the participant's offer (``MediaBackend.join``)."""
    (old, was), (new, now) = before, after
    steps = [MediaStep("leave", p) for p in sorted(was.keys() - now.keys())]
    steps += [MediaStep("move", p, to) for p, _, to in bo.relocations(was, now)]
    for person_id in sorted(was.keys() & now.keys()):
        old_media = old.participants[person_id].media
        new_media = new.participants[person_id].media
        for kind in MediaKind:
            if old_media.is_on(kind) != new_media.is_on(kind):
                action = "resume" if new_media.is_on(kind) else "pause"
                steps.append(MediaStep(action, person_id, kind.value))
    return steps
