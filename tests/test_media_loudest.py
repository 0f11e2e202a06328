"""media.loudest: only the N loudest microphones (and the dominant speaker) are forwarded."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media import rtp
from media.aiortc_hooks import AUDIO_LEVEL_URI, MID_URI
from media.consumer import BytesOutput, Consumer
from media.loudest import DROP, FORWARD, RESUME, LoudestAudio
from media.producer import Producer
from media.router import Router
from media.sinks import ProducerInfo

SPEAKING, NOISE, SILENCE = 20, 90, 127


def feed(la: LoudestAudio, levels: dict[str, int], start_ms: int, packets: int) -> dict[str, int]:
    """Every key sends ``packets`` packets, one each 20 ms; the last decision of each."""
    last: dict[str, int] = {}
    for n in range(packets):
        for key, level in levels.items():
            last[key] = la.decide(key, level, start_ms + 20 * n)
    return last


def test_the_loudest_are_forwarded_and_the_rest_dropped() -> None:
    la = LoudestAudio(2)
    levels = {"teacher": SPEAKING, "anna": 40, **{f"p{i}": NOISE for i in range(10)}}
    last = feed(la, levels, 0, 10)
    assert la.loudest() == {"teacher", "anna"}
    assert last["teacher"] == last["anna"] == FORWARD
    assert all(last[f"p{i}"] == DROP for i in range(10))


def test_a_new_talker_resumes_and_a_quiet_one_is_dropped() -> None:
    la = LoudestAudio(1, refresh_ms=0)
    assert feed(la, {"anna": SPEAKING, "boris": NOISE}, 0, 10) == {"anna": FORWARD, "boris": DROP}
    # Boris starts speaking, Anna goes quiet: Boris is resumed once, then forwarded.
    decisions = []
    for n in range(6):
        la.decide("anna", SILENCE, 200 + 20 * n)
        decisions.append(la.decide("boris", SPEAKING, 200 + 20 * n))
    assert decisions.count(RESUME) == 1 and decisions[-1] == FORWARD
    assert la.loudest() == {"boris"}
    assert la.decide("anna", SILENCE, 400) == DROP


def test_the_dominant_speaker_is_always_forwarded() -> None:
    la = LoudestAudio(1)
    feed(la, {"anna": SPEAKING, "boris": NOISE}, 0, 5)
    assert la.decide("boris", NOISE, 100, dominant="boris") == RESUME
    assert la.decide("boris", NOISE, 120, dominant="boris") == FORWARD
    assert la.decide("boris", NOISE, 140, dominant="anna") == DROP


def test_silence_fills_only_free_places_and_a_stopped_stream_expires() -> None:
    la = LoudestAudio(3, expire_ms=150, refresh_ms=0)
    # Fewer microphones than places: everyone is heard, however quiet.
    assert feed(la, {"a": SILENCE, "b": SILENCE}, 0, 5) == {"a": FORWARD, "b": FORWARD}
    one = LoudestAudio(1, refresh_ms=0)
    feed(one, {"a": SILENCE, "c": SPEAKING}, 0, 5)
    assert one.loudest() == {"c"}
    # a and b stop sending; 200 ms later their energy has expired: only d is ranked.
    la.decide("d", 60, 300)
    assert la.loudest() == {"d"}


def test_the_ranking_is_refreshed_at_most_every_refresh_ms() -> None:
    la = LoudestAudio(1, refresh_ms=100)
    la.decide("anna", NOISE, 0)
    assert la.loudest() == {"anna"}
    # A louder talker within the refresh interval waits for the next ranking.
    assert la.decide("boris", SPEAKING, 50) == DROP
    assert la.decide("boris", SPEAKING, 100) == RESUME


def test_remove_forgets_a_key() -> None:
    la = LoudestAudio(1)
    feed(la, {"anna": SPEAKING}, 0, 3)
    la.remove("anna")
    assert la.loudest() == frozenset()
    la.remove("nobody")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"count": 0},
        {"count": 1, "expire_ms": 0},
        {"count": 1, "alpha_pct": 100},
        {"count": 1, "refresh_ms": -1},
    ],
)
def test_nonsense_settings_are_refused(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        LoudestAudio(**kwargs)


@given(
    count=st.integers(1, 5),
    packets=st.lists(
        st.tuples(st.sampled_from("abcdefgh"), st.integers(-50, 200), st.integers(0, 60)),
        max_size=300,
    ),
)
def test_never_more_than_count_forwarded_besides_the_dominant(
    count: int, packets: list[tuple[str, int, int]]
) -> None:
    la = LoudestAudio(count, refresh_ms=0)
    now = 0
    forwarding: dict[str, bool] = {}
    for key, level, step in packets:
        now += step
        decision = la.decide(key, level, now, dominant="a")
        assert decision in (DROP, FORWARD, RESUME)
        # RESUME only after a DROP of the same key, FORWARD only without one in between.
        if decision == RESUME:
            assert forwarding.get(key) is False
        elif decision == FORWARD:
            assert forwarding.get(key, True) is True
        forwarding[key] = decision != DROP
        assert len(la.loudest()) <= count
        if key != "a" and decision != DROP:
            assert key in la.loudest()


# -- wired into a Router: what reaches the consumers ---------------------------------------

LEVEL_ID, MID_ID, OPUS = 1, 2, 111


def audio_producer(user_id: str, ssrc: int) -> Producer:
    info = ProducerInfo(f"{user_id}:audio", user_id, "audio", "audio/opus", 48000, OPUS, ssrc)
    return Producer(
        info,
        "0",
        paused=False,
        history_packets=100,
        history_max_age_ms=3000,
        keyframe_interval_ms=1000,
        max_pps=1500,
        audio_level_id=LEVEL_ID,
        send_pli=lambda ssrc: None,
    )


def subscriber(producer: Producer, sent: list[bytes]) -> Consumer:
    def send(packet: bytes) -> int:
        sent.append(packet)
        return 1

    consumer = Consumer(
        "1", "audio", 0x5000 + producer.info.ssrc, BytesOutput(send), lambda *a: None
    )
    consumer.configure(OPUS, {MID_URI: MID_ID, AUDIO_LEVEL_URI: LEVEL_ID})
    consumer.attach(producer, 0)
    return consumer


def talk(producer: Producer, seq: int, level: int, now_ms: int) -> None:
    packet = rtp.serialize(
        payload_type=OPUS,
        sequence=seq,
        timestamp=seq * 960,
        ssrc=producer.info.ssrc,
        payload=b"\xf8" + bytes(20),
        extensions={LEVEL_ID: bytes((level,))},
    )
    producer.receive(packet, now_ms)


def test_the_router_forwards_the_loudest_and_resumes_without_a_sequence_gap() -> None:
    router = Router("call", "main", loudest_audio=1)
    anna, boris = audio_producer("anna", 1), audio_producer("boris", 2)
    router.add_producer(anna)
    router.add_producer(boris)
    to_anna: list[bytes] = []
    to_boris: list[bytes] = []
    subscriber(boris, to_anna)  # anna hears boris
    subscriber(anna, to_boris)  # boris hears anna
    now = 10_000
    for n in range(10):  # boris speaks, anna is quiet
        now += 20
        talk(anna, n, NOISE, now)
        talk(boris, n, SPEAKING, now)
    heard = len(to_anna)
    assert heard >= 9 and len(to_boris) <= 1
    for n in range(10, 30):  # anna speaks, boris is quiet: boris is no longer forwarded
        now += 20
        talk(anna, n, SPEAKING, now)
        talk(boris, n, SILENCE, now)
    assert len(to_anna) <= heard + 1
    before = len(to_anna)
    for n in range(30, 40):  # boris speaks again
        now += 20
        talk(anna, n, SILENCE, now)
        talk(boris, n, SPEAKING, now)
    resumed = to_anna[before:]
    assert len(resumed) >= 9
    # The 20 packets held back are no gap for the receiver: sequence numbers go on by one.
    seqs = [rtp.parse(p).sequence for p in to_anna]
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))
    # The sinks (the recorder) and the speaker detection still got every packet.
    assert boris.packets == 40 and anna.packets == 40


def test_without_loudest_audio_every_microphone_is_forwarded() -> None:
    router = Router("call", "main")
    anna = audio_producer("anna", 1)
    router.add_producer(anna)
    sent: list[bytes] = []
    subscriber(anna, sent)
    for n in range(20):
        talk(anna, n, SILENCE, 10_000 + 20 * n)
    assert len(sent) == 20
