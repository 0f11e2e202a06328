"""Roster changes on the wire: one webhook batch in, typed ``Change`` values out.

Everything the journal sends is validated here; nothing past this module sees raw JSON.

Wire format of one batch (a JSON object)::

    {"delivery_id": "d-0001",
     "changes": [
       {"op": "upsert", "kind": "class", "id": "C-7V", "version": 1732780800000,
        "data": {"school_id": "S1", "name": "7В", "homeroom_teacher_id": "P-T1"}},
       {"op": "delete", "kind": "enrollment", "id": "E-17", "version": 1732780800001}
     ]}

- ``delivery_id``: required, 1..128 printable ASCII characters, no spaces. The batch carries no
  other keys.
- ``changes``: a list of at most ``max_changes`` (default 10 000) change objects.
- A change has exactly ``op`` (``upsert`` or ``delete``), ``kind`` (a key of ``model.KINDS``),
  ``id`` and ``version``; an upsert also has ``data``, a delete has nothing else.
- ``id`` and every reference to another entity: a string of 1..128 printable characters
  (``str.isprintable``: no control, format or line-separator characters).
- ``version``: an integer, 0 <= version < 2**63 (``true``/``false`` are not integers); the
  journal's modification time in milliseconds. A later version wins.
- ``data``: the entity's fields other than ``sourced_id``/``version`` (see ``SCHEMAS``).
  Optional fields may be omitted or ``null``; an unknown field is an error. Names and titles
  are 1..200 printable characters after stripping surrounding whitespace. ``role`` is one of
  ``teacher``, ``student``, ``parent``. Dates are ``YYYY-MM-DD``; an academic year does not
  end before it starts. Lesson ``start``/``end`` are RFC 3339 date-times with a ``Z`` or
  ``+hh:mm`` offset and at most microsecond precision, ``end`` after ``start``. ``phone``,
  when present, is E.164 (``+`` then 7..15 digits, no leading zero). ``student_ids`` is a
  list of distinct ids (at most 1000). ``cancelled`` is ``true`` or ``false``.

Problems with one change are reported as a ``ChangeError`` (its index in ``changes``, the
kind and id when they were readable, a code and a message naming the field); the batch's
valid changes are kept. Problems with the batch as a whole raise ``BatchError``.

Change error codes: ``bad_change`` (not an object, a required key missing, ``data`` not an
object), ``unknown_op``, ``unknown_kind``, ``bad_id``, ``bad_version``, ``bad_field``,
``unknown_field``. Batch error codes: ``bad_batch``, ``too_many_changes``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from sferumd.services.roster.model import (
    KIND_OF,
    KINDS,
    ROLES,
    Change,
    Delete,
    Entity,
    Upsert,
)

MAX_ID = 128
MAX_NAME = 200
MAX_VERSION = 2**63  # exclusive: versions fit a signed 64-bit column
MAX_GROUP_SIZE = 1000
MAX_CHANGES = 10_000

DELIVERY_ID = re.compile(r"[\x21-\x7e]{1,128}")
PHONE = re.compile(r"\+[1-9][0-9]{6,14}")
DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# RFC 3339 section 5.6 date-time with a mandatory offset. The fraction is capped at six digits
# because that is what datetime (and so every comparison made here) can represent.
INSTANT = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})"
)

ChangeCode = Literal[
    "bad_change",
    "unknown_op",
    "unknown_kind",
    "bad_id",
    "bad_version",
    "bad_field",
    "unknown_field",
]
BatchCode = Literal["bad_batch", "too_many_changes"]


@dataclass(frozen=True, slots=True)
class ChangeError:
    """Why the change at ``index`` of a batch was rejected."""

    index: int
    kind: str | None
    id: str | None
    code: ChangeCode
    message: str


class BatchError(Exception):
    """The batch as a whole is unusable; nothing of it is applied."""

    def __init__(self, code: BatchCode, message: str):
        super().__init__(f"{code}: {message}")
        self.code: BatchCode = code
        self.message = message


@dataclass(frozen=True, slots=True)
class ParsedBatch:
    delivery_id: str
    changes: list[tuple[int, Change]]  # (index in the batch, change), in batch order
    errors: list[ChangeError]


class InvalidEntity(ValueError):
    """One value of an entity failed validation (raised by ``build_entity`` and the checks)."""

    def __init__(self, code: ChangeCode, message: str):
        super().__init__(message)
        self.code: ChangeCode = code
        self.message = message


def _show(value: object) -> str:
    """A hostile key or value, cut short enough to put in an error message."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# --- value checks: (field name, raw value) -> typed value, or InvalidEntity ------------------


