"""The versioned roster of one journal, in memory. Every rule about which change wins lives here.

For each (kind, id) the state keeps exactly one record: the live entity or its tombstone. A
change replaces that record only if it is greater in this total order:

1. a higher ``version`` wins;
2. at equal versions a delete beats an upsert (a tombstone is never revived by an upsert of
   its own version);
3. between two different upserts of equal version, the one whose canonical wire JSON
   (``canonical``) sorts greater wins.

Because the kept record is always the greatest change seen, applying any set of changes in
any order, any number of times, leaves the same state: deliveries may be duplicated, late or
out of order. Deletes of ids never seen still leave a tombstone, so an older upsert that
arrives after its delete cannot bring the entity back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Literal

from sferumd.services.roster.changes import entity_to_wire
from sferumd.services.roster.model import KIND_OF, KINDS, Change, Delete, Entity, Tombstone, Upsert

Outcome = Literal["applied", "stale", "unchanged"]

# Which fields of each kind name another entity, and of which kind. Used by ``dangling``.
REFERENCES: dict[str, tuple[tuple[str, str], ...]] = {
    "school": (),
    "academic_year": (("school_id", "school"),),
    "class": (
        ("school_id", "school"),
        ("homeroom_teacher_id", "person"),
        ("year_id", "academic_year"),
    ),
    "subject": (("school_id", "school"),),
    "person": (("school_id", "school"),),
    "enrollment": (("student_id", "person"), ("class_id", "class")),
    "guardianship": (("parent_id", "person"), ("student_id", "person")),
    "group": (("class_id", "class"), ("student_ids", "person")),
    "teaching": (
        ("teacher_id", "person"),
        ("class_id", "class"),
        ("subject_id", "subject"),
        ("group_id", "group"),
    ),
    "lesson": (
        ("class_id", "class"),
        ("subject_id", "subject"),
        ("teacher_id", "person"),
        ("group_id", "group"),
    ),
}


def canonical(entity: Entity) -> str:
    """The tie-break key: the entity's wire form as compact JSON with sorted keys."""
    return json.dumps(
        entity_to_wire(entity), sort_keys=True, ensure_ascii=False, separators=(",", ":")
    )


def _upsert_beats(new: Entity, old: Entity) -> bool:
    if new.version != old.version:
        return new.version > old.version
    # Equal versions are rare (one journal clock tick); only then is JSON built.
    return canonical(new) > canonical(old)


class RosterState:
    """kind -> id -> entity for live entities, and kind -> id -> tombstone for deleted ones."""

    __slots__ = ("_dead", "_live", "live", "tombstones")

    def __init__(self) -> None:
        self._live: dict[str, dict[str, Entity]] = {kind: {} for kind in KINDS}
        self._dead: dict[str, dict[str, Tombstone]] = {kind: {} for kind in KINDS}
        # Read-only views made once: readers (reconciliation) get them without copying.
        self.live: Mapping[str, Mapping[str, Entity]] = MappingProxyType(self._live)
        self.tombstones: Mapping[str, Mapping[str, Tombstone]] = MappingProxyType(self._dead)

    def apply(self, change: Change) -> Outcome:
        if isinstance(change, Upsert):
            return self._upsert(change.kind, change.entity)
        return self._delete(change)

    def apply_all(self, changes: Iterable[Change]) -> dict[Outcome, int]:
        counts: dict[Outcome, int] = {"applied": 0, "stale": 0, "unchanged": 0}
        for change in changes:
            counts[self.apply(change)] += 1
        return counts

    def _upsert(self, kind: str, entity: Entity) -> Outcome:
        live, dead = self._live[kind], self._dead[kind]
        sid = entity.sourced_id
        current = live.get(sid)
        if current is not None:
            if current == entity:
                return "unchanged"
            if not _upsert_beats(entity, current):
                return "stale"
        else:
            tomb = dead.get(sid)
            if tomb is not None:
                if tomb.version >= entity.version:
                    return "stale"
                del dead[sid]
        live[sid] = entity
        return "applied"

    def _delete(self, change: Delete) -> Outcome:
        live, dead = self._live[change.kind], self._dead[change.kind]
        sid, version = change.sourced_id, change.version
        current = live.get(sid)
        if current is not None:
            if current.version > version:
                return "stale"
            del live[sid]
        else:
            tomb = dead.get(sid)
            if tomb is not None and tomb.version >= version:
                return "unchanged" if tomb.version == version else "stale"
        dead[sid] = Tombstone(change.kind, sid, version)
        return "applied"

    def get(self, kind: str, sourced_id: str) -> Entity | None:
        return self._live[kind].get(sourced_id)

    def version_of(self, kind: str, sourced_id: str) -> int | None:
        """The version of the entity or of its tombstone; None if the id was never seen."""
        entity = self._live[kind].get(sourced_id)
        if entity is not None:
            return entity.version
        tomb = self._dead[kind].get(sourced_id)
        return None if tomb is None else tomb.version

    def snapshot_deletes(self, present: Mapping[str, set[str]], version: int) -> list[Delete]:
        """Deletes for a full snapshot taken at ``version``.

        Only kinds listed in ``present`` are covered. A live entity of such a kind whose id is
        absent gets a Delete at ``version``, unless it is newer than the snapshot: it changed
        after the snapshot was taken, so the snapshot cannot speak for it.
        """
        deletes: list[Delete] = []
        for kind, ids in present.items():
            for sid, entity in self._live[kind].items():
                if sid not in ids and entity.version < version:
                    deletes.append(Delete(kind, sid, version))
        return deletes

    def dangling(self, entity: Entity) -> list[str]:
        """The reference fields of ``entity`` that name no live entity.

        List fields are named per item, ``student_ids[2]``. Dangling entities are still kept:
        deliveries are unordered, and what they point at may come later.
        """
        missing: list[str] = []
        for field, target in REFERENCES[KIND_OF[type(entity)]]:
            value = getattr(entity, field)
            live = self._live[target]
            if isinstance(value, tuple):
                missing.extend(f"{field}[{i}]" for i, ref in enumerate(value) if ref not in live)
            elif value is not None and value not in live:
                missing.append(field)
        return missing
