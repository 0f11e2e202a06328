"""What one person sees of another's profile (R4: the educational profile is isolated).

Only people who share a joined room see each other, and then only the name and the roles
the journal linked (role, school) — never the phone, the birth date or the gender, which
stay with the owner (``GET /v1/profile``). Everyone else reads as unknown, so user ids
can't be used to look people up. Roles are shown only in the viewer's own school spaces
(a school of a journal the viewer is linked in): a parent with children in two schools is
a parent of school A to school A's people, and nothing is said there about school B.
"""

from __future__ import annotations

from typing import Any

from sferumd.services.rooms import RoomService
from sferumd.store.base import Store

# The whole public part of a profile; adding a field here is a decision about privacy.
PUBLIC_FIELDS = ("first_name", "last_name", "patronymic")


class ProfileDirectory:
    def __init__(self, store: Store, rooms: RoomService):
        self.store = store
        self.rooms = rooms

    async def visible(self, viewer: str, user_ids: list[str]) -> dict[str, Any]:
        known = self.rooms.co_members(viewer) | {viewer}
        spaces = {
            (link.journal_id, link.school_id) for link, _ in await self.store.user_links(viewer)
        }
        profiles: dict[str, Any] = {}
        unknown: list[str] = []
        for user_id in dict.fromkeys(user_ids):
            user = await self.store.get_user(user_id) if user_id in known else None
            if user is None:
                unknown.append(user_id)
                continue
            links = await self.store.user_links(user_id)
            profiles[user_id] = {
                **{name: getattr(user, name) for name in PUBLIC_FIELDS},
                "roles": [
                    {"role": link.role, "school_id": link.school_id, "school": link.school_name}
                    for link, _journal in links
                    if user_id == viewer or (link.journal_id, link.school_id) in spaces
                ],
            }
        return {"profiles": profiles, "unknown": unknown}
