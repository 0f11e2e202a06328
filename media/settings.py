"""``[media]``: the embedded SFU's switches and limits (PROTOCOL.md, "Limits and settings")."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MediaSettings:
    enabled: bool = True  # the SFU answers call_join offers; false: signalling only
    # Offer 127.0.0.1 as an ICE host candidate (aioice skips it): tests, loopback benchmarks.
    loopback_candidates: bool = False
    max_producers_per_participant: int = 3  # microphone, camera, screen
    max_mlines: int = 8  # m-lines in a participant's offer (call_join, call_publish)
    max_receive_slots: int = 100  # receive transceivers in one participant's receive transport
    max_packets_per_s: int = 1500  # per producer; the excess is dropped and counted
    history_packets: int = 600  # per producer, answers NACKs (about 6 s of 720p video)
    history_max_age_ms: int = 3000
    connect_timeout_s: float = 15.0  # ICE + DTLS; a transport that never connects is closed
    max_send_buffer_bytes: int = 256 * 1024  # unsent UDP bytes per transport; more is dropped
    keyframe_interval_ms: int = 1000  # PLI/FIR relayed to a publisher at most this often
    speaker_interval_ms: int = 250  # how often the active speaker is recomputed
    # Forward only the N loudest microphones of a room (and the active speaker) by their
    # RFC 6464 levels, as Jitsi's "route loudest only" (media/loudest.py); 0 forwards all.
    # 3 (Jitsi's default): a class of 30 with every microphone open would otherwise need
    # ~50,000 packet copies a second, more than one core forwards (python -m bench.sfu).
    loudest_audio: int = 3
    debug_stats: bool = False  # GET /debug/v1/media (loopback callers only): counters, tests
