"""Power levels: who may do what in a room. Everything about power lives here.

Matrix-like: each user has a level (``users`` map, else ``users_default``); each action
needs a level. The creator gets 100. Pure functions over a ``PowerLevels`` value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from protocol.errors import ErrorCode, ProtocolError

MAX_LEVEL = 100
MIN_LEVEL = 0

# The action levels a power_levels event carries, with their defaults. Documented in
# PROTOCOL.md ("Power levels").
ACTION_DEFAULTS: dict[str, int] = {
    "users_default": 0,
    "events_default": 0,  # sending a non-state event of a type without its own level
    "state_default": 50,  # changing a state type without its own level
    "invite": 0,
    "kick": 50,
    "ban": 50,
    "redact": 50,  # redacting someone else's event; one's own needs only membership
}
EVENT_DEFAULTS: dict[str, int] = {
    "name": 50,
    "topic": 50,
    "join_rule": 50,
    "power_levels": 100,
    "pins": 50,  # pin and unpin (services.messages); a state type, so listed here
}


def initial_content(creator: str) -> dict[str, Any]:
    return {**ACTION_DEFAULTS, "events": dict(EVENT_DEFAULTS), "users": {creator: MAX_LEVEL}}


@dataclass(frozen=True, slots=True)
class PowerLevels:
    actions: dict[str, int]
    events: dict[str, int] = field(default_factory=dict)
    users: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_content(cls, content: dict[str, Any]) -> PowerLevels:
        actions = {k: int(content.get(k, v)) for k, v in ACTION_DEFAULTS.items()}
        return cls(actions, dict(content.get("events", {})), dict(content.get("users", {})))

    def user(self, user_id: str) -> int:
        return self.users.get(user_id, self.actions["users_default"])

    def action(self, name: str) -> int:
        return self.actions[name]

    def for_event(self, event_type: str, is_state: bool) -> int:
        default = self.actions["state_default" if is_state else "events_default"]
        return self.events.get(event_type, default)


def require(levels: PowerLevels, user_id: str, needed: int, what: str) -> None:
    have = levels.user(user_id)
    if have < needed:
        raise ProtocolError(
            ErrorCode.FORBIDDEN, f"{what} needs power level {needed}; you have {have}"
        )


def require_above(levels: PowerLevels, actor: str, target: str, what: str) -> None:
    """Kick and ban also need a level strictly above the target's."""
    if levels.user(actor) <= levels.user(target):
        raise ProtocolError(ErrorCode.FORBIDDEN, f"{what} needs a power level above the target's")


def validate_content(content: dict[str, Any]) -> None:
    """A power_levels event's content: known keys, integer levels in range, user-id keys."""
    for key, value in content.items():
        if key in ACTION_DEFAULTS:
            _level(key, value)
        elif key in ("events", "users"):
            if not isinstance(value, dict):
                raise ProtocolError(ErrorCode.INVALID_FIELD, f"content.{key} must be a map")
            for name, level in value.items():
                if key == "users" and not (isinstance(name, str) and name.startswith("@")):
                    raise ProtocolError(
                        ErrorCode.INVALID_FIELD, f"content.users key {name!r} is not a user id"
                    )
                _level(f"{key}.{name}", level)
        else:
            raise ProtocolError(ErrorCode.INVALID_FIELD, f"content.{key} is not a power level")


def _level(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_LEVEL <= value <= MAX_LEVEL:
        raise ProtocolError(
            ErrorCode.INVALID_FIELD, f"content.{name} must be an integer {MIN_LEVEL}..{MAX_LEVEL}"
        )


def check_change(old: PowerLevels, new: PowerLevels, sender: str) -> None:
    """Matrix's rule: nobody grants or takes away more than their own level."""
    mine = old.user(sender)
    changed: list[tuple[str, int, int]] = [
        (k, old.actions[k], new.actions[k])
        for k in ACTION_DEFAULTS
        if old.actions[k] != new.actions[k]
    ]
    for t in old.events.keys() | new.events.keys():
        if old.events.get(t) != new.events.get(t):
            is_state = t in EVENT_DEFAULTS  # the room's state types; anything else is sent
            changed.append((f"events.{t}", old.for_event(t, is_state), new.for_event(t, is_state)))
    for what, before, after in changed:
        if before > mine or after > mine:
            raise ProtocolError(
                ErrorCode.FORBIDDEN, f"changing {what} beyond your own level {mine} is not allowed"
            )
    for user in old.users.keys() | new.users.keys():
        before, after = old.user(user), new.user(user)
        if before == after:
            continue
        if after > mine:
            raise ProtocolError(
                ErrorCode.FORBIDDEN, f"cannot raise {user} above your own level {mine}"
            )
        if user != sender and before >= mine:
            raise ProtocolError(
                ErrorCode.FORBIDDEN, f"cannot change the level of {user}, who is not below you"
            )