def check_id(field: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidEntity("bad_field", f"{field} must be a string")
    if not 1 <= len(value) <= MAX_ID:
        raise InvalidEntity("bad_field", f"{field} must be 1..{MAX_ID} characters")
    if not value.isprintable():
        raise InvalidEntity("bad_field", f"{field} contains a control or non-printable character")
    return value


def check_name(field: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidEntity("bad_field", f"{field} must be a string")
    value = value.strip()
    if not 1 <= len(value) <= MAX_NAME:
        raise InvalidEntity("bad_field", f"{field} must be 1..{MAX_NAME} characters")
    if not value.isprintable():
        raise InvalidEntity("bad_field", f"{field} contains a control or non-printable character")
    return value


def check_version(value: object) -> int:
    # bool is a subclass of int; JSON true must not pass for version 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidEntity("bad_version", "version must be an integer")
    if not 0 <= value < MAX_VERSION:
        raise InvalidEntity("bad_version", "version must be >= 0 and < 2**63")
    return value


def _role(field: str, value: object) -> str:
    if not isinstance(value, str) or value not in ROLES:
        raise InvalidEntity("bad_field", f"{field} must be one of {', '.join(ROLES)}")
    return value


def _date(field: str, value: object) -> str:
    # fromisoformat alone also takes "20240901" and week dates; the wire allows one spelling.
    if not isinstance(value, str) or not DATE.fullmatch(value):
        raise InvalidEntity("bad_field", f"{field} must be a date YYYY-MM-DD")
    try:
        date.fromisoformat(value)
    except ValueError:
        raise InvalidEntity("bad_field", f"{field} is not a real date") from None
    return value


def _instant(field: str, value: object) -> str:
    if not isinstance(value, str) or not INSTANT.fullmatch(value):
        raise InvalidEntity("bad_field", f"{field} must be an RFC 3339 date-time with an offset")
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise InvalidEntity("bad_field", f"{field} is not a real date-time") from None
    return value


def _phone(field: str, value: object) -> str:
    if not isinstance(value, str) or not PHONE.fullmatch(value):
        raise InvalidEntity("bad_field", f"{field} must be an E.164 number like +79001234567")
    return value


def _flag(field: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidEntity("bad_field", f"{field} must be true or false")
    return value


def _id_list(field: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise InvalidEntity("bad_field", f"{field} must be a list of ids")
    if len(value) > MAX_GROUP_SIZE:
        raise InvalidEntity("bad_field", f"{field} has more than {MAX_GROUP_SIZE} ids")
    ids = tuple(check_id(f"{field}[{i}]", item) for i, item in enumerate(value))
    if len(set(ids)) != len(ids):
        raise InvalidEntity("bad_field", f"{field} lists an id twice")
    return ids


Check = Callable[[str, object], object]


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    check: Check
    required: bool = True


# The ``data`` of each kind: one row per field, in the dataclass's order. entity_to_wire and
# build_entity both read this table, so the two directions cannot drift apart.
SCHEMAS: dict[str, tuple[Field, ...]] = {
    "school": (Field("name", check_name),),
    "academic_year": (
        Field("school_id", check_id),
        Field("title", check_name),
        Field("start_date", _date),
        Field("end_date", _date),
    ),
    "class": (
        Field("school_id", check_id),
        Field("name", check_name),
        Field("homeroom_teacher_id", check_id, required=False),
        Field("year_id", check_id, required=False),
    ),
    "subject": (Field("school_id", check_id), Field("name", check_name)),
    "person": (
        Field("school_id", check_id),
        Field("role", _role),
        Field("first_name", check_name),
        Field("last_name", check_name),
        Field("patronymic", check_name, required=False),
        Field("phone", _phone, required=False),
    ),
    "enrollment": (Field("student_id", check_id), Field("class_id", check_id)),
    "guardianship": (Field("parent_id", check_id), Field("student_id", check_id)),
    "group": (
        Field("class_id", check_id),
        Field("name", check_name),
        Field("student_ids", _id_list, required=False),
    ),
    "teaching": (
        Field("teacher_id", check_id),
        Field("class_id", check_id),
        Field("subject_id", check_id),
        Field("group_id", check_id, required=False),
    ),
    "lesson": (
        Field("class_id", check_id),
        Field("subject_id", check_id),
        Field("teacher_id", check_id),
        Field("start", _instant),
        Field("end", _instant),
        Field("group_id", check_id, required=False),
        Field("cancelled", _flag, required=False),
    ),
}
_FIELD_NAMES = {kind: frozenset(f.name for f in fields) for kind, fields in SCHEMAS.items()}


def _check_order(kind: str, values: Mapping[str, Any]) -> None:
    """Rules between fields of one entity; single fields are already valid."""
    if kind == "academic_year" and values["end_date"] < values["start_date"]:
        raise InvalidEntity("bad_field", "end_date is before start_date")
    if kind == "lesson" and datetime.fromisoformat(values["end"]) <= datetime.fromisoformat(
        values["start"]
    ):
        raise InvalidEntity("bad_field", "end must be after start")


def build_entity(kind: str, sourced_id: object, version: object, data: Mapping[Any, Any]) -> Entity:
    """A validated entity of ``kind`` from wire-shaped ``data``; raises ``InvalidEntity``."""
    schema = SCHEMAS.get(kind) if isinstance(kind, str) else None
    if schema is None:
        raise InvalidEntity("unknown_kind", f"kind must be one of {', '.join(KINDS)}")
    try:
        sid = check_id("id", sourced_id)
    except InvalidEntity as exc:
        raise InvalidEntity("bad_id", exc.message) from None
    values: dict[str, Any] = {"sourced_id": sid, "version": check_version(version)}
    for key in data:
        if key not in _FIELD_NAMES[kind]:
            raise InvalidEntity("unknown_field", f"{_show(key)} is not a field of {kind}")
    for field in schema:
        raw = data.get(field.name)
        if raw is not None:
            values[field.name] = field.check(field.name, raw)
        elif field.required:
            raise InvalidEntity("bad_field", f"{field.name} is required")
    _check_order(kind, values)
    return KINDS[kind](**values)


def entity_to_wire(entity: Entity) -> dict[str, Any]:
    """The upsert change that ``parse_change`` turns back into an equal entity."""
    kind = KIND_OF[type(entity)]
    data: dict[str, Any] = {}
    for field in SCHEMAS[kind]:
        value = getattr(entity, field.name)
        if value is None:
            continue  # absent and null mean the same; omitting keeps stored rows short
        data[field.name] = list(value) if isinstance(value, tuple) else value
    return {
        "op": "upsert",
        "kind": kind,
        "id": entity.sourced_id,
        "version": entity.version,
        "data": data,
    }


def change_to_wire(change: Change) -> dict[str, Any]:
    if isinstance(change, Upsert):
        return entity_to_wire(change.entity)
    return {"op": "delete", "kind": change.kind, "id": change.sourced_id, "version": change.version}


_UPSERT_KEYS = frozenset({"op", "kind", "id", "version", "data"})
_DELETE_KEYS = frozenset({"op", "kind", "id", "version"})


def parse_change(obj: object, index: int = 0) -> Change | ChangeError:
    """One change object of a batch; never raises, a bad change comes back as a ChangeError."""
    if not isinstance(obj, dict):
        return ChangeError(index, None, None, "bad_change", "a change must be an object")
    op, kind, sid = obj.get("op"), obj.get("kind"), obj.get("id")
    known_kind = kind if isinstance(kind, str) and kind in KINDS else None
    readable_id = sid if isinstance(sid, str) and 1 <= len(sid) <= MAX_ID else None

    def reject(code: ChangeCode, message: str) -> ChangeError:
        return ChangeError(index, known_kind, readable_id, code, message)

    if op is None:
        return reject("bad_change", "op is required")
    if op not in ("upsert", "delete"):
        return reject("unknown_op", "op must be upsert or delete")
    if kind is None:
        return reject("bad_change", "kind is required")
    if known_kind is None:
        return reject("unknown_kind", f"kind must be one of {', '.join(KINDS)}")
    allowed = _UPSERT_KEYS if op == "upsert" else _DELETE_KEYS
    extra = [key for key in obj if key not in allowed]
    try:
        valid_id = check_id("id", sid)
    except InvalidEntity as exc:
        return ChangeError(index, known_kind, None, "bad_id", exc.message)
    try:
        version = check_version(obj.get("version"))
    except InvalidEntity as exc:
        return reject(exc.code, exc.message)
    if extra:
        what = "a delete carries no data" if extra == ["data"] else "unknown key"
        return reject("unknown_field", f"{_show(extra[0])}: {what}")
    if op == "delete":
        return Delete(known_kind, valid_id, version)
    data = obj.get("data")
    if not isinstance(data, dict):
        return reject("bad_change", "data must be an object")
    try:
        return Upsert(build_entity(known_kind, sid, version, data))
    except InvalidEntity as exc:
        return reject(exc.code, exc.message)


def parse_batch(obj: object, max_changes: int = MAX_CHANGES) -> ParsedBatch:
    """A decoded webhook body; raises BatchError if the batch as a whole is unusable."""
    if not isinstance(obj, dict):
        raise BatchError("bad_batch", "the batch must be an object")
    extra = [key for key in obj if key not in ("delivery_id", "changes")]
    if extra:
        raise BatchError("bad_batch", f"{_show(extra[0])} is not a key of a batch")
    delivery_id = obj.get("delivery_id")
    if not isinstance(delivery_id, str) or not DELIVERY_ID.fullmatch(delivery_id):
        raise BatchError("bad_batch", "delivery_id must be 1..128 printable ASCII, no spaces")
    items = obj.get("changes")
    if not isinstance(items, list):
        raise BatchError("bad_batch", "changes must be a list")
    if len(items) > max_changes:
        raise BatchError("too_many_changes", f"a batch carries at most {max_changes} changes")
    changes: list[tuple[int, Change]] = []
    errors: list[ChangeError] = []
    for index, item in enumerate(items):
        parsed = parse_change(item, index)
        if isinstance(parsed, ChangeError):
            errors.append(parsed)
        else:
            changes.append((index, parsed))
    return ParsedBatch(delivery_id, changes, errors)
