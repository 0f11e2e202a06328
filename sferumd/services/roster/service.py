"""The journal adapter's domain side: roster deliveries in, journal-bound chats out.

A delivery (webhook batch, snapshot or OneRoster import) is applied to the journal's
in-memory ``RosterState`` and committed with its delivery id in one write, so a replay is
answered from the record and changes nothing. Then the journal is reconciled: the desired
chats (``reconcile.desired``) are compared with the managed rooms and the difference is
applied as ordinary room events sent by the journal's own owner account
(``@journal-<journal id>``). Reconciliations of one journal run one at a time, and requests
that pile up while one runs share the next run.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sferumd.model import MEMBER, Event, Journal, JournalChat
from sferumd.services.auth import AuthError
from sferumd.services.rooms import RoomService
from sferumd.services.roster import reconcile as rc
from sferumd.services.roster.changes import (
    BatchError,
    ChangeError,
    InvalidEntity,
    build_entity,
    check_version,
    entity_to_wire,
    parse_batch,
)
from sferumd.services.roster.model import KINDS, Change, Delete, Upsert
from sferumd.services.roster.oneroster import OneRosterError, RowError, import_oneroster
from sferumd.services.roster.state import RosterState
from sferumd.store.roster import EntityRow, RosterStore

log = logging.getLogger(__name__)

CLASS_KINDS = ("class", "parents", "colleagues")


def owner_of(journal_id: str) -> str:
    """The account that owns a journal's managed rooms (never a person, never signs in)."""
    return f"@journal-{journal_id}"


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(slots=True)
class Outcome:
    """What one delivery did, as answered to the journal."""

    delivery_id: str | None
    applied: int = 0
    stale: int = 0
    unchanged: int = 0
    deactivated: int = 0  # deleted because a snapshot no longer lists them
    errors: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    rows: list[EntityRow] = field(default_factory=list)  # to commit

    def to_json(self) -> dict[str, Any]:
        return {
            "delivery_id": self.delivery_id,
            "applied": self.applied,
            "stale": self.stale,
            "unchanged": self.unchanged,
            "deactivated": self.deactivated,
            "rejected": len(self.errors),
            "errors": self.errors,
            "warnings": self.warnings,
        }


def _error_json(err: ChangeError) -> dict[str, Any]:
    return {
        "index": err.index,
        "kind": err.kind,
        "id": err.id,
        "code": err.code,
        "message": err.message,
    }


def _row(change: Change) -> EntityRow:
    if isinstance(change, Upsert):
        e = change.entity
        data = json.dumps(entity_to_wire(e)["data"], ensure_ascii=False, separators=(",", ":"))
        return EntityRow(change.kind, e.sourced_id, e.version, data)
    return EntityRow(change.kind, change.sourced_id, change.version, None)


def _change(row: EntityRow) -> Change:
    if row.data is None:
        return Delete(row.kind, row.sourced_id, row.version)
    return Upsert(build_entity(row.kind, row.sourced_id, row.version, json.loads(row.data)))


@dataclass(slots=True)
class _Journal:
    """One journal's roster and reconciliation bookkeeping."""

    state: RosterState = field(default_factory=RosterState)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # deliveries, one at a time
    reconciling: asyncio.Lock = field(default_factory=asyncio.Lock)
    wanted: int = 0  # reconciliations asked for
    done: int = 0  # ... and the request number the last finished run covered
    index: rc.RosterIndex | None = None  # of ``state``; dropped whenever the roster changes
    desired: Mapping[rc.ChatKey, rc.DesiredChat] = field(default_factory=dict)  # last run's
    warnings: tuple[rc.BindingWarning, ...] = ()


