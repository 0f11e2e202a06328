"""OneRoster 1.2 CSV zip import: mapping, bulk snapshots, deltas, bad rows, hostile archives."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import zipfile
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sferumd.services.roster import model as m
from sferumd.services.roster.changes import change_to_wire, parse_change
from sferumd.services.roster.oneroster import (
    ImportResult,
    OneRosterError,
    RowError,
    import_oneroster,
)
from sferumd.services.roster.state import RosterState

NOW = 1_750_000_000_000  # the caller's import time, for bulk rows without dateLastModified
T0 = "2024-09-01T00:00:00Z"
T0_MS = 1725148800000
T1 = "2024-10-01T12:00:00.000Z"
T1_MS = 1727784000000

Rows = list[list[str]]


def csv_text(rows: Rows) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue()


def manifest(modes: dict[str, str], version: str = "1.2") -> Rows:
    rows = [["propertyName", "value"], ["manifest.version", "1.0"]]
    rows.append(["oneroster.version", version])
    rows += [[f"file.{name}", mode] for name, mode in modes.items()]
    return rows


def make_zip(files: dict[str, Rows | str | bytes], modes: dict[str, str] | None = None) -> bytes:
    """A zip of the given files; the manifest lists each data file with ``modes`` (or bulk)."""
    if "manifest.csv" not in files:
        names = [name.removesuffix(".csv") for name in files]
        chosen = {name: (modes or {}).get(name, "bulk") for name in names}
        files = {"manifest.csv": manifest(chosen), **files}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            if isinstance(content, list):
                content = csv_text(content)
            archive.writestr(name, content)
    return out.getvalue()


ORGS: Rows = [
    ["sourcedId", "status", "dateLastModified", "name", "type", "identifier", "parentSourcedId"],
    ["S1", "active", "", "Школа № 1", "school", "", "D1"],
    ["D1", "active", "", "Район", "district", "", ""],
]
SESSIONS: Rows = [
    [
        "sourcedId",
        "status",
        "dateLastModified",
        "title",
        "type",
        "startDate",
        "endDate",
        "parentSourcedId",
        "schoolYear",
    ],
    ["Y1", "", "", "2024/2025", "schoolYear", "2024-09-01", "2025-05-31", "", "2025"],
    ["TERM1", "", "", "1 четверть", "term", "2024-09-01", "2024-10-27", "Y1", "2025"],
]
COURSES: Rows = [
    ["sourcedId", "status", "dateLastModified", "title", "courseCode", "orgSourcedId"],
    ["SU-M", "", T0, "Математика", "M", "S1"],
    ["SU-E", "", "", "Английский язык", "E", "S1"],
]
CLASSES: Rows = [
    [
        "sourcedId",
        "status",
        "dateLastModified",
        "title",
        "classCode",
        "classType",
        "courseSourcedId",
        "schoolSourcedId",
        "termSourcedIds",
        "location",
    ],
    ["C7A", "", "", "7А", "", "homeroom", "", "S1", "TERM1", ""],
    ["C7B", "", "", "7Б", "", "homeroom", "", "S1", "", ""],
    ["M7A", "", "", "Математика 7А", "C7A", "scheduled", "SU-M", "S1", "TERM1", ""],
    ["E7A-1", "", "", "Английский 7А, гр. 1", "", "scheduled", "SU-E", "S1", "", ""],
    ["X1", "", "", "Кружок", "", "ext:club", "", "S1", "", ""],
]
USERS: Rows = [
    [
        "sourcedId",
        "status",
        "dateLastModified",
        "enabledUser",
        "orgSourcedIds",
        "role",
        "username",
        "givenName",
        "familyName",
        "middleName",
        "phone",
        "agentSourcedIds",
    ],
    ["T1", "", "", "true", "S1", "teacher", "", "Анна", "Иванова", "Петровна", "", ""],
    ["T2", "", "", "true", "S1", "teacher", "", "Олег", "Смирнов", "", "", ""],
    ["P1", "", T1, "true", "S1", "student", "", "Петя", "Кузнецов", "", "", ""],
    ["P2", "", "", "true", "S1", "student", "", "Вася", "Орлов", "", "", "R2"],
    ["P3", "", "", "true", "S1", "student", "", "Маша", "Лебедева", "", "", ""],
    ["P4", "", "", "true", "S1", "student", "", "Даша", "Зайцева", "", "", ""],
    [
        "R1",
        "",
        "",
        "true",
        "S1",
        "guardian",
        "",
        "Ольга",
        "Кузнецова",
        "",
        "+7 (900) 123-45-67",
        "P1",
    ],
    ["R2", "", "", "true", "S1", "parent", "", "Игорь", "Орлов", "", "", ""],
    ["A1", "", "", "true", "S1", "administrator", "", "Ирина", "Завуч", "", "", ""],
]
ENROLLMENTS: Rows = [
    [
        "sourcedId",
        "status",
        "dateLastModified",
        "classSourcedId",
        "schoolSourcedId",
        "userSourcedId",
        "role",
        "primary",
    ],
    ["E-P1", "", "", "C7A", "S1", "P1", "student", "false"],
    ["E-P2", "", "", "C7A", "S1", "P2", "student", "false"],
    ["E-P3", "", "", "C7A", "S1", "P3", "student", "false"],
    ["E-P4", "", "", "C7B", "S1", "P4", "student", "false"],
    ["E-T1", "", "", "C7A", "S1", "T1", "teacher", "true"],
    ["E-T2x", "", "", "C7B", "S1", "T2", "teacher", "false"],  # not primary: no effect
    ["E-M1", "", "", "M7A", "S1", "P1", "student", ""],
    ["E-M2", "", "", "M7A", "S1", "P2", "student", ""],
    ["E-M3", "", "", "M7A", "S1", "P3", "student", ""],
    ["E-MT", "", "", "M7A", "S1", "T2", "teacher", "true"],
    ["E-E1", "", "", "E7A-1", "S1", "P1", "student", ""],
    ["E-E2", "", "", "E7A-1", "S1", "P2", "student", ""],
    ["E-ET", "", "", "E7A-1", "S1", "T1", "teacher", "true"],
    ["E-AD", "", "", "C7A", "S1", "A1", "administrator", ""],
    ["E-X1", "", "", "X1", "S1", "T2", "teacher", "true"],  # an ext: class: not ours
]
SCHOOL_FILES: dict[str, Rows | str | bytes] = {
    "orgs.csv": ORGS,
    "academicSessions.csv": SESSIONS,
    "courses.csv": COURSES,
    "classes.csv": CLASSES,
    "users.csv": USERS,
    "enrollments.csv": ENROLLMENTS,
}


def upserted(result: ImportResult) -> dict[tuple[str, str], m.Entity]:
    return {
        (c.kind, c.entity.sourced_id): c.entity for c in result.changes if isinstance(c, m.Upsert)
    }


def guardianship_of(result: ImportResult, parent: str, student: str) -> m.Guardianship:
    [link] = [
        e
        for e in upserted(result).values()
        if isinstance(e, m.Guardianship) and (e.parent_id, e.student_id) == (parent, student)
    ]
    return link


def school_state() -> tuple[RosterState, ImportResult]:
    result = import_oneroster(make_zip(SCHOOL_FILES), version=NOW)
    state = RosterState()
    assert state.apply_all(result.changes)["applied"] == len(result.changes)
    return state, result


# --- bulk mapping ----------------------------------------------------------------------------


def test_bulk_school_maps_every_kind() -> None:
    state, result = school_state()
    assert result.errors == []
    got = upserted(result)
    assert got[("school", "S1")] == m.School("S1", NOW, "Школа № 1")
    assert ("school", "D1") not in got  # a district is not a school
    assert got[("academic_year", "Y1")] == m.AcademicYear(
        "Y1", NOW, "S1", "2024/2025", "2024-09-01", "2025-05-31"
    )
    assert ("academic_year", "TERM1") not in got
    assert got[("subject", "SU-M")] == m.Subject("SU-M", T0_MS, "S1", "Математика")
    # The homeroom teacher comes from enrollments.csv; the year through the term's parent.
    assert got[("class", "C7A")] == m.SchoolClass("C7A", NOW, "S1", "7А", "T1", "Y1")
    assert got[("class", "C7B")] == m.SchoolClass("C7B", NOW, "S1", "7Б")
    assert ("class", "M7A") not in got and ("class", "X1") not in got
    assert got[("person", "T1")] == m.Person(
        "T1", NOW, "S1", "teacher", "Анна", "Иванова", "Петровна"
    )
    assert got[("person", "P1")] == m.Person("P1", T1_MS, "S1", "student", "Петя", "Кузнецов")
    assert got[("person", "R1")].phone == "+79001234567"  # type: ignore[union-attr]
    assert got[("person", "R1")].role == "parent"  # type: ignore[union-attr]
    assert ("person", "A1") not in got
    # From the parent's side (R1 lists P1) and from the student's side (P2 lists R2).
    assert guardianship_of(result, "R1", "P1").version == NOW
    assert guardianship_of(result, "R2", "P2").version == NOW
    assert got[("enrollment", "E-P1")] == m.Enrollment("E-P1", NOW, "P1", "C7A")
    assert ("enrollment", "E-M1") not in got  # a subject class is not a class of students
    # M7A names its homeroom in classCode and has all of it: whole-class teaching.
    assert got[("teaching", "E-MT")] == m.TeachingAssignment("E-MT", NOW, "T2", "C7A", "SU-M")
    # E7A-1 has no classCode, but only 7А holds its students, and only some of them.
    assert got[("group", "E7A-1")] == m.SubGroup(
        "E7A-1", NOW, "C7A", "Английский 7А, гр. 1", ("P1", "P2")
    )
    assert got[("teaching", "E-ET")] == m.TeachingAssignment(
        "E-ET", NOW, "T1", "C7A", "SU-E", "E7A-1"
    )
    assert ("group", "M7A") not in got
    # district, term, ext:club, the administrator's user and enrollment, the club's teacher
    assert result.counts["skipped"] == 6
    assert result.counts["person"] == 8 and result.counts["rows"] == 35
    # The import is self-consistent: nothing it made points at something it did not make.
    for kind, entities in state.live.items():
        for entity in entities.values():
            assert state.dangling(entity) == [], (kind, entity)


def test_bulk_reimport_against_its_own_state_changes_nothing() -> None:
    state, first = school_state()
    again = import_oneroster(make_zip(SCHOOL_FILES), version=NOW + 86_400_000, base=state.live)
    assert again.changes == []
    assert again.counts["unchanged"] == len(first.changes)
    assert state.snapshot_deletes(again.present, NOW + 86_400_000) == []


def test_bulk_present_covers_bulk_kinds_and_snapshot_drops_what_left() -> None:
    state, _ = school_state()
    later = NOW + 86_400_000
    enrollments = [row for row in ENROLLMENTS if row[0] not in ("E-E2", "E-MT", "E-P4")]
    files = {**SCHOOL_FILES, "enrollments.csv": enrollments}
    result = import_oneroster(make_zip(files), version=later, base=state.live)
    assert result.errors == []
    # Undated bulk rows carry the new import time, so the smaller group is newer.
    assert upserted(result)[("group", "E7A-1")] == m.SubGroup(
        "E7A-1", later, "C7A", "Английский 7А, гр. 1", ("P1",)
    )
    assert set(result.present) == {
        "school",
        "academic_year",
        "subject",
        "person",
        "guardianship",
        "class",
        "enrollment",
        "group",
        "teaching",
    }
    state.apply_all(result.changes)
    deletes = state.snapshot_deletes(result.present, later)
    assert sorted((d.kind, d.sourced_id) for d in deletes) == [
        ("enrollment", "E-P4"),
        ("teaching", "E-MT"),
    ]
    state.apply_all(deletes)
    assert state.get("group", "E7A-1").student_ids == ("P1",)  # type: ignore[union-attr]
    assert "E-MT" not in state.live["teaching"]


def _dated(rows: Rows, when: str) -> Rows:
    """The same table with every row's dateLastModified set."""
    at = rows[0].index("dateLastModified")
    return [rows[0], *([*row[:at], when, *row[at + 1 :]] for row in rows[1:])]


