"""Reconciliation: the chats the roster wants, and the steps from what the messenger has.

Everything that decides the membership of a journal-bound chat lives here, as two pure
functions (DESIGN.md, "The roster decides membership"):

``desired(live, links, bindings)`` -> which chats should exist, who is in each, who admins it.
``plan(desired, actual)`` -> the actions that turn the messenger's state into that.

No I/O: the journal adapter feeds in the live roster, the account links and the subject
chat bindings, applies the actions as ordinary membership events, and can run it again at
any time. The same inputs always give the same output, in the same order, so a webhook
delivered twice, late or out of order changes nothing extra.

Rules for what counts in the roster:

- An entity counts only if everything it references is live: an enrollment whose class or
  student is absent is not there, and so is a teaching assignment whose subject is absent.
  School and academic-year references are not checked; they don't decide membership.
- A person counts only in their own role: a student named as a homeroom teacher, or a
  teacher named in a guardianship as the parent, is ignored there.
- A sub-group counts only for its own class, and only its students enrolled in that class.

Rules for the chats:

- R8: a class with a live homeroom teacher has three chats: the class (its students), its
  parents (guardians of those students) and its colleagues (teachers with a teaching
  assignment in the class). The homeroom teacher is the admin of all three. A class without
  one has none of them.
- R9: every subject chat binding is a chat. Its members are the class's students (or the
  sub-group's), the binding's teacher as admin, plus ``added`` minus ``removed``; ``removed``
  wins over everything, the teacher included. The journal owns a binding's lifecycle, so a
  binding that no longer fits the roster (teacher gone or not teaching that subject in that
  class, to any group; class, subject or group absent) still exists with whatever members
  still resolve; the mismatch is reported as a ``BindingWarning`` rather than by dropping
  people.
- An account maps to its messenger user through ``links``; an account not linked yet is
  *pending* in each chat it would be in. Several accounts linked to one user are one
  member, and admin through any account makes the user an admin.
- A chat is desired whether or not anyone has linked yet, so the journal can show it with
  its pending count; it is created empty and people join as they link.

Rules for the plan, per chat in key order: create if missing, rename if the name changed,
then grant admin (joins of admins, promotions), then join members, then demotions, then
leaves, so a chat never loses its last admin before the next one is in. A managed chat that
is no longer desired is emptied (members first, admins last) and archived. People who leave
keep their messages; that is the caller's concern.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar, assert_never

from sferumd.services.roster.model import (
    Enrollment,
    Entity,
    Guardianship,
    Person,
    Role,
    SchoolClass,
    SubGroup,
    Subject,
    TeachingAssignment,
)

UserId = str  # a messenger user
AccountId = str  # a journal account: Person.sourced_id

ChatKind = Literal["class", "parents", "colleagues", "subject"]
ClassChatKind = Literal["class", "parents", "colleagues"]
CHAT_KINDS: tuple[ChatKind, ...] = ("class", "parents", "colleagues", "subject")
CLASS_CHAT_KINDS: tuple[ClassChatKind, ...] = ("class", "parents", "colleagues")


@dataclass(frozen=True, slots=True, order=True)
class ChatKey:
    """Names a managed chat: the class id for class chats, the binding's key for subject ones.

    Written as ``"class:C-7V"`` or ``"subject:<binding key>"`` (``str`` / ``parse``).
    """

    kind: ChatKind
    ref: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.ref}"

    @classmethod
    def parse(cls, text: str) -> ChatKey:
        kind, _, ref = text.partition(":")
        for known in CHAT_KINDS:  # a loop rather than a cast, so the kind stays checked
            if kind == known and ref:
                return cls(known, ref)
        raise ValueError(f"not a chat key: {text!r}")


@dataclass(frozen=True, slots=True)
class SubjectChat:
    """A subject chat the journal created (R9), with the manual edits that must survive."""

    chat_key: str
    class_id: str
    subject_id: str
    teacher_id: AccountId
    group_id: str | None
    name: str
    added: frozenset[UserId] = frozenset()
    removed: frozenset[UserId] = frozenset()

    @property
    def key(self) -> ChatKey:
        return ChatKey("subject", self.chat_key)


@dataclass(frozen=True, slots=True)
class DesiredChat:
    key: ChatKey
    kind: ChatKind
    name: str
    class_id: str
    subject_id: str | None
    admins: frozenset[UserId]
    members: frozenset[UserId]  # admins included
    pending: frozenset[AccountId]  # would be members once linked


WarningCode = Literal[
    "class_missing", "subject_missing", "group_missing", "teacher_missing", "not_teaching"
]


@dataclass(frozen=True, slots=True, order=True)
class BindingWarning:
    """A subject chat binding that doesn't fit the live roster; its chat is kept anyway."""

    key: ChatKey
    code: WarningCode
    detail: str


