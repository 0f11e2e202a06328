"""The roster: what a school journal says about its school, as typed values.

A subset of IMS OneRoster 1.2 plus the timetable. Every entity belongs to one journal and is
named by the journal's own id (``sourced_id``); its ``version`` is the journal's
modification time in milliseconds since the epoch, so a later version always wins and an
older delivery arriving late changes nothing. A delete is a ``Tombstone`` that keeps its
version for the same reason. References between entities are ids only: an entity may
arrive before what it points at (deliveries are unordered), and whatever reads the roster
treats a reference to something absent or deleted as not there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["teacher", "student", "parent"]
ROLES: tuple[Role, ...] = ("teacher", "student", "parent")


@dataclass(frozen=True, slots=True)
class School:
    sourced_id: str
    version: int
    name: str


@dataclass(frozen=True, slots=True)
class AcademicYear:
    sourced_id: str
    version: int
    school_id: str
    title: str  # "2024/2025"
    start_date: str  # ISO date
    end_date: str  # ISO date


@dataclass(frozen=True, slots=True)
class SchoolClass:
    """A class of students ("7В"), with its homeroom teacher ("классный руководитель")."""

    sourced_id: str
    version: int
    school_id: str
    name: str
    homeroom_teacher_id: str | None = None
    year_id: str | None = None


@dataclass(frozen=True, slots=True)
class Subject:
    sourced_id: str
    version: int
    school_id: str
    name: str  # "История"


@dataclass(frozen=True, slots=True)
class Person:
    """A journal account: one person in one role. A parent who also teaches has two."""

    sourced_id: str
    version: int
    school_id: str
    role: Role
    first_name: str
    last_name: str
    patronymic: str | None = None
    phone: str | None = None  # E.164 when the journal knows it


@dataclass(frozen=True, slots=True)
class Enrollment:
    """A student in a class."""

    sourced_id: str
    version: int
    student_id: str
    class_id: str


@dataclass(frozen=True, slots=True)
class Guardianship:
    """A parent (or other legal guardian) of a student."""

    sourced_id: str
    version: int
    parent_id: str
    student_id: str


@dataclass(frozen=True, slots=True)
class SubGroup:
    """Part of a class taught separately (a language group); students listed whole."""

    sourced_id: str
    version: int
    class_id: str
    name: str
    student_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TeachingAssignment:
    """A teacher teaches a subject to a class, or to one of its sub-groups."""

    sourced_id: str
    version: int
    teacher_id: str
    class_id: str
    subject_id: str
    group_id: str | None = None


@dataclass(frozen=True, slots=True)
class Lesson:
    """One lesson in the timetable; a move is a new version, a cancel sets ``cancelled``."""

    sourced_id: str
    version: int
    class_id: str
    subject_id: str
    teacher_id: str
    start: str  # RFC 3339 with offset
    end: str  # RFC 3339 with offset
    group_id: str | None = None
    cancelled: bool = False


Entity = (
    School
    | AcademicYear
    | SchoolClass
    | Subject
    | Person
    | Enrollment
    | Guardianship
    | SubGroup
    | TeachingAssignment
    | Lesson
)

# The wire name of each kind, as webhooks and snapshots spell it.
KINDS: dict[str, type[Entity]] = {
    "school": School,
    "academic_year": AcademicYear,
    "class": SchoolClass,
    "subject": Subject,
    "person": Person,
    "enrollment": Enrollment,
    "guardianship": Guardianship,
    "group": SubGroup,
    "teaching": TeachingAssignment,
    "lesson": Lesson,
}
KIND_OF: dict[type[Entity], str] = {cls: kind for kind, cls in KINDS.items()}


@dataclass(frozen=True, slots=True)
class Tombstone:
    """A deleted entity: kept with its version so an older upsert can't bring it back."""

    kind: str
    sourced_id: str
    version: int


@dataclass(frozen=True, slots=True)
class Upsert:
    entity: Entity

    @property
    def kind(self) -> str:
        return KIND_OF[type(self.entity)]


@dataclass(frozen=True, slots=True)
class Delete:
    kind: str
    sourced_id: str
    version: int


Change = Upsert | Delete