def test_a_removal_in_an_older_dated_snapshot_still_takes_effect() -> None:
    # The group's version is the newest row it is built from. When the newest row (P2's)
    # disappears, what is left is older than the group in the roster; without the +1 rule
    # the smaller group would be stale and P2 would stay in it for ever.
    enrollments = _dated(ENROLLMENTS, T0)
    enrollments = [row if row[0] != "E-E2" else [*row[:2], T1, *row[3:]] for row in enrollments]
    files = {**SCHOOL_FILES, "classes.csv": _dated(CLASSES, T0), "enrollments.csv": enrollments}
    first = import_oneroster(make_zip(files), version=NOW)
    assert upserted(first)[("group", "E7A-1")].version == T1_MS
    state = RosterState()
    state.apply_all(first.changes)
    files["enrollments.csv"] = [row for row in enrollments if row[0] != "E-E2"]
    second = import_oneroster(make_zip(files), version=NOW, base=state.live)
    group = upserted(second)[("group", "E7A-1")]
    assert (group.version, group.student_ids) == (T1_MS + 1, ("P1",))  # type: ignore[union-attr]
    assert state.apply(m.Upsert(group)) == "applied"


def test_bulk_group_that_becomes_the_whole_class_is_deleted() -> None:
    state, _ = school_state()
    extra = ["E-E3", "", "", "E7A-1", "S1", "P3", "student", ""]
    files = {**SCHOOL_FILES, "enrollments.csv": [*ENROLLMENTS, extra]}
    result = import_oneroster(make_zip(files), version=NOW + 5, base=state.live)
    assert m.Delete("group", "E7A-1", NOW + 5) in result.changes
    assert upserted(result)[("teaching", "E-ET")].group_id is None  # type: ignore[union-attr]
    state.apply_all(result.changes)
    assert "E7A-1" not in state.live["group"]


