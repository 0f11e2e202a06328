"""Chats made by hand (R11, R12) against a real daemon: the closed-chat setting, invite links
with their limits, QR codes, the preview, joining by a link, knocks accepted and refused.

Every refused use of a link is followed by a check that it changed nothing: no member event,
no use counted.
"""

from __future__ import annotations

import asyncio
import json
import re
import struct
import xml.etree.ElementTree as ET
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clients.durations import UNITS, parse_duration
from sferumd.config import ChatSettings
from sferumd.services import chat_presets
from sferumd.services.auth import AuthError
from sferumd.services.invites import (
    LINK_OPTIONS,
    LinkOptions,
    check_link_options,
    new_code,
    valid_code,
)
from tests.e2e_peer import Peer, health_pos, room_history
from tests.test_cli import lines, sferum
from tests.test_moderation import upload_picture

NAMES = ("alice", "bob", "carol", "dave")
TIMEOUT = 5.0


async def http(
    base: str, method: str, path: str, token: str | None = None, body: Any = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body))
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, base + path, data=data, headers=headers) as resp,
    ):
        return resp.status, await resp.json(content_type=None)


async def fetch(base: str, path: str) -> tuple[int, str, bytes]:
    async with aiohttp.ClientSession() as session, session.get(base + path) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), await resp.read()


async def make_link(base: str, peer: Peer, room: str, **options: Any) -> dict[str, Any]:
    status, body = await http(base, "POST", f"/v1/rooms/{room}/invite-links", peer.token, options)
    assert status == 201, body
    return body  # type: ignore[no-any-return]


async def use_link(base: str, peer: Peer, code: str) -> tuple[int, Any]:
    return await http(base, "POST", f"/v1/invites/{code}/join", peer.token)


def error_code(body: Any) -> str:
    return str(body["error"]["code"])


async def live_links(base: str, peer: Peer, room: str) -> list[dict[str, Any]]:
    status, body = await http(base, "GET", f"/v1/rooms/{room}/invite-links", peer.token)
    assert status == 200, body
    return body["links"]  # type: ignore[no-any-return]


def member_event(user_id: str | None, membership: str) -> Any:
    return lambda ev: (
        ev["type"] == "member"
        and ev["state_key"] == user_id
        and ev["content"]["membership"] == membership
    )


async def power_levels(peer: Peer, room: str) -> dict[str, Any]:
    history = await room_history(peer, room)
    return [e for e in history if e["type"] == "power_levels"][-1]["content"]  # type: ignore[no-any-return]


async def refused_without_trace(base: str, peer: Peer, code: str, status: int, error: str) -> None:
    """Using ``code`` is refused with ``status``/``error`` and stores nothing."""
    before = await health_pos(base)
    got, body = await use_link(base, peer, code)
    assert (got, error_code(body)) == (status, error), body
    assert await health_pos(base) == before


# -- the closed-chat setting ----------------------------------------------------------------


