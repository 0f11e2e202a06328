"""Permissions and breakout rooms at the media layer (PROTOCOL.md "Media"): a screen share
needs the screen capability, a force mute pauses the producer on the server, and people in
different breakout rooms never receive each other's packets."""

from __future__ import annotations

from typing import Any

import pytest

from clients.sdk import ClientError
from tests.sfu_world import assert_clean, producers, world


async def test_screen_needs_the_capability_and_force_mute_pauses_the_server_producer(
    daemon_factory: Any,
) -> None:
    async with world(daemon_factory, ("teacher", "pupil")) as w:
        teacher, pupil = w.people["teacher"], w.people["pupil"]
        await teacher.join()
        await pupil.join()
        t, p = w.uid("teacher"), w.uid("pupil")
        await teacher.wait_for(lambda: teacher.decoded(p, "video") > 3)

        # No screen capability (a student's default): refused, no producer.
        with pytest.raises(ClientError) as refused:
            await pupil.share_screen()
        assert refused.value.code == "forbidden"
        assert (p, "screen") not in producers(w.daemon, w.call_id)
        await w.clients["teacher"].call_permission(w.call_id, "screen", True, p)
        assert (await pupil.share_screen() or "").startswith("v=0")
        await teacher.wait_for(lambda: teacher.decoded(p, "screen") > 3, timeout=30)

        # Force mute: the server stops the pupil's audio; their camera keeps flowing.
        await w.clients["teacher"].call_mute(w.call_id, p, force=True)
        assert producers(w.daemon, w.call_id)[(p, "audio")]["paused"] is True
        audio, video = teacher.received(p, "audio"), teacher.received(p, "video")
        await teacher.wait_for(lambda: teacher.received(p, "video") > video + 40)
        assert teacher.received(p, "audio") <= audio + 3  # at most what was in flight
        assert producers(w.daemon, w.call_id)[(p, "audio")]["dropped_paused"] > 0

        # The microphone given back: the same producer flows again.
        await w.clients["teacher"].call_permission(w.call_id, "microphone", True, p)
        assert producers(w.daemon, w.call_id)[(p, "audio")]["paused"] is False
        await teacher.wait_for(lambda: teacher.received(p, "audio") > audio + 20)
        assert t not in {s["user_id"] for s in teacher.slots.values() if s}
    assert_clean(w.daemon)


async def test_breakout_rooms_are_media_isolated_and_main_room_comes_back_by_remap(
    daemon_factory: Any,
) -> None:
    names = ("teacher", "anna", "vera", "boris")
    async with world(daemon_factory, names, video=False) as w:
        for person in w.people.values():
            await person.join()
        ids = {n: w.uid(n) for n in names}
        anna, boris = w.people["anna"], w.people["boris"]
        for name, me in w.people.items():
            others = [ids[n] for n in names if n != name]
            await me.wait_for(
                lambda me=me, others=others: all(me.received(o, "audio") > 5 for o in others)
            )
        offers = {n: len(w.people[n].offers) for n in names}

        teacher = w.clients["teacher"]
        await teacher.breakout_plan(
            w.call_id, "hand", rooms=[[ids["anna"], ids["vera"]], [ids["boris"]]]
        )
        await teacher.breakout_start(w.call_id)
        # Anna's slots now hold Vera only; Boris's hold nobody.
        await anna.wait_for(
            lambda: {s["user_id"] for s in anna.slots.values() if s} == {ids["vera"]}
        )
        await boris.wait_for(lambda: not any(boris.slots.values()))
        from_boris = anna.received(ids["boris"], "audio")
        from_anna = boris.received(ids["anna"], "audio")
        from_vera = anna.received(ids["vera"], "audio")
        from_teacher = boris.received(ids["teacher"], "audio")
        await anna.wait_for(lambda: anna.received(ids["vera"], "audio") > from_vera + 50)
        assert anna.received(ids["boris"], "audio") <= from_boris + 3
        assert boris.received(ids["anna"], "audio") <= from_anna + 3
        # The teacher stays in the main room: nothing of theirs reaches a breakout room.
        assert boris.received(ids["teacher"], "audio") <= from_teacher + 3
        rooms = {
            room: {p["user_id"] for p in r["producers"]}
            for room, r in _routers(w).items()
            if r["producers"]
        }
        assert rooms["main"] == {ids["teacher"]}
        assert {ids["anna"], ids["vera"]} in rooms.values() and {ids["boris"]} in rooms.values()

        # Everybody back in the main room: the same slots are remapped, no new offer.
        await teacher.breakout_close(w.call_id, immediate=True)
        for name, me in w.people.items():
            others = {ids[n] for n in names if n != name}
            await me.wait_for(
                lambda me=me, others=others: (
                    {s["user_id"] for s in me.slots.values() if s} == others
                )
            )
        got = anna.received(ids["boris"], "audio")
        await anna.wait_for(lambda: anna.received(ids["boris"], "audio") > got + 20)
        assert {n: len(w.people[n].offers) for n in names} == offers
    assert_clean(w.daemon)


def _routers(w: Any) -> dict[str, Any]:
    from tests.sfu_world import media_stats

    return media_stats(w.daemon)["calls"][w.call_id]["routers"]  # type: ignore[no-any-return]