def test_roles_csv_layout_of_oneroster_1_2() -> None:
    users: Rows = [
        [
            "sourcedId",
            "status",
            "dateLastModified",
            "enabledUser",
            "givenName",
            "familyName",
            "primaryOrgSourcedId",
            "agentSourcedIds",
        ],
        ["T1", "", "", "true", "Анна", "Иванова", "", ""],
        ["P1", "", "", "true", "Петя", "Кузнецов", "S1", ""],
    ]
    roles: Rows = [
        [
            "sourcedId",
            "status",
            "dateLastModified",
            "userSourcedId",
            "roleType",
            "role",
            "orgSourcedId",
            "beginDate",
            "endDate",
            "userProfileSourcedId",
        ],
        ["R-T1b", "", "", "T1", "secondary", "parent", "S9", "", "", ""],
        ["R-T1", "", "", "T1", "primary", "teacher", "S1", "", "", ""],
        ["R-P1", "", "", "P1", "primary", "student", "S2", "", "", ""],
    ]
    result = import_oneroster(make_zip({"users.csv": users, "roles.csv": roles}), version=NOW)
    got = upserted(result)
    assert got[("person", "T1")] == m.Person("T1", NOW, "S1", "teacher", "Анна", "Иванова")
    # primaryOrgSourcedId beats the role's org.
    assert got[("person", "P1")] == m.Person("P1", NOW, "S1", "student", "Петя", "Кузнецов")


