"""The raise-hand queue ("Поднять руку"). Every hand-queue rule lives here.

Rules:

- Only someone in the call raises a hand (``not_joined`` otherwise).
- Raising is idempotent: raising again keeps the original place (a double click, a retried
  frame, or a second device never sends someone to the back).
- Order: by raise time, then by arrival (a counter the queue keeps), so two hands raised in
  the same millisecond keep the order the server saw them in, and a replay from the event
  log rebuilds the same queue.
- Anyone lowers their own hand; an admin lowers anyone's, or all of them; a non-admin
  lowering someone else's gets ``forbidden``. Lowering a hand that is not raised changes
  nothing (idempotent).
- ``drop`` takes a hand out without checks, for the wiring when someone leaves the call or
  is removed: a hand in the queue belongs to someone who is there.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sferumd.services.calls.errors import CallCode, CallError
from sferumd.services.calls.participants import CallRoster, is_joined, require_admin


@dataclass(frozen=True, slots=True)
class RaisedHand:
    person_id: str
    raised_at_ms: int
    seq: int  # arrival order: the tiebreak for equal times


@dataclass(frozen=True, slots=True)
class HandQueue:
    hands: tuple[RaisedHand, ...] = ()  # always in queue order
    next_seq: int = 0


def _key(hand: RaisedHand) -> tuple[int, int]:
    return hand.raised_at_ms, hand.seq


def raise_hand(queue: HandQueue, roster: CallRoster, person_id: str, now_ms: int) -> HandQueue:
    if not is_joined(roster, person_id):
        raise CallError(CallCode.NOT_JOINED, f"{person_id} is not in the call")
    if position(queue, person_id) is not None:
        return queue
    hand = RaisedHand(person_id, now_ms, queue.next_seq)
    return HandQueue(tuple(sorted((*queue.hands, hand), key=_key)), queue.next_seq + 1)


def lower_hand(queue: HandQueue, roster: CallRoster, actor_id: str, person_id: str) -> HandQueue:
    if actor_id != person_id:
        require_admin(roster, actor_id, "lower someone else's hand")
    return drop(queue, person_id)


def lower_all(queue: HandQueue, roster: CallRoster, actor_id: str) -> HandQueue:
    require_admin(roster, actor_id, "lower all hands")
    return replace(queue, hands=())


def drop(queue: HandQueue, person_id: str) -> HandQueue:
    hands = tuple(h for h in queue.hands if h.person_id != person_id)
    return queue if len(hands) == len(queue.hands) else replace(queue, hands=hands)


def order(queue: HandQueue) -> tuple[str, ...]:
    return tuple(h.person_id for h in queue.hands)


def position(queue: HandQueue, person_id: str) -> int | None:
    """0 for the first hand; ``None`` if not raised."""
    for i, h in enumerate(queue.hands):
        if h.person_id == person_id:
            return i
    return None
