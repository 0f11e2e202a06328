"""The hook between the call control plane and the media plane (the SFU in ``media/``).

The control plane decides who is in a call, in which room (the main room or a breakout
room, ``breakout.MAIN_ROOM`` or a breakout room id) and what they may send; the media plane
carries the audio and video. ``MediaBackend`` is everything the control plane asks of it, in
mediasoup's terms: a call is a router with one sub-router per room, a participant has one
WebRTC transport, and their microphone, camera and screen are producers.

Rules for an implementation:

- ``check_offer`` reads an offer (already checked to be a string within
  ``limits.max_sdp_chars``) before the control plane changes anything and raises
  ``MediaRefused`` (``bad_sdp``, ``unsupported_codec``, ``forbidden`` for a screen track
  without the screen capability, ...); ``allowed`` are the kinds (audio, video, screen) the
  participant's capabilities let through.
- ``join`` takes the participant's SDP offer and ``tracks`` (mid -> audio, video, screen) and
  returns the SDP answer, or ``None`` when there is no media (no offer, or no SFU); kinds not
  ``allowed`` start paused. A second ``join`` of a participant already in the call replaces
  their transports. ``publish`` renegotiates the send transport; ``media_answer`` takes the
  answer to the backend's own offer (pushed as ``media_offer``). These three may raise
  ``MediaRefused``, which the caller turns into the error of that code.
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

from media.errors import MediaRefused
from sferumd.services.calls import breakout as bo
from sferumd.services.calls import permissions as pm
from sferumd.services.calls.participants import CallRoster, MediaKind

__all__ = ["MediaBackend", "MediaRefused", "MediaStep", "NoMedia", "media_steps"]

EVERY_KIND = frozenset(k.value for k in MediaKind)


class MediaBackend(Protocol):
    def check_offer(
        self, offer: str, tracks: Mapping[str, str] | None, allowed: frozenset[str]
    ) -> None: ...

    async def join(
        self,
        call_id: str,
        room_id: str,
        user_id: str,
        offer: str | None,
        *,
        tracks: Mapping[str, str] | None = None,
        allowed: frozenset[str] = EVERY_KIND,
    ) -> str | None: ...

    async def publish(
        self,
        call_id: str,
        user_id: str,
        offer: str,
        tracks: Mapping[str, str] | None,
        allowed: frozenset[str],
    ) -> str | None: ...

    async def media_answer(self, call_id: str, user_id: str, version: int, answer: str) -> None: ...

    async def move(self, call_id: str, user_id: str, room_id: str) -> None: ...

    async def set_producer_paused(
        self, call_id: str, user_id: str, kind: str, paused: bool
    ) -> None: ...

    async def leave(self, call_id: str, user_id: str) -> None: ...

    async def close(self, call_id: str) -> None: ...


class NoMedia:
    """The default: signalling only, no SFU. Joins get no answer."""

    def check_offer(
        self, offer: str, tracks: Mapping[str, str] | None, allowed: frozenset[str]
    ) -> None:
        return None

    async def join(
        self,
        call_id: str,
        room_id: str,
        user_id: str,
        offer: str | None,
        *,
        tracks: Mapping[str, str] | None = None,
        allowed: frozenset[str] = EVERY_KIND,
    ) -> str | None:
        return None

    async def publish(
        self,
        call_id: str,
        user_id: str,
        offer: str,
        tracks: Mapping[str, str] | None,
        allowed: frozenset[str],
    ) -> str | None:
        return None

    async def media_answer(self, call_id: str, user_id: str, version: int, answer: str) -> None:
        raise MediaRefused("conflict", "this server has no SFU: there is no media offer")

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


def allowed_kinds(table: pm.PermissionTable, roster: CallRoster, person_id: str) -> frozenset[str]:
    """The media kinds a person's capabilities let through (microphone, camera, screen)."""
    media = pm.MEDIA.items()
    return frozenset(k.value for k, cap in media if pm.may(table, roster, person_id, cap))


def capability_steps(
    before: tuple[pm.PermissionTable, CallRoster], after: tuple[pm.PermissionTable, CallRoster]
) -> list[MediaStep]:
    """Producers paused when a capability goes and resumed when it comes back (a force mute
    lifted, screen sharing granted), for the people in the call before and after."""
    (old_table, old), (new_table, new) = before, after
    steps: list[MediaStep] = []
    for person_id in sorted(old.participants.keys() & new.participants.keys()):
        if not (old.participants[person_id].joined and new.participants[person_id].joined):
            continue
        was = allowed_kinds(old_table, old, person_id)
        now = allowed_kinds(new_table, new, person_id)
        for kind in MediaKind:
            if (kind.value in was) != (kind.value in now):
                action = "resume" if kind.value in now else "pause"
                steps.append(MediaStep(action, person_id, kind.value))
    return steps
