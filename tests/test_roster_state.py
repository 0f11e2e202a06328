"""RosterState: versioned apply, tombstones, snapshots, dangling references, convergence."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sferumd.services.roster import model as m
from sferumd.services.roster.changes import entity_to_wire
from sferumd.services.roster.state import RosterState


def up(entity: m.Entity) -> m.Upsert:
    return m.Upsert(entity)


def person(sid: str, version: int, first: str = "Аня") -> m.Person:
    return m.Person(sid, version, "S1", "student", first, "Петрова")


def test_newer_upsert_applies_older_is_stale_same_is_unchanged() -> None:
    state = RosterState()
    assert state.apply(up(person("P1", 5))) == "applied"
    assert state.apply(up(person("P1", 5))) == "unchanged"
    assert state.apply(up(person("P1", 4, "Старое"))) == "stale"
    assert state.get("person", "P1") == person("P1", 5)
    assert state.apply(up(person("P1", 6, "Новое"))) == "applied"
    assert state.get("person", "P1") == person("P1", 6, "Новое")
    assert state.version_of("person", "P1") == 6


def test_delete_leaves_tombstone_that_blocks_older_and_equal_upserts() -> None:
    state = RosterState()
    state.apply(up(person("P1", 5)))
    assert state.apply(m.Delete("person", "P1", 7)) == "applied"
    assert "P1" not in state.live["person"]
    assert state.get("person", "P1") is None
    assert state.tombstones["person"]["P1"] == m.Tombstone("person", "P1", 7)
    assert state.version_of("person", "P1") == 7
    assert state.apply(up(person("P1", 6))) == "stale"
    assert state.apply(up(person("P1", 7))) == "stale"  # equal version: the delete wins
    assert state.apply(m.Delete("person", "P1", 7)) == "unchanged"
    assert state.apply(m.Delete("person", "P1", 6)) == "stale"
    assert state.apply(up(person("P1", 8))) == "applied"
    assert state.get("person", "P1") == person("P1", 8)
    assert "P1" not in state.tombstones["person"]


def test_delete_of_equal_version_removes_an_upsert_but_older_delete_is_stale() -> None:
    state = RosterState()
    state.apply(up(person("P1", 5)))
    assert state.apply(m.Delete("person", "P1", 4)) == "stale"
    assert state.get("person", "P1") is not None
    assert state.apply(m.Delete("person", "P1", 5)) == "applied"
    assert state.get("person", "P1") is None


def test_delete_before_its_entity_keeps_a_late_older_upsert_out() -> None:
    state = RosterState()
    assert state.apply(m.Delete("enrollment", "E1", 10)) == "applied"
    assert state.apply(up(m.Enrollment("E1", 9, "P1", "C1"))) == "stale"
    assert state.live["enrollment"] == {}
    assert state.apply(m.Delete("enrollment", "E1", 11)) == "applied"  # tombstone moves on
    assert state.version_of("enrollment", "E1") == 11


def test_equal_version_conflict_resolves_the_same_in_either_order() -> None:
    a, b = person("P1", 5, "Аня"), person("P1", 5, "Борис")
    winner = max(a, b, key=lambda e: json.dumps(entity_to_wire(e), sort_keys=True))
    for first, second in ((a, b), (b, a)):
        state = RosterState()
        state.apply(up(first))
        outcome = state.apply(up(second))
        assert state.get("person", "P1") == winner
        assert outcome == ("applied" if second == winner else "stale")


def test_live_lists_every_kind_and_is_read_only() -> None:
    state = RosterState()
    assert set(state.live) == set(m.KINDS)
    with pytest.raises(TypeError):
        state.live["person"] = {}  # type: ignore[index]


def test_snapshot_deletes_only_covers_listed_kinds_and_spares_newer_entities() -> None:
    state = RosterState()
    state.apply(up(person("P1", 5)))
    state.apply(up(person("P2", 5)))
    state.apply(up(person("P3", 20)))  # changed after the snapshot was taken
    state.apply(up(m.SchoolClass("C1", 5, "S1", "7В")))
    deletes = state.snapshot_deletes({"person": {"P1"}}, 10)
    assert deletes == [m.Delete("person", "P2", 10)]
    for delete in deletes:
        state.apply(delete)
    assert set(state.live["person"]) == {"P1", "P3"}
    assert set(state.live["class"]) == {"C1"}
    assert state.snapshot_deletes({"class": set()}, 10) == [m.Delete("class", "C1", 10)]


def test_dangling_names_missing_references_by_field() -> None:
    state = RosterState()
    enrollment = m.Enrollment("E1", 1, "P1", "C1")
    state.apply(up(enrollment))  # stored although its class is not there yet
    assert state.dangling(enrollment) == ["student_id", "class_id"]
    state.apply(up(person("P1", 1)))
    state.apply(up(m.SchoolClass("C1", 1, "S1", "7В")))
    assert state.dangling(enrollment) == []
    group = m.SubGroup("G1", 1, "C1", "Англ. 1", ("P1", "P2", "P3"))
    assert state.dangling(group) == ["student_ids[1]", "student_ids[2]"]
    state.apply(m.Delete("class", "C1", 2))  # deleted counts as not there
    assert state.dangling(enrollment) == ["class_id"]
    teaching = m.TeachingAssignment("T1", 1, "P1", "C1", "SU1")
    assert state.dangling(teaching) == ["class_id", "subject_id"]  # group_id None: no reference


def test_apply_all_counts_outcomes() -> None:
    state = RosterState()
    changes: list[m.Change] = [up(person("P1", 2)), up(person("P1", 2)), up(person("P1", 1))]
    assert state.apply_all(changes) == {"applied": 1, "unchanged": 1, "stale": 1}


def test_a_school_applies_well_under_a_second() -> None:
    changes: list[m.Change] = [up(m.School("S1", 1, "Школа №1"))]
    changes += [up(m.SchoolClass(f"C{c}", 1, "S1", f"{c}А", f"T{c}")) for c in range(80)]
    changes += [up(person(f"P{i}", 1)) for i in range(5000)]
    changes += [up(m.Enrollment(f"E{i}", 1, f"P{i}", f"C{i % 80}")) for i in range(5000)]
    changes += [up(m.Guardianship(f"G{i}", 1, f"P{i}", f"P{i + 1}")) for i in range(5000)]
    state = RosterState()
    started = time.perf_counter()
    state.apply_all(changes)
    again = state.apply_all(changes)  # a redelivery of everything
    elapsed = time.perf_counter() - started
    assert again == {"applied": 0, "unchanged": len(changes), "stale": 0}
    assert len(state.live["person"]) == 5000
    assert elapsed < 0.5, elapsed


# --- convergence ----------------------------------------------------------------------------

IDS = ("a", "b", "c")
VERSIONS = st.integers(1, 4)  # few versions, so equal-version collisions are common

upserts = st.one_of(
    st.builds(
        m.Person,
        st.sampled_from(IDS),
        VERSIONS,
        st.just("S1"),
        st.sampled_from(m.ROLES),
        st.sampled_from(["Аня", "Борис"]),
        st.just("Петров"),
    ),
    st.builds(
        m.SchoolClass,
        st.sampled_from(IDS),
        VERSIONS,
        st.just("S1"),
        st.sampled_from(["7А", "7Б"]),
        st.sampled_from([None, "a", "b"]),
    ),
    st.builds(
        m.Enrollment, st.sampled_from(IDS), VERSIONS, st.sampled_from(IDS), st.sampled_from(IDS)
    ),
).map(m.Upsert)
deletes = st.builds(
    m.Delete, st.sampled_from(["person", "class", "enrollment"]), st.sampled_from(IDS), VERSIONS
)
changes = st.one_of(upserts, deletes)
deliveries = st.lists(st.lists(changes, min_size=1, max_size=5), min_size=1, max_size=6)


def _rank(change: m.Change) -> tuple[int, int, str]:
    """The documented order, written out independently of the implementation."""
    if isinstance(change, m.Delete):
        return (change.version, 1, "")
    wire = json.dumps(
        entity_to_wire(change.entity), sort_keys=True, ensure_ascii=False, separators=(",", ":")
    )
    return (change.entity.version, 0, wire)


def _key(change: m.Change) -> tuple[str, str]:
    if isinstance(change, m.Delete):
        return (change.kind, change.sourced_id)
    return (change.kind, change.entity.sourced_id)


def _live(state: RosterState) -> dict[str, dict[str, Any]]:
    return {kind: dict(ids) for kind, ids in state.live.items() if ids}


@settings(max_examples=300, deadline=None)
@given(deliveries, st.data())
def test_any_delivery_order_converges_to_the_final_changes(
    batches: list[list[m.Change]], data: st.DataObject
) -> None:
    # Some deliveries arrive more than once; then every change of every arrival is shuffled
    # together, which covers reordering within and interleaving between deliveries.
    repeats = data.draw(st.lists(st.integers(0, len(batches) - 1), max_size=len(batches)))
    arrivals = [change for i in [*range(len(batches)), *repeats] for change in batches[i]]
    schedule = data.draw(st.permutations(arrivals))

    state = RosterState()
    for change in schedule:
        state.apply(change)

    final: dict[tuple[str, str], m.Change] = {}
    for change in arrivals:
        key = _key(change)
        if key not in final or _rank(change) > _rank(final[key]):
            final[key] = change
    expected: dict[str, dict[str, Any]] = {}
    for (kind, sid), change in final.items():
        if isinstance(change, m.Upsert):
            expected.setdefault(kind, {})[sid] = change.entity
    assert _live(state) == expected

    once = RosterState()
    for change in final.values():
        assert once.apply(change) == "applied"
    assert _live(once) == _live(state)
    assert {k: dict(v) for k, v in once.tombstones.items()} == {
        k: dict(v) for k, v in state.tombstones.items()
    }
    # Having converged, nothing delivered again changes anything.
    assert all(state.apply(change) != "applied" for change in arrivals)
