"""The interactive whiteboard ("Интерактивная доска", R19). Every whiteboard rule lives here.

One board per room: the main room's and each breakout room's, named by
``breakout.scoped_id(call_id, room_id)``.

Rules:

- Ops arrive as untyped maps from the wire and are validated by ``parse_op``; anything
  unexpected (an unknown key, a bool where a number goes, NaN, a coordinate off the board) is
  refused with ``invalid_field`` or ``too_large`` naming the field. ``op_to_wire`` is the
  exact inverse, used to persist ops in the room's event log.
- Coordinates are fractions of the board, 0.0..1.0 on both axes, so every screen maps the
  same drawing; stroke width and text size are fractions of the board's width, in
  (0, ``whiteboard_max_width``]. Colours are ``#rrggbb`` (kept lower-case).
- Kinds: ``stroke`` (1..``whiteboard_max_points`` points), ``shape`` (rect, ellipse, line,
  arrow between two corners, an optional fill), ``text`` (1..``whiteboard_max_text_chars``
  characters, no control characters but newlines), ``erase`` (one earlier op by its sequence
  number), ``clear``.
- Drawing needs the whiteboard capability (``permissions``): ``forbidden`` otherwise.
  Erasing someone else's op and clearing the board are for admins only.
- Each board numbers its ops 1, 2, 3... (``seq``); the number never goes back, not even
  after a clear, so clients order everything by it. ``since_clear`` is the log since the last
  clear; ``replay`` is what a late joiner needs to draw the same picture: the drawing ops
  since the last clear that are not erased, in order.
- At most ``whiteboard_max_ops`` ops since the last clear (``board_full``): the board's memory
  and replay stay bounded; an admin clears it to go on.
- Flooding: each person has a token bucket (``whiteboard_ops_per_s`` sustained,
  ``whiteboard_burst`` at once). An op without a token is refused with ``rate_limited`` and
  the time to wait. The bucket is a value like the board: a refused op changes neither.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum

from sferumd.services.calls.errors import CallCode, CallError
from sferumd.services.calls.participants import CallRoster, is_admin
from sferumd.services.calls.permissions import Capability, PermissionTable, may
from sferumd.services.calls.settings import CallSettings

_COLOR = re.compile(r"#[0-9a-fA-F]{6}")


class ShapeKind(StrEnum):
    RECT = "rect"
    ELLIPSE = "ellipse"
    LINE = "line"
    ARROW = "arrow"


_SHAPE_KINDS = frozenset(k.value for k in ShapeKind)


Point = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Stroke:
    points: tuple[Point, ...]
    color: str
    width: float


@dataclass(frozen=True, slots=True)
class Shape:
    kind: ShapeKind
    x1: float
    y1: float
    x2: float
    y2: float
    color: str
    width: float
    fill: str | None = None


@dataclass(frozen=True, slots=True)
class Text:
    x: float
    y: float
    text: str
    color: str
    size: float


@dataclass(frozen=True, slots=True)
class Erase:
    target: int  # seq of the op to erase


@dataclass(frozen=True, slots=True)
class Clear:
    pass


Drawing = Stroke | Shape | Text
WhiteboardOp = Stroke | Shape | Text | Erase | Clear


@dataclass(frozen=True, slots=True)
class StoredOp:
    seq: int
    author: str
    at_ms: int
    op: WhiteboardOp


@dataclass(frozen=True, slots=True)
class Board:
    board_id: str
    log: tuple[StoredOp, ...] = ()  # since the last clear; the clear itself is not in it
    next_seq: int = 1
    cleared_seq: int = 0  # seq of the last clear; 0: never cleared


@dataclass(frozen=True, slots=True)
class Author:
    """Who sends an op, with what the permission table says about them."""

    person_id: str
    may_draw: bool
    is_admin: bool


@dataclass(frozen=True, slots=True)
class TokenBucket:
    tokens: float
    updated_ms: int


class RateLimitedError(CallError):
    def __init__(self, retry_after_ms: int) -> None:
        super().__init__(
            CallCode.RATE_LIMITED, f"too many whiteboard ops; retry in {retry_after_ms} ms"
        )
        self.retry_after_ms = retry_after_ms


# -- parsing ----------------------------------------------------------------------------------

_FIELDS: Mapping[str, frozenset[str]] = {
    "stroke": frozenset({"type", "points", "color", "width"}),
    "shape": frozenset({"type", "kind", "x1", "y1", "x2", "y2", "color", "width", "fill"}),
    "text": frozenset({"type", "x", "y", "text", "color", "size"}),
    "erase": frozenset({"type", "target"}),
    "clear": frozenset({"type"}),
}
_REQUIRED: Mapping[str, frozenset[str]] = {
    "stroke": _FIELDS["stroke"],
    "shape": _FIELDS["shape"] - {"fill"},
    "text": _FIELDS["text"],
    "erase": _FIELDS["erase"],
    "clear": _FIELDS["clear"],
}


def _bad(path: str, why: str) -> CallError:
    return CallError(CallCode.INVALID_FIELD, f"{path} {why}")


def parse_op(raw: object, settings: CallSettings) -> WhiteboardOp:
    if not isinstance(raw, Mapping) or not all(isinstance(k, str) for k in raw):
        raise _bad("op", "must be a map with string keys")
    kind = raw.get("type")
    if not isinstance(kind, str) or kind not in _FIELDS:
        raise _bad("op.type", f"must be one of {', '.join(_FIELDS)}")
    extra = sorted(set(raw) - _FIELDS[kind])
    if extra:
        raise _bad(f"op.{extra[0]}", f"is not a field of a {kind}")
    missing = sorted(_REQUIRED[kind] - set(raw))
    if missing:
        raise CallError(CallCode.INVALID_FIELD, f"op.{missing[0]} is missing")
    if kind == "stroke":
        return Stroke(
            _points(raw["points"], settings),
            _color(raw["color"], "op.color"),
            _size(raw["width"], "op.width", settings),
        )
    if kind == "shape":
        return _shape(raw, settings)
    if kind == "text":
        return Text(
            _coord(raw["x"], "op.x"),
            _coord(raw["y"], "op.y"),
            _text(raw["text"], settings),
            _color(raw["color"], "op.color"),
            _size(raw["size"], "op.size", settings),
        )
    if kind == "erase":
        target = raw["target"]
        if isinstance(target, bool) or not isinstance(target, int) or target < 1:
            raise _bad("op.target", "must be a positive integer (an op's seq)")
        return Erase(target)
    return Clear()


def _shape(raw: Mapping[str, object], settings: CallSettings) -> Shape:
    kind = raw["kind"]
    if not isinstance(kind, str) or kind not in _SHAPE_KINDS:
        raise _bad("op.kind", f"must be one of {', '.join(k.value for k in ShapeKind)}")
    fill = raw.get("fill")
    return Shape(
        ShapeKind(kind),
        x1=_coord(raw["x1"], "op.x1"),
        y1=_coord(raw["y1"], "op.y1"),
        x2=_coord(raw["x2"], "op.x2"),
        y2=_coord(raw["y2"], "op.y2"),
        color=_color(raw["color"], "op.color"),
        width=_size(raw["width"], "op.width", settings),
        fill=None if fill is None else _color(fill, "op.fill"),
    )


def _number(value: object, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(path, "must be a number")
    number = float(value)
    if not math.isfinite(number):
        raise _bad(path, "must be finite")
    return number


def _coord(value: object, path: str) -> float:
    number = _number(value, path)
    if not 0.0 <= number <= 1.0:
        raise _bad(path, "must be within the board, 0..1")
    return number


def _size(value: object, path: str, settings: CallSettings) -> float:
    number = _number(value, path)
    if not 0.0 < number <= settings.whiteboard_max_width:
        raise _bad(path, f"must be in (0, {settings.whiteboard_max_width}]")
    return number


def _color(value: object, path: str) -> str:
    if not isinstance(value, str) or not _COLOR.fullmatch(value):
        raise _bad(path, "must be a colour #rrggbb")
    return value.lower()


def _points(value: object, settings: CallSettings) -> tuple[Point, ...]:
    if not isinstance(value, list | tuple):
        raise _bad("op.points", "must be a list of [x, y] pairs")
    if not value:
        raise _bad("op.points", "needs at least one point")
    if len(value) > settings.whiteboard_max_points:
        raise CallError(
            CallCode.TOO_LARGE,
            f"op.points has {len(value)} points; at most {settings.whiteboard_max_points}",
        )
    points: list[Point] = []
    for i, pair in enumerate(value):
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise _bad(f"op.points[{i}]", "must be an [x, y] pair")
        points.append(
            (_coord(pair[0], f"op.points[{i}][0]"), _coord(pair[1], f"op.points[{i}][1]"))
        )
    return tuple(points)


def _text(value: object, settings: CallSettings) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _bad("op.text", "must be a non-empty string")
    if len(value) > settings.whiteboard_max_text_chars:
        raise CallError(
            CallCode.TOO_LARGE,
            f"op.text is over {settings.whiteboard_max_text_chars} characters",
        )
    if any(not ch.isprintable() and ch != "\n" for ch in value):
        raise _bad("op.text", "has control characters")
    return value


def op_to_wire(op: WhiteboardOp) -> dict[str, object]:
    if isinstance(op, Stroke):
        points = [[x, y] for x, y in op.points]
        return {"type": "stroke", "points": points, "color": op.color, "width": op.width}
    if isinstance(op, Shape):
        wire: dict[str, object] = {
            "type": "shape",
            "kind": op.kind.value,
            "x1": op.x1,
            "y1": op.y1,
            "x2": op.x2,
            "y2": op.y2,
            "color": op.color,
            "width": op.width,
        }
        if op.fill is not None:
            wire["fill"] = op.fill
        return wire
    if isinstance(op, Text):
        return {
            "type": "text",
            "x": op.x,
            "y": op.y,
            "text": op.text,
            "color": op.color,
            "size": op.size,
        }
    if isinstance(op, Erase):
        return {"type": "erase", "target": op.target}
    return {"type": "clear"}


# -- the rate limit ---------------------------------------------------------------------------


def take(bucket: TokenBucket | None, now_ms: int, settings: CallSettings) -> TokenBucket:
    """One token for one op; a first op starts from a full bucket."""
    burst = float(settings.whiteboard_burst)
    if bucket is None:
        tokens, since = burst, now_ms
    else:
        # A clock that steps back refills nothing rather than draining the bucket.
        elapsed = max(0, now_ms - bucket.updated_ms)
        tokens = min(burst, bucket.tokens + elapsed * settings.whiteboard_ops_per_s / 1000)
        since = max(now_ms, bucket.updated_ms)
    if tokens < 1.0:
        wait = math.ceil((1.0 - tokens) * 1000 / settings.whiteboard_ops_per_s)
        raise RateLimitedError(max(1, wait))
    return TokenBucket(tokens - 1.0, since)


# -- the board --------------------------------------------------------------------------------


def author_of(table: PermissionTable, roster: CallRoster, person_id: str) -> Author:
    return Author(
        person_id, may(table, roster, person_id, Capability.WHITEBOARD), is_admin(roster, person_id)
    )


def apply_op(
    board: Board, op: WhiteboardOp, author: Author, now_ms: int, settings: CallSettings
) -> tuple[Board, StoredOp]:
    """Append one validated op; returns the new board and the op as stored and broadcast."""
    if not author.may_draw:
        raise CallError(CallCode.FORBIDDEN, f"{author.person_id} may not use the whiteboard")
    stored = StoredOp(board.next_seq, author.person_id, now_ms, op)
    if isinstance(op, Clear):
        if not author.is_admin:
            raise CallError(CallCode.FORBIDDEN, "only a call admin may clear the whiteboard")
        return Board(board.board_id, (), board.next_seq + 1, stored.seq), stored
    if len(board.log) >= settings.whiteboard_max_ops:
        raise CallError(
            CallCode.BOARD_FULL,
            f"the whiteboard holds {settings.whiteboard_max_ops} ops; an admin must clear it",
        )
    if isinstance(op, Erase):
        _check_erase(board, op, author)
    return replace(board, log=(*board.log, stored), next_seq=board.next_seq + 1), stored


def _check_erase(board: Board, op: Erase, author: Author) -> None:
    target = next((s for s in board.log if s.seq == op.target), None)
    if target is None or not isinstance(target.op, Drawing) or op.target in _erased(board):
        raise CallError(CallCode.NOT_FOUND, f"no drawing {op.target} on the board to erase")
    if target.author != author.person_id and not author.is_admin:
        raise CallError(CallCode.FORBIDDEN, "only a call admin may erase someone else's drawing")


def draw(
    board: Board,
    bucket: TokenBucket | None,
    op: WhiteboardOp,
    author: Author,
    now_ms: int,
    settings: CallSettings,
) -> tuple[Board, TokenBucket, StoredOp]:
    """The whole path of one op: rate limit, then permission and board rules. Either both
    values change or neither does."""
    new_bucket = take(bucket, now_ms, settings)
    new_board, stored = apply_op(board, op, author, now_ms, settings)
    return new_board, new_bucket, stored


def _erased(board: Board) -> set[int]:
    return {s.op.target for s in board.log if isinstance(s.op, Erase)}


def since_clear(board: Board) -> tuple[StoredOp, ...]:
    return board.log


def replay(board: Board) -> tuple[StoredOp, ...]:
    """The visible drawings, in order: what a late joiner draws to see the same board."""
    erased = _erased(board)
    return tuple(s for s in board.log if isinstance(s.op, Drawing) and s.seq not in erased)


def restore(board_id: str, stored: Iterable[StoredOp]) -> Board:
    """Rebuild a board from its persisted ops (all of them were accepted once)."""
    board = Board(board_id)
    for s in stored:
        if s.seq < board.next_seq:
            raise ValueError(f"whiteboard {board_id}: op {s.seq} is out of order")
        if isinstance(s.op, Clear):
            board = Board(board_id, (), s.seq + 1, s.seq)
        else:
            board = replace(board, log=(*board.log, s), next_seq=s.seq + 1)
    return board
