"""The journal adapter's promise, end to end in memory: however a roster's deliveries are
split, duplicated, reordered or interleaved, the chats and their members come out exactly as
if the final roster had been applied once."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sferumd.services.roster import reconcile as rc
from sferumd.services.roster.changes import ChangeError, parse_change
from sferumd.services.roster.model import Change
from sferumd.services.roster.state import RosterState

STUDENTS = [f"ST{i}" for i in range(6)]
TEACHERS = ["T0", "T1", "T2"]
PARENTS = ["P0", "P1", "P2"]
CLASSES = ["C0", "C1"]


def _up(kind: str, sid: str, version: int, **data: Any) -> dict[str, Any]:
    return {"op": "upsert", "kind": kind, "id": sid, "version": version, "data": data}


def _entity(draw: Any, kind: str, sid: str, version: int) -> dict[str, Any]:
    """One random version of the entity ``sid``: data varies, references stay in the school."""
    pick = lambda xs: draw(st.sampled_from(xs))  # noqa: E731
    if kind == "class":
        return _up(kind, sid, version, school_id="S", name=sid, homeroom_teacher_id=pick(TEACHERS))
    if kind == "enrollment":
        return _up(kind, sid, version, student_id=pick(STUDENTS), class_id=pick(CLASSES))
    if kind == "guardianship":
        return _up(kind, sid, version, parent_id=pick(PARENTS), student_id=pick(STUDENTS))
    return _up(
        kind, sid, version, teacher_id=pick(TEACHERS), class_id=pick(CLASSES), subject_id="M"
    )


BASE = [
    _up("school", "S", 1, name="School"),
    _up("subject", "M", 1, school_id="S", name="Math"),
    *(
        _up("person", p, 1, school_id="S", role="student", first_name=p, last_name="X")
        for p in STUDENTS
    ),
    *(
        _up("person", p, 1, school_id="S", role="teacher", first_name=p, last_name="X")
        for p in TEACHERS
    ),
    *(
        _up("person", p, 1, school_id="S", role="parent", first_name=p, last_name="X")
        for p in PARENTS
    ),
]
MUTABLE = [("class", c) for c in CLASSES] + [
    (kind, f"{kind[0].upper()}{i}")
    for kind in ("enrollment", "guardianship", "teaching")
    for i in range(4)
]


@st.composite
def histories(draw: Any) -> list[dict[str, Any]]:
    """Each mutable entity's history: a few versions (distinct, so no content tie-break is
    needed to know the last word), some of them deletes."""
    changes: list[dict[str, Any]] = []
    for kind, sid in MUTABLE:
        versions = draw(st.lists(st.integers(2, 40), min_size=1, max_size=4, unique=True))
        for v in versions:
            if draw(st.booleans()) and draw(st.booleans()):
                changes.append({"op": "delete", "kind": kind, "id": sid, "version": v})
            else:
                changes.append(_entity(draw, kind, sid, v))
    return changes


def _parse(wire: dict[str, Any]) -> Change:
    change = parse_change(wire)
    assert not isinstance(change, ChangeError), change
    return change


def _final(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The last word on each entity: its highest version (a delete wins a tie)."""
    best: dict[tuple[str, str], dict[str, Any]] = {}
    for ch in history:
        key = (ch["kind"], ch["id"])
        old = best.get(key)
        if old is None or (ch["version"], ch["op"] == "delete") > (
            old["version"],
            old["op"] == "delete",
        ):
            best[key] = ch
    return [c for c in best.values()]


def _chats(wires: list[dict[str, Any]], links: dict[str, str]) -> dict[Any, Any]:
    state = RosterState()
    for wire in BASE + wires:
        state.apply(_parse(wire))
    want = rc.desired(state.live, links, [])
    return {k: (d.name, d.admins, d.members, d.pending) for k, d in want.chats.items()}


@settings(max_examples=150, deadline=None)
@given(history=histories(), data=st.data())
def test_any_delivery_order_gives_the_final_rosters_chats(history, data) -> None:  # type: ignore[no-untyped-def]
    linked = data.draw(st.sets(st.sampled_from(STUDENTS + TEACHERS + PARENTS)))
    links = {a: f"@u{a}" for a in linked}
    # Split into deliveries, duplicate some, shuffle everything.
    deliveries = data.draw(st.permutations(history + data.draw(st.lists(st.sampled_from(history)))))
    assert _chats(deliveries, links) == _chats(_final(history), links)
