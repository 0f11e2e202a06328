"""Files in messages: what a ``send`` carrying a file stores, and who may download a file.

A message carries a file as ``content.file``. The client names only the file's ``id``; the
file must be one the sender uploaded, and the server writes the rest (name, size, type,
hash, picture size, whether there is a thumbnail) from its own records, so every reader
sees what the server checked, never what a client claimed.

Each such message is recorded as a *post* of the file (room, position, event). A file may
be downloaded by its uploader, and by anyone who could see one of its posts that is not
redacted:

- it was delivered to them live or in a catch-up (``sync.visible_intervals``), or
- ``history`` shows it to them now (history visibility "shared": a joined member reads the
  room's whole past, so someone who joined after the post may download the file too; a
  former member reads up to their latest membership event).

Redacting a message removes that post's grant only; the file stays downloadable through its
other posts, and always by its uploader. Everyone else gets the answer an unknown id gets.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from protocol.codec import MSGPACK
from protocol.errors import ErrorCode, ProtocolError
from protocol.limits import Limits
from sferumd.model import Event
from sferumd.services import membership as ms
from sferumd.services.sync import visible_intervals
from sferumd.store.base import Store
from sferumd.store.files import FileRecord, FileStore

FILE_ID = re.compile(r"F[A-Za-z0-9_-]{1,64}")
FILE_KEY = "file"
EVERYTHING = 2**53 - 1  # the largest stream position


def could_see(member_events: list[Event], room_id: str, pos: int) -> bool:
    """Whether the user (whose membership events, ascending, are given) saw the room's event
    at ``pos`` or may read it now (see the module doc)."""
    spans = visible_intervals(member_events, EVERYTHING).get(room_id, [])
    if any(lo < pos <= hi for lo, hi in spans):
        return True
    mine = [e for e in member_events if e.room_id == room_id]
    if not mine:
        return False
    latest = mine[-1]
    membership = latest.content.get("membership")
    if membership == ms.JOIN:
        return True
    ever_joined = any(e.content.get("membership") == ms.JOIN for e in mine)
    return membership in (ms.LEAVE, ms.BAN) and ever_joined and pos <= latest.pos


class Attachments:
    def __init__(self, files: FileStore, store: Store, limits: Limits):
        self.files = files
        self.store = store
        self.limits = limits

    async def bind(
        self, sender: str, content: dict[str, Any], make: Callable[[], Event]
    ) -> Callable[[], Event]:
        """The send's ``make``, for content that may carry a file.

        Without ``content.file`` it is ``make`` itself. Otherwise the file is looked up now
        (a refusal: ``invalid_field`` for a malformed reference, ``not_found`` for a file
        that is not the sender's, ``too_large`` when the filled-in content passes the
        limit), and the returned ``make`` fills the file in and records the post right
        before the event is submitted, keeping the decision and the write in one step.
        """
        if FILE_KEY not in content:
            return make
        ref = content[FILE_KEY]
        file_id = ref.get("id") if isinstance(ref, dict) else None
        if not isinstance(file_id, str) or not FILE_ID.fullmatch(file_id):
            raise ProtocolError(
                ErrorCode.INVALID_FIELD, "content.file must be {id: FILE_ID} of a file you uploaded"
            )
        record = await self.files.get(file_id)
        if record is None or record.uploader != sender:
            # The same answer for "no such file" and "someone else's": ids don't leak.
            raise ProtocolError(ErrorCode.NOT_FOUND, f"you have not uploaded a file {file_id}")
        wire = record.to_wire()

        def bound() -> Event:
            event = make()
            filled = {**event.content, FILE_KEY: wire}
            if len(MSGPACK.encode(filled)) > self.limits.max_content_bytes:
                raise ProtocolError(
                    ErrorCode.TOO_LARGE,
                    f"content with the file's details is over {self.limits.max_content_bytes}"
                    " bytes",
                )
            event.content = filled
            self.files.add_post(record.file_id, event.room_id, event.pos, event.event_id)
            return event

        return bound

    async def readable(self, user_id: str, file_id: str) -> FileRecord | None:
        """The file if the user may download it, else None (also for an unknown id)."""
        if not FILE_ID.fullmatch(file_id):
            return None
        record = await self.files.get(file_id)
        if record is None:
            return None
        if record.uploader == user_id:
            return record
        posts = await self.files.live_posts(file_id)
        if not posts:
            return None
        history = await self.store.member_history(user_id, EVERYTHING)
        if any(could_see(history, room_id, pos) for room_id, pos in posts):
            return record
        return None
