"""Hostile and broken media peers through the daemon (PROTOCOL.md "Media", "Limits and
settings"): refused with a precise code, or contained with bounded memory while the others
keep flowing."""

from __future__ import annotations

import asyncio
import random
import socket
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clients.sdk import ClientError
from tests.sfu_world import assert_clean, media_stats, producers, until, world

LIMITS = """
connect_timeout_s = 2.0
max_packets_per_s = 300
history_packets = 100
max_send_buffer_bytes = 65536
"""


async def refused(code: str, aw: Any) -> None:
    with pytest.raises(ClientError) as info:
        await aw
    assert info.value.code == code, info.value.message


async def test_bad_offers_and_answers_are_refused_precisely(daemon_factory: Any) -> None:
    async with world(daemon_factory, ("teacher", "pupil")) as w:
        pupil = w.clients["pupil"]
        offer = await w.people["pupil"]._offer()
        await refused("bad_sdp", pupil.call_join(w.call_id, "v=0\r\nm=audio 1 RTP/AVP 0\r\n"))
        no_vp8 = offer.replace("VP8/90000", "AV1X/90000")
        await refused("unsupported_codec", pupil.call_join(w.call_id, no_vp8))
        await refused("bad_sdp", pupil.call_join(w.call_id, offer.replace("a=group:BUNDLE", "a=x")))
        await refused("invalid_field", pupil.call_join(w.call_id, offer, {"0": "smell"}))
        await refused("invalid_field", pupil.call_join(w.call_id, offer, {"0": "video"}))
        await refused("forbidden", pupil.call_join(w.call_id, offer, {"1": "screen"}))
        # Refused joins changed nothing: the pupil is not in the call.
        state = await w.clients["teacher"].call(w.call_id)
        assert w.uid("pupil") not in {p["user_id"] for p in state["participants"]}
        # Media ops of someone not in the call, and answers to offers that are not pending.
        await refused("not_joined", pupil.call_publish(w.call_id, offer))
        teacher = w.people["teacher"]
        await teacher.join()
        await until(lambda: teacher.answered == [1])
        await refused(
            "conflict",
            w.clients["teacher"].call_media_answer(w.call_id, 1, teacher.offers[0]["sdp"]),
        )
        await refused("conflict", w.clients["teacher"].call_media_answer(w.call_id, 7, "v=0\r\n"))
    assert_clean(w.daemon)


async def test_a_peer_that_never_connects_is_freed_after_the_timeout(daemon_factory: Any) -> None:
    async with world(daemon_factory, ("teacher", "ghost"), config=LIMITS, answer_offers=False) as w:
        ghost = w.people["ghost"]
        offer = await ghost._offer()
        await ghost.send_pc.close()  # its sockets are gone: ICE and DTLS never complete
        joined = await w.clients["ghost"].call_join(w.call_id, offer, dict(ghost.tracks))
        assert joined["answer"].startswith("v=0")
        g = w.uid("ghost")
        assert media_stats(w.daemon)["calls"][w.call_id]["peers"][g]["send"]["connected"] is False
        await until(
            lambda: g not in media_stats(w.daemon)["calls"][w.call_id]["peers"],
            timeout=15,
            what="the ghost's transports to be closed",
        )
        assert media_stats(w.daemon)["failures"] >= 1
        assert not producers(w.daemon, w.call_id)
        # Still in the call (the control plane is untouched): joining again is possible.
        state = await w.clients["teacher"].call(w.call_id)
        assert g in {p["user_id"] for p in state["participants"]}
    assert_clean(w.daemon)


async def test_a_flood_and_a_subscriber_that_never_reads_leave_the_others_unaffected(
    daemon_factory: Any,
) -> None:
    async with world(daemon_factory, ("teacher", "flooder", "sleeper"), config=LIMITS) as w:
        for person in w.people.values():
            await person.join()
        teacher, flooder, sleeper = (w.people[n] for n in ("teacher", "flooder", "sleeper"))
        f, s = w.uid("flooder"), w.uid("sleeper")
        await teacher.wait_for(
            lambda: teacher.decoded(f, "video") > 3 and teacher.decoded(s, "video") > 3
        )
        await sleeper.wait_for(lambda: sleeper.received(f, "audio") > 5)

        assert sleeper.stop_reading()
        sent = flooder.flood("audio", 1500)  # 5 s worth of the limit, in one burst
        assert sent > 0
        video = teacher.received(f, "video")
        await teacher.wait_for(lambda: teacher.received(f, "video") > video + 10)
        got = producers(w.daemon, w.call_id)[(f, "audio")]
        assert got["dropped_flood"] > 0
        assert got["history"] <= 100
        # The flooder's real audio and the sleeper's media still reach the teacher.
        audio = teacher.received(f, "audio")
        from_sleeper = teacher.received(s, "video")
        await teacher.wait_for(
            lambda: (
                teacher.received(f, "audio") > audio + 20
                and teacher.received(s, "video") > from_sleeper + 10
            )
        )
        peers = media_stats(w.daemon)["calls"][w.call_id]["peers"]
        assert peers[s]["recv"]["buffered"] <= 65536 + 1500
    assert_clean(w.daemon)


