"""The SFU forwards real RTP between real aiortc participants through the daemon on
127.0.0.1: everybody receives and decodes everybody else's audio and video, and the server
decodes nothing (PROTOCOL.md "Media")."""

from __future__ import annotations

from typing import Any

from tests.helpers_durability import drop_socket
from tests.sfu_world import assert_clean, media_stats, producers, until, world


async def test_two_participants_see_and_hear_each_other(daemon_factory: Any) -> None:
    async with world(daemon_factory, ("teacher", "pupil")) as w:
        teacher, pupil = w.people["teacher"], w.people["pupil"]
        pupil.loud = False  # a quiet microphone: the teacher is the speaker
        joined = await teacher.join()
        assert joined["joined"] is True and joined["answer"].startswith("v=0")
        await pupil.join()
        t, p = w.uid("teacher"), w.uid("pupil")
        for me, other in ((teacher, p), (pupil, t)):
            await me.wait_for(
                lambda me=me, other=other: (
                    me.decoded(other, "audio") > 5 and me.decoded(other, "video") > 5
                )
            )
        # Slots name who feeds each receive transceiver.
        assert {(s["user_id"], s["kind"]) for s in pupil.slots.values() if s} == {
            (t, "audio"),
            (t, "video"),
        }
        stats = media_stats(w.daemon)["calls"][w.call_id]
        sent = producers(w.daemon, w.call_id)
        assert sent[(t, "video")]["packets"] > 0 and sent[(p, "audio")]["packets"] > 0
        assert sent[(t, "video")]["mime_type"] == "video/VP8"
        # Forwarded, not decoded: aiortc's own receive path never saw a packet.
        assert all(peer["send"]["decoded"] == 0 for peer in stats["peers"].values())
        forwarded = [c for c in stats["peers"][p]["recv"]["consumers"] if c["producer_id"]]
        assert forwarded and all(c["packets"] > 0 for c in forwarded)
        # The active speaker, from the RFC 6464 levels, pushed to the room.
        await pupil.wait_for(lambda: any(s["user_id"] == t for s in pupil.speakers))
        assert pupil.speakers[-1] == {
            "call_id": w.call_id,
            "type": "speaker",
            "user_id": t,
            "room": "main",
        }
        assert all(s["user_id"] == t for s in teacher.speakers)
    assert_clean(w.daemon)


async def test_three_participants_each_receive_the_two_others(daemon_factory: Any) -> None:
    async with world(daemon_factory, ("teacher", "anna", "boris")) as w:
        for person in w.people.values():
            await person.join()
        ids = {name: w.uid(name) for name in w.people}
        for name, me in w.people.items():
            others = [ids[n] for n in w.people if n != name]
            await me.wait_for(
                lambda me=me, others=others: all(
                    me.decoded(o, k) > 3 for o in others for k in ("audio", "video")
                ),
                timeout=30,
            )
        # The first to join got an offer before anybody published; the others grew it.
        first = w.people["teacher"]
        assert first.offers[0]["version"] == 1
        assert len([s for s in first.slots.values() if s]) == 4
    assert_clean(w.daemon)


async def test_a_participant_whose_connection_drops_is_back_in(daemon_factory: Any) -> None:
    """The server takes a device out of its calls when its websocket drops; the SDK's
    participant joins again once the client has reconnected, and media flows both ways."""
    async with world(daemon_factory, ("teacher", "pupil")) as w:
        teacher, pupil = w.people["teacher"], w.people["pupil"]
        await teacher.join()
        await pupil.join()
        t, p = w.uid("teacher"), w.uid("pupil")
        await pupil.wait_for(lambda: pupil.decoded(t, "video") > 3)
        drop_socket(w.clients["pupil"])
        await until(lambda: pupil.rejoins == 1, what="the pupil to join again")
        assert w.clients["pupil"].reconnects == 1
        state = await w.clients["teacher"].call(w.call_id)
        assert p in {x["user_id"] for x in state["participants"]}
        audio, video = pupil.received(t, "audio"), teacher.received(p, "video")
        await pupil.wait_for(lambda: pupil.received(t, "audio") > audio + 20)
        await teacher.wait_for(lambda: teacher.received(p, "video") > video + 10)
    assert_clean(w.daemon)
