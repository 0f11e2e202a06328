"""Participant permissions ("Доступы участников", R22). Every permission rule lives here.

Capabilities: microphone, camera, screen (share), chat (the call's chat), whiteboard.

Rules:

- Effective permission, in this precedence (first that applies wins):

  1. admins have every capability, always (nothing below applies to them);
  2. a personal override for this person and capability;
  3. the "everyone" setting for the capability (applies to every non-admin);
  4. the role default (``ROLE_DEFAULTS``).

  A personal decision outlives a later "everyone" change unless the admin asks
  ``reset_personal``: a student the teacher muted stays muted when the class is unmuted,
  and a student given the floor keeps it when everyone else is muted.
- Role defaults: staff have everything; students and parents have microphone, camera and
  chat, but not screen sharing (the admin decides who shares, R22) and not the whiteboard
  (the manual's call interface for students and parents, sections 5 and 7, has no
  whiteboard; the teacher's, section 2, has it).
- Only admins change permissions; anyone else gets ``forbidden`` and nothing changes.
  Admins are not restricted (``target_is_admin``/``owner``): demote a co-admin first.
- Mute request vs force mute. ``request_mute`` asks: it returns a ``MuteRequest`` for the
  person's client to show ("the teacher asks you to turn off your microphone") and changes
  no state; the person may ignore it or unmute later. ``force_mute`` decides: it revokes the
  microphone as a personal override, which turns their audio off now and keeps it off until
  an admin grants the microphone again.
- After every change the roster is reconciled (``enforce``): media that is on without its
  capability is turned off, so "revoke camera" also stops a running camera.
- Turning media on needs its capability (``set_media``); turning it off never does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType

from sferumd.services.calls.errors import CallCode, CallError
from sferumd.services.calls.participants import (
    CallRole,
    CallRoster,
    MediaKind,
    record_media,
    require_admin,
    require_invitee,
    require_not_admin,
    revoke_admin,
    role_of,
)


class Capability(StrEnum):
    MICROPHONE = "microphone"
    CAMERA = "camera"
    SCREEN = "screen"
    CHAT = "chat"
    WHITEBOARD = "whiteboard"


ALL: frozenset[Capability] = frozenset(Capability)
_BASIC: frozenset[Capability] = frozenset(
    {Capability.MICROPHONE, Capability.CAMERA, Capability.CHAT}
)
ROLE_DEFAULTS: Mapping[CallRole, frozenset[Capability]] = MappingProxyType(
    {
        CallRole.ADMIN: ALL,
        CallRole.STAFF: ALL,
        CallRole.STUDENT: _BASIC,
        CallRole.PARENT: _BASIC,
    }
)
# The media each capability governs; chat and whiteboard gate other modules' operations.
MEDIA: Mapping[MediaKind, Capability] = MappingProxyType(
    {
        MediaKind.AUDIO: Capability.MICROPHONE,
        MediaKind.VIDEO: Capability.CAMERA,
        MediaKind.SCREEN: Capability.SCREEN,
    }
)


@dataclass(frozen=True, slots=True)
class PermissionTable:
    """Admin decisions; a missing key means "not decided", so the next rule down applies."""

    everyone: Mapping[Capability, bool] = field(default_factory=dict)
    personal: Mapping[tuple[str, Capability], bool] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MuteRequest:
    """A request for the person's client to show; it changes nothing by itself."""

    person_id: str
    by: str
    at_ms: int


def effective(table: PermissionTable, role: CallRole, person_id: str, cap: Capability) -> bool:
    if role is CallRole.ADMIN:
        return True
    personal = table.personal.get((person_id, cap))
    if personal is not None:
        return personal
    everyone = table.everyone.get(cap)
    if everyone is not None:
        return everyone
    return cap in ROLE_DEFAULTS[role]


def may(table: PermissionTable, roster: CallRoster, person_id: str, cap: Capability) -> bool:
    """Whether this person has the capability; people outside the call have none."""
    role = role_of(roster, person_id)
    return role is not None and effective(table, role, person_id, cap)


