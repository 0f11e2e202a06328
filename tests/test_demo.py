"""The demo school and the generated benchmark school: valid wire changes, references that
resolve, the chats reconciliation makes of them, a sane timetable, and determinism."""

from __future__ import annotations

import re
import time
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from sferumd.demo import (
    DEMO_PHONE_PREFIX,
    LESSON_MINUTES,
    SUBJECTS_PER_CLASS,
    demo_school,
    generated_school,
)
from sferumd.services.roster.changes import parse_batch
from sferumd.services.roster.model import Upsert
from sferumd.services.roster.reconcile import ChatKey, desired
from sferumd.services.roster.state import RosterState
from tests.test_linking import add_journal
from tests.test_roster_api import deliver

VERSION = 1_732_780_800_000
WEDNESDAY = date(2024, 11, 27)
DEMO = demo_school(VERSION, WEDNESDAY)

Wire = list[dict[str, Any]]


def by_kind(changes: Wire) -> dict[str, dict[str, dict[str, Any]]]:
    """kind -> id -> data, straight from the wire dicts (independent of the roster code)."""
    out: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for c in changes:
        out[c["kind"]][c["id"]] = c["data"]
    return out


def masculine(surname: str) -> str:
    """Воронина -> Воронин, Чайковская -> Чайковский."""
    if surname.endswith("ая"):
        return surname[:-2] + "ий"
    return surname.removesuffix("а")


def load(changes: Wire) -> RosterState:
    batch = parse_batch({"delivery_id": "demo", "changes": changes}, max_changes=len(changes))
    assert batch.errors == []
    assert len(batch.changes) == len(changes)
    state = RosterState()
    counts = state.apply_all(change for _, change in batch.changes)
    assert counts == {"applied": len(changes), "stale": 0, "unchanged": 0}
    return state


def assert_well_formed(changes: Wire) -> RosterState:
    assert all(c["op"] == "upsert" and c["version"] == changes[0]["version"] for c in changes)
    ids = Counter((c["kind"], c["id"]) for c in changes)
    assert [k for k, n in ids.items() if n > 1] == []
    state = load(changes)
    for kind in state.live:
        for entity in state.live[kind].values():
            assert state.dangling(entity) == [], entity
    return state


# -- the demo school --------------------------------------------------------------------------


def test_demo_parses_and_every_reference_resolves() -> None:
    state = assert_well_formed(DEMO.changes)
    assert {k: len(v) for k, v in state.live.items() if v}.keys() == {
        "school",
        "academic_year",
        "class",
        "subject",
        "person",
        "enrollment",
        "guardianship",
        "group",
        "teaching",
        "lesson",
    }
    assert [s.name for s in state.live["school"].values()] == ["Школа № 7"]
    year = next(iter(state.live["academic_year"].values()))
    assert (year.title, year.start_date, year.end_date) == (  # type: ignore[union-attr]
        "2024/2025",
        "2024-09-01",
        "2025-08-31",
    )


