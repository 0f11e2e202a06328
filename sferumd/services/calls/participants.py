"""A call's roster: who is invited, who is admin, who is in, waiting, removed. All roster
rules live here.

Rules:

- Invitees come from the journal (R16): three lists, staff, students and parents, each
  person with a "blocked" status. Nobody else may join (``not_invited``); a blocked invitee
  is refused (``blocked``). When the journal changes the lists (``set_invitees``), people who
  are no longer invited or are now blocked leave at once.
- The lesson's teacher is the call's owner and its admin from the start (R18). Admins may
  make other *staff* co-admins (a student or parent never administers a lesson) and demote
  co-admins; the owner is never demoted or removed (``owner``). Admins are not removed
  (``target_is_admin``): demote first.
- A call role is ``admin`` for admins, else the person's journal category. Roles decide the
  permission defaults (``permissions.py``).
- Presence is a list of intervals per person, one per session (a device connection): a
  person is in the call while any of their sessions is. Reconnecting with the same session
  id while it is open changes nothing; a new session adds an interval. These intervals are
  what attendance is computed from. Leaving the last session turns their media off.
- ``may_join`` decides, in this order, so that someone with no business in the call learns
  nothing about its state: ``not_invited``, ``blocked``, ``removed``/``refused`` (an admin's
  decision holds for the rest of the call unless an admin ``allow_back``s them),
  ``call_cancelled``, ``call_ended`` (also once the end time has passed, even before the
  scheduler ticks), ``not_open_yet`` (with the opening time), then admins, staff and anyone
  already let in once are admitted, the rest go to the ``waiting_room`` if it is on.
- Waiting room: knocks are kept in arrival order; an admin admits (the waiting session
  joins at once) or refuses (sticky, like removal). Turning the waiting room off admits
  everyone waiting.
- Operations that need an admin raise ``forbidden`` for anyone else; operations on unknown
  people raise ``not_found``. Leaving and joining are idempotent so retried frames and
  racing disconnects are harmless.
- ``record_media`` records what a person sends without checking permissions: use
  ``permissions.set_media``, which checks the capability first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from sferumd.services.calls.errors import CallCode, CallError
from sferumd.services.calls.lifecycle import Call, CallState
from sferumd.services.calls.settings import CallSettings


class Category(StrEnum):
    """The journal's participant lists (Сотрудники | Ученики | Родители)."""

    STAFF = "staff"
    STUDENT = "student"
    PARENT = "parent"


class CallRole(StrEnum):
    ADMIN = "admin"
    STAFF = "staff"
    STUDENT = "student"
    PARENT = "parent"


class MediaKind(StrEnum):
    AUDIO = "audio"
    VIDEO = "video"
    SCREEN = "screen"


class JoinCode(StrEnum):
    ADMIT = "admit"
    WAITING_ROOM = "waiting_room"
    NOT_INVITED = "not_invited"
    BLOCKED = "blocked"
    REMOVED = "removed"
    REFUSED = "refused"
    CALL_CANCELLED = "call_cancelled"
    CALL_ENDED = "call_ended"
    NOT_OPEN_YET = "not_open_yet"


class Exclusion(StrEnum):
    REMOVED = "removed"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class Invitee:
    person_id: str
    category: Category
    blocked: bool = False


@dataclass(frozen=True, slots=True)
class MediaState:
    audio: bool = False
    video: bool = False
    screen: bool = False

    def is_on(self, kind: MediaKind) -> bool:
        return bool(getattr(self, kind.value))

    def with_(self, kind: MediaKind, on: bool) -> MediaState:
        return replace(self, **{kind.value: on})


OFF = MediaState()


@dataclass(frozen=True, slots=True)
class Interval:
    """One session's stay; ``left_ms`` is ``None`` while it lasts."""

    session_id: str
    joined_ms: int
    left_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Participant:
    person_id: str
    intervals: tuple[Interval, ...] = ()
    media: MediaState = OFF

    @property
    def joined(self) -> bool:
        return any(i.left_ms is None for i in self.intervals)

    @property
    def sessions(self) -> tuple[str, ...]:
        return tuple(i.session_id for i in self.intervals if i.left_ms is None)


@dataclass(frozen=True, slots=True)
class Knock:
    """Someone in the waiting room, with the session that will join when admitted."""

    person_id: str
    session_id: str
    since_ms: int


