"""Checks of a participant's SDP before any of it reaches aiortc: every input is hostile.

``check_offer`` reads a publisher's offer (``call_join``, ``call_publish``) with aiortc's SDP
parser and refuses, with a precise ``MediaRefused``, anything the SFU would not handle well:
unparsable text, no or too many m-lines, data channels, missing ICE credentials or DTLS
fingerprints, no RTCP multiplexing, media not all in one BUNDLE group, host names as ICE
candidates (only IP literals and mDNS ``.local`` names), and an m-line without the codec the
SFU forwards (Opus for audio, VP8 for video: ``unsupported_codec``). It returns what each
sending m-line carries, from ``tracks`` or the defaults (an audio m-line is the microphone,
the first video m-line the camera, a second one the screen).

A stopped m-line (port 0: a browser's stopped transceiver) sends nothing and is exempt from
the transport checks; ``reject_stopped`` marks it rejected in the SFU's answer.

``check_answer`` reads a subscriber's answer to the SFU's offer the same way.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass

from aiortc import sdp

from media.errors import MediaRefused

AUDIO_CODEC = "audio/opus"
VIDEO_CODEC = "video/VP8"
KINDS = ("audio", "video", "screen")
MID = re.compile(r"[A-Za-z0-9_.-]{1,32}")
SENDING = ("sendonly", "sendrecv")
MAX_CANDIDATES = 64  # per m-line


@dataclass(frozen=True, slots=True)
class Track:
    """A sending m-line of a publisher's offer and what it carries."""

    mid: str
    kind: str  # audio | video | screen
    media: str  # the m-line's kind: audio | video


def _bad(message: str) -> MediaRefused:
    return MediaRefused("bad_sdp", message)


def parse(text: str, what: str) -> sdp.SessionDescription:
    try:
        return sdp.SessionDescription.parse(text)
    except Exception as exc:  # the parser raises whatever the text provokes
        raise _bad(f"the {what} is not a valid SDP description ({type(exc).__name__})") from None


def _check_common(desc: sdp.SessionDescription, max_mlines: int, what: str) -> None:
    if not desc.media:
        raise _bad(f"the {what} has no m-line")
    if len(desc.media) > max_mlines:
        raise MediaRefused("too_large", f"the {what} has more than {max_mlines} m-lines")
    bundle = next((g for g in desc.group if g.semantic == "BUNDLE"), None)
    bundled = set(bundle.items) if bundle is not None else set()
    mids: set[str] = set()
    for i, m in enumerate(desc.media):
        where = f"m-line {i}"
        if m.kind not in ("audio", "video"):
            raise _bad(f"{where} is {m.kind!r}: only audio and video are accepted")
        mid = m.rtp.muxId
        if not isinstance(mid, str) or not MID.fullmatch(mid):
            raise _bad(f"{where} has no valid a=mid (1-32 letters, digits, _ . -)")
        if mid in mids:
            raise _bad(f"{where} repeats mid {mid!r}")
        mids.add(mid)
        if m.port == 0:
            continue  # a stopped m-line (a browser's stopped transceiver): it sends nothing
        if mid not in bundled:
            raise _bad(f"{where} (mid {mid!r}) is not in the a=group:BUNDLE line")
        if m.ice is None or not m.ice.usernameFragment or not m.ice.password:
            raise _bad(f"{where} has no ICE username fragment or password")
        if m.dtls is None or not m.dtls.fingerprints:
            raise _bad(f"{where} has no DTLS fingerprint")
        if not m.rtcp_mux:
            raise _bad(f"{where} does not multiplex RTCP (a=rtcp-mux)")
        if len(m.ice_candidates) > MAX_CANDIDATES:
            raise MediaRefused("too_large", f"{where} has more than {MAX_CANDIDATES} candidates")
        for c in m.ice_candidates:
            _check_address(c.ip, where)
    if bundle is not None:
        live = {m.rtp.muxId for m in desc.media if m.port != 0}
        if not bundle.items or bundle.items[0] not in live or not set(bundle.items) <= mids:
            raise _bad(f"the {what}'s a=group:BUNDLE must name its m-lines, a live one first")


