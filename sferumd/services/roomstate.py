"""A room's current state in memory: the latest state event per (type, state key), the
members by membership, and the parsed power levels. Rebuilt from the store at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field

from sferumd import model
from sferumd.model import Event
from sferumd.services import membership as ms
from sferumd.services.power import PowerLevels


@dataclass(slots=True)
class RoomState:
    room_id: str
    state: dict[tuple[str, str], Event] = field(default_factory=dict)
    members: dict[str, str] = field(default_factory=dict)  # user id -> membership
    joined: set[str] = field(default_factory=set)
    power: PowerLevels = field(default_factory=lambda: PowerLevels.from_content({}))

    def apply(self, event: Event) -> None:
        if event.state_key is None:
            return
        self.state[(event.type, event.state_key)] = event
        if event.type == model.MEMBER:
            self.members[event.state_key] = event.content["membership"]
            if event.content["membership"] == ms.JOIN:
                self.joined.add(event.state_key)
            else:
                self.joined.discard(event.state_key)
        elif event.type == model.POWER_LEVELS:
            self.power = PowerLevels.from_content(event.content)

    def membership(self, user_id: str) -> str:
        return self.members.get(user_id, ms.NONE)

    def content(self, event_type: str, key: str = "") -> dict[str, object]:
        ev = self.state.get((event_type, key))
        return ev.content if ev is not None else {}

    @property
    def name(self) -> str | None:
        name = self.content(model.NAME).get("name")
        return name if isinstance(name, str) else None

    @property
    def join_rule(self) -> str:
        rule = self.content(model.JOIN_RULE).get("join_rule")
        return rule if isinstance(rule, str) else "invite"