@dataclass(frozen=True, slots=True)
class Verdict:
    code: JoinCode
    opens_at_ms: int | None = None  # set for not_open_yet: when to come back

    @property
    def admitted(self) -> bool:
        return self.code is JoinCode.ADMIT


@dataclass(frozen=True, slots=True)
class ParticipantView:
    """One row of the participant list a client shows."""

    person_id: str
    role: CallRole
    media: MediaState


@dataclass(frozen=True, slots=True)
class CallRoster:
    call_id: str
    owner_id: str
    invitees: Mapping[str, Invitee]
    admins: frozenset[str]
    waiting_room: bool = False
    participants: Mapping[str, Participant] = field(default_factory=dict)
    waiting: tuple[Knock, ...] = ()
    admitted: frozenset[str] = frozenset()  # let in once: a reconnect doesn't wait again
    excluded: Mapping[str, Exclusion] = field(default_factory=dict)


# -- building ---------------------------------------------------------------------------------


def new_roster(
    call_id: str,
    owner_id: str,
    invitees: Iterable[Invitee],
    settings: CallSettings,
    *,
    waiting_room: bool | None = None,
) -> CallRoster:
    """The roster of a new call; the owner (the lesson's teacher) is invited as staff."""
    by_id = _invitee_map(owner_id, invitees, settings)
    on = settings.waiting_room if waiting_room is None else waiting_room
    return CallRoster(call_id, owner_id, by_id, frozenset({owner_id}), waiting_room=on)


def set_invitees(
    roster: CallRoster, invitees: Iterable[Invitee], now_ms: int, settings: CallSettings
) -> CallRoster:
    """The journal changed the lists: anyone no longer allowed leaves now."""
    by_id = _invitee_map(roster.owner_id, invitees, settings)
    gone = sorted(p for p in _known(roster) if p not in by_id or by_id[p].blocked)
    out = replace(
        roster,
        invitees=by_id,
        admins=frozenset(a for a in roster.admins if a not in gone),
        waiting=tuple(k for k in roster.waiting if k.person_id not in gone),
    )
    for person_id in gone:
        out = _leave_all(out, person_id, now_ms)
    return out


def _invitee_map(
    owner_id: str, invitees: Iterable[Invitee], settings: CallSettings
) -> dict[str, Invitee]:
    by_id: dict[str, Invitee] = {}
    for inv in invitees:
        if not inv.person_id:
            raise CallError(CallCode.INVALID_FIELD, "an invitee has an empty person id")
        if inv.person_id in by_id:
            raise CallError(CallCode.DUPLICATE_INVITEE, f"{inv.person_id} is listed twice")
        by_id[inv.person_id] = inv
        if len(by_id) > settings.max_invitees:
            raise CallError(
                CallCode.TOO_LARGE, f"a call has at most {settings.max_invitees} invitees"
            )
    owner = by_id.setdefault(owner_id, Invitee(owner_id, Category.STAFF))
    if owner.category is not Category.STAFF or owner.blocked:
        raise CallError(
            CallCode.INVALID_FIELD, f"the lesson's teacher {owner_id} must be unblocked staff"
        )
    return by_id


def _known(roster: CallRoster) -> set[str]:
    return set(roster.participants) | {k.person_id for k in roster.waiting} | set(roster.admins)


# -- who is who -------------------------------------------------------------------------------


def role_of(roster: CallRoster, person_id: str) -> CallRole | None:
    invitee = roster.invitees.get(person_id)
    if invitee is None:
        return None
    if person_id in roster.admins:
        return CallRole.ADMIN
    return CallRole(invitee.category.value)


def is_admin(roster: CallRoster, person_id: str) -> bool:
    return person_id in roster.admins


def require_admin(roster: CallRoster, actor_id: str, what: str) -> None:
    if actor_id not in roster.admins:
        raise CallError(CallCode.FORBIDDEN, f"only a call admin may {what}")


def require_invitee(roster: CallRoster, person_id: str) -> Invitee:
    invitee = roster.invitees.get(person_id)
    if invitee is None:
        raise CallError(CallCode.NOT_FOUND, f"{person_id} is not a participant of this call")
    return invitee


def is_joined(roster: CallRoster, person_id: str) -> bool:
    p = roster.participants.get(person_id)
    return p is not None and p.joined


def present(roster: CallRoster) -> tuple[str, ...]:
    return tuple(sorted(p.person_id for p in roster.participants.values() if p.joined))


_ROLE_ORDER = {CallRole.ADMIN: 0, CallRole.STAFF: 1, CallRole.STUDENT: 2, CallRole.PARENT: 3}


