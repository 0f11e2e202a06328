"""The SFU's reading of participants' SDP (media.offer): every offer and answer is hostile.
Whatever the text, the result is the tracks of a well-formed offer or ``MediaRefused`` with
its precise code, never another exception."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media.errors import MediaRefused
from media.offer import KINDS, Track, check_answer, check_offer, reject_stopped

OFFER = "\r\n".join(
    [
        "v=0",
        "o=- 4004879449 4004879449 IN IP4 0.0.0.0",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0 1",
        "a=msid-semantic:WMS *",
        "m=audio 42686 UDP/TLS/RTP/SAVPF 96 0",
        "c=IN IP4 127.0.0.1",
        "a=sendonly",
        "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid",
        "a=extmap:2 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
        "a=mid:0",
        "a=rtcp:9 IN IP4 0.0.0.0",
        "a=rtcp-mux",
        "a=ssrc:4098468937 cname:b800b37a",
        "a=rtpmap:96 opus/48000/2",
        "a=rtpmap:0 PCMU/8000",
        "a=candidate:f957a2332b 1 udp 2130706431 127.0.0.1 42686 typ host",
        "a=end-of-candidates",
        "a=ice-ufrag:eiqK",
        "a=ice-pwd:utAac8iCOWwTCDOgK7T8bR",
        "a=fingerprint:sha-256 79:F8:33:CE:0D:F8:F8:E0:53:4D:E9:30:12:3C:85:76:C7:9F:60:02:C8"
        ":C9:04:61:98:20:11:93:6A:F8:C6:2D",
        "a=setup:actpass",
        "m=video 42686 UDP/TLS/RTP/SAVPF 97 98 99",
        "c=IN IP4 127.0.0.1",
        "a=sendonly",
        "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid",
        "a=mid:1",
        "a=rtcp-mux",
        "a=ssrc:3518543508 cname:b800b37a",
        "a=rtpmap:97 VP8/90000",
        "a=rtcp-fb:97 nack pli",
        "a=rtpmap:98 rtx/90000",
        "a=fmtp:98 apt=97",
        "a=rtpmap:99 H264/90000",
        "a=fmtp:99 packetization-mode=1;profile-level-id=42001f",
        "a=candidate:f957a2332b 1 udp 2130706431 127.0.0.1 42686 typ host",
        "a=end-of-candidates",
        "a=ice-ufrag:eiqK",
        "a=ice-pwd:utAac8iCOWwTCDOgK7T8bR",
        "a=fingerprint:sha-256 79:F8:33:CE:0D:F8:F8:E0:53:4D:E9:30:12:3C:85:76:C7:9F:60:02:C8"
        ":C9:04:61:98:20:11:93:6A:F8:C6:2D",
        "a=setup:actpass",
        "",
    ]
)
LINES = OFFER.split("\r\n")
FINGERPRINT = next(line for line in LINES if line.startswith("a=fingerprint"))
CODES = {"bad_sdp", "unsupported_codec", "too_large", "invalid_field"}


def check(text: str, tracks: dict[str, str] | None = None) -> list[Track]:
    return check_offer(text, tracks, max_mlines=8, max_producers=3)


def code(text: str, tracks: dict[str, str] | None = None) -> str:
    with pytest.raises(MediaRefused) as info:
        check(text, tracks)
    return info.value.code


def test_a_browser_like_offer_is_a_microphone_and_a_camera() -> None:
    assert check(OFFER) == [Track("0", "audio", "audio"), Track("1", "video", "video")]
    assert check(OFFER, {"1": "screen"})[1] == Track("1", "screen", "video")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("a=rtpmap:97 VP8/90000", "a=rtpmap:97 AV1/90000"), "unsupported_codec"),
        (("a=rtpmap:96 opus/48000/2", "a=rtpmap:96 PCMA/8000"), "unsupported_codec"),
        (("a=group:BUNDLE 0 1", "a=group:BUNDLE 0"), "bad_sdp"),
        (("a=group:BUNDLE 0 1", "a=group:BUNDLE 7 0 1"), "bad_sdp"),  # names no m-line
        (("m=video 42686 UDP/TLS/RTP/SAVPF", "m=application 42686 UDP/DTLS/SCTP"), "bad_sdp"),
        (("a=ice-pwd:utAac8iCOWwTCDOgK7T8bR", "a=ice-pwd:"), "bad_sdp"),
        ((FINGERPRINT, "a=x-none:1"), "bad_sdp"),
        (("127.0.0.1 42686 typ host", "evil.example.com 42686 typ host"), "bad_sdp"),
        (("a=mid:1", "a=mid:0"), "bad_sdp"),
        (("a=rtcp-mux\r\na=ssrc:3518543508", "a=ssrc:3518543508"), "bad_sdp"),
        (("v=0", "v=0\r\nm=audio x"), "bad_sdp"),
    ],
)
def test_refusals_name_what_is_wrong(change: tuple[str, str], expected: str) -> None:
    old, new = change
    assert old in OFFER
    assert code(OFFER.replace(old, new, -1 if old == FINGERPRINT else 1)) == expected


def test_a_stopped_m_line_sends_nothing_and_is_rejected_in_the_answer() -> None:
    video = OFFER.index("m=video")
    stopped = OFFER[:video] + OFFER[video:].replace("m=video 42686", "m=video 0", 1)
    stopped = stopped.replace("a=group:BUNDLE 0 1", "a=group:BUNDLE 0").replace(
        "a=sendonly\r\na=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=mid:1",
        "a=inactive\r\na=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=mid:1",
    )
    assert check(stopped) == [Track("0", "audio", "audio")]
    answer = reject_stopped(OFFER, {"1"})
    assert "a=group:BUNDLE 0\r\n" in answer and "m=video 0 UDP/TLS/RTP/SAVPF" in answer
    assert "m=audio 42686" in answer
    assert reject_stopped(OFFER, set()) == OFFER


def test_too_many_m_lines_or_tracks_and_bad_track_maps() -> None:
    video = OFFER[OFFER.index("m=video") :]
    many = OFFER.replace("a=group:BUNDLE 0 1", "a=group:BUNDLE " + " ".join(map(str, range(10))))
    for i in range(2, 10):
        many += video.replace("a=mid:1", f"a=mid:{i}")
    assert code(many) == "too_large"
    assert code(OFFER, {"0": "video"}) == "invalid_field"  # audio m-line said to be video
    assert code(OFFER, {"7": "audio"}) == "invalid_field"  # no such m-line
    assert code(OFFER, {"1": "audio"}) == "invalid_field"
    assert code(OFFER, {"0": "audio", "1": "smell"}) == "invalid_field"


def test_answers_must_match_the_offer() -> None:
    answer = OFFER.replace("a=sendonly", "a=recvonly").replace("a=setup:actpass", "a=setup:active")
    check_answer(answer, ["0", "1"], 8)
    with pytest.raises(MediaRefused) as info:
        check_answer(answer, ["0", "1", "2"], 8)
    assert info.value.code == "bad_sdp"


def _mutate(lines: list[str], ops: list[tuple[int, int, str]]) -> str:
    out = list(lines)
    for kind, where, text in ops:
        if not out:
            break
        i = where % len(out)
        if kind == 0:
            del out[i]
        elif kind == 1:
            out.insert(i, out[(i * 7) % len(out)])
        elif kind == 2:
            out[i] = out[i][: len(text)] + text
        else:
            out.insert(i, text)
    return "\r\n".join(out)


sdp_junk = st.text(
    alphabet="v=0amoctsi:/ .-_1234567890\r\nBUNDLEIPrtpmapextsendonlyVP8", max_size=40
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 10**6), sdp_junk), max_size=6),
    st.none() | st.dictionaries(st.sampled_from(["0", "1", "2", ""]), st.sampled_from(KINDS)),
)
def test_any_mutation_of_an_offer_is_read_or_refused_precisely(
    ops: list[tuple[int, int, str]], tracks: dict[str, str] | None
) -> None:
    text = _mutate(LINES, ops)
    try:
        out = check(text, tracks)
    except MediaRefused as err:
        assert err.code in CODES and err.message
        return
    kinds = [t.kind for t in out]
    assert len(kinds) == len(set(kinds)) <= 3
    assert all(t.media in ("audio", "video") for t in out)
    assert all((t.kind == "audio") == (t.media == "audio") for t in out)


@settings(max_examples=200, deadline=None)
@given(
    st.text(max_size=300) | st.binary(max_size=300).map(lambda b: "v=0\r\n" + b.decode("latin-1"))
)
def test_any_text_is_refused_or_read(text: str) -> None:
    try:
        check(text)
        check_answer(text, ["0"], 8)
    except MediaRefused as err:
        assert err.code in CODES