def test_demo_people_classes_and_families() -> None:
    k = by_kind(DEMO.changes)
    people = k["person"]
    assert {c["name"] for c in k["class"].values()} >= {"7В", "8А"}
    subjects = {s["name"] for s in k["subject"].values()}
    assert {"История", "Математика", "Русский язык", "Английский язык", "Физика"} <= subjects

    # Every person has a distinct phone in the demo range; names are Russian and complete.
    phones = [p["phone"] for p in people.values()]
    assert len(set(phones)) == len(phones)
    assert all(re.fullmatch(re.escape(DEMO_PHONE_PREFIX) + r"\d{4}", ph) for ph in phones)
    for p in people.values():
        assert re.fullmatch(r"[А-ЯЁ][а-яё]+", p["first_name"]), p
        assert re.fullmatch(r"[А-ЯЁ][а-яё]+", p["last_name"]), p
        assert re.search(r"(ич|на)$", p["patronymic"]), p

    enrolled = Counter(e["class_id"] for e in k["enrollment"].values())
    for class_id, klass in k["class"].items():
        assert 20 <= enrolled[class_id] <= 26, klass["name"]
        assert people[klass["homeroom_teacher_id"]]["role"] == "teacher"
    assert sorted(Counter(e["student_id"] for e in k["enrollment"].values()).values()) == [1] * (
        sum(enrolled.values())
    )

    guardians: defaultdict[str, list[str]] = defaultdict(list)
    for g in k["guardianship"].values():
        assert people[g["parent_id"]]["role"] == "parent"
        guardians[g["student_id"]].append(g["parent_id"])
    students = {sid for sid, p in people.items() if p["role"] == "student"}
    assert guardians.keys() == students
    assert {len(ps) for ps in guardians.values()} == {1, 2}
    for student, parents in guardians.items():  # a family shares its surname
        family = masculine(people[student]["last_name"])
        assert {masculine(people[p]["last_name"]) for p in parents} == {family}, student
    # One family has a child in each class.
    children = Counter(p for ps in guardians.values() for p in ps)
    assert [n for n in children.values() if n > 1]


def test_demo_teaching_and_the_english_split() -> None:
    k = by_kind(DEMO.changes)
    classes = k["class"]
    taught: defaultdict[str, set[str]] = defaultdict(set)  # teacher -> classes
    for t in k["teaching"].values():
        taught[t["teacher_id"]].add(t["class_id"])
    for class_id, klass in classes.items():
        assert class_id in taught[klass["homeroom_teacher_id"]]  # homeroom teachers teach too
    assert sum(1 for cs in taught.values() if len(cs) > 1) >= 3
    assert any(t not in {c["homeroom_teacher_id"] for c in classes.values()} for t in taught)

    groups = k["group"]
    assert len(groups) == 2
    (class_id,) = {g["class_id"] for g in groups.values()}
    assert classes[class_id]["name"] == "7В"
    members = [s for g in groups.values() for s in g["student_ids"]]
    enrolled = {e["student_id"] for e in k["enrollment"].values() if e["class_id"] == class_id}
    assert len(members) == len(set(members)) and set(members) == enrolled
    by_group = {t["group_id"]: t["teacher_id"] for t in k["teaching"].values() if "group_id" in t}
    assert by_group.keys() == groups.keys() and len(set(by_group.values())) == 2


def test_demo_timetable_is_one_school_week_in_moscow_time() -> None:
    k = by_kind(DEMO.changes)
    lessons = k["lesson"]
    monday = date(2024, 11, 25)
    assert DEMO.week_start == monday
    periods: defaultdict[tuple[str, date], set[str]] = defaultdict(set)
    busy: Counter[tuple[str, str]] = Counter()  # (teacher, start)
    slots: defaultdict[tuple[str, str], set[str | None]] = defaultdict(set)  # (class, start)
    for lesson in lessons.values():
        start, end = (datetime.fromisoformat(lesson[f]) for f in ("start", "end"))
        assert lesson["start"].endswith("+03:00") and lesson["end"].endswith("+03:00")
        assert end - start == timedelta(minutes=LESSON_MINUTES)
        assert monday <= start.date() <= monday + timedelta(days=4)
        periods[(lesson["class_id"], start.date())].add(lesson["start"])
        busy[(lesson["teacher_id"], lesson["start"])] += 1
        group = lesson.get("group_id")
        assert group not in slots[(lesson["class_id"], lesson["start"])]
        slots[(lesson["class_id"], lesson["start"])].add(group)
        assert (lesson["teacher_id"], lesson["class_id"], lesson["subject_id"]) in {
            (t["teacher_id"], t["class_id"], t["subject_id"]) for t in k["teaching"].values()
        }
    assert [key for key, n in busy.items() if n > 1] == []  # nobody teaches two rooms at once
    for class_id in k["class"]:
        days = [len(periods[(class_id, monday + timedelta(days=d))]) for d in range(5)]
        assert all(5 <= n <= 6 for n in days), (class_id, days)
    # A whole class never shares a period with one of its groups.
    assert all(None not in groups or groups == {None} for groups in slots.values())