async def test_a_closed_chat_leaves_inviting_naming_and_pinning_to_admins(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, bob = cast["alice"], cast["bob"]
    room = (
        await alice.request("create_room", name="Стенгазета", closed=True, invite=[bob.user_id])
    )["room_id"]
    await bob.request("join", room_id=room)
    # Exactly the documented preset, with the creator at 100.
    assert await power_levels(alice, room) == {
        "users_default": 0,
        "events_default": 0,
        "state_default": 50,
        "invite": 50,
        "kick": 50,
        "ban": 50,
        "redact": 50,
        "events": {
            "name": 50,
            "topic": 50,
            "avatar": 50,
            "pins": 50,
            "join_rule": 50,
            "mutes": 50,
            "power_levels": 100,
        },
        "users": {alice.user_id: 100},
    }
    carol = cast["carol"]
    assert await bob.reject("invite", room_id=room, user_id=carol.user_id) == "forbidden"
    bobs_photo = await upload_picture(daemon.url, bob)
    for type_, content in (
        ("name", {"name": "Моя"}),
        ("topic", {"topic": "x"}),
        ("avatar", {"file_id": bobs_photo}),
    ):
        assert await bob.reject("state", room_id=room, type=type_, content=content) == "forbidden"
    assert await bob.reject("set_closed", room_id=room, closed=False) == "forbidden"
    status, body = await http(daemon.url, "POST", f"/v1/rooms/{room}/invite-links", bob.token, {})
    assert (status, error_code(body)) == (403, "forbidden")
    # The admin may do all of it.
    await alice.request("invite", room_id=room, user_id=carol.user_id)
    photo = await upload_picture(daemon.url, alice)
    await alice.request("state", room_id=room, type="avatar", content={"file_id": photo})
    await make_link(daemon.url, alice, room)


async def summary_closed(client: Any, room: str) -> bool:
    rooms = (await client.request("rooms"))["rooms"]
    return bool(next(r for r in rooms if r["room_id"] == room)["closed"])


async def test_opening_and_closing_rewrites_the_power_levels(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, bob, carol, dave = cast["alice"], cast["bob"], cast["carol"], cast["dave"]
    room = (await alice.request("create_room", closed=True, invite=[bob.user_id]))["room_id"]
    await bob.request("join", room_id=room)
    # Alice makes bob a moderator first: the switch keeps who is who.
    levels = await power_levels(alice, room)
    levels["users"][bob.user_id] = 50
    await alice.request("state", room_id=room, type="power_levels", content=levels)

    mark = bob.mark()
    opened = (await alice.request("set_closed", room_id=room, closed=False))["event"]
    assert opened["type"] == "power_levels"
    assert opened["content"]["invite"] == 0
    assert opened["content"]["events"]["pins"] == 0
    assert opened["content"]["events"]["name"] == 50
    assert opened["content"]["users"] == {alice.user_id: 100, bob.user_id: 50}
    await bob.wait_event(lambda e: e["event_id"] == opened["event_id"], since=mark)
    # Switching to what the chat is already writes nothing.
    pos = await health_pos(daemon.url)
    again = (await alice.request("set_closed", room_id=room, closed=False))["event"]
    assert again["event_id"] == opened["event_id"] and await health_pos(daemon.url) == pos

    # Open: a member at 0 invites and makes links.
    await alice.request("invite", room_id=room, user_id=carol.user_id)
    await carol.request("join", room_id=room)
    await carol.request("invite", room_id=room, user_id=dave.user_id)
    carols_link = await make_link(daemon.url, carol, room)
    assert (await http(daemon.url, "GET", f"/v1/invites/{carols_link['code']}"))[0] == 200

    # The chat lists say which it is.
    assert await summary_closed(carol, room) is False
    # Closed again: carol's invite right is gone, and her link with it.
    closed = (await alice.request("set_closed", room_id=room, closed=True))["event"]
    assert closed["content"]["invite"] == 50
    assert await summary_closed(carol, room) is True
    assert await carol.reject("invite", room_id=room, user_id=cast["dave"].user_id) in (
        "forbidden",
        "membership",
    )
    await refused_without_trace(daemon.url, dave, carols_link["code"], 410, "invite_revoked")
    status, body = await http(daemon.url, "GET", f"/v1/invites/{carols_link['code']}")
    assert (status, error_code(body)) == (410, "invite_revoked")
    # A moderator at 50 can't switch: that is a power-levels change (needs 100).
    assert await bob.reject("set_closed", room_id=room, closed=False) == "forbidden"


def test_presets_differ_only_in_the_documented_gates() -> None:
    base = {"users": {"@a": 100}, "events": {"custom": 7}}
    opened, closed = chat_presets.apply(base, False), chat_presets.apply(base, True)
    assert opened["users"] == closed["users"] == {"@a": 100}
    assert opened["events"]["custom"] == closed["events"]["custom"] == 7  # kept
    diff = {k for k in opened if opened[k] != closed[k]}
    assert diff == {"invite", "events"}
    assert {k for k in opened["events"] if opened["events"][k] != closed["events"][k]} == {"pins"}
    from sferumd.services.power import PowerLevels

    assert chat_presets.is_closed(PowerLevels.from_content(closed))
    assert not chat_presets.is_closed(PowerLevels.from_content(opened))


# -- making, listing, revoking links ----------------------------------------------------------


async def test_link_create_list_preview_revoke(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, bob = cast["alice"], cast["bob"]
    room = (await alice.request("create_room", name="Кружок <b>&", invite=[bob.user_id]))["room_id"]
    await bob.request("join", room_id=room)
    link = await make_link(daemon.url, alice, room, expires_in_s=3600, max_uses=5)
    code = link["code"]
    assert valid_code(code) and len(code) == 24
    assert link["url"] == f"{daemon.url}/join/{code}"
    assert link["qr_png"] == f"{daemon.url}/v1/invites/{code}/qr.png"
    assert (link["max_uses"], link["uses"], link["approval"], link["state"]) == (
        5,
        0,
        False,
        "live",
    )
    assert link["expires_ts"] - link["created_ts"] == 3_600_000
    assert link["creator"] == alice.user_id and link["room_id"] == room

    listed = await live_links(daemon.url, alice, room)
    assert [x["link_id"] for x in listed] == [link["link_id"]]
    assert "code" not in listed[0] and "url" not in listed[0]  # shown only once

    # The preview: name, member count, approval; nothing else.
    status, preview = await http(daemon.url, "GET", f"/v1/invites/{code}")
    assert status == 200
    assert preview == {"name": "Кружок <b>&", "members": 2, "approval": False}

    # Bob (a member at 0, not the creator) may not revoke alice's link; a stranger neither.
    path = f"/v1/rooms/{room}/invite-links/{link['link_id']}"
    status, body = await http(daemon.url, "DELETE", path, bob.token)
    assert (status, error_code(body)) == (403, "forbidden")
    status, body = await http(daemon.url, "DELETE", path, cast["carol"].token)
    assert (status, error_code(body)) == (403, "not_member")
    status, body = await http(daemon.url, "DELETE", path + "x", alice.token)
    assert (status, error_code(body)) == (404, "not_found")

    status, revoked = await http(daemon.url, "DELETE", path, alice.token)
    assert status == 200 and revoked["state"] == "revoked"
    status, again = await http(daemon.url, "DELETE", path, alice.token)  # idempotent
    assert status == 200 and again["state"] == "revoked"
    assert await live_links(daemon.url, alice, room) == []
    status, body = await http(daemon.url, "GET", f"/v1/invites/{code}")
    assert (status, error_code(body)) == (410, "invite_revoked")
    await refused_without_trace(daemon.url, cast["carol"], code, 410, "invite_revoked")


async def test_managing_links_needs_sign_in_membership_and_the_invite_level(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, carol = cast["alice"], cast["carol"]
    room = (await alice.request("create_room"))["room_id"]
    path = f"/v1/rooms/{room}/invite-links"
    assert (await http(daemon.url, "POST", path, None, {}))[0] == 401
    assert (await http(daemon.url, "GET", path, "nope"))[0] == 401
    for method in ("POST", "GET"):
        status, body = await http(daemon.url, method, path, carol.token, {})
        assert (status, error_code(body)) == (403, "not_member")
    status, body = await http(daemon.url, "POST", "/v1/rooms/!nosuchroom/invite-links", alice.token)
    assert (status, error_code(body)) == (403, "not_member")


BAD_OPTIONS: list[tuple[dict[str, Any], str]] = [
    ({"expires_in_s": 0}, "expires_in_s"),
    ({"expires_in_s": -5}, "expires_in_s"),
    ({"expires_in_s": 1.5}, "expires_in_s"),
    ({"expires_in_s": "7d"}, "expires_in_s"),
    ({"expires_in_s": 366 * 86_400 + 1}, "expires_in_s"),
    ({"max_uses": 0}, "max_uses"),
    ({"max_uses": True}, "max_uses"),
    ({"max_uses": 100_001}, "max_uses"),
    ({"approval": "yes"}, "approval"),
    ({"approval": True, "max_uses": 3}, "max_uses"),
    ({"uses": 3}, "uses"),
]


async def test_bad_link_options_are_refused_by_name(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice = cast["alice"]
    room = (await alice.request("create_room"))["room_id"]
    for body, field in BAD_OPTIONS:
        status, answer = await http(
            daemon.url, "POST", f"/v1/rooms/{room}/invite-links", alice.token, body
        )
        assert (status, error_code(answer), answer["error"]["field"]) == (
            400,
            "invalid_field",
            field,
        ), body
    assert await live_links(daemon.url, alice, room) == []


async def test_bad_bodies_and_the_live_link_limit(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    daemon = daemon_factory("[chats]\nmax_links_per_room = 2\n")
    user = daemon.add_user()
    alice = await Peer.login(daemon.url, user.token)
    try:
        room = (await alice.request("create_room"))["room_id"]
        path = f"/v1/rooms/{room}/invite-links"
        status, body = await http(daemon.url, "POST", path, alice.token, b"[1]")
        assert (status, error_code(body)) == (400, "bad_json")
        status, body = await http(daemon.url, "POST", path, alice.token, b"{" + b" " * 2000 + b"}")
        assert (status, error_code(body)) == (413, "too_large")
        first = await make_link(daemon.url, alice, room)
        await make_link(daemon.url, alice, room)
        status, body = await http(daemon.url, "POST", path, alice.token, {})
        assert (status, error_code(body)) == (409, "too_many_links")
        # A revoked link no longer counts.
        await http(daemon.url, "DELETE", f"{path}/{first['link_id']}", alice.token)
        await make_link(daemon.url, alice, room)
    finally:
        await alice.close()


# -- joining by a link ------------------------------------------------------------------------


async def test_joining_by_a_link(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, carol = cast["alice"], cast["carol"]
    room = (await alice.request("create_room", name="Шахматы"))["room_id"]
    link = await make_link(daemon.url, alice, room, max_uses=2)
    a_mark, c_mark = alice.mark(), carol.mark()
    status, joined = await use_link(daemon.url, carol, link["code"])
    assert status == 200, joined
    assert (joined["room_id"], joined["membership"]) == (room, "join")
    ev = joined["event"]
    assert ev["sender"] == carol.user_id and ev["state_key"] == carol.user_id
    assert ev["content"] == {"membership": "join", "link_id": link["link_id"]}
    await alice.wait_event(lambda e: e["event_id"] == ev["event_id"], since=a_mark)
    await carol.wait_event(lambda e: e["event_id"] == ev["event_id"], since=c_mark)
    assert [x["uses"] for x in await live_links(daemon.url, alice, room)] == [1]
    # Joining again by the link changes nothing and uses nothing.
    pos = await health_pos(daemon.url)
    status, again = await use_link(daemon.url, carol, link["code"])
    assert status == 200 and again["event"]["event_id"] == ev["event_id"]
    assert await health_pos(daemon.url) == pos
    assert [x["uses"] for x in await live_links(daemon.url, alice, room)] == [1]
    # Carol reads the chat now.
    assert (await carol.request("history", room_id=room))["events"]
    # A link works whatever the join rule: the room is invite-only.
    assert (await carol.request("rooms"))["rooms"][0]["join_rule"] == "invite"


async def test_an_invited_user_joins_with_the_invite_and_uses_nothing(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, bob = cast["alice"], cast["bob"]
    room = (await alice.request("create_room", invite=[bob.user_id]))["room_id"]
    link = await make_link(daemon.url, alice, room, max_uses=1)
    status, joined = await use_link(daemon.url, bob, link["code"])
    assert status == 200 and joined["membership"] == "join"
    assert joined["event"]["content"] == {"membership": "join"}
    assert [x["uses"] for x in await live_links(daemon.url, alice, room)] == [0]


async def test_unknown_and_malformed_codes_are_not_found(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    carol = cast["carol"]
    for code in (new_code(), "short", "a" * 65, "bad%20code%2F..", "абвгдежзийклмнопрстуфхцч"):
        status, body = await http(daemon.url, "GET", f"/v1/invites/{code}")
        assert (status, error_code(body)) == (404, "not_found"), code
        await refused_without_trace(daemon.url, carol, code, 404, "not_found")
    status, body = await http(daemon.url, "POST", f"/v1/invites/{new_code()}/join")
    assert (status, error_code(body)) == (401, "auth_failed")


async def test_an_expired_link_is_refused(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, carol = cast["alice"], cast["carol"]
    room = (await alice.request("create_room"))["room_id"]
    link = await make_link(daemon.url, alice, room, expires_in_s=1)
    assert link["state"] == "live"
    # Wait (bounded) for the server to call it expired, rather than sleeping a fixed time.
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while True:
        status, body = await http(daemon.url, "GET", f"/v1/invites/{link['code']}")
        if status != 200:
            break
        assert asyncio.get_running_loop().time() < deadline, "the link never expired"
        await asyncio.sleep(0.05)
    assert (status, error_code(body)) == (410, "invite_expired")
    await refused_without_trace(daemon.url, carol, link["code"], 410, "invite_expired")
    assert await live_links(daemon.url, alice, room) == []


async def test_the_last_use_goes_to_exactly_one_of_two_at_once(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, bob, carol, dave = cast["alice"], cast["bob"], cast["carol"], cast["dave"]
    room = (await alice.request("create_room"))["room_id"]
    link = await make_link(daemon.url, alice, room, max_uses=2)
    assert (await use_link(daemon.url, bob, link["code"]))[0] == 200
    results = await asyncio.gather(
        use_link(daemon.url, carol, link["code"]), use_link(daemon.url, dave, link["code"])
    )
    statuses = sorted(status for status, _ in results)
    assert statuses == [200, 410], results
    loser = next(body for status, body in results if status == 410)
    assert error_code(loser) == "invite_used_up"
    members = await alice.request("members", room_id=room)
    joined = {m["user_id"] for m in members["members"] if m["membership"] == "join"}
    assert len(joined & {carol.user_id, dave.user_id}) == 1
    status, body = await http(daemon.url, "GET", f"/v1/invites/{link['code']}")
    assert (status, error_code(body)) == (410, "invite_used_up")


async def test_many_at_once_never_exceed_the_limit(daemon) -> None:  # type: ignore[no-untyped-def]
    owner = await Peer.login(daemon.url, daemon.add_user().token)
    peers = [await Peer.login(daemon.url, daemon.add_user().token) for _ in range(8)]
    try:
        room = (await owner.request("create_room"))["room_id"]
        link = await make_link(daemon.url, owner, room, max_uses=3)
        results = await asyncio.gather(*(use_link(daemon.url, p, link["code"]) for p in peers))
        assert sorted(s for s, _ in results) == [200] * 3 + [410] * 5
        assert {error_code(b) for s, b in results if s == 410} == {"invite_used_up"}
        members = (await owner.request("members", room_id=room))["members"]
        assert len(members) == 4
    finally:
        for p in [owner, *peers]:
            await p.close()


async def test_a_banned_user_is_refused(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, dave = cast["alice"], cast["dave"]
    room = (await alice.request("create_room"))["room_id"]
    link = await make_link(daemon.url, alice, room, max_uses=1)
    await alice.request("ban", room_id=room, user_id=dave.user_id, reason="спам")
    await refused_without_trace(daemon.url, dave, link["code"], 403, "banned")
    assert [x["uses"] for x in await live_links(daemon.url, alice, room)] == [0]
    # Unbanned, the same link lets him in.
    await alice.request("unban", room_id=room, user_id=dave.user_id)
    assert (await use_link(daemon.url, dave, link["code"]))[0] == 200


async def test_a_link_outlives_a_restart_with_its_uses(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, bob = cast["alice"], cast["bob"]
    room = (await alice.request("create_room"))["room_id"]
    link = await make_link(daemon.url, alice, room, max_uses=2)
    assert (await use_link(daemon.url, bob, link["code"]))[0] == 200
    daemon.restart()
    carol_user = daemon.add_user()
    carol = await Peer.login(daemon.url, carol_user.token)
    dave = await Peer.login(daemon.url, daemon.add_user().token)
    try:
        assert (await use_link(daemon.url, carol, link["code"]))[0] == 200
        await refused_without_trace(daemon.url, dave, link["code"], 410, "invite_used_up")
    finally:
        await carol.close()
        await dave.close()


# -- knocks: links that need approval -----------------------------------------------------------


async def test_knock_accept_and_refuse(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, bob, carol, dave = cast["alice"], cast["bob"], cast["carol"], cast["dave"]
    room = (await alice.request("create_room", name="Клуб", closed=True, invite=[bob.user_id]))[
        "room_id"
    ]
    await bob.request("join", room_id=room)
    link = await make_link(daemon.url, alice, room, approval=True)
    status, preview = await http(daemon.url, "GET", f"/v1/invites/{link['code']}")
    assert preview == {"name": "Клуб", "members": 2, "approval": True}

    a_mark = alice.mark()
    status, knocked = await use_link(daemon.url, carol, link["code"])
    assert status == 200 and knocked["membership"] == "knock"
    knock = knocked["event"]
    assert knock["content"] == {"membership": "knock", "link_id": link["link_id"]}
    await alice.wait_event(lambda e: e["event_id"] == knock["event_id"], since=a_mark)
    # Knocking again is the same knock.
    again = (await use_link(daemon.url, carol, link["code"]))[1]
    assert again["event"]["event_id"] == knock["event_id"]
    # Not in yet: carol reads and sends nothing.
    assert await carol.reject("history", room_id=room) == "not_member"
    assert await carol.reject("send", room_id=room, content={"body": "x"}) == "not_member"
    assert (await use_link(daemon.url, dave, link["code"]))[1]["membership"] == "knock"

    listed = (await alice.request("knocks", room_id=room))["knocks"]
    assert sorted(k["user_id"] for k in listed) == sorted([carol.user_id, dave.user_id])
    assert {k["link_id"] for k in listed} == {link["link_id"]}
    # In a closed chat a member sees no requests and decides none.
    assert await bob.reject("knocks", room_id=room) == "forbidden"
    assert await bob.reject("accept_knock", room_id=room, user_id=carol.user_id) == "forbidden"
    assert await carol.reject("knocks", room_id=room) == "not_member"

    c_mark = carol.mark()
    accepted = (await alice.request("accept_knock", room_id=room, user_id=carol.user_id))["event"]
    assert accepted["sender"] == alice.user_id and accepted["content"] == {"membership": "join"}
    await carol.wait_event(member_event(carol.user_id, "join"), since=c_mark)
    await carol.request("send", room_id=room, content={"body": "спасибо"})

    d_mark = dave.mark()
    refused = (
        await alice.request(
            "refuse_knock", room_id=room, user_id=dave.user_id, reason="не из школы"
        )
    )["event"]
    assert refused["content"] == {"membership": "leave", "reason": "не из школы"}
    await dave.wait_event(member_event(dave.user_id, "leave"), since=d_mark)
    assert (await alice.request("knocks", room_id=room))["knocks"] == []
    # Deciding on someone who has not asked is refused.
    for op in ("accept_knock", "refuse_knock"):
        assert await alice.reject(op, room_id=room, user_id=dave.user_id) == "membership"
        assert await alice.reject(op, room_id=room, user_id=carol.user_id) == "membership"
    # Dave may ask again, and withdraw with leave.
    assert (await use_link(daemon.url, dave, link["code"]))[1]["membership"] == "knock"
    withdrawn = (await dave.request("leave", room_id=room))["event"]
    assert withdrawn["content"] == {"membership": "leave"}
    assert (await alice.request("knocks", room_id=room))["knocks"] == []


async def test_a_knocking_user_can_be_banned_and_is_then_refused(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice, dave = cast["alice"], cast["dave"]
    room = (await alice.request("create_room", closed=True))["room_id"]
    link = await make_link(daemon.url, alice, room, approval=True)
    assert (await use_link(daemon.url, dave, link["code"]))[1]["membership"] == "knock"
    await alice.request("ban", room_id=room, user_id=dave.user_id)
    assert await alice.reject("accept_knock", room_id=room, user_id=dave.user_id) == "membership"
    await refused_without_trace(daemon.url, dave, link["code"], 403, "banned")


# -- QR codes and the join page ---------------------------------------------------------------


async def test_qr_codes_encode_the_link(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice = cast["alice"]
    room = (await alice.request("create_room"))["room_id"]
    code = (await make_link(daemon.url, alice, room))["code"]
    status, content_type, png = await fetch(daemon.url, f"/v1/invites/{code}/qr.png")
    assert status == 200 and content_type == "image/png"
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    # A square of (modules + 2 * 4 quiet-zone modules) * 8 pixels; versions 1..40.
    assert width == height and width % 8 == 0 and 29 * 8 <= width <= 185 * 8

    status, content_type, svg = await fetch(daemon.url, f"/v1/invites/{code}/qr.svg")
    assert status == 200 and content_type == "image/svg+xml"
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    dark = [p for p in root.iter("{http://www.w3.org/2000/svg}path") if p.get("stroke") == "#000"]
    assert len(dark) == 1 and dark[0].get("d", "").startswith("M")
    assert root.find("{http://www.w3.org/2000/svg}title").text == f"{daemon.url}/join/{code}"  # type: ignore[union-attr]

    for bad in (f"/v1/invites/{code}/qr.gif", "/v1/invites/bad/qr.png"):
        status, _, body = await fetch(daemon.url, bad)
        assert status == 404 and json.loads(body)["error"]["code"] == "not_found"


async def test_public_url_setting_is_the_base_of_links(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    daemon = daemon_factory('[chats]\npublic_url = "https://sferum.example/"\n')
    alice = await Peer.login(daemon.url, daemon.add_user().token)
    try:
        room = (await alice.request("create_room"))["room_id"]
        link = await make_link(daemon.url, alice, room)
        assert link["url"] == f"https://sferum.example/join/{link['code']}"
        _, _, svg = await fetch(daemon.url, f"/v1/invites/{link['code']}/qr.svg")
        assert f"https://sferum.example/join/{link['code']}".encode() in svg
    finally:
        await alice.close()


async def test_the_join_page_shows_the_preview_escaped(daemon, cast) -> None:  # type: ignore[no-untyped-def]
    alice = cast["alice"]
    room = (await alice.request("create_room", name="<script>x</script>"))["room_id"]
    code = (await make_link(daemon.url, alice, room))["code"]
    status, content_type, page = await fetch(daemon.url, f"/join/{code}")
    assert status == 200 and content_type.startswith("text/html")
    text = page.decode()
    assert "&lt;script&gt;x&lt;/script&gt;" in text and "<script>" not in text
    assert "Участников: 1." in text
    status, _, page = await fetch(daemon.url, f"/join/{new_code()}")
    assert status == 404 and "недействительно" in page.decode()


# -- the command line -------------------------------------------------------------------------


async def test_cli_links_qr_join_and_knocks(daemon, cast, tmp_path) -> None:  # type: ignore[no-untyped-def]
    alice, carol = cast["alice"], cast["carol"]
    url = daemon.url
    assert alice.token and carol.token
    [created] = await lines(url, alice.token, "rooms", "create", "Хор", "--closed")
    room = created["room_id"]
    [link] = await lines(
        url, alice.token, "invite-link", "create", room, "--expires", "7d", "--approval"
    )
    assert link["expires_ts"] - link["created_ts"] == 7 * 86_400_000 and link["approval"]
    [listed] = await lines(url, alice.token, "invite-link", "list", room)
    assert listed["link_id"] == link["link_id"]

    png = tmp_path / "link.png"
    [saved] = await lines(url, "unused", "qr", link["url"], "-o", str(png))
    assert saved["format"] == "png" and png.read_bytes()[:4] == b"\x89PNG"
    svg = tmp_path / "link.svg"
    await lines(url, "unused", "qr", link["code"], "-o", str(svg))
    assert ET.parse(svg).getroot().tag.endswith("svg")

    [preview] = await lines(url, "unused", "join-link", link["url"], "--preview")
    assert preview == {"name": "Хор", "members": 1, "approval": True}
    [joined] = await lines(url, carol.token, "join-link", link["url"])
    assert joined["membership"] == "knock"
    [knock] = await lines(url, alice.token, "knocks", room)
    assert knock["user_id"] == carol.user_id
    [accepted] = await lines(url, alice.token, "knock", "accept", room, carol.user_id)
    assert accepted["content"] == {"membership": "join"}

    [revoked] = await lines(url, alice.token, "invite-link", "revoke", room, link["link_id"])
    assert revoked["state"] == "revoked"
    rc, _, err = await sferum(url, carol.token, "join-link", link["url"])
    assert rc == 1 and json.loads(err)["error"]["code"] == "invite_revoked"
    rc, _, err = await sferum(url, alice.token, "invite-link", "create", room, "--expires", "soon")
    assert rc == 2 and "not a duration" in err
    [closed] = await lines(url, alice.token, "closed", room, "off")
    assert closed["content"]["invite"] == 0


# -- validators of outside input (properties) ----------------------------------------------------

SETTINGS = ChatSettings()
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=5,
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from([*LINK_OPTIONS, "uses", ""]) | st.text(max_size=8), JSONISH, max_size=4
    )
)
def test_link_options_accept_exactly_the_documented_shapes(body: dict[str, Any]) -> None:
    try:
        options = check_link_options(body, SETTINGS)
    except AuthError as err:
        assert (err.status, err.code) == (400, "invalid_field")
        assert err.extra["field"] in (*LINK_OPTIONS, *body)
        return
    assert isinstance(options, LinkOptions)
    assert set(body) <= set(LINK_OPTIONS)
    for key, top in (
        ("expires_in_s", SETTINGS.max_link_ttl_s),
        ("max_uses", SETTINGS.max_link_uses),
    ):
        value = getattr(options, key)
        assert value == body.get(key)
        assert value is None or (type(value) is int and 1 <= value <= top)
    assert options.approval is bool(body.get("approval"))
    assert not (options.approval and options.max_uses is not None)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=1, max_value=SETTINGS.max_link_ttl_s) | st.none(),
    st.integers(min_value=1, max_value=SETTINGS.max_link_uses) | st.none(),
)
def test_every_option_in_range_is_accepted(expires: int | None, uses: int | None) -> None:
    body = {"expires_in_s": expires, "max_uses": uses}
    assert check_link_options(body, SETTINGS) == LinkOptions(expires, uses, False)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=80) | st.from_regex(r"[A-Za-z0-9_-]{10,70}", fullmatch=True))
def test_code_shape(code: str) -> None:
    expected = re.fullmatch(r"[A-Za-z0-9_-]{16,64}", code) is not None and "\n" not in code
    assert valid_code(code) is expected


def test_new_codes_are_valid_and_distinct() -> None:
    codes = {new_code() for _ in range(1000)}
    assert len(codes) == 1000 and all(valid_code(c) and len(c) == 24 for c in codes)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=999), min_size=5, max_size=5))
def test_durations_in_units_add_up(amounts: list[int]) -> None:
    text = "".join(f"{n}{unit}" for n, unit in zip(amounts, "wdhms", strict=True) if n)
    total = sum(n * size for n, size in zip(amounts, UNITS.values(), strict=True))
    if total == 0:
        return
    assert parse_duration(text) == total
    assert parse_duration(text.upper()) == total
    assert parse_duration(str(total)) == total


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=20) | st.from_regex(r"[0-9wdhms ]{0,12}", fullmatch=True))
def test_any_text_is_a_duration_or_a_clear_error(text: str) -> None:
    try:
        seconds = parse_duration(text)
    except ValueError as err:
        assert "duration" in str(err)
        return
    assert isinstance(seconds, int) and seconds >= 1


def test_durations_refused() -> None:
    for text in ("", "0", "0s", "7x", "1h1h", "1s1h", "-5", "1.5h", "d", " ", "1e3"):
        with pytest.raises(ValueError):
            parse_duration(text)