def test_users_without_any_role_source_are_refused() -> None:
    users: Rows = [["sourcedId", "givenName", "familyName"], ["P1", "Петя", "Кузнецов"]]
    with pytest.raises(OneRosterError) as info:
        import_oneroster(make_zip({"users.csv": users}), version=NOW)
    assert info.value.code == "missing_columns"


def test_bom_crlf_and_any_column_order() -> None:
    text = "\ufeff" + csv_text([["type", "name", "sourcedId"], ["school", "Лицей", "S9"]])
    result = import_oneroster(make_zip({"orgs.csv": text.encode("utf-8")}), version=NOW)
    assert result.changes == [m.Upsert(m.School("S9", NOW, "Лицей"))]


# --- deltas ----------------------------------------------------------------------------------


def test_delta_updates_deletes_and_resolves_through_base() -> None:
    state, _ = school_state()
    users: Rows = [
        USERS[0],
        [
            "P1",
            "active",
            "2025-07-10T08:00:00Z",
            "true",
            "S1",
            "student",
            "",
            "Пётр",
            "Кузнецов",
            "",
            "",
            "",
        ],
        ["P3", "tobedeleted", "2025-07-10T08:00:00Z", "", "", "", "", "", "", "", "", ""],
    ]
    enrollments: Rows = [
        ENROLLMENTS[0],
        # C7B is only in base; T2 becomes its homeroom teacher.
        ["E-T2", "active", "2025-07-11T00:00:00Z", "C7B", "S1", "T2", "teacher", "true"],
        # E7A-1 is a sub-group in base: P3 joins, P2 leaves.
        ["E-E3", "active", "2025-07-11T00:00:00Z", "E7A-1", "S1", "P3", "student", ""],
        ["E-E2", "tobedeleted", "2025-07-11T00:00:00Z", "E7A-1", "S1", "P2", "student", ""],
        ["E-P4", "tobedeleted", "2025-07-11T00:00:00Z", "C7B", "S1", "P4", "student", ""],
        # An existing teaching assignment changes teacher; its class is not in the delta.
        ["E-MT", "active", "2025-07-12T00:00:00Z", "M7A", "S1", "T1", "teacher", "true"],
        # A student in a class nobody knows: a whole-class subject; nothing to do.
        ["E-Z1", "active", "2025-07-12T00:00:00Z", "Z9", "S1", "P1", "student", ""],
        # A teacher in a class nobody knows: a teaching assignment would be lost.
        ["E-Z2", "active", "2025-07-12T00:00:00Z", "Z9", "S1", "T1", "teacher", ""],
    ]
    files: dict[str, Rows | str | bytes] = {"users.csv": users, "enrollments.csv": enrollments}
    modes = {"users": "delta", "enrollments": "delta"}
    result = import_oneroster(make_zip(files, modes), version=NOW, base=state.live)
    jul10, jul11, jul12 = 1752134400000, 1752192000000, 1752278400000
    got = upserted(result)
    assert got[("person", "P1")].first_name == "Пётр"  # type: ignore[union-attr]
    assert m.Delete("person", "P3", jul10) in result.changes
    assert got[("class", "C7B")] == m.SchoolClass("C7B", jul11, "S1", "7Б", "T2")
    assert got[("group", "E7A-1")].student_ids == ("P1", "P3")  # type: ignore[union-attr]
    assert m.Delete("enrollment", "E-P4", jul11) in result.changes
    assert got[("teaching", "E-MT")] == m.TeachingAssignment("E-MT", jul12, "T1", "C7A", "SU-M")
    assert ("enrollment", "E-Z1") not in got
    assert [(e.file, e.line, e.code) for e in result.errors] == [
        ("enrollments.csv", 8, "unresolved")
    ]
    assert result.present == {}  # a delta never speaks for what it leaves out
    state.apply_all(result.changes)
    assert state.get("class", "C7B").homeroom_teacher_id == "T2"  # type: ignore[union-attr]
    assert "P3" not in state.live["person"]