def participant_list(roster: CallRoster) -> tuple[ParticipantView, ...]:
    """Who is in the call now: admins first, then staff, students, parents; by id within."""
    rows = []
    for person_id in present(roster):
        role = role_of(roster, person_id)
        if role is not None:
            rows.append(ParticipantView(person_id, role, roster.participants[person_id].media))
    return tuple(sorted(rows, key=lambda r: (_ROLE_ORDER[r.role], r.person_id)))


# -- joining and leaving ----------------------------------------------------------------------


def may_join(call: Call, roster: CallRoster, person_id: str, now_ms: int) -> Verdict:
    invitee = roster.invitees.get(person_id)
    if invitee is None:
        return Verdict(JoinCode.NOT_INVITED)
    if invitee.blocked:
        return Verdict(JoinCode.BLOCKED)
    exclusion = roster.excluded.get(person_id)
    if exclusion is not None:
        return Verdict(JoinCode(exclusion.value))
    if call.state is CallState.CANCELLED:
        return Verdict(JoinCode.CALL_CANCELLED)
    if call.state is CallState.ENDED or now_ms >= call.end_ms:
        return Verdict(JoinCode.CALL_ENDED)
    if call.state is CallState.SCHEDULED:
        return Verdict(JoinCode.NOT_OPEN_YET, call.opens_at_ms)
    lets_in = (
        person_id in roster.admins
        or invitee.category is Category.STAFF
        or person_id in roster.admitted
        or not roster.waiting_room
    )
    return Verdict(JoinCode.ADMIT if lets_in else JoinCode.WAITING_ROOM)


def join(
    call: Call, roster: CallRoster, person_id: str, session_id: str, now_ms: int
) -> tuple[CallRoster, Verdict]:
    """A session asks to join; the roster changes only if it is admitted or goes to wait."""
    verdict = may_join(call, roster, person_id, now_ms)
    if verdict.code is JoinCode.ADMIT:
        return _enter(roster, person_id, session_id, now_ms), verdict
    if verdict.code is JoinCode.WAITING_ROOM:
        others = tuple(k for k in roster.waiting if k.person_id != person_id)
        mine = [k for k in roster.waiting if k.person_id == person_id]
        # Knocking again keeps one's place; the newest session is the one that will join.
        since = mine[0].since_ms if mine else now_ms
        knock = Knock(person_id, session_id, since)
        waiting = tuple(sorted((*others, knock), key=lambda k: (k.since_ms, k.person_id)))
        return replace(roster, waiting=waiting), verdict
    return roster, verdict


def _enter(roster: CallRoster, person_id: str, session_id: str, now_ms: int) -> CallRoster:
    p = roster.participants.get(person_id, Participant(person_id))
    if session_id not in p.sessions:
        p = replace(p, intervals=(*p.intervals, Interval(session_id, now_ms)))
    return replace(
        roster,
        participants={**roster.participants, person_id: p},
        admitted=roster.admitted | {person_id},
        waiting=tuple(k for k in roster.waiting if k.person_id != person_id),
    )


def leave(roster: CallRoster, person_id: str, session_id: str, now_ms: int) -> CallRoster:
    """A session left (or dropped). Unknown sessions change nothing."""
    waiting = tuple(
        k for k in roster.waiting if not (k.person_id == person_id and k.session_id == session_id)
    )
    p = roster.participants.get(person_id)
    if p is None or session_id not in p.sessions:
        return replace(roster, waiting=waiting) if waiting != roster.waiting else roster
    intervals = tuple(
        replace(i, left_ms=max(now_ms, i.joined_ms))
        if i.session_id == session_id and i.left_ms is None
        else i
        for i in p.intervals
    )
    p = replace(p, intervals=intervals)
    if not p.joined:
        p = replace(p, media=OFF)
    return replace(roster, participants={**roster.participants, person_id: p}, waiting=waiting)


def _leave_all(roster: CallRoster, person_id: str, now_ms: int) -> CallRoster:
    p = roster.participants.get(person_id)
    out = replace(roster, waiting=tuple(k for k in roster.waiting if k.person_id != person_id))
    if p is None:
        return out
    for session_id in p.sessions:
        out = leave(out, person_id, session_id, now_ms)
    return out


def end_all(roster: CallRoster, now_ms: int) -> CallRoster:
    """The call ended: every session leaves, the waiting room empties."""
    out = replace(roster, waiting=())
    for person_id in present(roster):
        out = _leave_all(out, person_id, now_ms)
    return out


