"""The whiteboard: op validation (hostile input), permissions, erase and clear, ordering,
replay for late joiners, bounded boards and the token-bucket rate limit."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sferumd.services.calls import lifecycle as lc
from sferumd.services.calls import participants as pt
from sferumd.services.calls import permissions as pm
from sferumd.services.calls import whiteboard as wb
from sferumd.services.calls.errors import CallCode, CallError
from sferumd.services.calls.lifecycle import CallEvent
from sferumd.services.calls.participants import CallRoster, Category, Invitee
from sferumd.services.calls.permissions import Capability, PermissionTable
from sferumd.services.calls.settings import CallSettings
from sferumd.services.calls.whiteboard import Author, Board, Clear, Erase, Stroke, TokenBucket

T0 = 1_706_259_600_000
S = CallSettings()
TEACHER, ANNA, BORIS = "@teacher", "@anna", "@boris"
CALL = lc.apply(
    lc.apply(lc.schedule("c1", "7V", T0, T0 + 3_600_000, T0 - 1, S), CallEvent.OPEN, T0),
    CallEvent.START,
    T0,
)


def roster() -> CallRoster:
    r = pt.new_roster(
        "c1", TEACHER, [Invitee(ANNA, Category.STUDENT), Invitee(BORIS, Category.STUDENT)], S
    )
    for person in (TEACHER, ANNA, BORIS):
        r, _ = pt.join(CALL, r, person, "s", T0)
    return r


R = roster()
ADMIN = Author(TEACHER, may_draw=True, is_admin=True)
PUPIL = Author(ANNA, may_draw=True, is_admin=False)
OTHER = Author(BORIS, may_draw=True, is_admin=False)
DOT = Stroke(((0.5, 0.5),), "#000000", 0.01)


def stroke(n: int = 2) -> dict[str, Any]:
    return {"type": "stroke", "points": [[0.1, 0.2]] * n, "color": "#FF00aa", "width": 0.01}


# -- parsing -----------------------------------------------------------------------------------


def test_each_kind_parses() -> None:
    assert wb.parse_op(stroke(), S) == Stroke(((0.1, 0.2), (0.1, 0.2)), "#ff00aa", 0.01)
    shape = {
        "type": "shape",
        "kind": "arrow",
        "x1": 0,
        "y1": 0,
        "x2": 1,
        "y2": 1,
        "color": "#000000",
        "width": 0.05,
        "fill": "#FFFFFF",
    }
    parsed = wb.parse_op(shape, S)
    assert isinstance(parsed, wb.Shape) and parsed.kind is wb.ShapeKind.ARROW
    assert parsed.fill == "#ffffff" and parsed.x2 == 1.0
    text = {
        "type": "text",
        "x": 0.5,
        "y": 0.5,
        "text": "Дано:\nx = 2",
        "color": "#123456",
        "size": 0.03,
    }
    assert wb.parse_op(text, S) == wb.Text(0.5, 0.5, "Дано:\nx = 2", "#123456", 0.03)
    assert wb.parse_op({"type": "erase", "target": 3}, S) == Erase(3)
    assert wb.parse_op({"type": "clear"}, S) == Clear()


@pytest.mark.parametrize(
    ("raw", "code", "field"),
    [
        ([], CallCode.INVALID_FIELD, "op"),
        ({"type": "laser"}, CallCode.INVALID_FIELD, "op.type"),
        ({**stroke(), "extra": 1}, CallCode.INVALID_FIELD, "op.extra"),
        ({"type": "stroke", "color": "#000000", "width": 0.1}, CallCode.INVALID_FIELD, "op.points"),
        ({**stroke(), "points": []}, CallCode.INVALID_FIELD, "op.points"),
        (stroke(2001), CallCode.TOO_LARGE, "op.points"),
        ({**stroke(), "points": [[0.1]]}, CallCode.INVALID_FIELD, "op.points[0]"),
        ({**stroke(), "points": [[0.1, 1.5]]}, CallCode.INVALID_FIELD, "op.points[0][1]"),
        ({**stroke(), "points": [[-0.1, 0.5]]}, CallCode.INVALID_FIELD, "op.points[0][0]"),
        ({**stroke(), "points": [[True, 0.5]]}, CallCode.INVALID_FIELD, "op.points[0][0]"),
        ({**stroke(), "points": [[math.nan, 0.5]]}, CallCode.INVALID_FIELD, "op.points[0][0]"),
        ({**stroke(), "points": [["0.1", 0.5]]}, CallCode.INVALID_FIELD, "op.points[0][0]"),
        ({**stroke(), "color": "red"}, CallCode.INVALID_FIELD, "op.color"),
        ({**stroke(), "color": "#12345g"}, CallCode.INVALID_FIELD, "op.color"),
        ({**stroke(), "width": 0}, CallCode.INVALID_FIELD, "op.width"),
        ({**stroke(), "width": 0.5}, CallCode.INVALID_FIELD, "op.width"),
        ({**stroke(), "width": math.inf}, CallCode.INVALID_FIELD, "op.width"),
        (
            {
                "type": "shape",
                "kind": "star",
                "x1": 0,
                "y1": 0,
                "x2": 1,
                "y2": 1,
                "color": "#000000",
                "width": 0.05,
            },
            CallCode.INVALID_FIELD,
            "op.kind",
        ),
        (
            {"type": "text", "x": 0, "y": 0, "text": "", "color": "#000000", "size": 0.05},
            CallCode.INVALID_FIELD,
            "op.text",
        ),
        (
            {"type": "text", "x": 0, "y": 0, "text": "a\x07", "color": "#000000", "size": 0.05},
            CallCode.INVALID_FIELD,
            "op.text",
        ),
        (
            {"type": "text", "x": 0, "y": 0, "text": "я" * 501, "color": "#000000", "size": 0.05},
            CallCode.TOO_LARGE,
            "op.text",
        ),
        ({"type": "erase", "target": 0}, CallCode.INVALID_FIELD, "op.target"),
        ({"type": "erase", "target": True}, CallCode.INVALID_FIELD, "op.target"),
        ({"type": "clear", "all": True}, CallCode.INVALID_FIELD, "op.all"),
    ],
)
def test_bad_ops_are_refused_naming_the_field(raw: object, code: CallCode, field: str) -> None:
    with pytest.raises(CallError) as info:
        wb.parse_op(raw, S)
    assert info.value.code is code
    assert info.value.message.startswith(field + " ") or f"{field} " in info.value.message


coords = st.floats(0.0, 1.0)
colors = st.from_regex(r"#[0-9a-fA-F]{6}", fullmatch=True)
sizes = st.floats(0.0, 0.1, exclude_min=True)
texts = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), whitelist_characters="\n"),
    min_size=1,
    max_size=500,
).filter(lambda t: t.strip() != "" and all(ch.isprintable() or ch == "\n" for ch in t))
wire_ops = st.one_of(
    st.builds(
        lambda pts, c, w: {"type": "stroke", "points": pts, "color": c, "width": w},
        st.lists(st.lists(coords, min_size=2, max_size=2), min_size=1, max_size=50),
        colors,
        sizes,
    ),
    st.builds(
        lambda k, xs, c, w, f: {
            "type": "shape",
            "kind": k,
            "x1": xs[0],
            "y1": xs[1],
            "x2": xs[2],
            "y2": xs[3],
            "color": c,
            "width": w,
            **({} if f is None else {"fill": f}),
        },
        st.sampled_from(["rect", "ellipse", "line", "arrow"]),
        st.lists(coords, min_size=4, max_size=4),
        colors,
        sizes,
        st.none() | colors,
    ),
    st.builds(
        lambda x, y, t, c, s: {"type": "text", "x": x, "y": y, "text": t, "color": c, "size": s},
        coords,
        coords,
        texts,
        colors,
        sizes,
    ),
    st.builds(lambda t: {"type": "erase", "target": t}, st.integers(1, 2**40)),
    st.just({"type": "clear"}),
)


@given(wire_ops)
def test_valid_ops_parse_and_round_trip(raw: dict[str, Any]) -> None:
    op = wb.parse_op(raw, S)
    assert wb.parse_op(wb.op_to_wire(op), S) == op


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(
    st.one_of(
        json_values,
        wire_ops.flatmap(
            lambda op: st.sampled_from(sorted(op)).flatmap(
                lambda key: json_values.map(lambda junk: {**op, key: junk})
            )
        ),
    )
)
def test_hostile_input_is_either_an_op_or_a_call_error(raw: object) -> None:
    try:
        op = wb.parse_op(raw, S)
    except CallError as exc:
        assert exc.code in (CallCode.INVALID_FIELD, CallCode.TOO_LARGE)
        return
    assert wb.parse_op(wb.op_to_wire(op), S) == op


# -- the board ---------------------------------------------------------------------------------


def test_drawing_needs_the_whiteboard_permission() -> None:
    table = PermissionTable()
    pupil = wb.author_of(table, R, ANNA)
    assert not pupil.may_draw  # students have no whiteboard by default
    board = Board("c1/main")
    with pytest.raises(CallError) as info:
        wb.apply_op(board, DOT, pupil, T0, S)
    assert info.value.code is CallCode.FORBIDDEN
    table, _ = pm.set_personal(table, R, TEACHER, ANNA, Capability.WHITEBOARD, True)
    board, stored = wb.apply_op(board, DOT, wb.author_of(table, R, ANNA), T0, S)
    assert (stored.seq, stored.author, stored.at_ms) == (1, ANNA, T0)
    assert wb.author_of(PermissionTable(), R, TEACHER) == ADMIN


def test_ops_are_numbered_per_board_and_numbers_survive_a_clear() -> None:
    main, room = Board("c1/main"), Board("c1/p1.1")
    main, first = wb.apply_op(main, DOT, PUPIL, T0, S)
    main, second = wb.apply_op(main, DOT, OTHER, T0, S)
    room, other = wb.apply_op(room, DOT, PUPIL, T0, S)
    assert (first.seq, second.seq, other.seq) == (1, 2, 1)
    main, cleared = wb.apply_op(main, Clear(), ADMIN, T0 + 1, S)
    assert cleared.seq == 3 and main.cleared_seq == 3
    assert wb.since_clear(main) == () and wb.replay(main) == ()
    main, after = wb.apply_op(main, DOT, PUPIL, T0 + 2, S)
    assert after.seq == 4


def test_only_admins_clear() -> None:
    with pytest.raises(CallError) as info:
        wb.apply_op(Board("b"), Clear(), PUPIL, T0, S)
    assert info.value.code is CallCode.FORBIDDEN


def test_erasing_own_drawings_and_admins_erasing_anything() -> None:
    board = Board("b")
    board, mine = wb.apply_op(board, DOT, PUPIL, T0, S)
    board, theirs = wb.apply_op(board, DOT, OTHER, T0, S)
    with pytest.raises(CallError) as info:
        wb.apply_op(board, Erase(theirs.seq), PUPIL, T0, S)
    assert info.value.code is CallCode.FORBIDDEN
    board, erase = wb.apply_op(board, Erase(mine.seq), PUPIL, T0, S)
    for target in (mine.seq, erase.seq, 99):  # already erased, not a drawing, no such op
        with pytest.raises(CallError) as info:
            wb.apply_op(board, Erase(target), ADMIN, T0, S)
        assert info.value.code is CallCode.NOT_FOUND
    board, _ = wb.apply_op(board, Erase(theirs.seq), ADMIN, T0, S)
    assert wb.replay(board) == ()
    assert len(wb.since_clear(board)) == 4


def test_a_late_joiner_replays_the_visible_drawings_in_order() -> None:
    board = Board("b")
    seqs = []
    for author in (PUPIL, OTHER, PUPIL, OTHER):
        board, stored = wb.apply_op(board, DOT, author, T0, S)
        seqs.append(stored.seq)
    board, _ = wb.apply_op(board, Erase(seqs[1]), OTHER, T0, S)
    assert [s.seq for s in wb.replay(board)] == [seqs[0], seqs[2], seqs[3]]


def test_a_full_board_must_be_cleared_by_an_admin() -> None:
    small = CallSettings(whiteboard_max_ops=3)
    board = Board("b")
    for _ in range(3):
        board, _ = wb.apply_op(board, DOT, PUPIL, T0, small)
    for op in (DOT, Erase(1)):
        with pytest.raises(CallError) as info:
            wb.apply_op(board, op, ADMIN, T0, small)
        assert info.value.code is CallCode.BOARD_FULL
    board, _ = wb.apply_op(board, Clear(), ADMIN, T0, small)
    board, _ = wb.apply_op(board, DOT, PUPIL, T0, small)
    assert len(board.log) == 1


board_steps = st.lists(
    st.tuples(
        st.sampled_from(["draw", "erase", "clear"]),
        st.sampled_from([ADMIN, PUPIL, OTHER]),
        st.integers(1, 30),
    ),
    max_size=40,
)


@given(board_steps)
def test_replay_and_restore_agree_with_a_model(steps: list[tuple[str, Author, int]]) -> None:
    board, log, visible = Board("b"), [], []
    for kind, author, target in steps:
        op: wb.WhiteboardOp = (
            DOT if kind == "draw" else Erase(target) if kind == "erase" else Clear()
        )
        try:
            board, stored = wb.apply_op(board, op, author, T0, S)
        except CallError:
            continue
        log.append(stored)
        if kind == "draw":
            visible.append(stored.seq)
        elif kind == "erase":
            visible.remove(target)
        else:
            visible = []
        assert [s.seq for s in log] == list(range(1, len(log) + 1))  # gap-free order
    assert [s.seq for s in wb.replay(board)] == visible
    assert wb.restore("b", log) == board  # the persisted log rebuilds the same board
    with pytest.raises(ValueError):
        wb.restore("b", [*log, *log[-1:]] if log else [wb.StoredOp(0, ANNA, T0, DOT)])


# -- the rate limit ----------------------------------------------------------------------------


def test_a_burst_then_rate_limited_with_the_time_to_wait() -> None:
    fast = CallSettings(whiteboard_ops_per_s=10, whiteboard_burst=5)
    bucket = None
    for _ in range(5):
        bucket = wb.take(bucket, T0, fast)
    with pytest.raises(wb.RateLimitedError) as info:
        wb.take(bucket, T0, fast)
    assert info.value.code is CallCode.RATE_LIMITED and info.value.retry_after_ms == 100
    bucket = wb.take(bucket, T0 + 100, fast)  # one token back after 1/10 s
    with pytest.raises(wb.RateLimitedError):
        wb.take(bucket, T0 + 150, fast)


def test_a_clock_that_steps_back_refills_nothing() -> None:
    bucket = TokenBucket(0.5, T0)
    with pytest.raises(wb.RateLimitedError):
        wb.take(bucket, T0 - 10_000, S)


def test_a_refused_op_changes_neither_board_nor_bucket() -> None:
    board, bucket = Board("b"), TokenBucket(0.0, T0)
    with pytest.raises(wb.RateLimitedError):
        wb.draw(board, bucket, DOT, PUPIL, T0, S)
    full = TokenBucket(10.0, T0)
    with pytest.raises(CallError) as info:
        wb.draw(board, full, Clear(), PUPIL, T0, S)
    assert info.value.code is CallCode.FORBIDDEN
    assert (board, full) == (Board("b"), TokenBucket(10.0, T0))
    board, bucket, stored = wb.draw(board, full, DOT, PUPIL, T0, S)
    assert bucket.tokens == 9.0 and stored.seq == 1


@given(
    st.lists(st.integers(0, 200), min_size=1, max_size=120),
    st.floats(1, 50),
    st.integers(1, 20),
)
def test_the_bucket_never_lets_more_through_than_burst_plus_rate(
    gaps: list[int], rate: float, burst: int
) -> None:
    settings = CallSettings(whiteboard_ops_per_s=rate, whiteboard_burst=burst)
    bucket, now, accepted = None, T0, []
    for gap in gaps:
        now += gap
        try:
            bucket = wb.take(bucket, now, settings)
            accepted.append(now)
        except wb.RateLimitedError as exc:
            assert exc.retry_after_ms >= 1
    for i in range(len(accepted)):
        for j in range(i, len(accepted)):
            window_s = (accepted[j] - accepted[i]) / 1000
            assert j - i + 1 <= burst + rate * window_s + 1e-6


@given(st.floats(1, 50), st.integers(1, 20), st.integers(1, 100))
def test_a_sender_keeping_to_the_rate_is_never_refused(rate: float, burst: int, n: int) -> None:
    settings = CallSettings(whiteboard_ops_per_s=rate, whiteboard_burst=burst)
    step = math.ceil(1000 / rate)
    bucket = None
    for i in range(n):
        bucket = wb.take(bucket, T0 + i * step, settings)