async def test_stray_datagrams_at_the_media_ports_change_nothing(daemon_factory: Any) -> None:
    """Anyone can aim UDP at the server's media port of a connection (here the teacher's
    sending one and the pupil's receiving one): empty, oversized, truncated or forged
    datagrams and noise are dropped, and the media goes on (one empty or oversized datagram
    used to end the connection)."""
    async with world(daemon_factory, ("teacher", "pupil")) as w:
        for person in w.people.values():
            await person.join()
        teacher, pupil = w.people["teacher"], w.people["pupil"]
        t = w.uid("teacher")
        await pupil.wait_for(lambda: pupil.received(t, "audio") > 5)
        addresses = [teacher.server_address(), pupil.server_address(receiving=True)]
        stray = [
            b"",  # nothing at all
            bytes([0x80, 111]) + bytes(3000),  # RTP, bigger than any SRTP buffer
            bytes([0x80, 200]) + bytes(3000),  # RTCP, as big
            bytes([0x80, 111]) + bytes(8),  # RTP, shorter than a header
            bytes([0x80, 200, 0, 1]),  # RTCP, a header only
            bytes([0x90, 111]) + bytes(1100),  # forged RTP: its tag does not verify
        ]
        # And noise of every first byte (STUN, DTLS, RTP, RTCP and what no protocol uses).
        noise = random.Random(7)
        stray += [bytes([b]) + noise.randbytes(noise.randrange(0, 1400)) for b in range(256)]
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for data in stray * 4:
                for address in addresses:
                    assert address is not None
                    sock.sendto(data, address)
        finally:
            sock.close()
        audio, video = pupil.received(t, "audio"), pupil.received(t, "video")
        await pupil.wait_for(
            lambda: (
                pupil.received(t, "audio") > audio + 25 and pupil.received(t, "video") > video + 10
            )
        )
        peers = media_stats(w.daemon)["calls"][w.call_id]["peers"]
        assert peers[t]["send"]["connected"] is True
        assert peers[w.uid("pupil")]["recv"]["connected"] is True
    assert_clean(w.daemon)


MUTATIONS = st.lists(
    st.tuples(
        st.sampled_from(["drop", "dup", "junk"]),
        st.integers(0, 10**6),
        st.sampled_from(["a=mid:9", "a=rtpmap:97 VP9/90000", "a=group:BUNDLE 0", "m=text 9 x 0"])
        | st.text(alphabet="am=0:/ .-9\r\n", max_size=12),
    ),
    max_size=4,
)
TRACKS = st.none() | st.dictionaries(
    st.sampled_from(["0", "1", "2", "x"]),
    st.sampled_from(["audio", "video", "screen"]),
    max_size=3,
)
EXPECTED = {"bad_sdp", "unsupported_codec", "too_large", "invalid_field", "forbidden"}


async def test_random_offers_and_tracks_are_answered_or_refused_precisely(
    daemon_factory: Any,
) -> None:
    async with world(daemon_factory, ("teacher", "pupil"), config=LIMITS) as w:
        pupil = w.clients["pupil"]
        lines = (await w.people["pupil"]._offer()).split("\r\n")
        cases: list[tuple[str, dict[str, str] | None]] = []

        # Hypothesis draws the cases (in a thread of its own, away from the event loop and
        # its aiortc work); then each goes to the daemon.
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
        @given(MUTATIONS, TRACKS)
        def draw(ops: list[tuple[str, int, str]], tracks: dict[str, str] | None) -> None:
            out = list(lines)
            for kind, where, text in ops:
                i = where % len(out)
                if kind == "drop":
                    del out[i]
                elif kind == "dup":
                    out.insert(i, out[(i * 7) % len(out)])
                else:
                    out.insert(i, text)
            cases.append(("\r\n".join(out), tracks))

        await asyncio.get_running_loop().run_in_executor(None, draw)
        outcomes = [(await _try(pupil, w.call_id, offer, tracks), offer) for offer, tracks in cases]
        assert outcomes and all(code in EXPECTED | {"ok"} for code, _ in outcomes), outcomes
    assert_clean(w.daemon)


async def _try(client: Any, call_id: str, offer: str, tracks: dict[str, str] | None) -> str:
    if not offer.startswith("v=0"):
        offer = "v=0\r\n" + offer
    try:
        await client.call_join(call_id, offer, tracks)
    except ClientError as err:
        return str(err.code)
    return "ok"