@dataclass(frozen=True, slots=True)
class Desired:
    chats: Mapping[ChatKey, DesiredChat]  # in key order
    warnings: tuple[BindingWarning, ...]  # sorted


@dataclass(frozen=True, slots=True)
class ActualChat:
    """What the messenger has for a managed chat: its name and members (user -> is admin)."""

    key: ChatKey
    name: str
    members: Mapping[UserId, bool]


@dataclass(frozen=True, slots=True)
class CreateChat:
    key: ChatKey
    kind: ChatKind
    name: str


@dataclass(frozen=True, slots=True)
class Rename:
    key: ChatKey
    name: str


@dataclass(frozen=True, slots=True)
class Join:
    key: ChatKey
    user_id: UserId
    admin: bool


@dataclass(frozen=True, slots=True)
class SetAdmin:
    key: ChatKey
    user_id: UserId
    admin: bool


@dataclass(frozen=True, slots=True)
class Leave:
    key: ChatKey
    user_id: UserId


@dataclass(frozen=True, slots=True)
class Archive:
    """The chat is no longer desired and now empty; the caller marks it archived."""

    key: ChatKey


Action = CreateChat | Rename | Join | SetAdmin | Leave | Archive

ChatNamer = Callable[[ClassChatKind, str], str]

# Russian defaults; a localised deployment passes its own ``names`` to ``desired``.
CLASS_CHAT_NAMES: dict[ClassChatKind, str] = {
    "class": "{class_name}",
    "parents": "{class_name} — родители",
    "colleagues": "{class_name} — учителя",
}


def chat_name(kind: ClassChatKind, class_name: str) -> str:
    """``"7В"``, ``"7В — родители"``, ``"7В — учителя"``."""
    return CLASS_CHAT_NAMES[kind].format(class_name=class_name)


# -- the roster, indexed once -----------------------------------------------------------------

E = TypeVar("E", bound=Entity)


def _entities(live: Mapping[str, Mapping[str, Entity]], kind: str, cls: type[E]) -> dict[str, E]:
    # The isinstance filter keeps a mis-filed entity from being read as another kind.
    return {sid: e for sid, e in live.get(kind, {}).items() if isinstance(e, cls)}


@dataclass(frozen=True, slots=True)
class _Roster:
    """The live roster with every dangling or wrong-role reference already dropped."""

    classes: dict[str, SchoolClass]
    subjects: frozenset[str]
    groups: dict[str, SubGroup]
    students_of: dict[str, frozenset[AccountId]]  # class -> enrolled students
    parents_of: dict[AccountId, frozenset[AccountId]]  # student -> guardians
    teachers_of: dict[str, frozenset[AccountId]]  # class -> teachers with an assignment
    teaches: frozenset[tuple[AccountId, str, str]]  # (teacher, class, subject)
    roles: dict[AccountId, Role]

    def has_role(self, account: AccountId | None, role: Role) -> bool:
        return account is not None and self.roles.get(account) == role

    def homeroom_teacher(self, class_id: str) -> AccountId | None:
        teacher = self.classes[class_id].homeroom_teacher_id
        return teacher if self.has_role(teacher, "teacher") else None

    def guardians(self, students: Iterable[AccountId]) -> frozenset[AccountId]:
        return frozenset(p for s in students for p in self.parents_of.get(s, ()))

    def group_students(self, group_id: str, class_id: str) -> frozenset[AccountId] | None:
        """The group's students enrolled in the class; None if no such group in that class."""
        group = self.groups.get(group_id)
        if group is None or group.class_id != class_id:
            return None
        return frozenset(group.student_ids) & self.students_of.get(class_id, frozenset())


def _index(live: Mapping[str, Mapping[str, Entity]]) -> _Roster:
    classes = _entities(live, "class", SchoolClass)
    subjects = frozenset(_entities(live, "subject", Subject))
    roles = {sid: p.role for sid, p in _entities(live, "person", Person).items()}
    groups = _entities(live, "group", SubGroup)

    students_of: defaultdict[str, set[AccountId]] = defaultdict(set)
    for e in _entities(live, "enrollment", Enrollment).values():
        if e.class_id in classes and roles.get(e.student_id) == "student":
            students_of[e.class_id].add(e.student_id)

    parents_of: defaultdict[AccountId, set[AccountId]] = defaultdict(set)
    for g in _entities(live, "guardianship", Guardianship).values():
        if roles.get(g.parent_id) == "parent" and roles.get(g.student_id) == "student":
            parents_of[g.student_id].add(g.parent_id)

    teachers_of: defaultdict[str, set[AccountId]] = defaultdict(set)
    teaches: set[tuple[AccountId, str, str]] = set()
    for t in _entities(live, "teaching", TeachingAssignment).values():
        if _assignment_counts(t, classes, subjects, groups, roles):
            teachers_of[t.class_id].add(t.teacher_id)
            teaches.add((t.teacher_id, t.class_id, t.subject_id))

    return _Roster(
        classes=classes,
        subjects=subjects,
        groups=groups,
        students_of={c: frozenset(s) for c, s in students_of.items()},
        parents_of={s: frozenset(p) for s, p in parents_of.items()},
        teachers_of={c: frozenset(t) for c, t in teachers_of.items()},
        teaches=frozenset(teaches),
        roles=roles,
    )


