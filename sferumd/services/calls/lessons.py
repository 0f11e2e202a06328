"""Online lessons from the journal (R16, R23, R25): the journal API's videoconferences.

Rules:

- A videoconference of type "online lesson" is made for a subject chat of the journal
  (``chat_id`` from the subject-chat API) and one of its class's scheduled lessons
  (``lesson_id`` in the roster) by the chat's teacher (``teacher_id``; anyone else:
  ``not_chat_teacher``). The lesson must be of the chat's class and subject (and its group,
  if the chat is a group's), taught by that teacher and not cancelled (``lesson_mismatch``,
  ``lesson_cancelled``); one videoconference per lesson (``videoconference_exists``).
- Name and times come from the lesson (``naming.lesson_call_name``); the times must still
  be ahead (``start_in_past``, ``end_in_past``) and must not overlap another lesson call of
  the class (``lesson_overlap``).
- Participants, by journal account, in the journal's three lists:
  staff: the chat's teacher (the call's owner and admin, R18), the class's homeroom teacher,
  and teachers the journal added to the chat by hand; students: the chat's students as the
  roster has them (the class's, or its group's), plus students added to the chat by hand,
  less those removed from it; parents: the guardians of those students. Each is listed
  whether linked or not (an account that links later can join), each with a ``blocked``
  flag the teacher sets (``PUT .../participants/{account_id}``); ``blocked`` in the create
  body blocks some from the start. Blocking someone in the call puts them out at once.
- Editing (the lesson moved, or another lesson) and deleting are for a videoconference that
  has not started (``call_state``); ending is for a running one (R23, the journal's
  "Закончить видеоконференцию"): it ends for everyone.
- The journal sees only its own videoconferences (``not_found`` otherwise).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from sferumd.model import Journal, JournalChat
from sferumd.services.auth import AuthError, invalid_field
from sferumd.services.calls import codec, report
from sferumd.services.calls import hands as hq
from sferumd.services.calls import lifecycle as lc
from sferumd.services.calls import participants as pt
from sferumd.services.calls.codec import CallDocument
from sferumd.services.calls.errors import CallCode, CallError
from sferumd.services.calls.naming import lesson_call_name
from sferumd.services.calls.participants import Category, Invitee
from sferumd.services.calls.service import (
    CALLS_OWNER,
    CallService,
    LiveCall,
    new_call_id,
)
from sferumd.services.linking import check_account_id
from sferumd.services.roster import reconcile as rc
from sferumd.services.roster.journal_chats import body_accounts, body_id
from sferumd.services.roster.model import Entity, Lesson, SchoolClass, Subject
from sferumd.services.roster.service import RosterService
from sferumd.store.calls import CallFacts, CallRow
from sferumd.store.roster import RosterStore

MAX_BLOCKED = 2000  # accounts in a create body's blocked list

# HTTP status of each refusal of the call modules the journal can meet.
STATUS = {
    CallCode.INVALID_FIELD: 400,
    CallCode.TOO_LARGE: 413,
    CallCode.NOT_FOUND: 404,
    CallCode.CALL_STATE: 409,
    CallCode.LESSON_OVERLAP: 409,
    CallCode.CLASS_BUSY: 409,
    CallCode.INVALID_TIMES: 422,
    CallCode.START_IN_PAST: 422,
    CallCode.END_IN_PAST: 422,
    CallCode.TOO_LONG: 422,
    CallCode.DUPLICATE_INVITEE: 422,
    CallCode.OWNER: 422,
}


def http_error(err: CallError) -> AuthError:
    return AuthError(STATUS.get(err.code, 422), err.code.value, err.message)


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def _only(body: Mapping[str, Any], allowed: Iterable[str]) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise invalid_field(unknown[0], "unknown field")


class LessonCalls:
    def __init__(self, calls: CallService, roster: RosterService, roster_store: RosterStore):
        self.calls = calls
        self.roster = roster
        self.roster_store = roster_store

    # -- reading -----------------------------------------------------------------------------

    async def _subject_chat(self, journal: Journal, chat_id: str) -> JournalChat:
        for chat in await self.roster_store.chats(journal.journal_id):
            if chat.chat_key == chat_id and chat.kind == "subject" and chat.deleted_ts is None:
                return chat
        raise AuthError(404, "unknown_chat", f"no subject chat {chat_id} of this journal")

    def _live(self, journal_id: str) -> Mapping[str, Mapping[str, Entity]]:
        return self.roster.state(journal_id).live

    def _lesson(self, journal: Journal, chat: JournalChat, lesson_id: str) -> Lesson:
        lesson = self._live(journal.journal_id)["lesson"].get(lesson_id)
        if not isinstance(lesson, Lesson):
            raise AuthError(404, "unknown_lesson", f"no lesson {lesson_id} in the roster")
        if lesson.cancelled:
            raise AuthError(422, "lesson_cancelled", f"lesson {lesson_id} is cancelled")
        same = (lesson.class_id, lesson.subject_id) == (chat.class_id, chat.subject_id)
        if not same or (chat.group_id is not None and lesson.group_id != chat.group_id):
            raise AuthError(
                422, "lesson_mismatch", f"lesson {lesson_id} is not a lesson of this chat"
            )
        if lesson.teacher_id != chat.teacher_id:
            raise AuthError(
                422,
                "lesson_mismatch",
                f"lesson {lesson_id} is taught by {lesson.teacher_id}, not the chat's teacher",
            )
        return lesson

    def _name(self, journal: Journal, lesson: Lesson) -> str:
        live = self._live(journal.journal_id)
        klass = live["class"].get(lesson.class_id)
        subject = live["subject"].get(lesson.subject_id)
        if not isinstance(klass, SchoolClass) or not isinstance(subject, Subject):
            raise AuthError(422, "lesson_mismatch", "the lesson's class or subject is not there")
        try:
            return lesson_call_name(
                klass.name,
                subject.name,
                _ms(lesson.start),
                _ms(lesson.end),
                self.calls.settings.time_zone,
            )
        except CallError as err:
            raise http_error(err) from None

    def _invitees(self, journal: Journal, chat: JournalChat, blocked: set[str]) -> list[Invitee]:
        """The journal's three lists for the chat (see the module's rules)."""
        live = self._live(journal.journal_id)
        idx = rc.index(live)
        if chat.group_id is None:
            students = set(idx.students_of.get(chat.class_id, frozenset()))
        else:
            students = set(idx.group_students(chat.group_id, chat.class_id) or ())
        removed = set(chat.removed)
        students |= {a for a in chat.added if idx.roles.get(a) == "student"}
        students -= removed
        parents = set(idx.guardians(students))
        assert chat.teacher_id is not None
        staff = {a for a in chat.added if idx.roles.get(a) == "teacher"} - removed
        homeroom = idx.homeroom_teacher(chat.class_id) if chat.class_id in idx.classes else None
        if homeroom is not None:
            staff.add(homeroom)
        staff.add(chat.teacher_id)
        out: dict[str, Invitee] = {}
        for category, people in (
            (Category.STAFF, staff),
            (Category.STUDENT, students),
            (Category.PARENT, parents),
        ):
            for account in sorted(people):
                if account not in out:
                    out[account] = Invitee(account, category, account in blocked)
        return list(out.values())

    async def _call(self, journal: Journal, call_id: str) -> LiveCall | CallRow:
        live = self.calls.live.get(call_id)
        if live is not None and live.facts.journal_id == journal.journal_id:
            return live
        row = await self.calls.store.get(call_id)
        if row is None or row.facts.journal_id != journal.journal_id:
            raise AuthError(404, "not_found", f"no videoconference {call_id} of this journal")
        return row

    async def _active(self, journal: Journal, call_id: str) -> LiveCall:
        found = await self._call(journal, call_id)
        if isinstance(found, LiveCall):
            return found
        raise AuthError(
            409, "call_state", f"videoconference {call_id} is {found.state}: nothing to change"
        )

    async def _json(self, journal: Journal, found: LiveCall | CallRow, base_url: str) -> Any:
        links = await self.roster_store.journal_links(journal.journal_id)
        facts, name, doc = _parts(found)
        return report.videoconference(
            facts,
            name,
            doc,
            self.calls.settings,
            base_url,
            self.calls.clock.now_ms(),
            linked=set(links),
        )

    # -- the journal's requests ---------------------------------------------------------------

    async def create(
        self, journal: Journal, body: Mapping[str, Any], base_url: str
    ) -> dict[str, Any]:
        _only(body, ("chat_id", "lesson_id", "teacher_id", "blocked"))
        chat_id, lesson_id = body_id(body, "chat_id"), body_id(body, "lesson_id")
        teacher_id = body_id(body, "teacher_id")
        blocked = body_accounts(body, "blocked", MAX_BLOCKED)
        chat = await self._subject_chat(journal, chat_id)
        if chat.teacher_id != teacher_id:
            raise AuthError(
                403, "not_chat_teacher", f"{teacher_id} is not the teacher of chat {chat_id}"
            )
        if teacher_id in blocked:
            raise AuthError(422, "owner", "the lesson's teacher can't be blocked")
        lesson = self._lesson(journal, chat, lesson_id)
        name = self._name(journal, lesson)
        invitees = self._invitees(journal, chat, blocked)
        strangers = sorted(blocked - {i.person_id for i in invitees})
        if strangers:
            raise AuthError(404, "not_invited", f"blocked: {strangers[0]} is not a participant")
        earlier = await self.calls.store.of_lesson(journal.journal_id, lesson_id)
        if chat.room_id is None or chat.room_id not in self.calls.rooms.rooms:
            raise AuthError(409, "chat_not_ready", f"chat {chat_id} has no room yet")
        # Decided and applied from here on without a wait.
        self._check_free(journal, lesson_id, earlier)
        calls, now = self.calls, self.calls.clock.now_ms()
        call_id = new_call_id()
        try:
            call = lc.schedule(
                call_id, lesson.class_id, _ms(lesson.start), _ms(lesson.end), now, calls.settings
            )
            lc.check_no_overlap([c.doc.call for c in calls.live.values()], call)
            roster = pt.new_roster(call_id, teacher_id, invitees, calls.settings)
        except CallError as err:
            raise http_error(err) from None
        chat_meta = {"kind": "call", "call_id": call_id}
        call_room, created = calls.rooms.create_managed(CALLS_OWNER, name, chat_meta)
        facts = CallFacts(
            call_id,
            "lesson",
            journal.journal_id,
            chat_id,
            lesson_id,
            lesson.class_id,
            chat.room_id,
            call_room,
        )
        live = LiveCall(facts, name, now, CallDocument(call, roster))
        calls.live[call_id] = live
        writes = [created, calls.save(live, invitees=True)]
        announced = calls.announce(live)
        if announced is not None:
            writes.append(announced)
        await asyncio.gather(*writes)
        calls.scheduler.wake()
        return await self._json(journal, live, base_url)  # type: ignore[no-any-return]

    def _check_free(self, journal: Journal, lesson_id: str, earlier: list[CallRow]) -> None:
        for c in self.calls.live.values():
            if c.facts.journal_id == journal.journal_id and c.facts.lesson_id == lesson_id:
                raise AuthError(
                    409,
                    "videoconference_exists",
                    f"lesson {lesson_id} has videoconference {c.call_id}",
                    videoconference_id=c.call_id,
                )
        for row in earlier:
            if row.state != lc.CallState.CANCELLED.value:
                raise AuthError(
                    409,
                    "videoconference_exists",
                    f"lesson {lesson_id} has videoconference {row.facts.call_id}",
                    videoconference_id=row.facts.call_id,
                )

    async def get(self, journal: Journal, call_id: str, base_url: str) -> dict[str, Any]:
        found = await self._call(journal, call_id)
        return await self._json(journal, found, base_url)  # type: ignore[no-any-return]

    async def edit(
        self, journal: Journal, call_id: str, body: Mapping[str, Any], base_url: str
    ) -> dict[str, Any]:
        """The lesson moved (its times are read again), or another lesson of the chat."""
        _only(body, ("lesson_id",))
        live = await self._active(journal, call_id)
        lesson_id = body_id(body, "lesson_id") if "lesson_id" in body else live.facts.lesson_id
        assert lesson_id is not None and live.facts.chat_key is not None
        chat = await self._subject_chat(journal, live.facts.chat_key)
        lesson = self._lesson(journal, chat, lesson_id)
        name = self._name(journal, lesson)
        earlier = await self.calls.store.of_lesson(journal.journal_id, lesson_id)
        live = await self._active(journal, call_id)
        calls, now = self.calls, self.calls.clock.now_ms()
        if lesson_id != live.facts.lesson_id:
            self._check_free(journal, lesson_id, earlier)
        try:
            call = lc.edit(live.doc.call, _ms(lesson.start), _ms(lesson.end), now, calls.settings)
            others = [c.doc.call for c in calls.live.values() if c is not live]
            lc.check_no_overlap(others, call)
        except CallError as err:
            raise http_error(err) from None
        live.facts = replace(live.facts, lesson_id=lesson_id)
        live.name = name
        done = calls.commit(live, replace(live.doc, call=call))
        announced = calls.announce(live)
        await done
        if announced is not None:
            await announced
        calls.scheduler.wake()
        return await self.get(journal, call_id, base_url)

    async def delete(self, journal: Journal, call_id: str, base_url: str) -> dict[str, Any]:
        live = await self._active(journal, call_id)
        try:
            done = self.calls.finish(live, lc.CallEvent.CANCEL)
        except CallError as err:
            raise http_error(err) from None
        await done
        return await self.get(journal, call_id, base_url)

    async def end(self, journal: Journal, call_id: str, base_url: str) -> dict[str, Any]:
        live = await self._active(journal, call_id)
        try:
            done = self.calls.finish(live, lc.CallEvent.END)
        except CallError as err:
            raise http_error(err) from None
        await done
        return await self.get(journal, call_id, base_url)

    async def set_blocked(
        self,
        journal: Journal,
        call_id: str,
        account_id: str,
        body: Mapping[str, Any],
        base_url: str,
    ) -> dict[str, Any]:
        account_id = check_account_id(account_id)
        _only(body, ("blocked",))
        blocked = body.get("blocked")
        if not isinstance(blocked, bool):
            raise invalid_field("blocked", "must be true or false")
        live = await self._active(journal, call_id)
        roster = live.doc.roster
        invitee = roster.invitees.get(account_id)
        if invitee is None:
            raise AuthError(404, "not_invited", f"{account_id} is not a participant")
        if account_id == roster.owner_id and blocked:
            raise AuthError(422, "owner", "the lesson's teacher can't be blocked")
        changed = [
            replace(i, blocked=blocked) if i.person_id == account_id else i
            for i in roster.invitees.values()
        ]
        calls = self.calls
        try:
            roster = pt.set_invitees(roster, changed, calls.clock.now_ms(), calls.settings)
        except CallError as err:
            raise http_error(err) from None
        hands = hq.drop(live.doc.hands, account_id) if blocked else live.doc.hands
        user = live.user_of(account_id)
        writes = []
        if blocked and user is not None:  # out of the call's chats too, as if removed
            for room_id in (live.facts.call_room_id, *live.doc.breakout_chats.values()):
                if room_id in calls.rooms.rooms:
                    left = calls.rooms.put_member(room_id, CALLS_OWNER, user, False, "blocked")
                    if left is not None:
                        writes.append(left)
        doc = replace(live.doc, roster=roster, hands=hands)
        await calls.commit(live, doc, invitees=True, writes=writes)
        return await self.get(journal, call_id, base_url)

    async def of_account(self, journal: Journal, account_id: str, base_url: str) -> dict[str, Any]:
        """The diary's list (R25): the account's videoconferences by start, cancelled ones
        left out; ``url`` works from ``url_active_from``."""
        account_id = check_account_id(account_id)
        rows = await self.calls.store.of_person(journal.journal_id, account_id)
        now = self.calls.clock.now_ms()
        out = []
        for row in rows:
            live = self.calls.live.get(row.facts.call_id)
            facts, name, doc = _parts(live if live is not None else row)
            if doc.call.state is lc.CallState.CANCELLED:
                continue
            item = report.videoconference(facts, name, doc, self.calls.settings, base_url, now)
            invitee = doc.roster.invitees.get(account_id)
            item["blocked"] = invitee is not None and invitee.blocked
            item["joinable"] = item["joinable"] and not item["blocked"]
            out.append(item)
        return {"account_id": account_id, "videoconferences": out}

    async def attendance(self, journal: Journal, call_id: str) -> dict[str, Any]:
        found = await self._call(journal, call_id)
        facts, name, doc = _parts(found)
        if doc.call.state is not lc.CallState.ENDED:
            raise AuthError(
                409, "not_ended", f"videoconference {call_id} is {doc.call.state.value}"
            )
        return report.attendance(facts, name, doc, self.calls.settings)


def _parts(found: LiveCall | CallRow) -> tuple[CallFacts, str, CallDocument]:
    if isinstance(found, LiveCall):
        return found.facts, found.name, found.doc
    return found.facts, found.name, codec.load(found.data)
