"""Import of an IMS OneRoster 1.2 CSV zip (bulk or delta) as roster changes.

Sans-IO: bytes of a zip in, ``ImportResult`` out. Every entity is built through
``changes.build_entity``, so an import can produce nothing a webhook could not.

The zip
    Only the top-level members ``manifest.csv``, ``orgs.csv``, ``academicSessions.csv``,
    ``courses.csv``, ``classes.csv``, ``users.csv``, ``roles.csv`` and ``enrollments.csv``
    are read; every other member (folders, ``../x``, other OneRoster files) is ignored. An
    archive with more than ``max_members`` members, or whose read members would decompress
    to more than ``max_uncompressed`` bytes, is refused before or while reading (the
    declared sizes are not trusted). Files are UTF-8, with or without a BOM.

manifest.csv (``propertyName,value``)
    ``manifest.version`` must be ``1.0``; ``oneroster.version`` ``1.2`` (``1.1`` is accepted
    too). ``file.<name>`` is ``bulk``, ``delta`` or ``absent`` (missing means absent); a file
    the manifest lists as bulk or delta must be in the zip.

CSV files
    Columns are found by header name (any order, surrounding spaces ignored). A file missing
    a required column, with a repeated column, or that is not valid CSV is refused as a whole
    (``OneRosterError``). A bad row is reported as a ``RowError`` with its line number (the
    header is line 1) and skipped; the other rows are kept. Cells are stripped; blank means
    absent; lists inside a cell (``agentSourcedIds``, ``termSourcedIds``, ``orgSourcedIds``)
    are comma-separated. In a delta file ``status`` and ``dateLastModified`` are required.

Status and version
    ``status`` is blank/``active`` or ``tobedeleted`` (any case, as are roles and ``primary``;
    ``type`` and ``classType`` are matched as the spec spells them); ``tobedeleted`` gives a
    ``Delete``. The version is ``dateLastModified`` (ISO 8601; no offset means UTC) in ms since
    the epoch; a bulk row without it gets the caller's ``version`` (e.g. the import time).

Mapping
    orgs.csv: ``type`` school -> School(``name``); other org types are skipped.
    academicSessions.csv: ``type`` schoolYear -> AcademicYear(``title``, ``startDate``,
    ``endDate`` as YYYY-MM-DD); its school is the ``orgSourcedId`` column when there is one,
    else the only school known (this zip or ``base``). Other session types are skipped, but a
    term's ``parentSourcedId`` is used to find a class's year.
    courses.csv: -> Subject(``title``, school ``orgSourcedId``).
    users.csv: -> Person(``givenName``, ``familyName``, ``middleName``, ``phone`` as E.164).
    The role is the ``role`` column (OneRoster 1.1 layout), else the user's roles.csv row
    (``roleType`` primary preferred), else the role already in ``base``: teacher -> teacher,
    student -> student, parent and guardian -> parent; other roles are skipped. The school is
    ``primaryOrgSourcedId``, else the first of ``orgSourcedIds``, else the roles.csv
    ``orgSourcedId``, else the one in ``base``.
    Guardianship: each id in a parent's ``agentSourcedIds``, and each parent named in a
    student's ``agentSourcedIds``, gives Guardianship(parent, student) with id
    ``"guardianship-"`` + the first 32 hex digits of sha256(parent + "\\n" + student).
    Deltas only add guardianships; a bulk snapshot (``present``) removes them.
    classes.csv: ``classType`` homeroom -> SchoolClass(``title``, ``schoolSourcedId``, year =
    the first of ``termSourcedIds`` that is a school year or a session whose parent is one).
    ``classType`` scheduled is a subject taught to a homeroom: its homeroom is the homeroom
    class whose sourcedId equals its ``classCode``; failing that (bulk enrollments only), the
    one homeroom holding all of its students; failing that, ``no_homeroom``. Its students
    that are a non-empty proper part of the homeroom's make it a SubGroup (same id,
    ``title``, sorted students); a delta only adds/removes students of a sub-group already in
    ``base`` (sub-groups are created by bulk imports). ``ext:`` classes are skipped, and so
    are enrollments in them or in classes this zip deletes.
    enrollments.csv: a student in a homeroom -> Enrollment; a teacher in a homeroom with
    ``primary`` true -> that class's ``homeroom_teacher_id`` (several: newest row wins); a
    teacher in a scheduled class -> TeachingAssignment(enrollment id, teacher, homeroom,
    ``courseSourcedId``, sub-group or none). A student enrollment whose class is in neither
    this zip nor ``base`` is skipped (it can only be a whole-class subject); such a teacher
    enrollment is ``unresolved``. Other enrollment roles are skipped.
    Derived versions: an entity built from several rows has the newest of their versions; if
    only its joined part changed and that version is not newer than the one in ``base``, it
    gets base's version + 1, so that a row's disappearance still takes effect.

Result
    ``changes`` holds only what differs from ``base`` (the journal's live roster, if given);
    ``present`` is, for each kind fed only by bulk files, every id the snapshot accounts for,
    including rows that failed (so a typo never deletes anyone): pass it to
    ``RosterState.snapshot_deletes``. ``counts`` has ``rows``, ``skipped``, ``unchanged``,
    ``delete`` and one entry per kind upserted.
"""