def _check_address(host: object, where: str) -> None:
    if not isinstance(host, str):
        raise _bad(f"{where} has an ICE candidate without an address")
    if host.endswith(".local") and 6 < len(host) <= 80:
        return  # an mDNS name (browsers hiding local addresses)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise _bad(f"{where} has an ICE candidate naming a host ({host[:80]!r})") from None


def _has_codec(m: sdp.MediaDescription) -> bool:
    wanted = AUDIO_CODEC if m.kind == "audio" else VIDEO_CODEC
    for codec in m.rtp.codecs:
        if codec.mimeType.lower() != wanted.lower():
            continue
        if m.kind == "audio" and (codec.clockRate != 48000 or codec.channels != 2):
            continue
        if m.kind == "video" and codec.clockRate != 90000:
            continue
        return True
    return False


def check_offer(
    text: str, tracks: Mapping[str, str] | None, max_mlines: int, max_producers: int
) -> list[Track]:
    """The publisher's sending m-lines and what each carries, or ``MediaRefused``."""
    desc = parse(text, "offer")
    _check_common(desc, max_mlines, "offer")
    by_mid = {m.rtp.muxId: m for m in desc.media}
    given = dict(tracks or {})
    for mid, kind in given.items():
        m = by_mid.get(mid)
        if kind not in KINDS:
            raise MediaRefused("invalid_field", f"tracks.{mid} must be audio, video or screen")
        if m is None:
            raise MediaRefused("invalid_field", f"tracks names mid {mid!r}: no such m-line")
        if (m.kind == "audio") != (kind == "audio"):
            raise MediaRefused(
                "invalid_field", f"tracks.{mid} is {kind} but m-line {mid!r} is {m.kind}"
            )
    out: list[Track] = []
    videos = 0
    for m in desc.media:
        if m.direction not in SENDING or m.port == 0:
            continue
        mid = m.rtp.muxId
        if not _has_codec(m):
            codec = "Opus (48000/2)" if m.kind == "audio" else "VP8"
            raise MediaRefused(
                "unsupported_codec", f"m-line {mid!r} offers no {codec}, the codec forwarded"
            )
        default = "audio" if m.kind == "audio" else "video" if videos == 0 else "screen"
        if m.kind == "video":
            videos += 1
        out.append(Track(mid, given.get(mid, default), m.kind))
    seen: set[str] = set()
    for t in out:
        if t.kind in seen:
            raise _bad(f"two m-lines send {t.kind}: one microphone, camera and screen each")
        seen.add(t.kind)
    if len(out) > max_producers:
        raise MediaRefused("too_large", f"more than {max_producers} sending m-lines")
    return out


def reject_stopped(answer: str, mids: set[str]) -> str:
    """The answer with the offer's stopped m-lines rejected (port 0) and out of the BUNDLE
    group, as RFC 8843 wants (aiortc answers them like live ones)."""
    if not mids:
        return answer
    out: list[str] = []
    section_start = -1
    for line in answer.split("\r\n"):
        if line.startswith("a=group:BUNDLE"):
            items = [x for x in line.split(" ")[1:] if x not in mids]
            line = " ".join(["a=group:BUNDLE", *items])
        elif line.startswith("m="):
            section_start = len(out)
        elif line.startswith("a=mid:") and line[6:] in mids and section_start >= 0:
            kind, _port, rest = out[section_start].split(" ", 2)
            out[section_start] = f"{kind} 0 {rest}"
        out.append(line)
    return "\r\n".join(out)


def check_answer(text: str, offer_mids: list[str], max_mlines: int) -> None:
    """A subscriber's answer matches the SFU's offer m-line by m-line."""
    desc = parse(text, "answer")
    _check_common(desc, max_mlines, "answer")
    mids = [m.rtp.muxId for m in desc.media]
    if mids != offer_mids:
        raise _bad("the answer's m-lines do not match the offer's")
    for m in desc.media:
        if m.dtls is not None and m.dtls.role not in ("client", "server"):
            raise _bad(f"m-line {m.rtp.muxId!r}: a=setup must be active or passive")