def _assignment_counts(
    t: TeachingAssignment,
    classes: Mapping[str, SchoolClass],
    subjects: frozenset[str],
    groups: Mapping[str, SubGroup],
    roles: Mapping[AccountId, Role],
) -> bool:
    if t.group_id is not None:
        group = groups.get(t.group_id)
        if group is None or group.class_id != t.class_id:
            return False
    return (
        roles.get(t.teacher_id) == "teacher" and t.class_id in classes and t.subject_id in subjects
    )


# -- desired membership -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Audience:
    """Who a chat is for, as journal accounts, before links turn them into users."""

    admins: frozenset[AccountId]
    members: frozenset[AccountId]
    added: frozenset[UserId] = frozenset()
    removed: frozenset[UserId] = frozenset()

    def resolve(
        self, links: Mapping[AccountId, UserId]
    ) -> tuple[frozenset[UserId], frozenset[UserId], frozenset[AccountId]]:
        """(admins, members with admins, pending accounts); ``removed`` has the last word."""
        admins = frozenset(links[a] for a in self.admins if a in links) - self.removed
        linked = frozenset(links[a] for a in self.members if a in links)
        members = (linked | self.added | admins) - self.removed
        pending = frozenset(a for a in self.admins | self.members if a not in links)
        return admins, members, pending


def _chat(
    key: ChatKey,
    name: str,
    class_id: str,
    subject_id: str | None,
    audience: _Audience,
    links: Mapping[AccountId, UserId],
) -> DesiredChat:
    admins, members, pending = audience.resolve(links)
    return DesiredChat(key, key.kind, name, class_id, subject_id, admins, members, pending)


def _class_chats(
    roster: _Roster, class_id: str, links: Mapping[AccountId, UserId], names: ChatNamer
) -> list[DesiredChat]:
    teacher = roster.homeroom_teacher(class_id)
    if teacher is None:
        return []  # R8 hangs all three chats on the homeroom teacher
    students = roster.students_of.get(class_id, frozenset())
    audiences: dict[ClassChatKind, frozenset[AccountId]] = {
        "class": students,
        "parents": roster.guardians(students),
        "colleagues": roster.teachers_of.get(class_id, frozenset()),
    }
    class_name = roster.classes[class_id].name
    return [
        _chat(
            ChatKey(kind, class_id),
            names(kind, class_name),
            class_id,
            None,
            _Audience(frozenset({teacher}), accounts),
            links,
        )
        for kind, accounts in audiences.items()
    ]


def _binding_warnings(roster: _Roster, b: SubjectChat) -> list[BindingWarning]:
    checks: list[tuple[bool, WarningCode, str]] = [
        (b.class_id in roster.classes, "class_missing", f"class {b.class_id} is not in the roster"),
        (b.subject_id in roster.subjects, "subject_missing", f"no subject {b.subject_id}"),
        (
            b.group_id is None or roster.group_students(b.group_id, b.class_id) is not None,
            "group_missing",
            f"no group {b.group_id} in class {b.class_id}",
        ),
        (
            roster.has_role(b.teacher_id, "teacher"),
            "teacher_missing",
            f"{b.teacher_id} is not a teacher in the roster",
        ),
        (
            (b.teacher_id, b.class_id, b.subject_id) in roster.teaches,
            "not_teaching",
            f"{b.teacher_id} does not teach {b.subject_id} in class {b.class_id}",
        ),
    ]
    failed = [BindingWarning(b.key, code, detail) for ok, code, detail in checks if not ok]
    # One root cause, one warning: a missing teacher, class or subject also "doesn't teach".
    if {w.code for w in failed} & {"class_missing", "subject_missing", "teacher_missing"}:
        failed = [w for w in failed if w.code != "not_teaching"]
    return failed


def _subject_chat(
    roster: _Roster, b: SubjectChat, links: Mapping[AccountId, UserId]
) -> DesiredChat:
    if b.group_id is None:
        students = roster.students_of.get(b.class_id, frozenset())
    else:
        # A group that isn't there has no students: better too few than the wrong ones.
        students = roster.group_students(b.group_id, b.class_id) or frozenset()
    teacher = frozenset({b.teacher_id}) if roster.has_role(b.teacher_id, "teacher") else frozenset()
    audience = _Audience(teacher, students, b.added, b.removed)
    return _chat(b.key, b.name, b.class_id, b.subject_id, audience, links)