from __future__ import annotations

import csv
import hashlib
import io
import zipfile
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sferumd.services.roster.changes import (
    MAX_VERSION,
    PHONE,
    InvalidEntity,
    build_entity,
    check_id,
)
from sferumd.services.roster.model import (
    KIND_OF,
    Change,
    Delete,
    Entity,
    Person,
    SchoolClass,
    SubGroup,
    TeachingAssignment,
    Upsert,
)

MAX_MEMBERS = 100
MAX_UNCOMPRESSED = 64 * 2**20  # a large school's full export is a few MB
_CHUNK = 64 * 1024

Mode = Literal["bulk", "delta"]
Progress = Callable[[int, int], None]
Roster = Mapping[str, Mapping[str, Entity]]

# Data files in the order they are mapped, with the columns each must have.
REQUIRED: dict[str, tuple[str, ...]] = {
    "orgs.csv": ("sourcedId", "name", "type"),
    "academicSessions.csv": ("sourcedId", "title", "type", "startDate", "endDate"),
    "courses.csv": ("sourcedId", "title", "orgSourcedId"),
    "roles.csv": ("sourcedId", "userSourcedId", "roleType", "role"),
    "users.csv": ("sourcedId", "givenName", "familyName"),
    "classes.csv": ("sourcedId", "title", "classType", "courseSourcedId", "schoolSourcedId"),
    "enrollments.csv": ("sourcedId", "classSourcedId", "userSourcedId", "role"),
}
DELTA_REQUIRED = ("status", "dateLastModified")
FILES = ("manifest.csv", *REQUIRED)