def test_delta_primary_teacher_leaving_clears_the_homeroom_teacher() -> None:
    state, _ = school_state()
    enrollments: Rows = [
        ENROLLMENTS[0],
        ["E-T1", "tobedeleted", "2025-08-01T00:00:00Z", "C7A", "S1", "T1", "teacher", "true"],
    ]
    files: dict[str, Rows | str | bytes] = {"enrollments.csv": enrollments}
    result = import_oneroster(make_zip(files, {"enrollments": "delta"}), version=1, base=state.live)
    state.apply_all(result.changes)
    assert state.get("class", "C7A").homeroom_teacher_id is None  # type: ignore[union-attr]
    assert state.get("class", "C7A").name == "7А"  # type: ignore[union-attr]


def test_delta_rows_need_status_columns_and_dates() -> None:
    no_status: Rows = [["sourcedId", "name", "type"], ["S1", "Школа", "school"]]
    with pytest.raises(OneRosterError) as info:
        import_oneroster(make_zip({"orgs.csv": no_status}, {"orgs": "delta"}), version=NOW)
    assert info.value.code == "missing_columns" and "status" in info.value.message
    undated: Rows = [
        ["sourcedId", "status", "dateLastModified", "name", "type"],
        ["S1", "active", "", "Школа", "school"],
        ["S2", "tobedeleted", "2024-09-01T00:00:00", "", ""],
    ]
    result = import_oneroster(make_zip({"orgs.csv": undated}, {"orgs": "delta"}), version=NOW)
    assert result.changes == [m.Delete("school", "S2", T0_MS)]  # no offset: UTC
    assert [(e.line, e.code) for e in result.errors] == [(2, "missing_value")]


# --- bad rows --------------------------------------------------------------------------------