class RosterService:
    def __init__(
        self,
        store: RosterStore,
        rooms: RoomService,
        max_changes: int,
        max_snapshot: int,
        max_import_bytes: int,
    ):
        self.store = store
        self.rooms = rooms
        self.max_changes = max_changes
        self.max_snapshot = max_snapshot
        self.max_import_bytes = max_import_bytes  # uncompressed size of a OneRoster zip
        self._journals: dict[str, _Journal] = {}

    def _journal(self, journal_id: str) -> _Journal:
        j = self._journals.get(journal_id)
        if j is None:
            j = self._journals[journal_id] = _Journal()
        return j

    async def load(self) -> None:
        """Rebuilds every roster, then reconciles: a delivery committed just before a crash
        gets its chats now, and the journal API has what the chats should be at once."""
        journal_ids = await self.store.journals_with_rosters()
        for journal_id in journal_ids:
            state = self._journal(journal_id).state
            for row in await self.store.entities(journal_id):
                state.apply(_change(row))
        for journal_id in journal_ids:
            await self.reconcile(journal_id)

    def state(self, journal_id: str) -> RosterState:
        return self._journal(journal_id).state

    # -- deliveries ------------------------------------------------------------------------

    async def deliver(self, journal: Journal, body: object) -> dict[str, Any]:
        """A webhook batch. Valid changes apply even if others in the batch are refused."""
        try:
            batch = parse_batch(body, self.max_changes)
        except BatchError as exc:
            raise AuthError(400, exc.code, exc.message) from None
        j = self._journal(journal.journal_id)
        async with j.lock:
            seen = await self.store.delivery(journal.journal_id, batch.delivery_id)
            if seen is not None:
                return {**json.loads(seen), "duplicate": True}
            outcome = Outcome(batch.delivery_id, errors=[_error_json(e) for e in batch.errors])
            await self._apply(journal.journal_id, j, batch.changes, outcome)
        await self._reconcile_if_changed(journal.journal_id, outcome)
        return outcome.to_json()

    async def snapshot(self, journal: Journal, body: object) -> dict[str, Any]:
        """The journal's whole roster as of ``version``: what it lists is upserted, and every
        live entity it no longer lists is deleted at ``version`` (so an entity changed after
        the snapshot was taken survives it)."""
        if not isinstance(body, dict) or set(body) - {"delivery_id", "version", "entities"}:
            raise AuthError(400, "bad_batch", "a snapshot is {delivery_id, version, entities}")
        try:
            version = check_version(body.get("version"))
        except InvalidEntity as exc:
            raise AuthError(400, "bad_batch", f"version: {exc.message}") from None
        listed = {"delivery_id": body.get("delivery_id"), "changes": body.get("entities")}
        try:
            batch = parse_batch(listed, self.max_snapshot)
        except BatchError as exc:
            raise AuthError(400, exc.code, exc.message.replace("changes", "entities")) from None
        upserts = [(i, c) for i, c in batch.changes if isinstance(c, Upsert)]
        errors = [_error_json(e) for e in batch.errors] + [
            _error_json(
                ChangeError(
                    i,
                    c.kind,
                    c.sourced_id,
                    "bad_change",
                    "a snapshot lists entities only (op upsert)",
                )
            )
            for i, c in batch.changes
            if isinstance(c, Delete)
        ]
        # A listed entity that was refused still counts as present: a typo in one row must
        # not delete what is stored for it.
        present: dict[str, set[str]] = {kind: set() for kind in KINDS}
        for _, change in batch.changes:
            present[change.kind].add(_sourced_id(change))
        for err in batch.errors:
            if err.kind is not None and err.id is not None:
                present[err.kind].add(err.id)
        j = self._journal(journal.journal_id)
        async with j.lock:
            seen = await self.store.delivery(journal.journal_id, batch.delivery_id)
            if seen is not None:
                return {**json.loads(seen), "duplicate": True}
            outcome = Outcome(batch.delivery_id, errors=errors)
            await self._apply(journal.journal_id, j, upserts, outcome, commit=False)
            deletes = j.state.snapshot_deletes(present, version)
            outcome.deactivated = len(deletes)
            await self._apply(journal.journal_id, j, [(-1, d) for d in deletes], outcome)
        await self._reconcile_if_changed(journal.journal_id, outcome)
        return outcome.to_json()

    async def import_oneroster(
        self,
        journal: Journal,
        data: bytes,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> dict[str, Any]:
        """A OneRoster CSV zip: its changes apply like a delivery, and for every kind its
        bulk files cover, what they no longer list is deleted (like a snapshot).
        ``progress(phase, done, total)`` is called from a worker thread while parsing."""
        j = self._journal(journal.journal_id)
        version = _now_ms()
        on_rows = (lambda done, total: progress("rows", done, total)) if progress else None
        async with j.lock:
            try:
                # Parsing a big export takes a while: off the event loop. The lock keeps the
                # roster it reads as ``base`` from changing meanwhile.
                result = await asyncio.to_thread(
                    import_oneroster,
                    data,
                    version=version,
                    base=j.state.live,
                    progress=on_rows,
                    max_uncompressed=self.max_import_bytes,
                )
            except OneRosterError as exc:
                raise AuthError(400, exc.code, exc.message) from None
            outcome = Outcome(None, errors=[_row_error(e) for e in result.errors])
            await self._apply(
                journal.journal_id, j, list(enumerate(result.changes)), outcome, commit=False
            )
            deletes = j.state.snapshot_deletes(result.present, version)
            outcome.deactivated = len(deletes)
            await self._apply(journal.journal_id, j, [(-1, d) for d in deletes], outcome)
        if progress:
            progress("reconcile", 0, 1)
        await self.reconcile(journal.journal_id)
        return {**outcome.to_json(), "rows": result.counts.get("rows", 0)}

    async def apply_changes(
        self, journal_id: str, changes: Sequence[Change], delivery_id: str | None = None
    ) -> Outcome:
        """Changes from a snapshot or an import (already validated)."""
        j = self._journal(journal_id)
        async with j.lock:
            outcome = Outcome(delivery_id)
            await self._apply(journal_id, j, list(enumerate(changes)), outcome)
        await self.reconcile(journal_id)
        return outcome

    async def _apply(
        self,
        journal_id: str,
        j: _Journal,
        changes: Iterable[tuple[int, Change]],
        outcome: Outcome,
        *,
        commit: bool = True,
    ) -> None:
        """Applies to memory, then commits the changed rows (and, once ``commit``, the
        delivery record with the answer). Rows of several calls are committed together."""
        rows = outcome.rows
        for index, change in changes:
            result = j.state.apply(change)
            if result == "applied":
                outcome.applied += 1
                j.index = None
                rows.append(_row(change))
                if isinstance(change, Upsert):
                    for ref in j.state.dangling(change.entity):
                        outcome.warnings.append(_dangling(index, change, ref))
            elif result == "stale":
                outcome.stale += 1
            else:
                outcome.unchanged += 1
        if not commit:
            return
        summary = json.dumps(outcome.to_json(), ensure_ascii=False)
        await self.store.save_delivery(journal_id, outcome.delivery_id, rows, summary, _now_ms())

    # -- reconciliation --------------------------------------------------------------------

    async def _reconcile_if_changed(self, journal_id: str, outcome: Outcome) -> None:
        # A delivery that changed nothing leaves the chats as they are. (One whose reconcile
        # a crash cut short is finished by the reconcile at start-up.)
        if outcome.applied or outcome.deactivated:
            await self.reconcile(journal_id)

    async def reconcile(self, journal_id: str) -> None:
        """Brings the journal's managed chats to what roster, links and bindings ask for.
        Returns once a run that started after this call has finished."""
        j = self._journal(journal_id)
        j.wanted += 1
        mine = j.wanted
        async with j.reconciling:
            if j.done >= mine:
                return  # a run that started after our request covered it
            covers = j.wanted
            await self._reconcile_once(journal_id, j)
            j.done = covers

    async def _reconcile_once(self, journal_id: str, j: _Journal) -> None:
        chats = {c.chat_key: c for c in await self.store.chats(journal_id)}
        links = await self.store.journal_links(journal_id)
        bindings = [
            _binding(c, links)
            for c in chats.values()
            if c.kind == "subject" and c.deleted_ts is None
        ]
        if j.index is None:
            j.index = rc.index(j.state.live)
        want = rc.desired(j.state.live, links, bindings, roster=j.index)
        j.desired, j.warnings = want.chats, want.warnings
        actual = {}
        for c in chats.values():
            if c.room_id is not None and c.archived_ts is None:
                key = rc.ChatKey.parse(c.chat_key)
                actual[key] = self._actual(c, key, want.chats.get(key))
        actions = rc.plan(want.chats, actual)
        if actions:
            await self._carry_out(journal_id, actions, want.chats, chats)
            log.info("reconciled", extra={"journal_id": journal_id, "actions": len(actions)})

    def _actual(
        self, chat: JournalChat, key: rc.ChatKey, wanted: rc.DesiredChat | None
    ) -> rc.ActualChat:
        """The members reconciliation answers for: those the roster put in, and those the
        roster wants there anyway. Someone an admin invited by hand is left alone."""
        assert chat.room_id is not None
        room = self.rooms.room(chat.room_id)
        owner = owner_of(chat.journal_id)
        admins = self.rooms.admins(chat.room_id)
        desired = wanted.members if wanted is not None else frozenset()
        members = {
            u: u in admins
            for u in room.joined
            if u != owner and (u in desired or room.state[(MEMBER, u)].sender == owner)
        }
        return rc.ActualChat(key, chat.applied_name or "", members)

    async def _carry_out(
        self,
        journal_id: str,
        actions: list[rc.Action],
        want: Mapping[rc.ChatKey, rc.DesiredChat],
        chats: dict[str, JournalChat],
    ) -> None:
        owner = owner_of(journal_id)
        writes: list[Awaitable[Any]] = []
        rooms = {k: c.room_id for k, c in chats.items() if c.room_id is not None}
        for action in actions:
            key = str(action.key)
            if isinstance(action, rc.CreateChat):
                chat = self._open_chat(journal_id, want[action.key], chats.get(key), writes)
                chats[key], rooms[key] = chat, chat.room_id  # type: ignore[assignment]
                writes.append(self.store.put_chat(chat))
                continue
            room_id = rooms[key]
            if isinstance(action, rc.Rename):
                writes.append(self.rooms.put_name(room_id, owner, action.name))
                chats[key] = replace(chats[key], applied_name=action.name)
                writes.append(self.store.put_chat(chats[key]))
            elif isinstance(action, rc.Join):
                _add(writes, self.rooms.put_member(room_id, owner, action.user_id, True, "roster"))
                if action.admin:
                    _add(writes, self.rooms.put_admin(room_id, owner, action.user_id, True))
            elif isinstance(action, rc.SetAdmin):
                _add(writes, self.rooms.put_admin(room_id, owner, action.user_id, action.admin))
            elif isinstance(action, rc.Leave):
                _add(writes, self.rooms.put_admin(room_id, owner, action.user_id, False))
                _add(writes, self.rooms.put_member(room_id, owner, action.user_id, False, "roster"))
            elif isinstance(action, rc.Archive):
                chats[key] = replace(chats[key], archived_ts=_now_ms())
                writes.append(self.store.put_chat(chats[key]))
        await asyncio.gather(*writes)

    def _open_chat(
        self,
        journal_id: str,
        chat: rc.DesiredChat,
        known: JournalChat | None,
        writes: list[Awaitable[Any]],
    ) -> JournalChat:
        """A room for a desired chat: the archived room of the same chat if there is one
        (its history stays), else a new one."""
        owner = owner_of(journal_id)
        if known is not None and known.room_id is not None:
            if known.applied_name != chat.name:
                writes.append(self.rooms.put_name(known.room_id, owner, chat.name))
            return replace(known, applied_name=chat.name, archived_ts=None)
        about = {"kind": chat.kind, "journal_id": journal_id, "class_id": chat.class_id}
        if chat.subject_id is not None:
            about["subject_id"] = chat.subject_id
        room_id, created = self.rooms.create_managed(owner, chat.name, about)
        writes.append(created)
        base = known or JournalChat(
            journal_id, str(chat.key), chat.kind, chat.class_id, created_ts=_now_ms()
        )
        return replace(base, room_id=room_id, applied_name=chat.name, archived_ts=None)

    # -- reads for the journal API -----------------------------------------------------------

    def desired(self, journal_id: str) -> Mapping[rc.ChatKey, rc.DesiredChat]:
        """The chats the last reconciliation wanted, with members and pending accounts."""
        return self._journal(journal_id).desired


def _add(writes: list[Awaitable[Any]], write: Awaitable[Event] | None) -> None:
    if write is not None:
        writes.append(write)


def _row_error(err: RowError) -> dict[str, Any]:
    return {"file": err.file, "line": err.line, "code": err.code, "message": err.message}


def _sourced_id(change: Change) -> str:
    return change.entity.sourced_id if isinstance(change, Upsert) else change.sourced_id


def _dangling(index: int, change: Upsert, ref: str) -> dict[str, Any]:
    return {
        "index": index,
        "kind": change.kind,
        "id": change.entity.sourced_id,
        "code": "dangling_reference",
        "message": f"{ref} names nothing live yet; it counts once that arrives",
    }


def _binding(chat: JournalChat, links: Mapping[str, str]) -> rc.SubjectChat:
    """A subject chat for reconciliation. The journal edits membership by account; an added
    account counts once it is linked."""
    assert chat.subject_id is not None and chat.teacher_id is not None
    return rc.SubjectChat(
        rc.ChatKey.parse(chat.chat_key).ref,
        chat.class_id,
        chat.subject_id,
        chat.teacher_id,
        chat.group_id,
        chat.name or "",
        frozenset(links[a] for a in chat.added if a in links),
        frozenset(links[a] for a in chat.removed if a in links),
    )
