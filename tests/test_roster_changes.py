"""Webhook batches of roster changes: parsing, rejection codes, and the wire round trip."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sferumd.services.roster import model as m
from sferumd.services.roster.changes import (
    PHONE,
    BatchError,
    ChangeError,
    build_entity,
    change_to_wire,
    entity_to_wire,
    parse_batch,
    parse_change,
)

V = 1732780800000


def upsert(kind: str, sid: str, data: dict[str, Any], version: int = V) -> dict[str, Any]:
    return {"op": "upsert", "kind": kind, "id": sid, "version": version, "data": data}


CLASS_DATA = {"school_id": "S1", "name": "7В", "homeroom_teacher_id": "P-T1"}


def test_example_batch_from_the_docstring() -> None:
    batch = {
        "delivery_id": "d-0001",
        "changes": [
            upsert("class", "C-7V", CLASS_DATA),
            {"op": "delete", "kind": "enrollment", "id": "E-17", "version": V + 1},
        ],
    }
    parsed = parse_batch(batch)
    assert parsed.delivery_id == "d-0001"
    assert parsed.errors == []
    assert parsed.changes == [
        (0, m.Upsert(m.SchoolClass("C-7V", V, "S1", "7В", homeroom_teacher_id="P-T1"))),
        (1, m.Delete("enrollment", "E-17", V + 1)),
    ]


def test_good_changes_are_kept_beside_bad_ones() -> None:
    batch = {
        "delivery_id": "d-2",
        "changes": [
            "not an object",
            upsert("subject", "SU1", {"school_id": "S1", "name": "История"}),
            upsert("person", "P1", {"school_id": "S1", "role": "janitor"}),
        ],
    }
    parsed = parse_batch(batch)
    assert [i for i, _ in parsed.changes] == [1]
    assert [(e.index, e.code) for e in parsed.errors] == [(0, "bad_change"), (2, "bad_field")]
    assert parsed.errors[1].kind == "person" and parsed.errors[1].id == "P1"


DELETE = {"op": "delete", "kind": "class", "id": "C", "version": 1}
PERSON = {"school_id": "S1", "role": "student", "first_name": "Аня", "last_name": "Петрова"}

REJECTS: list[tuple[object, str, str]] = [
    # (change, code, a word the message must contain)
    ([], "bad_change", "object"),
    ({"kind": "class", "id": "C", "version": 1}, "bad_change", "op"),
    ({"op": "merge", "kind": "class", "id": "C", "version": 1}, "unknown_op", "op"),
    ({"op": "delete", "id": "C", "version": 1}, "bad_change", "kind"),
    ({"op": "delete", "kind": "classroom", "id": "C", "version": 1}, "unknown_kind", "kind"),
    ({"op": "delete", "kind": "class", "id": "", "version": 1}, "bad_id", "id"),
    ({"op": "delete", "kind": "class", "id": "x" * 129, "version": 1}, "bad_id", "id"),
    ({"op": "delete", "kind": "class", "id": "a\nb", "version": 1}, "bad_id", "control"),
    ({"op": "delete", "kind": "class", "id": 7, "version": 1}, "bad_id", "string"),
    ({"op": "delete", "kind": "class", "id": "C"}, "bad_version", "integer"),
    ({"op": "delete", "kind": "class", "id": "C", "version": True}, "bad_version", "integer"),
    ({"op": "delete", "kind": "class", "id": "C", "version": 1.0}, "bad_version", "integer"),
    ({"op": "delete", "kind": "class", "id": "C", "version": -1}, "bad_version", "2**63"),
    ({"op": "delete", "kind": "class", "id": "C", "version": 2**63}, "bad_version", "2**63"),
    ({**DELETE, "data": {}}, "unknown_field", "data"),
    ({**DELETE, "x": 1}, "unknown_field", "'x'"),
    ({"op": "upsert", "kind": "class", "id": "C", "version": 1}, "bad_change", "data"),
    (upsert("class", "C", ["school_id"]), "bad_change", "data"),  # type: ignore[arg-type]
    (upsert("class", "C", {**CLASS_DATA, "room": "12"}), "unknown_field", "'room'"),
    (upsert("class", "C", {"name": "7В"}), "bad_field", "school_id"),
    (upsert("class", "C", {"school_id": "S1", "name": "   "}), "bad_field", "name"),
    (upsert("class", "C", {"school_id": "S1", "name": "x" * 201}), "bad_field", "name"),
    (upsert("class", "C", {"school_id": "S1", "name": "7\x00В"}), "bad_field", "control"),
    (upsert("class", "C", {"school_id": "S1", "name": "7\u202eВ"}), "bad_field", "name"),
    (upsert("class", "C", {"school_id": ["S1"], "name": "7В"}), "bad_field", "school_id"),
    (upsert("person", "P", {**PERSON, "role": "admin"}), "bad_field", "role"),
    (upsert("person", "P", {**PERSON, "phone": "89001234567"}), "bad_field", "phone"),
    (upsert("person", "P", {**PERSON, "phone": "+0123456789"}), "bad_field", "phone"),
    (upsert("person", "P", {**PERSON, "phone": "+7900"}), "bad_field", "phone"),
    (upsert("person", "P", {**PERSON, "phone": "+79001234567\n"}), "bad_field", "phone"),
    (
        upsert(
            "academic_year",
            "Y",
            {"school_id": "S", "title": "2024/25", "start_date": "2024-09-01", "end_date": "0"},
        ),
        "bad_field",
        "end_date",
    ),
    (
        upsert(
            "academic_year",
            "Y",
            {
                "school_id": "S",
                "title": "2024/25",
                "start_date": "2024-02-30",
                "end_date": "2025-05-31",
            },
        ),
        "bad_field",
        "start_date",
    ),
    (
        upsert(
            "academic_year",
            "Y",
            {"school_id": "S", "title": "t", "start_date": "20240901", "end_date": "2025-05-31"},
        ),
        "bad_field",
        "start_date",
    ),
    (
        upsert(
            "academic_year",
            "Y",
            {"school_id": "S", "title": "t", "start_date": "2025-09-01", "end_date": "2025-05-31"},
        ),
        "bad_field",
        "before",
    ),
    (upsert("group", "G", {"class_id": "C", "name": "En 1", "student_ids": "P1"}), "bad_field", ""),
    (
        upsert("group", "G", {"class_id": "C", "name": "En 1", "student_ids": ["P1", "P1"]}),
        "bad_field",
        "twice",
    ),
    (
        upsert("group", "G", {"class_id": "C", "name": "En 1", "student_ids": ["P1", 2]}),
        "bad_field",
        "student_ids[1]",
    ),
]

LESSON = {
    "class_id": "C",
    "subject_id": "SU",
    "teacher_id": "T",
    "start": "2024-09-02T09:00:00+03:00",
    "end": "2024-09-02T09:45:00+03:00",
}
LESSON_REJECTS: list[tuple[dict[str, Any], str]] = [
    ({"start": "2024-09-02T09:00:00"}, "start"),  # no offset
    ({"start": "2024-09-02 09:00:00+03:00"}, "start"),
    ({"end": "2024-09-02T25:00:00+03:00"}, "end"),
    ({"end": "2024-09-02T09:45:00+24:00"}, "end"),
    ({"end": "2024-09-02T06:00:00Z"}, "after"),  # 09:00+03:00 is 06:00Z: not after
    ({"cancelled": 1}, "cancelled"),
    ({"cancelled": "false"}, "cancelled"),
]


@pytest.mark.parametrize(("change", "code", "word"), REJECTS)
def test_bad_change_is_reported_with_its_code(change: object, code: str, word: str) -> None:
    result = parse_change(change, 4)
    assert isinstance(result, ChangeError), result
    assert (result.index, result.code) == (4, code)
    assert word in result.message


@pytest.mark.parametrize(("patch", "word"), LESSON_REJECTS)
def test_bad_lesson_times(patch: dict[str, Any], word: str) -> None:
    result = parse_change(upsert("lesson", "L", {**LESSON, **patch}))
    assert isinstance(result, ChangeError)
    assert result.code == "bad_field" and word in result.message


def test_lesson_end_after_start_is_compared_across_offsets() -> None:
    # 07:00Z is 10:00+03:00, after the 09:00+03:00 start although "07" < "09" as text.
    result = parse_change(upsert("lesson", "L", {**LESSON, "end": "2024-09-02T07:00:00Z"}))
    assert isinstance(result, m.Upsert)


def test_optional_fields_may_be_null_or_omitted_and_names_are_stripped() -> None:
    data = {**PERSON, "first_name": "  Аня ", "patronymic": None, "phone": "+79001234567"}
    result = parse_change(upsert("person", "P1", data))
    assert result == m.Upsert(
        m.Person("P1", V, "S1", "student", "Аня", "Петрова", None, "+79001234567")
    )


def test_error_carries_kind_and_id_when_readable() -> None:
    result = parse_change(upsert("person", "P1", {**PERSON, "phone": "x"}))
    assert isinstance(result, ChangeError)
    assert (result.kind, result.id) == ("person", "P1")
    unreadable = parse_change({"op": "upsert", "kind": "nope", "id": "", "version": 1})
    assert isinstance(unreadable, ChangeError)
    assert (unreadable.kind, unreadable.id) == (None, None)


BATCH_REJECTS: list[tuple[object, str]] = [
    ([], "bad_batch"),
    ({"changes": []}, "bad_batch"),
    ({"delivery_id": "", "changes": []}, "bad_batch"),
    ({"delivery_id": "d 1", "changes": []}, "bad_batch"),
    ({"delivery_id": "д-1", "changes": []}, "bad_batch"),
    ({"delivery_id": "d" * 129, "changes": []}, "bad_batch"),
    ({"delivery_id": 5, "changes": []}, "bad_batch"),
    ({"delivery_id": "d-1"}, "bad_batch"),
    ({"delivery_id": "d-1", "changes": {}}, "bad_batch"),
    ({"delivery_id": "d-1", "changes": [], "extra": 1}, "bad_batch"),
    ({"delivery_id": "d-1", "changes": [{}] * 4}, "too_many_changes"),
]


@pytest.mark.parametrize(("batch", "code"), BATCH_REJECTS)
def test_bad_batch_raises(batch: object, code: str) -> None:
    with pytest.raises(BatchError) as info:
        parse_batch(batch, max_changes=3)
    assert info.value.code == code


def test_max_changes_is_inclusive() -> None:
    changes = [{"op": "delete", "kind": "class", "id": f"C{i}", "version": 1} for i in range(3)]
    assert len(parse_batch({"delivery_id": "d", "changes": changes}, max_changes=3).changes) == 3


def test_build_entity_is_the_validator_others_reuse() -> None:
    entity = build_entity("subject", "SU1", 5, {"school_id": "S1", "name": " Алгебра "})
    assert entity == m.Subject("SU1", 5, "S1", "Алгебра")


def test_entity_to_wire_omits_absent_optionals_and_lists_student_ids() -> None:
    group = m.SubGroup("G1", 3, "C1", "Английский 1", ("P1", "P2"))
    assert entity_to_wire(group) == {
        "op": "upsert",
        "kind": "group",
        "id": "G1",
        "version": 3,
        "data": {"class_id": "C1", "name": "Английский 1", "student_ids": ["P1", "P2"]},
    }
    klass = m.SchoolClass("C1", 3, "S1", "7В")
    assert entity_to_wire(klass)["data"] == {"school_id": "S1", "name": "7В"}
    assert change_to_wire(m.Delete("class", "C1", 9)) == {
        "op": "delete",
        "kind": "class",
        "id": "C1",
        "version": 9,
    }


# --- hypothesis: valid entities survive the wire, and hostile input never crashes ------------

_chars = st.characters(categories=["L", "N", "P", "S"], include_characters=" ")
ids = st.text(_chars, min_size=1, max_size=12).filter(str.isprintable)
names = st.text(_chars, min_size=1, max_size=24).map(str.strip).filter(bool)
versions = st.integers(0, 2**63 - 1)
maybe = st.none().__or__
days = st.dates(min_value=datetime(1900, 1, 1).date(), max_value=datetime(2200, 1, 1).date())
offsets = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
moments = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1))


def _rfc3339(moment: datetime, tz: timezone, zulu: bool) -> str:
    if zulu:
        return moment.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")
    return moment.replace(tzinfo=tz).isoformat()


@st.composite
def lessons(draw: st.DrawFn) -> m.Lesson:
    start = draw(moments)
    end = start + draw(st.timedeltas(timedelta(microseconds=1), timedelta(hours=5)))
    tz, zulu = draw(offsets), draw(st.booleans())
    return m.Lesson(
        draw(ids),
        draw(versions),
        draw(ids),
        draw(ids),
        draw(ids),
        _rfc3339(start, tz, zulu),
        _rfc3339(end, tz, zulu),
        draw(maybe(ids)),
        draw(st.booleans()),
    )


@st.composite
def years(draw: st.DrawFn) -> m.AcademicYear:
    a, b = sorted([draw(days), draw(days)])
    return m.AcademicYear(draw(ids), draw(versions), draw(ids), draw(names), str(a), str(b))


entities: st.SearchStrategy[m.Entity] = st.one_of(
    st.builds(m.School, ids, versions, names),
    years(),
    st.builds(m.SchoolClass, ids, versions, ids, names, maybe(ids), maybe(ids)),
    st.builds(m.Subject, ids, versions, ids, names),
    st.builds(
        m.Person,
        ids,
        versions,
        ids,
        st.sampled_from(m.ROLES),
        names,
        names,
        maybe(names),
        maybe(st.from_regex(PHONE, fullmatch=True)),
    ),
    st.builds(m.Enrollment, ids, versions, ids, ids),
    st.builds(m.Guardianship, ids, versions, ids, ids),
    st.builds(
        m.SubGroup, ids, versions, ids, names, st.lists(ids, max_size=5, unique=True).map(tuple)
    ),
    st.builds(m.TeachingAssignment, ids, versions, ids, ids, ids, maybe(ids)),
    lessons(),
)


@settings(max_examples=400, deadline=None)
@given(entities)
def test_entity_round_trips_through_json_wire(entity: m.Entity) -> None:
    wire = json.loads(json.dumps(entity_to_wire(entity)))
    assert parse_change(wire) == m.Upsert(entity)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(list(m.KINDS)), ids, versions)
def test_delete_round_trips(kind: str, sid: str, version: int) -> None:
    delete = m.Delete(kind, sid, version)
    assert parse_change(json.loads(json.dumps(change_to_wire(delete)))) == delete


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=6,
)
# Change-shaped objects with hostile values, so the fuzz gets past the first checks.
change_like = st.fixed_dictionaries(
    {
        "op": st.sampled_from(["upsert", "delete", "x"]) | json_values,
        "kind": st.sampled_from(list(m.KINDS)) | json_values,
        "id": ids | json_values,
        "version": versions | json_values,
    },
    optional={
        "data": st.dictionaries(
            st.sampled_from(["school_id", "name", "role", "student_ids", "start", "end", "zz"]),
            json_values | ids,
        )
        | json_values
    },
)


@st.composite
def spoiled(draw: st.DrawFn) -> dict[str, Any]:
    """A valid change with one value of its data replaced by arbitrary JSON."""
    wire = entity_to_wire(draw(entities))
    key = draw(st.sampled_from([*wire["data"], "extra"]))
    return {**wire, "data": {**wire["data"], key: draw(json_values)}}


any_change = st.one_of(entities.map(entity_to_wire), spoiled(), change_like, json_values)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(any_change, max_size=4), st.just("d-1") | json_values)
def test_hostile_batches_fail_only_with_documented_errors(changes: list[Any], dlv: Any) -> None:
    try:
        parsed = parse_batch({"delivery_id": dlv, "changes": changes})
    except BatchError as exc:
        assert exc.code == "bad_batch"
        assert dlv != "d-1"
        return
    assert len(parsed.changes) + len(parsed.errors) == len(changes)
    assert sorted([i for i, _ in parsed.changes] + [e.index for e in parsed.errors]) == list(
        range(len(changes))
    )
    for index, change in parsed.changes:
        # Whatever was accepted must survive its own wire form unchanged.
        assert parse_change(json.loads(json.dumps(change_to_wire(change))), index) == change