def test_bad_rows_are_reported_by_line_and_good_rows_kept() -> None:
    users: Rows = [
        USERS[0],
        ["T1", "", "", "true", "S1", "teacher", "", "Анна", "Иванова", "", "", ""],
        ["P1", "", "", "true", "S1", "student", "", "Петя\nПетров", "Кузнецов", "", "", ""],
        ["P2", "", "", "true", "S1", "student"],  # short
        ["P3", "", "", "true", "S1", "student", "", "Маша", "Лебедева", "", "8-900-1", ""],
        ["P4", "archived", "", "true", "S1", "student", "", "Даша", "Зайцева", "", "", ""],
        ["P5", "", "yesterday", "true", "S1", "student", "", "Ваня", "Титов", "", "", ""],
        ["P6", "", "", "true", "", "student", "", "Лёша", "Титов", "", "", ""],
        ["T1", "", "", "true", "S1", "teacher", "", "Анна", "Другая", "", "", ""],
        ["", "", "", "true", "S1", "student", "", "Без", "Номера", "", "", ""],
        ["P7", "", "", "true", "S1", "student", "", "", "Титов", "", "", ""],
        ["P8", "", "", "true", "S1", "student", "", "Оля", "Титова", "", "", "P\x01"],
        ["P9", "", "", "true", "S1", "student", "", "Федя", "Титов", "", "", ""],
    ]
    result = import_oneroster(make_zip({"users.csv": users}), version=NOW)
    # Line 3 holds a quoted newline, so every later record starts one line further down.
    assert [(e.file, e.line, e.code) for e in result.errors] == [
        ("users.csv", 3, "bad_value"),  # the newline makes the name non-printable
        ("users.csv", 5, "bad_row"),
        ("users.csv", 6, "bad_value"),  # phone
        ("users.csv", 7, "bad_value"),  # status
        ("users.csv", 8, "bad_value"),  # dateLastModified
        ("users.csv", 9, "missing_value"),  # no school
        ("users.csv", 10, "duplicate"),
        ("users.csv", 11, "missing_value"),  # no sourcedId
        ("users.csv", 12, "bad_value"),  # empty givenName
        ("users.csv", 13, "bad_value"),  # agent id with a control character
    ]
    messages = {e.line: e.message for e in result.errors}
    assert "phone" in messages[6] and "status" in messages[7] and "first_name" in messages[12]
    assert sorted(upserted(result)) == [("person", "P9"), ("person", "T1")]
    assert upserted(result)[("person", "T1")].last_name == "Иванова"  # type: ignore[union-attr]
    # A row that failed is still accounted for, so a snapshot will not delete that person.
    assert {"P1", "P3", "P4", "P5", "P6", "P7", "P8", "T1", "P9"} <= result.present["person"]


@pytest.mark.parametrize("column", [3, 5])  # a blank title; a misspelt classType
def test_failed_class_row_protects_its_enrollments_from_the_snapshot(column: int) -> None:
    state, _ = school_state()
    classes = [
        row if row[0] != "C7A" else [*row[:column], "", *row[column + 1 :]] for row in CLASSES
    ]
    files = {**SCHOOL_FILES, "classes.csv": classes}
    result = import_oneroster(make_zip(files), version=NOW + 1, base=state.live)
    assert ("classes.csv", 2, "bad_value") in [(e.file, e.line, e.code) for e in result.errors]
    deletes = state.snapshot_deletes(result.present, NOW + 1)
    assert [d for d in deletes if d.kind in ("class", "enrollment", "group", "teaching")] == []


def test_failed_user_row_keeps_its_guardianships() -> None:
    state, _ = school_state()
    users = [row if row[0] != "R1" else [*row[:10], "not a phone", row[11]] for row in USERS]
    result = import_oneroster(
        make_zip({**SCHOOL_FILES, "users.csv": users}), version=NOW + 1, base=state.live
    )
    assert [(e.line, e.code) for e in result.errors] == [(8, "bad_value")]
    assert state.snapshot_deletes(result.present, NOW + 1) == []


def test_a_bulk_classes_file_drops_the_classes_it_no_longer_lists() -> None:
    state, _ = school_state()
    classes = [row for row in CLASSES if row[0] != "C7B"]
    files = {**SCHOOL_FILES, "classes.csv": classes}
    result = import_oneroster(make_zip(files), version=NOW + 1, base=state.live)
    # base still has 7Б, but a bulk classes.csv is the whole truth: its enrollment goes too.
    assert ("enrollment", "E-P4") not in upserted(result)
    assert ("class", "C7B") not in upserted(result)
    deletes = state.snapshot_deletes(result.present, NOW + 1)
    assert sorted((d.kind, d.sourced_id) for d in deletes) == [
        ("class", "C7B"),
        ("enrollment", "E-P4"),
    ]


def test_scheduled_class_without_a_homeroom_is_reported() -> None:
    classes = [*CLASSES, ["Q1", "", "", "Химия", "C9", "scheduled", "SU-M", "S1", "", ""]]
    enrollments = [*ENROLLMENTS, ["E-Q", "", "", "Q1", "S1", "T2", "teacher", ""]]
    files = {**SCHOOL_FILES, "classes.csv": classes, "enrollments.csv": enrollments}
    result = import_oneroster(make_zip(files), version=NOW)
    assert [(e.file, e.line, e.code) for e in result.errors] == [("classes.csv", 7, "no_homeroom")]
    assert ("teaching", "E-Q") not in upserted(result)
    assert "E-Q" in result.present["teaching"]


