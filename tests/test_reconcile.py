"""Roster reconciliation: desired chats from (roster, links, bindings) and the plan to get there.

Pure functions only. The properties run over random small schools with dangling references,
wrong roles, shared and missing links and manual edits; the examples pin R8 and R9.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sferumd.services.roster.model import (
    KIND_OF,
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
from sferumd.services.roster.reconcile import (
    Action,
    ActualChat,
    Archive,
    BindingWarning,
    ChatKey,
    CreateChat,
    Desired,
    Join,
    Leave,
    Rename,
    SetAdmin,
    SubjectChat,
    apply_actions,
    chat_name,
    desired,
    plan,
)

Live = dict[str, dict[str, Entity]]
K = TypeVar("K")
V = TypeVar("V")
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- building rosters -------------------------------------------------------------------------


def roster(*entities: Entity) -> Live:
    live: Live = {}
    for e in entities:
        live.setdefault(KIND_OF[type(e)], {})[e.sourced_id] = e
    return live


def person(sid: str, role: Role) -> Person:
    return Person(sid, 1, "SCH", role, sid, sid)


def klass(sid: str, name: str, homeroom: str | None) -> SchoolClass:
    return SchoolClass(sid, 1, "SCH", name, homeroom)


def enroll(student: str, class_id: str) -> Enrollment:
    return Enrollment(f"E-{student}-{class_id}", 1, student, class_id)


def guard(parent: str, student: str) -> Guardianship:
    return Guardianship(f"G-{parent}-{student}", 1, parent, student)


def teach(
    teacher: str, class_id: str, subject: str, group: str | None = None
) -> TeachingAssignment:
    return TeachingAssignment(
        f"TA-{teacher}-{class_id}-{subject}-{group}", 1, teacher, class_id, subject, group
    )


def without(live: Live, kind: str, sid: str) -> Live:
    return {
        k: {i: e for i, e in ents.items() if not (k == kind and i == sid)}
        for k, ents in live.items()
    }


def materialise(d: Desired) -> dict[ChatKey, tuple[str, dict[str, bool]]]:
    """What the messenger should hold for ``d``: name and members with admin flags."""
    return {k: (c.name, {u: u in c.admins for u in c.members}) for k, c in d.chats.items()}


def as_state(actual: Mapping[ChatKey, ActualChat]) -> dict[ChatKey, tuple[str, dict[str, bool]]]:
    return {k: (c.name, dict(c.members)) for k, c in actual.items()}


def converge(
    d: Desired, actual: Mapping[ChatKey, ActualChat] | None = None
) -> dict[ChatKey, ActualChat]:
    return apply_actions(actual or {}, plan(d.chats, actual or {}))


CLASS = ChatKey("class", "C-7V")
PARENTS = ChatKey("parents", "C-7V")
COLLEAGUES = ChatKey("colleagues", "C-7V")
HISTORY = ChatKey("subject", "B-hist")


def school_7v() -> Live:
    """7В: homeroom teacher T-hr (teaches maths), history teacher T-hist, students S1..S3 with
    parents P1 (of S1 and S2) and P3 (of S3), an English group G-en of S1 and S2."""
    return roster(
        klass("C-7V", "7В", "T-hr"),
        Subject("SUB-math", 1, "SCH", "Математика"),
        Subject("SUB-hist", 1, "SCH", "История"),
        Subject("SUB-en", 1, "SCH", "Английский"),
        person("T-hr", "teacher"),
        person("T-hist", "teacher"),
        *(person(s, "student") for s in ("S1", "S2", "S3")),
        person("P1", "parent"),
        person("P3", "parent"),
        *(enroll(s, "C-7V") for s in ("S1", "S2", "S3")),
        guard("P1", "S1"),
        guard("P1", "S2"),
        guard("P3", "S3"),
        SubGroup("G-en", 1, "C-7V", "Английский, гр. 1", ("S1", "S2")),
        teach("T-hr", "C-7V", "SUB-math"),
        teach("T-hist", "C-7V", "SUB-hist"),
        teach("T-hist", "C-7V", "SUB-en", "G-en"),
    )


def history_chat(**changes: object) -> SubjectChat:
    b = SubjectChat("B-hist", "C-7V", "SUB-hist", "T-hist", None, "История 7В")
    return replace(b, **changes)  # type: ignore[arg-type]


EVERYONE = {a: f"u-{a}" for a in ("T-hr", "T-hist", "S1", "S2", "S3", "P1", "P3")}


# -- R8: the homeroom teacher's three chats ---------------------------------------------------


def test_r8_homeroom_teacher_linking_joins_three_chats_as_admin() -> None:
    live = school_7v()
    others = {a: u for a, u in EVERYONE.items() if a != "T-hr"}
    before = desired(live, others, [])
    assert set(before.chats) == {CLASS, PARENTS, COLLEAGUES}
    assert all("T-hr" in c.pending and not c.admins for c in before.chats.values())
    actual = converge(before)

    after = desired(live, {**others, "T-hr": "u-hr"}, [])
    assert plan(after.chats, actual) == [
        Join(CLASS, "u-hr", admin=True),
        Join(COLLEAGUES, "u-hr", admin=True),
        Join(PARENTS, "u-hr", admin=True),
    ]


def test_r8_members_and_names_of_the_three_chats() -> None:
    d = desired(school_7v(), EVERYONE, [])
    cls, parents, colleagues = d.chats[CLASS], d.chats[PARENTS], d.chats[COLLEAGUES]
    assert (cls.name, parents.name, colleagues.name) == ("7В", "7В — родители", "7В — учителя")
    assert cls.members == {"u-T-hr", "u-S1", "u-S2", "u-S3"}
    assert parents.members == {"u-T-hr", "u-P1", "u-P3"}
    assert colleagues.members == {"u-T-hr", "u-T-hist"}
    assert all(c.admins == {"u-T-hr"} and not c.pending for c in d.chats.values())
    assert all(c.class_id == "C-7V" and c.subject_id is None for c in d.chats.values())


def test_a_new_chat_is_created_before_anyone_joins_and_its_admin_joins_first() -> None:
    d = desired(school_7v(), EVERYONE, [])
    actions = [a for a in plan(d.chats, {}) if a.key == CLASS]
    assert actions == [
        CreateChat(CLASS, "class", "7В"),
        Join(CLASS, "u-T-hr", admin=True),
        Join(CLASS, "u-S1", admin=False),
        Join(CLASS, "u-S2", admin=False),
        Join(CLASS, "u-S3", admin=False),
    ]


def test_class_without_homeroom_teacher_has_no_class_chats() -> None:
    live = school_7v()
    for homeroom in (None, "T-nobody", "S1", "P1"):  # none, dangling, wrong roles
        live["class"]["C-7V"] = klass("C-7V", "7В", homeroom)
        assert desired(live, EVERYONE, []).chats == {}


def test_subject_chats_live_on_without_a_homeroom_teacher() -> None:
    live = school_7v()
    live["class"]["C-7V"] = klass("C-7V", "7В", None)
    assert list(desired(live, EVERYONE, [history_chat()]).chats) == [HISTORY]


def test_dangling_and_wrong_role_references_are_ignored() -> None:
    live = school_7v()
    extra = roster(
        enroll("S-ghost", "C-7V"),  # no such student
        enroll("S1", "C-ghost"),  # no such class
        enroll("P1", "C-7V"),  # a parent enrolled as a student
        guard("P-ghost", "S1"),  # no such parent
        guard("T-hist", "S1"),  # a teacher named as a parent
        teach("S2", "C-7V", "SUB-math"),  # a student named as a teacher
        teach("T-x", "C-7V", "SUB-ghost"),  # no such subject
        person("T-x", "teacher"),
        teach("T-y", "C-7V", "SUB-math", "G-ghost"),  # no such group
        person("T-y", "teacher"),
    )
    for kind, ents in extra.items():
        live.setdefault(kind, {}).update(ents)
    links = {**EVERYONE, "T-x": "u-T-x", "T-y": "u-T-y", "S-ghost": "u-ghost"}
    assert desired(live, links, []) == desired(school_7v(), EVERYONE, [])


# -- R9: subject chats ------------------------------------------------------------------------


def test_r9_subject_chat_members_teacher_admin_and_pending() -> None:
    links = {a: u for a, u in EVERYONE.items() if a != "S3"}
    chat = desired(school_7v(), links, [history_chat()]).chats[HISTORY]
    assert (chat.kind, chat.name, chat.class_id, chat.subject_id) == (
        "subject",
        "История 7В",
        "C-7V",
        "SUB-hist",
    )
    assert chat.admins == {"u-T-hist"}
    assert chat.members == {"u-T-hist", "u-S1", "u-S2"}
    assert chat.pending == {"S3"}


def test_r9_student_who_links_later_joins_the_existing_subject_chat() -> None:
    live, bindings = school_7v(), [history_chat()]
    links = {a: u for a, u in EVERYONE.items() if a != "S3"}
    actual = converge(desired(live, links, bindings))

    later = desired(live, {**links, "S3": "u-S3"}, bindings)
    assert plan(later.chats, actual) == [
        Join(CLASS, "u-S3", admin=False),
        Join(HISTORY, "u-S3", admin=False),
    ]


def test_r9_manual_add_and_remove_survive_a_rerun() -> None:
    live = school_7v()
    actual = converge(desired(live, EVERYONE, [history_chat()]))
    edited = [history_chat(added=frozenset({"u-guest"}), removed=frozenset({"u-S2"}))]

    d = desired(live, EVERYONE, edited)
    assert plan(d.chats, actual) == [
        Join(HISTORY, "u-guest", admin=False),
        Leave(HISTORY, "u-S2"),
    ]
    actual = converge(d, actual)
    assert plan(desired(live, EVERYONE, edited).chats, actual) == []
    # S2 re-enrolling, or linking anew, doesn't bring them back while the binding says so.
    again = desired(live, {**EVERYONE, "S2": "u-S2"}, edited)
    assert "u-S2" not in again.chats[HISTORY].members
    assert "u-S2" in again.chats[CLASS].members  # the removal is for that chat only


def test_r9_group_chat_has_only_group_students_enrolled_in_the_class() -> None:
    live = school_7v()
    live["person"]["S4"] = person("S4", "student")  # in no class
    live["group"]["G-en"] = SubGroup("G-en", 2, "C-7V", "Английский", ("S1", "S4", "S-ghost"))
    b = SubjectChat("B-en", "C-7V", "SUB-en", "T-hist", "G-en", "Английский 7В")
    d = desired(live, {**EVERYONE, "S4": "u-S4"}, [b])
    assert d.chats[b.key].members == {"u-T-hist", "u-S1"}
    assert d.warnings == ()


def test_r9_binding_with_missing_group_has_no_students_and_warns() -> None:
    b = SubjectChat("B-en", "C-7V", "SUB-en", "T-hist", "G-gone", "Английский 7В")
    d = desired(school_7v(), EVERYONE, [b])
    assert d.chats[b.key].members == {"u-T-hist"}
    assert [w.code for w in d.warnings] == ["group_missing"]


def test_r9_a_group_of_another_class_is_not_there() -> None:
    live = school_7v()
    live["class"]["C-8A"] = klass("C-8A", "8А", "T-hist")
    live["group"]["G-8"] = SubGroup("G-8", 1, "C-8A", "8А, гр. 1", ("S1", "S2"))
    live["teaching"]["TA-8"] = teach("T-hist", "C-7V", "SUB-en", "G-8")
    b = SubjectChat("B-en", "C-7V", "SUB-en", "T-hist", "G-8", "Английский 7В")
    d = desired(live, EVERYONE, [b])
    assert d.chats[b.key].members == {"u-T-hist"}  # not S1 and S2 through 8А's group
    assert [w.code for w in d.warnings] == ["group_missing"]


def test_r9_removing_the_bindings_own_teacher_wins() -> None:
    d = desired(school_7v(), EVERYONE, [history_chat(removed=frozenset({"u-T-hist"}))])
    assert d.chats[HISTORY].admins == frozenset()
    assert d.chats[HISTORY].members == {"u-S1", "u-S2", "u-S3"}


def test_r9_binding_of_a_teacher_who_does_not_teach_there_is_kept_with_a_warning() -> None:
    b = history_chat(teacher_id="T-hr")  # T-hr teaches maths, not history
    d = desired(school_7v(), EVERYONE, [b])
    assert d.chats[HISTORY].admins == {"u-T-hr"}
    assert d.chats[HISTORY].members == {"u-T-hr", "u-S1", "u-S2", "u-S3"}
    assert d.warnings == (
        BindingWarning(HISTORY, "not_teaching", "T-hr does not teach SUB-hist in class C-7V"),
    )


def test_r9_binding_whose_teacher_left_the_roster_keeps_its_students() -> None:
    live = without(school_7v(), "person", "T-hist")
    d = desired(live, EVERYONE, [history_chat()])
    assert d.chats[HISTORY].admins == frozenset()
    assert d.chats[HISTORY].members == {"u-S1", "u-S2", "u-S3"}
    assert [w.code for w in d.warnings] == ["teacher_missing"]  # not also "not_teaching"


def test_deleted_binding_empties_and_archives_its_chat() -> None:
    live = school_7v()
    actual = converge(desired(live, EVERYONE, [history_chat()]))
    actions = [a for a in plan(desired(live, EVERYONE, []).chats, actual) if a.key == HISTORY]
    # Plain members leave first and the admin last, then the caller may archive it.
    assert actions == [
        Leave(HISTORY, "u-S1"),
        Leave(HISTORY, "u-S2"),
        Leave(HISTORY, "u-S3"),
        Leave(HISTORY, "u-T-hist"),
        Archive(HISTORY),
    ]


def test_duplicate_binding_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="B-hist"):
        desired(school_7v(), EVERYONE, [history_chat(), history_chat(name="другое")])


# -- removal, admin changes, names --------------------------------------------------------


def test_removal_from_the_roster_makes_people_leave() -> None:
    live = school_7v()
    bindings = [history_chat()]
    actual = converge(desired(live, EVERYONE, bindings))

    gone = without(live, "enrollment", "E-S3-C-7V")
    assert plan(desired(gone, EVERYONE, bindings).chats, actual) == [
        Leave(CLASS, "u-S3"),
        Leave(PARENTS, "u-P3"),  # P3's only child left the class
        Leave(HISTORY, "u-S3"),
    ]


def test_deleted_class_archives_its_three_chats() -> None:
    live = school_7v()
    actual = converge(desired(live, EVERYONE, []))
    actions = plan(desired(without(live, "class", "C-7V"), EVERYONE, []).chats, actual)
    assert [a for a in actions if isinstance(a, Archive)] == [
        Archive(CLASS),
        Archive(COLLEAGUES),
        Archive(PARENTS),
    ]
    assert apply_actions(actual, actions) == {}


def test_new_homeroom_teacher_is_admin_before_the_old_one_steps_down() -> None:
    live = school_7v()
    actual = converge(desired(live, EVERYONE, []))
    live["class"]["C-7V"] = klass("C-7V", "7В", "T-hist")
    actions = [a for a in plan(desired(live, EVERYONE, []).chats, actual) if a.key == COLLEAGUES]
    # T-hr still teaches maths in 7В, so stays a colleague, no longer the admin.
    assert actions == [
        SetAdmin(COLLEAGUES, "u-T-hist", admin=True),
        SetAdmin(COLLEAGUES, "u-T-hr", admin=False),
    ]
    class_actions = [a for a in plan(desired(live, EVERYONE, []).chats, actual) if a.key == CLASS]
    assert class_actions == [Join(CLASS, "u-T-hist", admin=True), Leave(CLASS, "u-T-hr")]


def test_renamed_class_renames_its_chats() -> None:
    live = school_7v()
    actual = converge(desired(live, EVERYONE, []))
    live["class"]["C-7V"] = klass("C-7V", "8В", "T-hr")
    assert plan(desired(live, EVERYONE, []).chats, actual) == [
        Rename(CLASS, "8В"),
        Rename(COLLEAGUES, "8В — учителя"),
        Rename(PARENTS, "8В — родители"),
    ]


def test_chat_names_can_be_localised() -> None:
    names = {"class": "{}", "parents": "{} — parents", "colleagues": "{} — teachers"}
    d = desired(school_7v(), {}, [], names=lambda kind, cls: names[kind].format(cls))
    assert [c.name for c in d.chats.values()] == ["7В", "7В — teachers", "7В — parents"]
    assert chat_name("parents", "5А") == "5А — родители"


def test_two_accounts_of_one_user_are_one_member_and_admin_wins() -> None:
    live = school_7v()
    live["person"]["P-hr"] = person("P-hr", "parent")  # the homeroom teacher is a parent too
    live["guardianship"]["G-x"] = guard("P-hr", "S3")
    d = desired(live, {**EVERYONE, "T-hr": "u-ann", "P-hr": "u-ann"}, [])
    parents = d.chats[PARENTS]
    assert parents.members == {"u-ann", "u-P1", "u-P3"}
    assert parents.admins == {"u-ann"}
    joins = [a for a in plan(d.chats, {}) if a.key == PARENTS and isinstance(a, Join)]
    assert joins == [
        Join(PARENTS, "u-ann", admin=True),
        Join(PARENTS, "u-P1", admin=False),
        Join(PARENTS, "u-P3", admin=False),
    ]


def test_chat_keys_round_trip_through_text() -> None:
    assert str(HISTORY) == "subject:B-hist"
    assert ChatKey.parse("class:C-7V") == CLASS
    assert ChatKey.parse("subject:a:b") == ChatKey("subject", "a:b")
    for bad in ("", "class", "class:", "lesson:L1", ":C-7V"):
        with pytest.raises(ValueError):
            ChatKey.parse(bad)


def test_apply_actions_refuses_actions_that_change_nothing() -> None:
    chat = ActualChat(CLASS, "7В", {"u1": True})
    for action in (
        CreateChat(CLASS, "class", "7В"),
        Join(CLASS, "u1", admin=False),
        SetAdmin(CLASS, "u1", admin=True),
        SetAdmin(CLASS, "u2", admin=False),
        Leave(CLASS, "u2"),
        Rename(CLASS, "7В"),
        Archive(CLASS),
        Join(PARENTS, "u1", admin=False),
    ):
        with pytest.raises(ValueError):
            apply_actions({CLASS: chat}, [action])


# -- random schools -------------------------------------------------------------------------


@dataclass
class Scenario:
    live: Live
    links: dict[str, str]
    bindings: list[SubjectChat]
    actual: dict[ChatKey, ActualChat]

    def desired(self) -> Desired:
        return desired(self.live, self.links, self.bindings)


def pick(draw: st.DrawFn, pool: list[K], max_size: int) -> list[K]:
    return draw(st.lists(st.sampled_from(pool), max_size=max_size)) if pool else []


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    teachers = [f"T{i}" for i in range(draw(st.integers(1, 4)))]
    students = [f"S{i}" for i in range(draw(st.integers(0, 8)))]
    parents = [f"P{i}" for i in range(draw(st.integers(0, 5)))]
    classes = [f"C{i}" for i in range(draw(st.integers(0, 3)))]
    subjects = [f"SUB{i}" for i in range(draw(st.integers(1, 3)))]
    people = teachers + students + parents
    anyone = [*people, "GHOST"]  # references may dangle or name the wrong role
    class_refs, subject_refs = [*classes, "C-GHOST"], [*subjects, "SUB-GHOST"]
    users = [f"u{i}" for i in range(len(people) + 1)]  # fewer users than accounts: sharing

    entities: list[Entity] = [
        *(person(t, "teacher") for t in teachers),
        *(person(s, "student") for s in students),
        *(person(p, "parent") for p in parents),
        *(Subject(s, 1, "SCH", s) for s in subjects),
    ]
    for c in classes:
        homeroom = draw(st.one_of(st.sampled_from(teachers), st.sampled_from([*anyone, None])))
        entities.append(klass(c, f"name-{c}", homeroom))
    for i in range(draw(st.integers(0, 14))):
        s, c = draw(st.sampled_from([*students, *anyone])), draw(st.sampled_from(class_refs))
        entities.append(Enrollment(f"E{i}", 1, s, c))
    for i in range(draw(st.integers(0, 10))):
        p, s = draw(st.sampled_from([*parents, *anyone])), draw(st.sampled_from(anyone))
        entities.append(Guardianship(f"GU{i}", 1, p, s))
    groups = [f"G{i}" for i in range(draw(st.integers(0, 3)))]
    for g in groups:
        members = tuple(pick(draw, [*students, "GHOST"], 5))
        entities.append(SubGroup(g, 1, draw(st.sampled_from(class_refs)), g, members))
    group_refs = [*groups, "G-GHOST"]
    for i in range(draw(st.integers(0, 8))):
        entities.append(
            TeachingAssignment(
                f"TA{i}",
                1,
                draw(st.sampled_from([*teachers, *anyone])),
                draw(st.sampled_from(class_refs)),
                draw(st.sampled_from(subject_refs)),
                draw(st.none() | st.sampled_from(group_refs)),
            )
        )
    live = roster(*entities)
    links = {a: draw(st.sampled_from(users)) for a in anyone if draw(st.booleans())}

    bindings = [
        SubjectChat(
            f"B{i}",
            draw(st.sampled_from(class_refs)),
            draw(st.sampled_from(subject_refs)),
            draw(st.sampled_from(anyone)),
            draw(st.none() | st.sampled_from(group_refs)),
            draw(st.sampled_from(["Алгебра", "История"])),
            frozenset(pick(draw, [*users, "u-guest"], 3)),
            frozenset(pick(draw, users, 3)),
        )
        for i in range(draw(st.integers(0, 3)))
    ]

    # Whatever the messenger happens to hold: some of the right chats, stale ones, strangers.
    candidates = [ChatKey(k, c) for c in class_refs for k in ("class", "parents", "colleagues")]
    candidates += [ChatKey("subject", f"B{i}") for i in range(4)]
    actual = {
        key: ActualChat(
            key,
            draw(st.sampled_from(["old name", "Алгебра", *(f"name-{c}" for c in classes)])),
            draw(
                st.dictionaries(st.sampled_from([*users, "u-stranger"]), st.booleans(), max_size=5)
            ),
        )
        for key in pick(draw, candidates, 6)
    }
    return Scenario(live, links, bindings, actual)


def shuffled(rnd: random.Random, mapping: Mapping[K, V]) -> dict[K, V]:
    """The same mapping, iterating in another order."""
    items = list(mapping.items())
    rnd.shuffle(items)
    return dict(items)


@PROPERTY
@given(scenarios())
def test_applying_the_plan_gives_exactly_the_desired_state_and_then_nothing_to_do(
    s: Scenario,
) -> None:
    d = s.desired()
    actions = plan(d.chats, s.actual)
    after = apply_actions(s.actual, actions)  # strict: raises on any action that does nothing
    assert as_state(after) == materialise(d)
    assert plan(d.chats, after) == []


@PROPERTY
@given(scenarios())
def test_a_chat_gains_its_admins_before_it_loses_any_member_or_admin(s: Scenario) -> None:
    d = s.desired()
    actions = plan(d.chats, s.actual)
    for key in d.chats:
        mine = [a for a in actions if a.key == key]
        grants = [i for i, a in enumerate(mine) if isinstance(a, Join | SetAdmin) and a.admin]
        others = [i for i, a in enumerate(mine) if _takes_or_adds_non_admin(a)]
        assert not grants or not others or max(grants) < min(others)


def _takes_or_adds_non_admin(a: Action) -> bool:
    return isinstance(a, Leave) or (isinstance(a, Join | SetAdmin) and not a.admin)


@PROPERTY
@given(scenarios(), st.randoms(use_true_random=False))
def test_nothing_depends_on_the_order_of_the_inputs(s: Scenario, rnd: random.Random) -> None:
    live = {kind: shuffled(rnd, ents) for kind, ents in shuffled(rnd, s.live).items()}
    bindings = list(s.bindings)
    rnd.shuffle(bindings)

    a, b = s.desired(), desired(live, shuffled(rnd, s.links), bindings)
    assert a == b
    assert list(a.chats) == list(b.chats)
    assert plan(a.chats, s.actual) == plan(b.chats, shuffled(rnd, s.actual))


@PROPERTY
@given(scenarios(), st.data())
def test_linking_an_account_only_moves_it_from_pending_to_members(
    s: Scenario, data: st.DataObject
) -> None:
    unlinked = sorted(a for a in s.live.get("person", {}) if a not in s.links)
    if not unlinked:
        return
    account = data.draw(st.sampled_from(unlinked))
    user = data.draw(st.sampled_from([*sorted(set(s.links.values())), "u-new"]))
    before = s.desired()
    after = desired(s.live, {**s.links, account: user}, s.bindings)
    removed = {b.key: b.removed for b in s.bindings}

    assert before.chats.keys() == after.chats.keys()
    assert before.warnings == after.warnings
    for key, was in before.chats.items():
        now = after.chats[key]
        assert now.members >= was.members and now.admins >= was.admins  # nobody removed
        assert now.pending == was.pending - {account}
        if account in was.pending and user not in removed.get(key, frozenset()):
            assert now.members == was.members | {user}
        else:
            assert now.members == was.members
        assert now.admins - was.admins <= {user}


def test_a_whole_school_runs() -> None:
    """5,000 people in 80 classes: desired and plan from nothing, then from converged."""
    live, links, bindings = big_school(classes=80, students_per_class=30, seed=7)
    assert sum(len(v) for k, v in live.items() if k == "person") >= 5000
    d = desired(live, links, bindings)
    assert len(d.chats) == 80 * 3 + len(bindings)
    actual = apply_actions({}, plan(d.chats, {}))
    assert as_state(actual) == materialise(d)
    assert plan(desired(live, links, bindings).chats, actual) == []


def big_school(
    classes: int, students_per_class: int, seed: int
) -> tuple[Live, dict[str, str], list[SubjectChat]]:
    rnd = random.Random(seed)
    subjects = [f"SUB{i}" for i in range(12)]
    teachers = [f"T{i}" for i in range(300)]
    entities: list[Entity] = [Subject(s, 1, "SCH", s) for s in subjects]
    entities += [person(t, "teacher") for t in teachers]
    bindings: list[SubjectChat] = []
    for c in range(classes):
        cid = f"C{c}"
        entities.append(klass(cid, f"{c % 11 + 1}{'АБВГДЕЖ'[c % 7]}", teachers[c]))
        for i in range(students_per_class):
            sid, pid = f"S{c}-{i}", f"P{c}-{i}"
            entities += [person(sid, "student"), person(pid, "parent")]
            entities += [enroll(sid, cid), guard(pid, sid)]
        for subject in subjects:
            teacher = rnd.choice(teachers)
            entities.append(teach(teacher, cid, subject))
            bindings.append(SubjectChat(f"B{c}-{subject}", cid, subject, teacher, None, subject))
    live = roster(*entities)
    links = {a: f"u-{a}" for a in live["person"] if rnd.random() < 0.6}
    return live, links, bindings
