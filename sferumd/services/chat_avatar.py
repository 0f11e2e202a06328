"""The chat photo: an ``avatar`` state event, ``{"file_id": ID}`` (or ``{}``: no photo).

Set with the ``state`` op like the name; who may set it is the ``events.avatar`` level
(50 in both chat presets, services.chat_presets). The file is an upload (``POST /v1/files``)
of the one who sets it, and a picture; the event is recorded as a post of the file
(services.attachments), so whoever may read the room may download the photo.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from protocol.errors import ErrorCode, ProtocolError
from sferumd.model import Event
from sferumd.services.attachments import FILE_ID
from sferumd.store.files import FileStore


def check_content(content: dict[str, Any]) -> None:
    if content == {}:
        return  # the photo is removed
    file_id = content.get("file_id")
    if set(content) != {"file_id"} or not isinstance(file_id, str):
        raise ProtocolError(
            ErrorCode.INVALID_FIELD, "avatar content must be {file_id: string} or {} (no photo)"
        )
    if not FILE_ID.fullmatch(file_id):
        raise ProtocolError(ErrorCode.INVALID_FIELD, "content.file_id is not a file id")


async def bind_file(
    files: FileStore, sender: str, content: dict[str, Any]
) -> Callable[[Event], None] | None:
    """Looks the photo up before the decision (``state`` runs it ahead of its synchronous
    part); returns what records the post when the event is made, or None for no photo."""
    check_content(content)
    if not content:
        return None
    record = await files.get(content["file_id"])
    if record is None or record.uploader != sender:
        # The same answer for "no such file" and "someone else's": ids don't leak.
        raise ProtocolError(
            ErrorCode.NOT_FOUND, f"you have not uploaded a file {content['file_id']}"
        )
    if not record.type.startswith("image/"):
        raise ProtocolError(
            ErrorCode.INVALID_FIELD, f"the chat photo must be a picture, not {record.type}"
        )

    def post(event: Event) -> None:
        files.add_post(record.file_id, event.room_id, event.pos, event.event_id)

    return post