# --- whole-file problems ---------------------------------------------------------------------

FILE_REJECTS: list[tuple[dict[str, Any], str]] = [
    ({"orgs.csv": [["sourcedId", "name"], ["S1", "Школа"]]}, "missing_columns"),
    ({"orgs.csv": [["sourcedId", "name", "type", "name"]]}, "bad_csv"),
    ({"orgs.csv": ""}, "bad_csv"),
    ({"orgs.csv": b"sourcedId,name,type\nS1,\xff,school\n"}, "bad_encoding"),
    ({"manifest.csv": manifest({"orgs": "bulk"}, "1.0")}, "bad_manifest"),
    ({"manifest.csv": manifest({"orgs": "sometimes"})}, "bad_manifest"),
    ({"manifest.csv": [["name", "value"]]}, "bad_manifest"),
    ({"manifest.csv": manifest({"users": "bulk"})}, "missing_file"),
]


@pytest.mark.parametrize(("files", "code"), FILE_REJECTS)
def test_file_level_problems_refuse_the_import(files: dict[str, Any], code: str) -> None:
    with pytest.raises(OneRosterError) as info:
        import_oneroster(make_zip(files), version=NOW)
    assert info.value.code == code


def test_no_manifest_is_refused() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("orgs.csv", csv_text(ORGS))
    with pytest.raises(OneRosterError) as info:
        import_oneroster(out.getvalue(), version=NOW)
    assert info.value.code == "bad_manifest"


def test_absent_files_and_unknown_members_are_not_read() -> None:
    files: dict[str, Rows | str | bytes] = {
        "manifest.csv": manifest({"orgs": "bulk", "users": "absent"}),
        "orgs.csv": ORGS,
        "users.csv": "not,even,csv\x00\n",
        "demographics.csv": "x",
    }
    result = import_oneroster(make_zip(files), version=NOW)
    assert [c.kind for c in result.changes] == ["school"]


def test_path_tricks_do_not_count_as_files() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("manifest.csv", csv_text(manifest({"orgs": "bulk"})))
        archive.writestr("../orgs.csv", csv_text(ORGS))
        archive.writestr("sub/orgs.csv", csv_text(ORGS))
    with pytest.raises(OneRosterError) as info:
        import_oneroster(out.getvalue(), version=NOW)
    assert info.value.code == "missing_file"


def test_a_zip_bomb_is_refused() -> None:
    bomb = "sourcedId,name,type\n" + "S1,Школа,school\n" * 200_000  # ~4 MB, deflates to KBs
    data = make_zip({"orgs.csv": bomb})
    assert len(data) < 100_000
    with pytest.raises(OneRosterError) as info:
        import_oneroster(data, version=NOW, max_uncompressed=1_000_000)
    assert info.value.code == "too_large"


def test_a_member_inflating_past_its_declared_size_is_refused() -> None:
    # Lie in both headers: declare 20 bytes for a member that inflates to ~1 MB.
    data = bytearray(make_zip({"orgs.csv": "sourcedId,name,type\n" + "x" * 1_000_000}))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        info = archive.getinfo("orgs.csv")
    real = info.file_size.to_bytes(4, "little")
    assert data.count(real) == 2
    data = bytearray(bytes(data).replace(real, (20).to_bytes(4, "little")))
    with pytest.raises(OneRosterError) as caught:
        import_oneroster(bytes(data), version=NOW, max_uncompressed=100_000)
    assert caught.value.code in ("too_large", "bad_zip")


def test_too_many_members_is_refused() -> None:
    files: dict[str, Rows | str | bytes] = {f"junk{i}.txt": "x" for i in range(20)}
    files["orgs.csv"] = ORGS
    with pytest.raises(OneRosterError) as info:
        import_oneroster(make_zip(files), version=NOW, max_members=10)
    assert info.value.code == "too_many_members"


def test_not_a_zip() -> None:
    with pytest.raises(OneRosterError) as info:
        import_oneroster(b"PK\x03\x04 but not really", version=NOW)
    assert info.value.code == "bad_zip"