# -- admin actions ----------------------------------------------------------------------------


def admit(roster: CallRoster, actor_id: str, person_id: str, now_ms: int) -> CallRoster:
    require_admin(roster, actor_id, "admit people from the waiting room")
    knock = _knock(roster, person_id)
    return _enter(roster, person_id, knock.session_id, now_ms)


def admit_all(roster: CallRoster, actor_id: str, now_ms: int) -> CallRoster:
    require_admin(roster, actor_id, "admit people from the waiting room")
    return _admit_everyone(roster, now_ms)


def _admit_everyone(roster: CallRoster, now_ms: int) -> CallRoster:
    out = roster
    for knock in roster.waiting:
        out = _enter(out, knock.person_id, knock.session_id, now_ms)
    return out


def refuse(roster: CallRoster, actor_id: str, person_id: str) -> CallRoster:
    require_admin(roster, actor_id, "refuse people in the waiting room")
    _knock(roster, person_id)
    return replace(
        roster,
        waiting=tuple(k for k in roster.waiting if k.person_id != person_id),
        excluded={**roster.excluded, person_id: Exclusion.REFUSED},
    )


def _knock(roster: CallRoster, person_id: str) -> Knock:
    for k in roster.waiting:
        if k.person_id == person_id:
            return k
    raise CallError(CallCode.NOT_FOUND, f"{person_id} is not in the waiting room")


def remove(roster: CallRoster, actor_id: str, person_id: str, now_ms: int) -> CallRoster:
    """Put someone out of the call for the rest of it (until ``allow_back``)."""
    require_admin(roster, actor_id, "remove participants")
    require_invitee(roster, person_id)
    require_not_admin(roster, person_id, "removed")
    out = _leave_all(roster, person_id, now_ms)
    return replace(out, excluded={**out.excluded, person_id: Exclusion.REMOVED})


def allow_back(roster: CallRoster, actor_id: str, person_id: str) -> CallRoster:
    require_admin(roster, actor_id, "let removed or refused people back")
    require_invitee(roster, person_id)
    return replace(roster, excluded={k: v for k, v in roster.excluded.items() if k != person_id})


def make_admin(roster: CallRoster, actor_id: str, person_id: str) -> CallRoster:
    require_admin(roster, actor_id, "make co-admins")
    invitee = require_invitee(roster, person_id)
    if invitee.category is not Category.STAFF:
        raise CallError(CallCode.NOT_STAFF, f"{person_id} is a {invitee.category}, not staff")
    if invitee.blocked:
        raise CallError(CallCode.BLOCKED, f"{person_id} is blocked in this call")
    return replace(roster, admins=roster.admins | {person_id})


def revoke_admin(roster: CallRoster, actor_id: str, person_id: str) -> CallRoster:
    """Roster part only: ``permissions.demote`` also stops media the new role may not use."""
    require_admin(roster, actor_id, "demote co-admins")
    require_invitee(roster, person_id)
    if person_id == roster.owner_id:
        raise CallError(CallCode.OWNER, f"{person_id} is the lesson's teacher")
    return replace(roster, admins=roster.admins - {person_id})


def set_waiting_room(roster: CallRoster, actor_id: str, on: bool, now_ms: int) -> CallRoster:
    require_admin(roster, actor_id, "turn the waiting room on or off")
    out = replace(roster, waiting_room=on)
    return out if on else _admit_everyone(out, now_ms)


def require_not_admin(roster: CallRoster, person_id: str, what: str) -> None:
    """Admins are never removed, muted or restricted; the owner says so by name."""
    if person_id == roster.owner_id:
        raise CallError(CallCode.OWNER, f"the lesson's teacher {person_id} cannot be {what}")
    if person_id in roster.admins:
        raise CallError(CallCode.TARGET_IS_ADMIN, f"admin {person_id} cannot be {what}")


# -- media ------------------------------------------------------------------------------------


def record_media(roster: CallRoster, person_id: str, kind: MediaKind, on: bool) -> CallRoster:
    """Unchecked: ``permissions.set_media`` checks the capability and calls this."""
    p = roster.participants.get(person_id)
    if p is None or not p.joined:
        if not on:
            return roster
        raise CallError(CallCode.NOT_JOINED, f"{person_id} is not in the call")
    if p.media.is_on(kind) == on:
        return roster
    p = replace(p, media=p.media.with_(kind, on))
    return replace(roster, participants={**roster.participants, person_id: p})