# Which files a kind's snapshot depends on: ``present`` lists a kind only if all are bulk.
FEEDS: dict[str, tuple[str, ...]] = {
    "school": ("orgs.csv",),
    "academic_year": ("academicSessions.csv",),
    "subject": ("courses.csv",),
    "person": ("users.csv",),
    "guardianship": ("users.csv",),
    "class": ("classes.csv",),
    "enrollment": ("enrollments.csv",),
    "group": ("classes.csv", "enrollments.csv"),
    "teaching": ("classes.csv", "enrollments.csv"),
}
ROLE_MAP = {"teacher": "teacher", "student": "student", "parent": "parent", "guardian": "parent"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PHONE_NOISE = str.maketrans("", "", " -().\u00a0")


class OneRosterError(Exception):
    """The zip as a whole cannot be imported. Codes: bad_zip, too_many_members, too_large,
    bad_encoding, bad_manifest, missing_file, bad_csv, missing_columns."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class RowError:
    """One skipped row. Codes: bad_row (wrong number of cells), duplicate, missing_value,
    bad_value, unresolved (a reference found neither in the zip nor in base), no_homeroom."""

    file: str
    line: int
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class ImportResult:
    changes: list[Change]
    errors: list[RowError]
    counts: dict[str, int]
    present: dict[str, set[str]]  # kind -> ids a bulk snapshot accounts for


def import_oneroster(
    data: bytes,
    *,
    version: int,
    base: Roster | None = None,
    progress: Progress | None = None,
    max_members: int = MAX_MEMBERS,
    max_uncompressed: int = MAX_UNCOMPRESSED,
) -> ImportResult:
    """Map a OneRoster CSV zip to changes; raises only ``OneRosterError`` for bad input.

    ``version`` is used for bulk rows without ``dateLastModified``; ``base`` is the
    journal's live roster (``RosterState.live``), used to resolve what a delta leaves out.
    """
    if not 0 <= version < MAX_VERSION:
        raise ValueError("version must be >= 0 and < 2**63")
    texts = _read_zip(data, max_members, max_uncompressed)
    if "manifest.csv" not in texts:
        raise OneRosterError("bad_manifest", "manifest.csv is missing")
    modes = _manifest(texts["manifest.csv"])
    tables: dict[str, _Table] = {}
    for name, mode in modes.items():
        if name not in texts:
            raise OneRosterError("missing_file", f"the manifest lists {name} but the zip lacks it")
        tables[name] = _table(name, texts[name], mode)
    users = tables.get("users.csv")
    if users and "role" not in users.header and "roles.csv" not in tables and not base:
        raise OneRosterError("missing_columns", "users.csv has no role column and no roles.csv")
    return _Importer(tables, modes, version, base or {}, progress).run()


# --- reading the zip -------------------------------------------------------------------------


def _read_zip(data: bytes, max_members: int, max_bytes: int) -> dict[str, str]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            if len(infos) > max_members:
                raise OneRosterError("too_many_members", f"more than {max_members} members")
            wanted = [info for info in infos if info.filename in FILES and not info.is_dir()]
            if len({info.filename for info in wanted}) != len(wanted):
                raise OneRosterError("bad_zip", "a file appears twice in the zip")
            if sum(info.file_size for info in wanted) > max_bytes:
                raise OneRosterError("too_large", f"more than {max_bytes} bytes uncompressed")
            raw: dict[str, bytes] = {}
            budget = max_bytes
            for info in wanted:
                raw[info.filename] = _read_member(archive, info, budget)
                budget -= len(raw[info.filename])
    except OneRosterError:
        raise
    except Exception as exc:  # zipfile, zlib and struct raise many types on corrupt input
        raise OneRosterError(
            "bad_zip", f"not a readable zip archive ({type(exc).__name__})"
        ) from None
    texts: dict[str, str] = {}
    for name, blob in raw.items():
        try:
            texts[name] = blob.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise OneRosterError("bad_encoding", f"{name} is not UTF-8") from None
    return texts


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: int) -> bytes:
    # The header's file_size is the sender's word; count what actually comes out.
    parts: list[bytes] = []
    total = 0
    with archive.open(info) as stream:
        while chunk := stream.read(_CHUNK):
            total += len(chunk)
            if total > budget:
                raise OneRosterError("too_large", f"{info.filename} inflates past the limit")
            parts.append(chunk)
    return b"".join(parts)


# --- CSV tables ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Table:
    name: str
    mode: Mode
    header: tuple[str, ...]
    records: list[tuple[int, list[str]]]  # (line where the record starts, cells)


def _records(name: str, text: str) -> Iterator[tuple[int, list[str]]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    line = 0
    try:
        for cells in reader:
            start, line = line + 1, reader.line_num
            if any(cell.strip() for cell in cells):  # blank lines and ",,," carry nothing
                yield start, cells
    except csv.Error as exc:
        raise OneRosterError("bad_csv", f"{name} line {reader.line_num}: {exc}") from None


def _parse_table(name: str, text: str) -> tuple[tuple[str, ...], list[tuple[int, list[str]]]]:
    records = list(_records(name, text))
    if not records:
        raise OneRosterError("bad_csv", f"{name} has no header")
    header = tuple(cell.strip() for cell in records[0][1])
    if len(set(header)) != len(header):
        raise OneRosterError("bad_csv", f"{name} repeats a column")
    return header, records[1:]


def _table(name: str, text: str, mode: Mode) -> _Table:
    header, records = _parse_table(name, text)
    required = REQUIRED[name] + (DELTA_REQUIRED if mode == "delta" else ())
    missing = [column for column in required if column not in header]
    if missing:
        raise OneRosterError("missing_columns", f"{name} lacks {', '.join(missing)}")
    return _Table(name, mode, header, records)


def _manifest(text: str) -> dict[str, Mode]:
    header, records = _parse_table("manifest.csv", text)
    if "propertyName" not in header or "value" not in header:
        raise OneRosterError("bad_manifest", "manifest.csv must have columns propertyName,value")
    key, value = header.index("propertyName"), header.index("value")
    props: dict[str, str] = {}
    for _, cells in records:
        if len(cells) != len(header) or cells[key].strip() in props:
            raise OneRosterError("bad_manifest", "a manifest row is malformed or repeated")
        props[cells[key].strip()] = cells[value].strip()
    if props.get("manifest.version") != "1.0":
        raise OneRosterError("bad_manifest", "manifest.version must be 1.0")
    if props.get("oneroster.version") not in ("1.1", "1.2"):
        raise OneRosterError("bad_manifest", "oneroster.version must be 1.2 (or 1.1)")
    modes: dict[str, Mode] = {}
    for name in REQUIRED:
        mode = props.get("file." + name.removesuffix(".csv"), "absent").lower()
        if mode in ("bulk", "delta"):
            modes[name] = "bulk" if mode == "bulk" else "delta"
        elif mode != "absent":
            raise OneRosterError("bad_manifest", f"file.{name} must be bulk, delta or absent")
    return modes


# --- rows ------------------------------------------------------------------------------------


class _Bad(Exception):
    """A row-level problem; the row is reported and skipped."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class _Row:
    """A row with a valid id, status and version; ``get`` reads its other cells."""

    file: str
    line: int
    sid: str
    version: int
    deleted: bool
    cells: dict[str, str]

    def get(self, column: str) -> str:
        return self.cells.get(column, "")

    def id(self, column: str) -> str:
        value = self.get(column)
        if not value:
            raise _Bad("missing_value", f"{column} is required")
        return _check_id(column, value)

    def optional_id(self, column: str) -> str | None:
        value = self.get(column)
        return _check_id(column, value) if value else None

    def ids(self, column: str) -> list[str]:
        parts = (part.strip() for part in self.get(column).split(","))
        return [_check_id(column, part) for part in parts if part]


def _check_id(column: str, value: str) -> str:
    try:
        return check_id(column, value)
    except InvalidEntity as exc:
        raise _Bad("bad_value", exc.message) from None


def _parse_version(raw: str) -> int:
    try:
        moment = datetime.fromisoformat(raw)
        if moment.tzinfo is None:  # OneRoster date-times are UTC
            moment = moment.replace(tzinfo=UTC)
        ms = (moment - _EPOCH) // timedelta(milliseconds=1)
    except (ValueError, OverflowError):
        raise _Bad("bad_value", "dateLastModified is not an ISO 8601 date-time") from None
    if not 0 <= ms < MAX_VERSION:
        raise _Bad("bad_value", "dateLastModified is before 1970")
    return ms


def _guardianship_id(parent: str, student: str) -> str:
    # Fixed length and unambiguous whatever characters the two ids contain.
    digest = hashlib.sha256(f"{parent}\n{student}".encode()).hexdigest()
    return "guardianship-" + digest[:32]


def _phone(raw: str) -> str | None:
    if not raw:
        return None
    phone = raw.translate(_PHONE_NOISE)
    if not PHONE.fullmatch(phone):
        raise _Bad("bad_value", "phone must be an E.164 number like +79001234567")
    return phone


@dataclass(frozen=True, slots=True)
class _Enrol:
    row: _Row
    class_id: str
    user_id: str
    role: str
    primary: bool


# --- mapping ---------------------------------------------------------------------------------


class _Importer:
    def __init__(
        self,
        tables: dict[str, _Table],
        modes: dict[str, Mode],
        version: int,
        base: Roster,
        progress: Progress | None,
    ):
        self.tables, self.modes, self.version, self.base = tables, modes, version, base
        self.progress = progress
        self.total = sum(len(table.records) for table in tables.values())
        self.done = 0
        if progress is not None:
            progress(0, self.total)
        self.changes: list[Change] = []
        self.errors: list[RowError] = []
        self.counts: Counter[str] = Counter()
        self.kept: defaultdict[str, set[str]] = defaultdict(set)  # kind -> ids emitted or same
        self.failed: defaultdict[str, set[str]] = defaultdict(set)  # file -> ids of bad rows
        self.schools: set[str] = set()
        self.years: set[str] = set()
        self.session_parent: dict[str, str] = {}

    def run(self) -> ImportResult:
        self._orgs()
        self._sessions()
        self._courses()
        self._users()
        self._classes_and_enrollments()
        if self.progress is not None:
            self.progress(self.total, self.total)
        self.counts["rows"] = self.total
        return ImportResult(self.changes, self.errors, dict(self.counts), self._present())

    # -- plumbing --

    def _base(self, kind: str, sid: str) -> Any:
        return self.base.get(kind, {}).get(sid)

    def _fail(self, row_file: str, line: int, sid: str | None, bad: _Bad) -> None:
        self.errors.append(RowError(row_file, line, bad.code, bad.message))
        if sid:
            self.failed[row_file].add(sid)

    def _rows(self, name: str) -> Iterator[_Row]:
        """The rows of a file that have a usable id, status and version; others are reported."""
        table = self.tables.get(name)
        if table is None:
            return
        seen: set[str] = set()
        for line, cells in table.records:
            self.done += 1
            if self.progress is not None and self.done % 500 == 0:
                self.progress(self.done, self.total)
            shaped = len(cells) == len(table.header)
            sid = cells[table.header.index("sourcedId")].strip() if shaped else None
            try:
                row = self._row(table, line, cells)
                if row.sid in seen:
                    raise _Bad("duplicate", f"sourcedId {row.sid} appears earlier in the file")
            except _Bad as bad:
                self._fail(name, line, sid, bad)
                continue
            seen.add(row.sid)
            yield row

    def _row(self, table: _Table, line: int, cells: list[str]) -> _Row:
        if len(cells) != len(table.header):
            raise _Bad("bad_row", f"{len(cells)} cells, the header has {len(table.header)}")
        values = {column: cell.strip() for column, cell in zip(table.header, cells, strict=True)}
        if not values["sourcedId"]:
            raise _Bad("missing_value", "sourcedId is required")
        sid = _check_id("sourcedId", values["sourcedId"])
        status = values.get("status", "").lower()
        if status not in ("", "active", "tobedeleted"):
            raise _Bad("bad_value", "status must be active or tobedeleted")
        raw = values.get("dateLastModified", "")
        if raw:
            version = _parse_version(raw)
        elif table.mode == "delta":
            raise _Bad("missing_value", "dateLastModified is required in a delta file")
        else:
            version = self.version
        return _Row(table.name, line, sid, version, status == "tobedeleted", values)

    def _build(self, row: _Row, kind: str, data: dict[str, Any], version: int = -1) -> Entity:
        try:
            return build_entity(kind, row.sid, row.version if version < 0 else version, data)
        except InvalidEntity as exc:
            raise _Bad("bad_value", exc.message) from None

    def _emit(self, entity: Entity, joined: tuple[str, ...] = ()) -> None:
        """Upsert ``entity`` unless base already has it; ``joined`` fields came from other rows."""
        kind = KIND_OF[type(entity)]
        self.kept[kind].add(entity.sourced_id)
        old: Entity | None = self._base(kind, entity.sourced_id)
        if old is not None:
            if replace(entity, version=old.version) == old:
                self.counts["unchanged"] += 1
                return
            own_part = {field: getattr(old, field) for field in joined}
            own_same = replace(entity, version=old.version, **own_part) == old
            if joined and own_same and entity.version <= old.version < MAX_VERSION - 1:
                entity = replace(entity, version=old.version + 1)
        self.changes.append(Upsert(entity))
        self.counts[kind] += 1

    def _delete(self, kind: str, sid: str, version: int) -> None:
        self.changes.append(Delete(kind, sid, version))
        self.counts["delete"] += 1

    def _present(self) -> dict[str, set[str]]:
        present: dict[str, set[str]] = {}
        for kind, files in FEEDS.items():
            if all(self.modes.get(name) == "bulk" for name in files):
                ids = set(self.kept[kind])
                for name in files:
                    ids |= self.failed[name]
                present[kind] = ids
        if "guardianship" in present:  # a user row that failed keeps its guardianships
            bad_users = self.failed["users.csv"]
            for sid, link in self.base.get("guardianship", {}).items():
                if {getattr(link, "parent_id", ""), getattr(link, "student_id", "")} & bad_users:
                    present["guardianship"].add(sid)
        return present

    def _each(self, name: str, handle: Callable[[_Row], None]) -> None:
        for row in self._rows(name):
            try:
                handle(row)
            except _Bad as bad:
                self._fail(name, row.line, row.sid, bad)

    # -- orgs, sessions, courses --

    def _orgs(self) -> None:
        def handle(row: _Row) -> None:
            kind = row.get("type")
            if row.deleted:
                if kind in ("school", ""):
                    self._delete("school", row.sid, row.version)
                return
            if kind != "school":
                self.counts["skipped"] += 1
                return
            self._emit(self._build(row, "school", {"name": row.get("name")}))
            self.schools.add(row.sid)

        self._each("orgs.csv", handle)

    def _sole_school(self) -> str:
        schools = self.schools | set(self.base.get("school", {}))
        if len(schools) != 1:
            raise _Bad("missing_value", "orgSourcedId is required when there is not one school")
        return next(iter(schools))

    def _sessions(self) -> None:
        def handle(row: _Row) -> None:
            parent = row.optional_id("parentSourcedId")
            if parent:
                self.session_parent[row.sid] = parent
            kind = row.get("type")
            if row.deleted:
                if kind in ("schoolYear", ""):
                    self._delete("academic_year", row.sid, row.version)
                return
            if kind != "schoolYear":
                self.counts["skipped"] += 1
                return
            data = {
                "school_id": row.optional_id("orgSourcedId") or self._sole_school(),
                "title": row.get("title"),
                "start_date": row.get("startDate"),
                "end_date": row.get("endDate"),
            }
            self._emit(self._build(row, "academic_year", data))
            self.years.add(row.sid)

        self._each("academicSessions.csv", handle)

    def _courses(self) -> None:
        def handle(row: _Row) -> None:
            if row.deleted:
                self._delete("subject", row.sid, row.version)
                return
            data = {"school_id": row.id("orgSourcedId"), "name": row.get("title")}
            self._emit(self._build(row, "subject", data))

        self._each("courses.csv", handle)

    # -- users --

    def _roles(self) -> dict[str, tuple[str, str]]:
        """user -> (role, org) from roles.csv, the primary role first."""
        found: dict[str, tuple[str, str, bool]] = {}

        def handle(row: _Row) -> None:
            user = row.id("userSourcedId")
            if row.deleted or row.get("role").lower() not in ROLE_MAP:
                self.counts["skipped"] += 1
                return
            primary = row.get("roleType") == "primary"
            if user not in found or (primary and not found[user][2]):
                found[user] = (row.get("role").lower(), row.get("orgSourcedId"), primary)

        self._each("roles.csv", handle)
        return {user: (role, org) for user, (role, org, _) in found.items()}

    def _users(self) -> None:
        roles = self._roles()
        people: list[tuple[_Row, Person, list[str]]] = []

        def handle(row: _Row) -> None:
            if row.deleted:
                self._delete("person", row.sid, row.version)
                return
            person = self._person(row, roles.get(row.sid, ("", "")))
            if person is None:
                self.counts["skipped"] += 1
                return
            people.append((row, person, row.ids("agentSourcedIds")))

        self._each("users.csv", handle)
        parents = {p.sourced_id for _, p, _ in people if p.role == "parent"}
        links: dict[tuple[str, str], int] = {}
        for row, person, agents in people:
            self._emit(person)
            for agent in agents:
                if person.role == "parent":
                    pair = (person.sourced_id, agent)
                elif person.role == "student" and self._is_parent(agent, parents):
                    pair = (agent, person.sourced_id)
                else:
                    continue
                links[pair] = max(links.get(pair, 0), row.version)
        for (parent, student), version in links.items():
            sid = _guardianship_id(parent, student)
            data = {"parent_id": parent, "student_id": student}
            self._emit(build_entity("guardianship", sid, version, data))

    def _is_parent(self, sid: str, parents: set[str]) -> bool:
        known = self._base("person", sid)
        return sid in parents or (known is not None and known.role == "parent")

    def _person(self, row: _Row, role_row: tuple[str, str]) -> Person | None:
        known: Person | None = self._base("person", row.sid)
        raw_role = row.get("role") or role_row[0] or (known.role if known else "")
        if not raw_role:
            raise _Bad("missing_value", "role is required (users.csv role or roles.csv)")
        role = ROLE_MAP.get(raw_role.lower())
        if role is None:
            return None
        orgs = row.ids("orgSourcedIds")
        school = (
            row.optional_id("primaryOrgSourcedId")
            or (orgs[0] if orgs else None)
            or role_row[1]
            or (known.school_id if known else None)
        )
        if not school:
            raise _Bad("missing_value", "primaryOrgSourcedId or orgSourcedIds is required")
        data = {
            "school_id": school,
            "role": role,
            "first_name": row.get("givenName"),
            "last_name": row.get("familyName"),
            "patronymic": row.get("middleName") or None,
            "phone": _phone(row.get("phone")),
        }
        entity = self._build(row, "person", data)
        assert isinstance(entity, Person)
        return entity

    # -- classes and enrollments --

    def _classes_and_enrollments(self) -> None:
        plan = _ClassPlan(self)
        plan.read_classes()
        plan.read_enrollments()
        plan.homerooms_out()
        plan.scheduled_out()
        plan.base_groups_out()


class _ClassPlan:
    """Classes and enrollments, which only make sense together."""

    def __init__(self, importer: _Importer):
        self.im = importer
        self.full = importer.modes.get("enrollments.csv") == "bulk"
        # A bulk classes.csv is the whole truth: a class it lacks is gone, whatever base says.
        self.trust_base = importer.modes.get("classes.csv") != "bulk"
        self.homerooms: dict[str, _Row] = {}
        self.scheduled: dict[str, _Row] = {}
        self.ignored: set[str] = set()  # classes this zip deletes, and ext: classes
        self.students: defaultdict[str, dict[str, int]] = defaultdict(dict)  # homeroom->student
        self.members: defaultdict[str, list[_Enrol]] = defaultdict(list)  # scheduled class
        self.leads: defaultdict[str, list[_Enrol]] = defaultdict(list)  # homeroom teachers
        self.teachers: defaultdict[str, list[_Enrol]] = defaultdict(list)  # scheduled class

    def class_kind(self, cid: str) -> str | None:
        if cid in self.ignored:
            return "ignored"
        if cid in self.homerooms:
            return "homeroom"
        if cid in self.scheduled:
            return "scheduled"
        if self.trust_base and self.im._base("class", cid):
            return "homeroom"
        if self.trust_base and self.im._base("group", cid):
            return "scheduled"
        return None

    def read_classes(self) -> None:
        def handle(row: _Row) -> None:
            kind = row.get("classType")
            if row.deleted:
                self.ignored.add(row.sid)
                kinds = {"homeroom": ("class",), "scheduled": ("group",)}.get(
                    kind, ("class", "group")
                )
                for each in kinds:
                    self.im._delete(each, row.sid, row.version)
            elif kind == "homeroom":
                self.homerooms[row.sid] = row
            elif kind == "scheduled":
                row.id("courseSourcedId")  # checked here so the error points at this row
                self.scheduled[row.sid] = row
            elif kind.startswith("ext:"):
                self.ignored.add(row.sid)
                self.im.counts["skipped"] += 1
            else:
                raise _Bad("bad_value", "classType must be homeroom or scheduled")

        self.im._each("classes.csv", handle)

    def read_enrollments(self) -> None:
        self.im._each("enrollments.csv", self._enrollment)

    def _enrollment(self, row: _Row) -> None:
        primary = row.get("primary").lower()
        if primary not in ("", "true", "false"):
            raise _Bad("bad_value", "primary must be true or false")
        cid, user = row.id("classSourcedId"), row.id("userSourcedId")
        enrol = _Enrol(row, cid, user, row.get("role").lower(), primary == "true")
        if cid in self.im.failed["classes.csv"]:
            # Its class row was bad: keep what the roster has rather than guess.
            self.im.failed["enrollments.csv"].add(row.sid)
            self.im.counts["skipped"] += 1
            return
        kind = self.class_kind(cid)
        if enrol.role == "student":
            self._student(enrol, kind)
        elif enrol.role == "teacher":
            self._teacher(enrol, kind)
        else:
            self.im.counts["skipped"] += 1

    def _student(self, enrol: _Enrol, kind: str | None) -> None:
        row = enrol.row
        if kind == "scheduled":
            self.members[enrol.class_id].append(enrol)
        elif row.deleted:
            self.im._delete("enrollment", row.sid, row.version)
        elif kind == "homeroom":
            data = {"student_id": enrol.user_id, "class_id": enrol.class_id}
            self.im._emit(self.im._build(row, "enrollment", data))
            self.students[enrol.class_id][enrol.user_id] = row.version
        else:  # a class nobody knows: in a delta, a whole-class subject; nothing to record
            self.im.counts["skipped"] += 1

    def _teacher(self, enrol: _Enrol, kind: str | None) -> None:
        row = enrol.row
        if kind == "homeroom":
            self.leads[enrol.class_id].append(enrol)
        elif kind == "scheduled" and enrol.class_id in self.scheduled:
            self.teachers[enrol.class_id].append(enrol)
        elif row.deleted:
            self.im._delete("teaching", row.sid, row.version)
        elif kind == "ignored":
            self.im.counts["skipped"] += 1
        else:
            self._teacher_from_base(enrol)

    def _teacher_from_base(self, enrol: _Enrol) -> None:
        known: TeachingAssignment | None = self.im._base("teaching", enrol.row.sid)
        if known is None:
            raise _Bad("unresolved", f"class {enrol.class_id} is in neither classes.csv nor base")
        version = max(enrol.row.version, known.version)
        self.im._emit(replace(known, version=version, teacher_id=enrol.user_id))

    # homerooms

    def homerooms_out(self) -> None:
        touched = set(self.homerooms) | set(self.leads)
        if self.full and self.trust_base:  # every class's homeroom teacher is in this file
            touched |= set(self.im.base.get("class", {}))
        for cid in sorted(touched - self.ignored):
            try:
                self._homeroom(cid)
            except _Bad as bad:
                row = self.homerooms[cid]
                self.im._fail(row.file, row.line, row.sid, bad)

    def _homeroom(self, cid: str) -> None:
        row = self.homerooms.get(cid)
        known: SchoolClass | None = self.im._base("class", cid)
        if row is not None:
            data = {
                "school_id": row.id("schoolSourcedId"),
                "name": row.get("title"),
                "year_id": self._year(row.ids("termSourcedIds")),
                "homeroom_teacher_id": None,
            }
            draft = self.im._build(row, "class", data)
            assert isinstance(draft, SchoolClass)
        elif known is not None:
            draft = known
        else:
            return
        teacher, version = self._lead(known, draft.version, self.leads.get(cid, []))
        self.im._emit(
            replace(draft, homeroom_teacher_id=teacher, version=version),
            joined=("homeroom_teacher_id",),
        )

    def _lead(
        self, known: SchoolClass | None, version: int, leads: list[_Enrol]
    ) -> tuple[str | None, int]:
        """The homeroom teacher and the class's version once its teacher rows are counted."""
        if self.full:
            live = [e for e in leads if e.primary and not e.row.deleted]
            if not live:
                return None, version
            newest = max(live, key=lambda e: (e.row.version, e.row.sid))
            return newest.user_id, max(version, newest.row.version)
        teacher = known.homeroom_teacher_id if known else None
        for enrol in sorted(leads, key=lambda e: e.row.version):
            version = max(version, enrol.row.version)
            if enrol.primary and not enrol.row.deleted:
                teacher = enrol.user_id
            elif teacher == enrol.user_id:
                teacher = None
        return teacher, version

    def _year(self, terms: list[str]) -> str | None:
        years = self.im.years | set(self.im.base.get("academic_year", {}))
        for term in terms:
            for candidate in (term, self.im.session_parent.get(term)):
                if candidate in years:
                    return candidate
        return None

    # scheduled classes: sub-groups and teaching

    def scheduled_out(self) -> None:
        for cid, row in sorted(self.scheduled.items()):
            try:
                self._scheduled(cid, row)
            except _Bad as bad:
                self.im._fail(row.file, row.line, row.sid, bad)
                for enrol in self.teachers.get(cid, []):
                    self.im.failed["enrollments.csv"].add(enrol.row.sid)

    def _scheduled(self, cid: str, row: _Row) -> None:
        home = self._homeroom_of(cid, row)
        group = self._group(row, home)
        data = {
            "class_id": home,
            "subject_id": row.id("courseSourcedId"),
            "group_id": group.sourced_id if group else None,
        }
        for enrol in self.teachers.get(cid, []):
            if enrol.row.deleted:
                self.im._delete("teaching", enrol.row.sid, enrol.row.version)
                continue
            version = max(enrol.row.version, row.version, group.version if group else 0)
            try:
                entity = self.im._build(
                    enrol.row, "teaching", {**data, "teacher_id": enrol.user_id}, version
                )
            except _Bad as bad:
                self.im._fail(enrol.row.file, enrol.row.line, enrol.row.sid, bad)
                continue
            self.im._emit(entity, joined=("class_id", "subject_id", "group_id"))

    def _homeroom_of(self, cid: str, row: _Row) -> str:
        code = row.get("classCode")
        if code and self.class_kind(code) == "homeroom":
            return code
        if self.full:
            pupils = {e.user_id for e in self.members.get(cid, []) if not e.row.deleted}
            holders = [h for h, kids in self.students.items() if pupils and pupils.issubset(kids)]
            if len(holders) == 1:
                return holders[0]
        raise _Bad("no_homeroom", f"classCode names no homeroom and no one homeroom holds {cid}")

    def _group(self, row: _Row, home: str) -> SubGroup | None:
        """The sub-group this scheduled class is, emitted; None when it is the whole class."""
        cid = row.sid
        known: SubGroup | None = self.im._base("group", cid)
        rows = self.members.pop(cid, [])
        version = max([row.version, *(e.row.version for e in rows)])
        if self.full:
            whole = self.students.get(home, {})
            pupils = {e.user_id for e in rows if not e.row.deleted} & whole.keys()
            if not 0 < len(pupils) < len(whole):
                if known is not None:
                    self.im._delete("group", cid, max(version, known.version))
                return None
        elif known is not None:
            pupils = self._moved(set(known.student_ids), rows)
        else:
            return None
        data = {"class_id": home, "name": row.get("title"), "student_ids": sorted(pupils)}
        group = self.im._build(row, "group", data, version)
        assert isinstance(group, SubGroup)
        self.im._emit(group, joined=("class_id", "student_ids"))
        return group

    @staticmethod
    def _moved(pupils: set[str], rows: list[_Enrol]) -> set[str]:
        for enrol in sorted(rows, key=lambda e: e.row.version):
            if enrol.row.deleted:
                pupils.discard(enrol.user_id)
            else:
                pupils.add(enrol.user_id)
        return pupils

    def base_groups_out(self) -> None:
        """Delta student rows of sub-groups whose class row is not in this zip."""
        for cid, rows in sorted(self.members.items()):
            known: SubGroup | None = self.im._base("group", cid)
            if known is None or self.full:
                continue
            version = max([known.version, *(e.row.version for e in rows)])
            pupils = sorted(self._moved(set(known.student_ids), rows))
            data = {"class_id": known.class_id, "name": known.name, "student_ids": pupils}
            try:
                group = build_entity("group", cid, version, data)
            except InvalidEntity as exc:  # e.g. grown past the size limit
                first = rows[0].row
                self.im._fail(first.file, first.line, first.sid, _Bad("bad_value", exc.message))
                continue
            self.im._emit(group)