def test_demo_week_follows_the_date_given() -> None:
    sunday = demo_school(VERSION, date(2025, 3, 9))
    assert sunday.week_start == date(2025, 3, 3)
    starts = sorted(c["data"]["start"] for c in sunday.changes if c["kind"] == "lesson")
    assert starts[0].startswith("2025-03-03T08:30") and starts[-1].startswith("2025-03-07")
    year = next(c for c in sunday.changes if c["kind"] == "academic_year")
    assert year["data"]["title"] == "2024/2025"
    assert {c["version"] for c in sunday.changes} == {VERSION}


def test_demo_hints_name_people_to_sign_in_as() -> None:
    k = by_kind(DEMO.changes)
    people, classes = k["person"], k["class"]
    roles = Counter(h.role for h in DEMO.hints)
    assert roles["teacher"] >= 2 and roles["student"] >= 1 and roles["parent"] >= 1
    homerooms = {c["homeroom_teacher_id"]: c["name"] for c in classes.values()}
    teachers = [h for h in DEMO.hints if h.role == "teacher"]
    assert any(h.account_id in homerooms for h in teachers)
    assert any(h.account_id not in homerooms for h in teachers)
    for h in DEMO.hints:
        p = people[h.account_id]
        assert p["role"] == h.role and p["phone"] == h.phone
        assert h.full_name == f"{p['last_name']} {p['first_name']} {p['patronymic']}"
        assert h.class_name in {c["name"] for c in classes.values()} and h.about
    student = next(h for h in DEMO.hints if h.role == "student")
    parent = next(h for h in DEMO.hints if h.role == "parent")
    assert {"parent_id": parent.account_id, "student_id": student.account_id} in list(
        k["guardianship"].values()
    )
    enrolled = {e["student_id"]: e["class_id"] for e in k["enrollment"].values()}
    assert classes[enrolled[student.account_id]]["name"] == student.class_name


def test_demo_reconciles_to_class_parents_and_colleagues_chats() -> None:
    state = load(DEMO.changes)
    k = by_kind(DEMO.changes)
    links = {pid: f"@u-{pid}" for pid in k["person"]}  # everyone linked
    want = desired(state.live, links, [])
    assert want.warnings == ()
    names = {c["name"]: cid for cid, c in k["class"].items()}
    assert {"7В", "8А"} <= names.keys()
    for name, class_id in names.items():
        klass = k["class"][class_id]
        students = {e["student_id"] for e in k["enrollment"].values() if e["class_id"] == class_id}
        parents = {
            g["parent_id"] for g in k["guardianship"].values() if g["student_id"] in students
        }
        teachers = {t["teacher_id"] for t in k["teaching"].values() if t["class_id"] == class_id}
        home = links[klass["homeroom_teacher_id"]]
        expected = {
            "class": (name, len(students) + 1),  # the homeroom teacher is in it as admin
            "parents": (f"{name} — родители", len(parents) + 1),
            "colleagues": (f"{name} — учителя", len(teachers)),  # who teaches there already
        }
        for kind, (chat_name, count) in expected.items():
            chat = want.chats[ChatKey(kind, class_id)]  # type: ignore[arg-type]
            assert chat.name == chat_name
            assert chat.admins == {home}
            assert len(chat.members) == count and chat.pending == frozenset()
    assert len(want.chats) == 3 * len(names)
    # Nobody linked: the same chats, everyone pending.
    empty = desired(state.live, {}, [])
    assert empty.chats.keys() == want.chats.keys()
    assert all(c.members == frozenset() and c.pending for c in empty.chats.values())


