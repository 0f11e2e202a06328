"""What the journal shows and edits of its chats (R9, R10, R13): a journal account's chats,
and the subject chats a teacher creates for a class and a subject they teach there.

Every edit changes the chat's binding (store.roster) and then reconciles, so the journal's
answer already reflects who is in the chat and who is still pending until they link.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from sferumd import ids
from sferumd.model import CHAT, Journal, JournalChat
from sferumd.services.auth import AuthError, invalid_field
from sferumd.services.linking import check_account_id
from sferumd.services.rooms import RoomService
from sferumd.services.roster import reconcile as rc
from sferumd.services.roster.changes import InvalidEntity, check_id, check_name
from sferumd.services.roster.model import (
    Person,
    SchoolClass,
    SubGroup,
    Subject,
    TeachingAssignment,
)
from sferumd.services.roster.service import RosterService
from sferumd.store.roster import RosterStore

MAX_EDIT = 1000  # accounts in one membership edit


def body_id(body: Mapping[str, Any], name: str) -> str:
    """A required journal id field of a request body, or a 400 ``invalid_field`` naming it."""
    try:
        return check_id(name, body.get(name))
    except InvalidEntity as exc:
        raise invalid_field(name, exc.message) from None


def body_accounts(body: Mapping[str, Any], name: str, limit: int = MAX_EDIT) -> set[str]:
    """A list of journal account ids in a request body (absent: none)."""
    value = body.get(name, [])
    if not isinstance(value, list) or len(value) > limit:
        raise invalid_field(name, f"must be a list of at most {limit} account ids")
    return {body_id({name: item}, name) for item in value}


def _not_found(chat_id: str) -> AuthError:
    return AuthError(404, "not_found", f"no subject chat {chat_id} of this journal")


@dataclass(frozen=True, slots=True)
class SubjectChatRequest:
    teacher_id: str
    class_id: str
    subject_id: str
    group_id: str | None
    name: str | None


def check_create(body: dict[str, Any]) -> SubjectChatRequest:
    unknown = set(body) - {"teacher_id", "class_id", "subject_id", "group_id", "name"}
    if unknown:
        raise invalid_field(sorted(unknown)[0], "unknown field")
    name = body.get("name")
    if name is not None:
        try:
            name = check_name("name", name)
        except InvalidEntity as exc:
            raise invalid_field("name", exc.message) from None
    teacher, class_id, subject = (
        body_id(body, f) for f in ("teacher_id", "class_id", "subject_id")
    )
    return SubjectChatRequest(
        teacher,
        class_id,
        subject,
        body_id(body, "group_id") if body.get("group_id") is not None else None,
        name,
    )


class JournalChats:
    def __init__(self, roster: RosterService, store: RosterStore, rooms: RoomService):
        self.roster = roster
        self.store = store
        self.rooms = rooms

    # -- subject chats -----------------------------------------------------------------------

    async def create(self, journal: Journal, body: dict[str, Any]) -> dict[str, Any]:
        req = check_create(body)
        live = self.roster.state(journal.journal_id).live
        klass, subject = self._check_teaching(live, req)
        for chat in await self.store.chats(journal.journal_id):
            same = (chat.class_id, chat.subject_id, chat.group_id, chat.teacher_id)
            if chat.deleted_ts is None and same == (
                req.class_id,
                req.subject_id,
                req.group_id,
                req.teacher_id,
            ):
                raise AuthError(
                    409,
                    "chat_exists",
                    f"this teacher has a chat for this subject in {klass.name} already",
                    chat_id=chat.chat_key,
                )
        name = req.name or self._default_name(live, klass, subject, req.group_id)
        key = str(rc.ChatKey("subject", ids.subject_chat_ref()))
        chat = JournalChat(
            journal.journal_id,
            key,
            "subject",
            req.class_id,
            subject_id=req.subject_id,
            group_id=req.group_id,
            teacher_id=req.teacher_id,
            name=name,
            created_ts=int(time.time() * 1000),
        )
        await self.store.put_chat(chat)
        await self.roster.reconcile(journal.journal_id)
        return await self.describe(journal, key)

    def _check_teaching(self, live: Any, req: SubjectChatRequest) -> tuple[SchoolClass, Subject]:
        teacher = live["person"].get(req.teacher_id)
        klass = live["class"].get(req.class_id)
        subject = live["subject"].get(req.subject_id)
        for name, entity, kind in (
            ("teacher_id", teacher, Person),
            ("class_id", klass, SchoolClass),
            ("subject_id", subject, Subject),
        ):
            if not isinstance(entity, kind):
                raise AuthError(
                    422, "unknown_entity", f"{name}: no such {kind.__name__} in the roster"
                )
        assert isinstance(teacher, Person) and isinstance(klass, SchoolClass)
        assert isinstance(subject, Subject)
        if teacher.role != "teacher":
            raise AuthError(
                422, "not_teaching", f"{req.teacher_id} is a {teacher.role}, not a teacher"
            )
        if req.group_id is not None:
            group = live["group"].get(req.group_id)
            if not isinstance(group, SubGroup) or group.class_id != req.class_id:
                raise AuthError(422, "unknown_entity", f"group_id: no such group of {klass.name}")
        teaches = any(
            isinstance(t, TeachingAssignment)
            and (t.teacher_id, t.class_id, t.subject_id)
            == (req.teacher_id, req.class_id, req.subject_id)
            and (req.group_id is None or t.group_id in (None, req.group_id))
            for t in live["teaching"].values()
        )
        if not teaches:
            raise AuthError(
                422,
                "not_teaching",
                f"the roster has no lesson of {subject.name} by this teacher in {klass.name}",
            )
        return klass, subject

    @staticmethod
    def _default_name(live: Any, klass: SchoolClass, subject: Subject, group_id: str | None) -> str:
        name = f"{klass.name} — {subject.name}"
        group = live["group"].get(group_id) if group_id else None
        return f"{name} ({group.name})" if isinstance(group, SubGroup) else name

    async def _subject_chat(self, journal: Journal, chat_id: str) -> JournalChat:
        for chat in await self.store.chats(journal.journal_id):
            if chat.chat_key == chat_id and chat.kind == "subject" and chat.deleted_ts is None:
                return chat
        raise _not_found(chat_id)

    async def rename(self, journal: Journal, chat_id: str, body: dict[str, Any]) -> dict[str, Any]:
        if set(body) != {"name"}:
            raise invalid_field(sorted(set(body) - {"name"} or {"name"})[0], "send only name")
        try:
            name = check_name("name", body["name"])
        except InvalidEntity as exc:
            raise invalid_field("name", exc.message) from None
        chat = await self._subject_chat(journal, chat_id)
        await self.store.put_chat(replace(chat, name=name))
        await self.roster.reconcile(journal.journal_id)
        return await self.describe(journal, chat_id)

    async def delete(self, journal: Journal, chat_id: str) -> None:
        """Everyone leaves; the room stays as history (messages are kept)."""
        chat = await self._subject_chat(journal, chat_id)
        await self.store.put_chat(replace(chat, deleted_ts=int(time.time() * 1000)))
        await self.roster.reconcile(journal.journal_id)

    async def edit_members(
        self, journal: Journal, chat_id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """Manual additions and removals by account; they survive every reconciliation.
        Adding undoes an earlier removal and the other way round."""
        unknown = set(body) - {"add", "remove"}
        if unknown:
            raise invalid_field(sorted(unknown)[0], "unknown field")
        add, remove = body_accounts(body, "add"), body_accounts(body, "remove")
        if add & remove:
            raise invalid_field("add", "an account can't be both added and removed")
        persons = self.roster.state(journal.journal_id).live["person"]
        strangers = sorted(a for a in add if a not in persons)
        if strangers:
            raise AuthError(422, "unknown_entity", f"add: no such person {strangers[0]}")
        chat = await self._subject_chat(journal, chat_id)
        added = (set(chat.added) - remove) | add
        removed = (set(chat.removed) - add) | remove
        await self.store.put_chat(replace(chat, added=tuple(added), removed=tuple(removed)))
        await self.roster.reconcile(journal.journal_id)
        return await self.describe(journal, chat_id)

    # -- what the journal shows -------------------------------------------------------------

    async def describe(self, journal: Journal, chat_id: str) -> dict[str, Any]:
        chats = await self.store.chats(journal.journal_id)
        chat = next((c for c in chats if c.chat_key == chat_id and c.deleted_ts is None), None)
        if chat is None:
            raise _not_found(chat_id)
        return self._chat_json(journal, chat)

    def _chat_json(self, journal: Journal, chat: JournalChat) -> dict[str, Any]:
        live = self.roster.state(journal.journal_id).live
        want = self.roster.desired(journal.journal_id).get(rc.ChatKey.parse(chat.chat_key))
        klass = live["class"].get(chat.class_id)
        subject = live["subject"].get(chat.subject_id or "")
        admin_id = (
            chat.teacher_id
            if chat.kind == "subject"
            else getattr(klass, "homeroom_teacher_id", None)
        )
        admin = live["person"].get(admin_id or "")
        room = self.rooms.rooms.get(chat.room_id or "")
        return {
            "chat_id": chat.chat_key,
            "type": chat.kind,
            # The room's name as people see it (an admin may have renamed it).
            "name": room.name if room is not None else chat.name or chat.applied_name,
            "room_id": chat.room_id,
            "class": {"id": chat.class_id, "name": getattr(klass, "name", None)},
            "subject": (
                {"id": chat.subject_id, "name": getattr(subject, "name", None)}
                if chat.subject_id
                else None
            ),
            "admin": (
                {"account_id": admin_id, "name": _full_name(admin)}
                if isinstance(admin, Person)
                else None
            ),
            "members": len(room.joined) - 1 if room is not None else 0,  # not the owner
            "pending": len(want.pending) if want is not None else 0,
            "pending_accounts": sorted(want.pending) if want is not None else [],
            "added": sorted(chat.added),
            "removed": sorted(chat.removed),
        }

    async def of_account(self, journal: Journal, account_id: str, base_url: str) -> dict[str, Any]:
        """The chats an account is in (or will be in once it links), and, once linked, the
        other chats its person joined by hand (type ``other``)."""
        account_id = check_account_id(account_id)
        links = await self.store.journal_links(journal.journal_id)
        user = links.get(account_id)
        desired = self.roster.desired(journal.journal_id)
        chats = {c.chat_key: c for c in await self.store.chats(journal.journal_id)}
        out = []
        for key, want in sorted(desired.items()):
            if account_id in want.pending or (user is not None and user in want.members):
                chat = chats.get(str(key))
                if chat is not None:
                    out.append(self._with_link(self._chat_json(journal, chat), base_url))
        if user is not None:
            for room in self.rooms.rooms_of(user):
                if user in room.joined and not room.content(CHAT):
                    out.append(
                        self._with_link(
                            {
                                "chat_id": None,
                                "type": "other",
                                "name": room.name,
                                "room_id": room.room_id,
                                "members": len(room.joined),
                            },
                            base_url,
                        )
                    )
        return {"account_id": account_id, "linked": user is not None, "chats": out}

    @staticmethod
    def _with_link(chat: dict[str, Any], base_url: str) -> dict[str, Any]:
        room = chat.get("room_id")
        chat["url"] = f"{base_url}/chats/{room}" if room else None
        return chat


def _full_name(person: Person) -> str:
    return " ".join(p for p in (person.last_name, person.first_name, person.patronymic) if p)