RosterIndex = _Roster


def index(live: Mapping[str, Mapping[str, Entity]]) -> RosterIndex:
    """The roster indexed for ``desired``; reusable until the roster changes (links and
    bindings don't touch it), which makes reconciling after a link cheap."""
    return _index(live)


def desired(
    live: Mapping[str, Mapping[str, Entity]],
    links: Mapping[AccountId, UserId],
    bindings: Iterable[SubjectChat],
    names: ChatNamer = chat_name,
    roster: RosterIndex | None = None,
) -> Desired:
    """The journal-bound chats the roster calls for, with their admins, members and pending.
    ``roster``, if given, must be ``index(live)`` of this same ``live``."""
    roster = roster if roster is not None else _index(live)
    chats: dict[ChatKey, DesiredChat] = {}
    for class_id in roster.classes:
        chats.update((c.key, c) for c in _class_chats(roster, class_id, links, names))
    warnings: list[BindingWarning] = []
    for b in bindings:
        if b.key in chats:
            # Two bindings under one key would make the result depend on their order.
            raise ValueError(f"two subject chat bindings share the key {b.chat_key!r}")
        chats[b.key] = _subject_chat(roster, b, links)
        warnings.extend(_binding_warnings(roster, b))
    return Desired({k: chats[k] for k in sorted(chats)}, tuple(sorted(warnings)))


# -- the plan ---------------------------------------------------------------------------------


def plan(
    desired: Mapping[ChatKey, DesiredChat], actual: Mapping[ChatKey, ActualChat]
) -> list[Action]:
    """The actions that make ``actual`` equal ``desired``; empty when they already agree."""
    actions: list[Action] = []
    for key in sorted(desired.keys() | actual.keys()):
        want, have = desired.get(key), actual.get(key)
        if want is None:
            assert have is not None  # the key came from one of the two
            actions.extend(_retire(key, have))
        elif have is None:
            actions.append(CreateChat(key, want.kind, want.name))
            actions.extend(_converge(want, ActualChat(key, want.name, {})))
        else:
            actions.extend(_converge(want, have))
    return actions


def _converge(want: DesiredChat, have: ActualChat) -> list[Action]:
    key, now = want.key, have.members
    actions: list[Action] = []
    if have.name != want.name:
        actions.append(Rename(key, want.name))
    for user in sorted(want.admins):  # admins first: the chat is never left without one
        if user not in now:
            actions.append(Join(key, user, admin=True))
        elif not now[user]:
            actions.append(SetAdmin(key, user, admin=True))
    actions.extend(
        Join(key, u, admin=False) for u in sorted(want.members - want.admins - now.keys())
    )
    actions.extend(
        SetAdmin(key, u, admin=False)
        for u in sorted(now)
        if now[u] and u in want.members and u not in want.admins
    )
    actions.extend(Leave(key, u) for u in sorted(now.keys() - want.members))
    return actions


def _retire(key: ChatKey, have: ActualChat) -> list[Action]:
    now = have.members
    members = sorted(u for u, admin in now.items() if not admin)
    admins = sorted(u for u, admin in now.items() if admin)
    return [*(Leave(key, u) for u in members + admins), Archive(key)]


def apply_actions(
    actual: Mapping[ChatKey, ActualChat], actions: Iterable[Action]
) -> dict[ChatKey, ActualChat]:
    """What each action means, as a pure model of the messenger: the state after ``actions``.

    Strict on purpose: an action that would do nothing (joining a member, creating a chat
    that exists) raises ``ValueError``, so a plan that isn't minimal is caught.
    """
    names = {k: c.name for k, c in actual.items()}
    members = {k: dict(c.members) for k, c in actual.items()}
    for action in actions:
        key = action.key
        if not isinstance(action, CreateChat) and key not in members:
            raise ValueError(f"{action}: no chat {key}")
        match action:
            case CreateChat(name=name):
                if key in members:
                    raise ValueError(f"{action}: the chat exists")
                names[key], members[key] = name, {}
            case Rename(name=name):
                if names[key] == name:
                    raise ValueError(f"{action}: already named so")
                names[key] = name
            case Join(user_id=user, admin=admin):
                if user in members[key]:
                    raise ValueError(f"{action}: already a member")
                members[key][user] = admin
            case SetAdmin(user_id=user, admin=admin):
                if user not in members[key] or members[key][user] == admin:
                    raise ValueError(f"{action}: not a member, or no change")
                members[key][user] = admin
            case Leave(user_id=user):
                if members[key].pop(user, None) is None:
                    raise ValueError(f"{action}: not a member")
            case Archive():
                if members[key]:
                    raise ValueError(f"{action}: the chat still has members")
                del members[key], names[key]
            case _:
                assert_never(action)
    return {k: ActualChat(k, names[k], members[k]) for k in sorted(members)}
