"""Hostile input over a raw websocket against a real daemon.

Every rejection is an error frame with a precise code; the connection stays usable unless
the peer floods or breaks framing (then a documented close code); nothing stored changes.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.errors import CloseCode, ErrorCode
from protocol.limits import Limits
from tests.e2e_peer import Peer, Snapshot, health_pos, snapshot, ws_url

LIMITS = Limits()


@dataclass
class Setup:
    url: str
    token: str
    owner: Peer  # a member of ``room``, on its own connection
    room: str
    snap: Snapshot


@pytest.fixture
async def setup(daemon) -> AsyncIterator[Setup]:  # type: ignore[no-untyped-def]
    yield await _setup(daemon)


async def _setup(daemon) -> Setup:  # type: ignore[no-untyped-def]
    user = daemon.add_user()
    owner = await Peer.login(daemon.url, user.token)
    try:
        room = (await owner.request("create_room", name="9В"))["room_id"]
        await owner.request("send", room_id=room, content={"body": "первое"})
        return Setup(daemon.url, user.token, owner, room, await snapshot(daemon.url, owner, room))
    except BaseException:
        await owner.close()
        raise


async def _teardown(*peers: Peer) -> None:
    for peer in peers:
        await peer.close()


def assert_error(frame: dict[str, Any], code: str, request_id: Any) -> None:
    assert set(frame) == {"id", "error"}, frame
    assert frame["id"] == request_id, frame
    assert frame["error"]["code"] == code, frame
    assert isinstance(frame["error"]["message"], str) and frame["error"]["message"]


async def next_reply(peer: Peer, mark: int) -> dict[str, Any]:
    return await peer.wait_frame(lambda f: "id" in f, since=mark)


async def raw_reply(peer: Peer, data: bytes | str) -> dict[str, Any]:
    mark = peer.mark()
    await peer.send_raw(data)
    return await next_reply(peer, mark)


async def assert_usable(peer: Peer) -> None:
    result = await peer.request("ping")
    assert isinstance(result["ts"], int)


# -- the handshake -----------------------------------------------------------------------------


async def test_no_or_unknown_subprotocol_is_http_400_with_json_error(daemon) -> None:  # type: ignore[no-untyped-def]
    headers = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
    }
    async with aiohttp.ClientSession() as session:
        for extra in ({}, {"Sec-WebSocket-Protocol": "chat, sferum.v2.json"}):
            async with session.get(daemon.url + "/v1/ws", headers={**headers, **extra}) as resp:
                assert resp.status == 400
                assert resp.content_type == "application/json"
                body = await resp.json()
                assert body["error"]["code"] == "bad_frame"
                assert "sferum.v1.msgpack" in body["error"]["message"]
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await session.ws_connect(ws_url(daemon.url))
        assert info.value.status == 400
    # The server chose the offered subprotocol when there is one it knows.
    peer = await Peer.open(daemon.url, json_codec=True)
    try:
        assert peer.ws.protocol == "sferum.v1.json"
        await assert_usable(peer)
    finally:
        await peer.close()


# -- frames that don't decode ------------------------------------------------------------------

MSGPACK_GARBAGE = [
    b"\xc1",  # a byte msgpack never uses
    b"\x82\xa2id",  # a map cut short
    msgpack.packb([1, 2, 3]),  # not a map
    msgpack.packb("ping"),
    msgpack.packb(None),
    msgpack.packb({"id": 1, "op": "ping"}) + b"\x00",  # trailing bytes
    msgpack.packb({1: 2}),  # a map keyed by an integer
    b"\xc7\x01\x05x",  # an ext type
]
JSON_GARBAGE = ["{not json", "[1, 2, 3]", "42", '"ping"', "null", '{"id": NaN, "op": "ping"}', ""]


@pytest.mark.parametrize("json_codec", [False, True], ids=["msgpack", "json"])
async def test_malformed_frames_get_bad_frame_with_null_id_and_stay_open(  # type: ignore[no-untyped-def]
    daemon, json_codec: bool
) -> None:
    s = await _setup(daemon)
    peer = await Peer.login(s.url, s.token, json_codec=json_codec)
    try:
        for garbage in JSON_GARBAGE if json_codec else MSGPACK_GARBAGE:
            assert_error(await raw_reply(peer, garbage), "bad_frame", None)
            await assert_usable(peer)
        # The wrong websocket opcode for the subprotocol is a bad frame too.
        wrong = msgpack.packb({"id": 7, "op": "ping"}) if json_codec else '{"id": 7, "op": "ping"}'
        assert_error(await raw_reply(peer, wrong), "bad_frame", None)
        await assert_usable(peer)
        await s.snap.assert_unchanged()
    finally:
        await _teardown(peer, s.owner)


# -- well-formed frames with bad requests ------------------------------------------------------


async def test_unknown_op_echoes_the_request_id(setup: Setup) -> None:
    peer = await Peer.login(setup.url, setup.token)
    try:
        for rid, op in ((41, "delete_everything"), ("req-x", "PING"), (0, 17), (5, "")):
            mark = peer.mark()
            await peer.send_value({"id": rid, "op": op})
            assert_error(await next_reply(peer, mark), "unknown_op", rid)
        await assert_usable(peer)
        await setup.snap.assert_unchanged()
    finally:
        await _teardown(peer, setup.owner)


async def test_wrong_field_types_are_invalid_field(setup: Setup) -> None:
    peer = await Peer.login(setup.url, setup.token)
    room = setup.room
    cases: list[dict[str, Any]] = [
        {"op": "send", "room_id": 12345, "content": {"body": "x"}},
        {"op": "send", "room_id": room, "content": "just text"},
        {"op": "send", "room_id": room, "content": {"body": 5}},
        {"op": "send", "room_id": room, "content": {"body": "x"}, "txn": 99},
        {"op": "send", "room_id": room, "content": {"body": "x"}, "txn": "has space"},
        {"op": "send", "room_id": "no-sigil", "content": {"body": "x"}},
        {"op": "send", "room_id": room, "content": {"body": "x"}, "color": "red"},
        {"op": "send", "room_id": room, "content": {"body": "x"}, "type": "Bad Type"},
        {"op": "send", "room_id": room, "content": {"body": "x"}, "type": "name"},
        {"op": "history", "room_id": room, "limit": "10"},
        {"op": "history", "room_id": room, "limit": True},
        {"op": "history", "room_id": room, "limit": 0},
        {"op": "history", "room_id": room, "limit": LIMITS.history_limit_max + 1},
        {"op": "history", "room_id": room, "before": -1},
        {"op": "typing", "room_id": room, "typing": "yes"},
        {"op": "create_room", "join_rule": "open"},
        {"op": "create_room", "invite": "@someone"},
        {"op": "create_room", "invite": ["not-a-user-id"]},
        {"op": "invite", "room_id": room, "user_id": ["@a"]},
        {"op": "state", "room_id": room, "type": "name", "content": {"name": 7}},
        {"op": "state", "room_id": room, "type": "power_levels", "content": {"kick": "high"}},
        {"op": "presence", "user_ids": "@a"},
    ]
    try:
        rooms_before = (await peer.request("rooms"))["rooms"]
        for i, case in enumerate(cases):
            mark = peer.mark()
            await peer.send_value({"id": 1000 + i, **case})
            assert_error(await next_reply(peer, mark), "invalid_field", 1000 + i)
        # An id that can't be echoed is refused with a null id.
        for bad_id in (True, -1, 2**60, "", "x" * 65, [1], 1.5):
            mark = peer.mark()
            await peer.send_value({"id": bad_id, "op": "ping"})
            assert_error(await next_reply(peer, mark), "invalid_field", None)
        await assert_usable(peer)
        assert (await peer.request("rooms"))["rooms"] == rooms_before
        await setup.snap.assert_unchanged()
    finally:
        await _teardown(peer, setup.owner)


async def test_missing_fields_are_missing_field(setup: Setup) -> None:
    peer = await Peer.login(setup.url, setup.token)
    room = setup.room
    cases: list[tuple[Any, dict[str, Any]]] = [
        (1, {"op": "send", "room_id": room}),
        (2, {"op": "send", "content": {"body": "x"}}),
        (3, {"op": "send", "room_id": room, "content": None}),
        (4, {"op": "invite", "room_id": room}),
        (5, {"op": "history"}),
        (6, {"op": "typing", "room_id": room}),
        (7, {"op": "read", "room_id": room}),
        (8, {"op": "state", "room_id": room, "content": {"name": "x"}}),
        (9, {}),  # no op
        (None, {"op": "ping"}),  # no id
    ]
    try:
        for rid, case in cases:
            frame = dict(case) if rid is None else {"id": rid, **case}
            mark = peer.mark()
            await peer.send_value(frame)
            assert_error(await next_reply(peer, mark), "missing_field", rid)
        await assert_usable(peer)
        await setup.snap.assert_unchanged()
    finally:
        await _teardown(peer, setup.owner)


async def test_over_long_strings_are_too_large(setup: Setup) -> None:
    peer = await Peer.login(setup.url, setup.token)
    room = setup.room
    long_name = "я" * (LIMITS.max_name_chars + 1)
    cases: list[dict[str, Any]] = [
        {"op": "send", "room_id": room, "content": {"body": "x" * (LIMITS.max_body_chars + 1)}},
        {"op": "create_room", "name": long_name},
        {"op": "create_room", "topic": "t" * (LIMITS.max_topic_chars + 1)},
        {"op": "create_room", "invite": [f"@u{i}" for i in range(LIMITS.max_list_items + 1)]},
        {"op": "state", "room_id": room, "type": "name", "content": {"name": long_name}},
        {"op": "kick", "room_id": room, "user_id": "@x", "reason": "r" * 513},
        {"op": "send", "room_id": room, "content": {"body": "x"}, "txn": "t" * 65},
        {"op": "send", "room_id": room, "content": {"blob": ["y" * 1000] * 40}},
    ]
    try:
        rooms_before = (await peer.request("rooms"))["rooms"]
        for i, case in enumerate(cases):
            mark = peer.mark()
            await peer.send_value({"id": i + 1, **case})
            assert_error(await next_reply(peer, mark), "too_large", i + 1)
        # At the limit is fine: the limit is the limit, not one less.
        ok = await peer.request("send", room_id=room, content={"body": "x" * LIMITS.max_body_chars})
        assert len(ok["event"]["content"]["body"]) == LIMITS.max_body_chars
        assert (await peer.request("rooms"))["rooms"] == rooms_before
        history = (await setup.owner.request("history", room_id=room, limit=1000))["events"]
        assert history == [*setup.snap.history, ok["event"]]
    finally:
        await _teardown(peer, setup.owner)


# -- authentication ----------------------------------------------------------------------------


async def test_ops_before_auth_are_refused_and_the_connection_stays_open(setup: Setup) -> None:
    peer = await Peer.open(setup.url)
    try:
        ops: list[tuple[str, dict[str, Any]]] = [
            ("send", {"room_id": setup.room, "content": {"body": "анонимно"}}),
            ("create_room", {"name": "чужая"}),
            ("history", {"room_id": setup.room}),
            ("rooms", {}),
        ]
        for op, fields in ops:
            reply = await peer.call(op, **fields)
            assert reply["error"]["code"] == "not_authenticated"
        await assert_usable(peer)  # ping needs no auth
        await setup.snap.assert_unchanged()
        await peer.request("auth", token=setup.token)
        assert (await peer.request("rooms"))["rooms"][0]["room_id"] == setup.room
        assert len((await peer.request("rooms"))["rooms"]) == 1  # "чужая" was never created
        assert await peer.reject("auth", token=setup.token) == "already_authenticated"
    finally:
        await _teardown(peer, setup.owner)


async def test_bad_token_is_auth_failed_and_a_retry_can_succeed(setup: Setup) -> None:
    peer = await Peer.open(setup.url)
    try:
        assert await peer.reject("auth", token="not-a-real-token") == "auth_failed"
        assert await peer.reject("auth", token=setup.token[:-1] + "A") == "auth_failed"
        assert await peer.reject("auth", token=12345) == "invalid_field"
        assert await peer.reject("auth") == "missing_field"
        assert await peer.reject("rooms") == "not_authenticated"
        ok = await peer.request("auth", token=setup.token)
        assert ok["user_id"] == setup.owner.user_id
        await setup.snap.assert_unchanged()
    finally:
        await _teardown(peer, setup.owner)


async def test_since_beyond_the_newest_position_is_invalid_field(setup: Setup) -> None:
    peer = await Peer.open(setup.url)
    try:
        newest = await health_pos(setup.url)
        assert await peer.reject("auth", token=setup.token, since=newest + 1) == "invalid_field"
        assert await peer.reject("auth", token=setup.token, since=-5) == "invalid_field"
        assert await peer.reject("rooms") == "not_authenticated"  # still not signed in
        ok = await peer.request("auth", token=setup.token, since=newest)
        assert ok["pos"] == newest
        await peer.wait_frame(lambda f: "synced" in f)
        assert peer.events() == []  # nothing after the newest position
        await setup.snap.assert_unchanged()
    finally:
        await _teardown(peer, setup.owner)


async def test_no_auth_in_time_closes_with_4000(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(config="[websocket]\nauth_timeout_s = 0.5\n")
    user = d.add_user()
    authed = await Peer.login(d.url, user.token)  # opened first: its timer fires first
    silent = await Peer.open(d.url)
    failed = await Peer.open(d.url)
    try:
        assert await failed.reject("auth", token="wrong") == "auth_failed"
        assert await silent.wait_closed(timeout=5) == CloseCode.AUTH_TIMEOUT
        # A failed attempt does not count as signing in.
        assert await failed.wait_closed(timeout=5) == CloseCode.AUTH_TIMEOUT
        await assert_usable(authed)
    finally:
        await _teardown(authed, silent, failed)


# -- closing offenders -------------------------------------------------------------------------


async def test_frame_over_max_frame_bytes_closes_with_1009(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(config="[limits]\nmax_frame_bytes = 4096\n")
    s = await _setup(d)
    peer = await Peer.login(s.url, s.token)
    witness = await Peer.login(s.url, s.token)
    try:
        # Just under the frame limit is stored ...
        ok = await peer.request("send", room_id=s.room, content={"body": "a" * 3500})
        s.snap.history.append(ok["event"])
        s.snap.pos = ok["event"]["pos"]
        # ... one over it breaks the connection with 1009 and stores nothing.
        await peer.send_value(
            {"id": "too-big", "op": "send", "room_id": s.room, "content": {"body": "b" * 5000}}
        )
        assert await peer.wait_closed(timeout=5) == CloseCode.MESSAGE_TOO_BIG
        assert not any(f.get("id") == "too-big" for f in peer.frames)
        await assert_usable(witness)  # other connections are unaffected
        await s.snap.assert_unchanged()
    finally:
        await _teardown(peer, witness, s.owner)


async def test_flood_of_bad_frames_closes_with_4009(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(config="[websocket]\nbad_frames_per_minute = 5\n")
    s = await _setup(d)
    flooder = await Peer.login(s.url, s.token)
    polite = await Peer.login(s.url, s.token)
    try:
        # Requests refused by the rules are not flooding: twice the limit, still open.
        for _ in range(10):
            assert await polite.reject("history", room_id="!notmyroom") == "not_member"
        await assert_usable(polite)

        # One bad frame past the limit of 5. (Writing on after the server has closed can
        # make the kernel reset the connection, and a reset can overtake the close frame:
        # that is TCP, not the daemon, so the flooder stops right past the limit.)
        for _ in range(6):
            await flooder.send_raw(b"\xc1")
        assert await flooder.wait_closed(timeout=5) == CloseCode.FLOOD
        errors = [f for f in flooder.frames if "error" in f]
        assert len(errors) >= 5
        assert all(f["error"]["code"] == "bad_frame" for f in errors)
        await assert_usable(polite)
        await s.snap.assert_unchanged()
    finally:
        await _teardown(flooder, polite, s.owner)


async def test_requests_past_the_rate_limit_are_rate_limited(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(
        config="[websocket]\nrate_per_s = 2.0\nrate_burst = 10\nbad_frames_per_minute = 1000\n"
    )
    s = await _setup(d)
    peer = await Peer.login(s.url, s.token)  # the auth took one of the ten
    try:
        ids = list(range(100, 125))
        mark = peer.mark()
        for i in ids:  # all at once, without waiting for replies
            await peer.send_value(
                {"id": i, "op": "send", "room_id": s.room, "content": {"body": f"n{i}"}}
            )
        replies = {}
        for i in ids:
            replies[i] = await peer.wait_frame(lambda f, i=i: f.get("id") == i, since=mark)
        accepted = [i for i in ids if "ok" in replies[i]]
        limited = [i for i in ids if "error" in replies[i]]
        assert 5 <= len(accepted) <= 12 and len(limited) >= 13
        for i in limited:
            assert_error(replies[i], "rate_limited", i)
        # What was stored is exactly what was acknowledged, in order.
        history = (await s.owner.request("history", room_id=s.room, limit=1000))["events"]
        assert history[: len(s.snap.history)] == s.snap.history
        assert [e["content"]["body"] for e in history[len(s.snap.history) :]] == [
            f"n{i}" for i in accepted
        ]
        # The bucket refills: the connection is usable again within a bounded wait.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while True:
            reply = await peer.call("ping")
            if "ok" in reply:
                break
            assert reply["error"]["code"] == "rate_limited"
            assert loop.time() < deadline, "rate limit never let a request through"
            await asyncio.sleep(0.1)
    finally:
        await _teardown(peer, s.owner)


# -- random garbage ----------------------------------------------------------------------------

KNOWN_CODES = {c.value for c in ErrorCode} - {ErrorCode.INTERNAL.value}
# Ops that could succeed with arbitrary arguments (and so are not garbage) are left out.
GARBAGE_OPS = [
    "auth",
    "members",
    "invite",
    "join",
    "leave",
    "kick",
    "ban",
    "unban",
    "send",
    "state",
    "redact",
    "history",
    "typing",
    "read",
]
FIELD_NAMES = [
    "room_id",
    "user_id",
    "event_id",
    "content",
    "body",
    "type",
    "txn",
    "token",
    "since",
    "limit",
    "before",
    "typing",
    "pos",
    "name",
    "invite",
    "user_ids",
    "reason",
    "state_key",
    "timeout_ms",
    "join_rule",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.binary(max_size=20),
    st.sampled_from(["!abc", "@abc", "$abc", "", "ping", "send"]),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
request_maps = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.integers(min_value=-5, max_value=2**54), st.text(max_size=70), values),
        "op": st.one_of(st.sampled_from(GARBAGE_OPS), st.text(max_size=12), values),
    },
).flatmap(
    lambda base: st.dictionaries(st.sampled_from(FIELD_NAMES), values, max_size=4).map(
        lambda extra: {**extra, **base}
    )
)
garbage = st.one_of(
    st.binary(max_size=200).map(lambda b: ("binary", b)),
    st.text(max_size=100).map(lambda t: ("text", t)),
    values.map(lambda v: ("binary", msgpack.packb(v, use_bin_type=True))),
    request_maps.map(lambda m: ("binary", msgpack.packb(m, use_bin_type=True))),
)


@dataclass
class Live:
    setup: Setup
    peer: Peer
    pings: int = 0


@pytest.fixture
async def live(daemon_factory) -> AsyncIterator[Live]:  # type: ignore[no-untyped-def]
    d = daemon_factory(
        config=(
            "[websocket]\nbad_frames_per_minute = 100000\nrate_per_s = 100000.0\n"
            "rate_burst = 100000\n"
        )
    )
    s = await _setup(d)
    peer = await Peer.login(s.url, s.token)
    yield Live(s, peer)
    await _teardown(peer, s.owner)


@settings(
    max_examples=50,
    deadline=None,
    derandomize=False,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(garbage)
async def test_random_garbage_is_rejected_and_changes_nothing(
    live: Live, frame: tuple[str, bytes | str]
) -> None:
    peer = live.peer
    kind, data = frame
    mark = peer.mark()
    await peer.send_raw(data if kind == "binary" else str(data))
    reply = await next_reply(peer, mark)
    assert set(reply) == {"id", "error"}, reply
    assert reply["error"]["code"] in KNOWN_CODES, reply
    # Still usable, and still the same connection: this ping's reply follows the garbage's.
    live.pings += 1
    ping_id = f"ping-{live.pings}"
    after = peer.mark()
    await peer.send_value({"id": ping_id, "op": "ping"})
    pong = await peer.wait_frame(lambda f: f.get("id") == ping_id, since=after)
    assert "ok" in pong, pong
    assert not peer.closed
    await live.setup.snap.assert_unchanged()