def test_progress_reports_rows_up_to_the_total() -> None:
    users: Rows = [USERS[0]] + [
        [f"P{i}", "", "", "true", "S1", "student", "", "Имя", "Фамилия", "", "", ""]
        for i in range(1200)
    ]
    seen: list[tuple[int, int]] = []
    import_oneroster(
        make_zip({"users.csv": users}), version=NOW, progress=lambda d, t: seen.append((d, t))
    )
    assert seen[0] == (0, 1200) and seen[-1] == (1200, 1200)
    assert (500, 1200) in seen and (1000, 1200) in seen
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_a_big_school_imports_quickly() -> None:
    import time

    users: Rows = [USERS[0]]
    enrollments: Rows = [ENROLLMENTS[0]]
    classes: Rows = [CLASSES[0]]
    for c in range(80):
        classes.append([f"C{c}", "", "", f"{c}А", "", "homeroom", "", "S1", "", ""])
        users.append([f"T{c}", "", "", "", "S1", "teacher", "", "Учитель", "Т", "", "", ""])
        enrollments.append([f"ET{c}", "", "", f"C{c}", "S1", f"T{c}", "teacher", "true"])
    for i in range(5000):
        users.append([f"P{i}", "", "", "", "S1", "student", "", "Имя", "Ф", "", "", ""])
        enrollments.append([f"E{i}", "", "", f"C{i % 80}", "S1", f"P{i}", "student", ""])
    files: dict[str, Rows | str | bytes] = {"orgs.csv": ORGS, "classes.csv": classes}
    data = make_zip({**files, "users.csv": users, "enrollments.csv": enrollments})
    started = time.perf_counter()
    result = import_oneroster(data, version=NOW)
    elapsed = time.perf_counter() - started
    assert result.errors == []
    assert result.counts["person"] == 5080 and result.counts["enrollment"] == 5000
    assert elapsed < 2.0, elapsed


# --- hypothesis: hostile input fails only with OneRosterError --------------------------------


def _check_result(result: ImportResult) -> None:
    assert all(isinstance(e, RowError) and e.line >= 2 for e in result.errors)
    for change in result.changes:  # all of it is what a webhook could have sent
        assert parse_change(json.loads(json.dumps(change_to_wire(change)))) == change


GOOD_ZIP = make_zip(SCHOOL_FILES)


@st.composite
def damaged_zips(draw: st.DrawFn) -> bytes:
    """The school's zip with a few bytes overwritten, or cut short."""
    data = bytearray(GOOD_ZIP)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data) - 1))
        data[at : at + 4] = draw(st.binary(min_size=1, max_size=4))
    if draw(st.integers(0, 3)) == 0:
        del data[draw(st.integers(0, len(data))) :]
    return bytes(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | damaged_zips())
def test_arbitrary_bytes_raise_only_onerostererror(data: bytes) -> None:
    with contextlib.suppress(OneRosterError):
        _check_result(import_oneroster(data, version=NOW))


cell = st.one_of(
    st.sampled_from(["", "S1", "C7A", "P1", "true", "school", "homeroom", "scheduled"]),
    st.sampled_from(["student", "teacher", "tobedeleted", "2024-09-01", T1, "+79001234567"]),
    st.text(max_size=6),
)


@st.composite
def hostile_row(draw: st.DrawFn, rows: Rows) -> list[str]:
    """A fixture row with some cells replaced, now and then cut short or made longer."""
    row = list(draw(st.sampled_from(rows[1:])))
    for _ in range(draw(st.integers(0, 3))):
        row[draw(st.integers(0, len(row) - 1))] = draw(cell)
    if draw(st.integers(0, 9)) == 0:
        row = row[: draw(st.integers(0, len(row) + 1))] + draw(st.lists(cell, max_size=2))
    return row


@st.composite
def hostile_tables(draw: st.DrawFn) -> dict[str, Rows | str | bytes]:
    """The school's files with rows mixed, mutated and repeated, or now and then plain text."""
    files: dict[str, Rows | str | bytes] = {}
    for name, rows in SCHOOL_FILES.items():
        assert isinstance(rows, list)
        choice = draw(st.integers(0, 9))
        if choice == 0:
            continue
        if choice == 1:
            files[name] = draw(st.text(max_size=60))
            continue
        files[name] = [rows[0], *draw(st.lists(hostile_row(rows), max_size=8))]
    return files


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_tables(), st.sampled_from(["bulk", "delta"]), st.booleans())
def test_arbitrary_csv_raises_only_onerostererror(
    files: dict[str, Rows | str | bytes], mode: str, with_base: bool
) -> None:
    base = school_state()[0].live if with_base else None
    modes = {name.removesuffix(".csv"): mode for name in files}
    try:
        result = import_oneroster(make_zip(files, modes), version=NOW, base=base)
    except OneRosterError:
        return
    _check_result(result)
    RosterState().apply_all(result.changes)
