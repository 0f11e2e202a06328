"""The closed-chat setting (R11) as presets of power levels.

A chat is not closed by a flag somewhere else: the setting writes a ``power_levels`` event,
and the power checks every op already makes (services.power) enforce it. The two tables
below are the whole setting; PROTOCOL.md ("Closed chats") lists them.

- **open**: any member invites (and so makes invite links) and pins; admins (50) change the
  name, topic, photo and the other settings.
- **closed**: only admins invite, make invite links, change the name, topic, photo or
  settings, and pin; members can't add anyone.

Switching keeps the ``users`` map (who is an admin) and rewrites every gate the presets
name; a gate the presets don't name (a custom ``events`` entry) is kept as it is. A chat
counts as closed when inviting needs more than a member's default level.
"""

from __future__ import annotations

from typing import Any

from sferumd.services import power

AVATAR = "avatar"  # the chat photo: a state event holding a file id (services.chat_avatar)
PINS = "pins"  # the pinned messages (a state type)
MUTES = "mutes"  # who is muted until when (services.mutes)
ADMIN = 50  # what the presets call an admin: kick, ban, redact and mute need it too

# Gates each preset sets; everything else in the power levels is kept.
OPEN_ACTIONS: dict[str, int] = {
    "users_default": 0,
    "events_default": 0,
    "state_default": ADMIN,
    "invite": 0,
    "kick": ADMIN,
    "ban": ADMIN,
    "redact": ADMIN,
}
CLOSED_ACTIONS: dict[str, int] = {**OPEN_ACTIONS, "invite": ADMIN}
OPEN_EVENTS: dict[str, int] = {
    "name": ADMIN,
    "topic": ADMIN,
    AVATAR: ADMIN,
    PINS: 0,
    "join_rule": ADMIN,
    MUTES: ADMIN,
    "power_levels": power.MAX_LEVEL,
}
CLOSED_EVENTS: dict[str, int] = {**OPEN_EVENTS, PINS: ADMIN}


def apply(content: dict[str, Any], closed: bool) -> dict[str, Any]:
    """A power-levels content with the preset's gates over ``content``'s; users are kept."""
    actions = CLOSED_ACTIONS if closed else OPEN_ACTIONS
    events = CLOSED_EVENTS if closed else OPEN_EVENTS
    old_events = content.get("events", {})
    return {
        **actions,
        "events": {**(old_events if isinstance(old_events, dict) else {}), **events},
        "users": dict(content.get("users", {})),
    }


def initial_content(creator: str, closed: bool) -> dict[str, Any]:
    """What ``create_room`` writes: the long-standing defaults, or the closed preset."""
    content = power.initial_content(creator)
    return apply(content, True) if closed else content


def is_closed(levels: power.PowerLevels) -> bool:
    return levels.action("invite") > levels.action("users_default")