def test_demo_is_deterministic() -> None:
    assert demo_school(VERSION, WEDNESDAY) == DEMO
    later = demo_school(VERSION + 1, WEDNESDAY + timedelta(days=7))
    assert [c["id"] for c in later.changes if c["kind"] != "lesson"] == [
        c["id"] for c in DEMO.changes if c["kind"] != "lesson"
    ]


async def test_demo_delivered_to_a_daemon_applies_cleanly(daemon) -> None:  # type: ignore[no-untyped-def]
    j = add_journal(daemon)
    out = await deliver(daemon, j, "demo-1", DEMO.changes)
    assert (out["applied"], out["rejected"], out["warnings"]) == (len(DEMO.changes), 0, [])


# -- the generated school ---------------------------------------------------------------------


def test_generated_school_has_the_requested_size_and_shape() -> None:
    t0 = time.perf_counter()
    changes = generated_school(5000, 80, seed=1)
    elapsed = time.perf_counter() - t0
    assert elapsed < 5, elapsed  # < 1 s on a laptop; this only catches a blow-up
    state = assert_well_formed(changes)
    k = by_kind(changes)
    roles = Counter(p["role"] for p in k["person"].values())
    assert sum(roles.values()) == 5000
    assert roles["student"] == pytest.approx(0.55 * 5000, rel=0.02)
    assert roles["parent"] == pytest.approx(0.40 * 5000, rel=0.02)
    assert len(k["class"]) == 80

    enrolled = Counter(e["class_id"] for e in k["enrollment"].values())
    assert enrolled.keys() == k["class"].keys()
    assert {e["student_id"] for e in k["enrollment"].values()} == {
        sid for sid, p in k["person"].items() if p["role"] == "student"
    }
    homerooms = Counter(c["homeroom_teacher_id"] for c in k["class"].values())
    assert max(homerooms.values()) == 1  # 250 teachers: nobody leads two classes
    subjects: defaultdict[str, set[str]] = defaultdict(set)
    teachers: defaultdict[str, set[str]] = defaultdict(set)
    for t in k["teaching"].values():
        subjects[t["class_id"]].add(t["subject_id"])
        teachers[t["class_id"]].add(t["teacher_id"])
    for class_id, klass in k["class"].items():
        assert len(subjects[class_id]) == SUBJECTS_PER_CLASS
        assert klass["homeroom_teacher_id"] in teachers[class_id]
    parents = {g["parent_id"] for g in k["guardianship"].values()}
    assert parents == {sid for sid, p in k["person"].items() if p["role"] == "parent"}
    phones = [p["phone"] for p in k["person"].values()]
    assert len(set(phones)) == len(phones)

    want = desired(state.live, {}, [])
    assert len(want.chats) == 3 * 80 and want.warnings == ()


@pytest.mark.parametrize(("users", "classes"), [(300, 6), (40, 3), (3, 1), (1000, 200)])
def test_generated_school_small_and_odd_sizes(users: int, classes: int) -> None:
    changes = generated_school(users, classes, seed=3)
    assert_well_formed(changes)
    k = by_kind(changes)
    assert len(k["person"]) == users and len(k["class"]) == classes
    assert all(c["data"]["name"] for c in changes if c["kind"] == "class")
    assert len({c["name"] for c in k["class"].values()}) == classes


def test_generated_school_is_deterministic_per_seed() -> None:
    one = generated_school(500, 10, seed=1)
    assert generated_school(500, 10, seed=1) == one
    assert generated_school(500, 10, seed=2) != one
    assert {c["version"] for c in generated_school(50, 2, version=42)} == {42}
    with pytest.raises(ValueError):
        generated_school(2, 1)


def test_generated_changes_are_upserts_of_model_entities() -> None:
    batch = parse_batch({"delivery_id": "g", "changes": generated_school(100, 4)})
    assert all(isinstance(c, Upsert) for _, c in batch.changes)