def capabilities(
    table: PermissionTable, roster: CallRoster, person_id: str
) -> frozenset[Capability]:
    return frozenset(c for c in Capability if may(table, roster, person_id, c))


def require(table: PermissionTable, roster: CallRoster, person_id: str, cap: Capability) -> None:
    if not may(table, roster, person_id, cap):
        raise CallError(CallCode.FORBIDDEN, f"{person_id} may not use the {cap.value}")


def set_personal(
    table: PermissionTable,
    roster: CallRoster,
    actor_id: str,
    person_id: str,
    cap: Capability,
    allowed: bool | None,
) -> tuple[PermissionTable, CallRoster]:
    """Grant (True), revoke (False) or reset (None) one person's capability."""
    require_admin(roster, actor_id, "change participants' permissions")
    require_invitee(roster, person_id)
    require_not_admin(roster, person_id, "restricted")
    personal = {k: v for k, v in table.personal.items() if k != (person_id, cap)}
    if allowed is not None:
        personal[(person_id, cap)] = allowed
    new = replace(table, personal=personal)
    return new, enforce(new, roster)


def set_everyone(
    table: PermissionTable,
    roster: CallRoster,
    actor_id: str,
    cap: Capability,
    allowed: bool | None,
    *,
    reset_personal: bool = False,
) -> tuple[PermissionTable, CallRoster]:
    """Set (or with None, forget) the capability for all non-admins; optionally also drop
    everyone's personal override of it, so the new setting reaches every person."""
    require_admin(roster, actor_id, "change everyone's permissions")
    everyone = {k: v for k, v in table.everyone.items() if k is not cap}
    if allowed is not None:
        everyone[cap] = allowed
    personal = table.personal
    if reset_personal:
        personal = {k: v for k, v in table.personal.items() if k[1] is not cap}
    new = PermissionTable(everyone, personal)
    return new, enforce(new, roster)


def force_mute(
    table: PermissionTable, roster: CallRoster, actor_id: str, person_id: str
) -> tuple[PermissionTable, CallRoster]:
    """Revoke the microphone: audio goes off and stays off until granted again."""
    return set_personal(table, roster, actor_id, person_id, Capability.MICROPHONE, False)


def request_mute(roster: CallRoster, actor_id: str, person_id: str, now_ms: int) -> MuteRequest:
    require_admin(roster, actor_id, "ask participants to mute")
    require_invitee(roster, person_id)
    p = roster.participants.get(person_id)
    if p is None or not p.joined:
        raise CallError(CallCode.NOT_JOINED, f"{person_id} is not in the call")
    return MuteRequest(person_id, actor_id, now_ms)


def request_mute_all(roster: CallRoster, actor_id: str, now_ms: int) -> tuple[MuteRequest, ...]:
    """Ask every non-admin whose microphone is on to mute."""
    require_admin(roster, actor_id, "ask participants to mute")
    return tuple(
        MuteRequest(p.person_id, actor_id, now_ms)
        for p in sorted(roster.participants.values(), key=lambda p: p.person_id)
        if p.joined and p.media.audio and p.person_id not in roster.admins
    )


def set_media(
    table: PermissionTable, roster: CallRoster, person_id: str, kind: MediaKind, on: bool
) -> CallRoster:
    """A participant turns their microphone, camera or screen share on or off."""
    if on:
        require(table, roster, person_id, MEDIA[kind])
    return record_media(roster, person_id, kind, on)


def demote(table: PermissionTable, roster: CallRoster, actor_id: str, person_id: str) -> CallRoster:
    """Take a co-admin's admin role away; whatever their media their role no longer allows
    stops (an ex-admin sharing the screen when students may not stops sharing)."""
    return enforce(table, revoke_admin(roster, actor_id, person_id))


def enforce(table: PermissionTable, roster: CallRoster) -> CallRoster:
    """Turn off every medium that is on without its capability."""
    out = roster
    for p in roster.participants.values():
        for kind, cap in MEDIA.items():
            if p.media.is_on(kind) and not may(table, roster, p.person_id, cap):
                out = record_media(out, p.person_id, kind, False)
    return out
