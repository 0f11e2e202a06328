"""The SFU's synchronous sender (media.aiortc_hooks.Sender) on its own: what it sends is SRTP
its peer decrypts, and a peer that stops reading makes it drop (counted by the slot), never
queue without bound. Loopback UDP never pushes back (the kernel drops at the full receiver
instead), so the push-back is a Unix datagram socket, which does: the sender's code path is
the same."""

from __future__ import annotations

import os
import socket
import types
from pathlib import Path
from typing import Any

from aiortc.rtcdtlstransport import State
from pylibsrtp import Policy, Session

from media import rtp
from media.aiortc_hooks import Sender
from media.consumer import Consumer
from tests.test_sfu_units import producer

KEY = os.urandom(44)  # AES-256-GCM: key + salt


def policy(direction: int) -> Policy:
    return Policy(key=KEY, ssrc_type=direction, srtp_profile=Policy.SRTP_PROFILE_AEAD_AES_256_GCM)


def transport(sock: socket.socket, peer: Any) -> Any:
    """What the sender reads of aiortc's DTLS transport and aioice's nominated pair."""
    udp = types.SimpleNamespace(get_extra_info=lambda name: sock)
    pair = types.SimpleNamespace(protocol=types.SimpleNamespace(transport=udp), remote_addr=peer)
    connection = types.SimpleNamespace(_nominated={1: pair})
    return types.SimpleNamespace(
        _tx_srtp=Session(policy(Policy.SSRC_ANY_OUTBOUND)),
        _state=State.CONNECTED,
        transport=types.SimpleNamespace(_connection=connection),
    )


def packet(seq: int, size: int = 1000) -> bytes:
    return rtp.serialize(
        payload_type=111, sequence=seq, timestamp=seq * 960, ssrc=5, payload=bytes(size)
    )


def test_what_it_sends_the_peer_decrypts() -> None:
    ours = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(5)
    sender = Sender(transport(ours, peer.getsockname()), max_buffer=1 << 16)
    inbound = Session(policy(Policy.SSRC_ANY_INBOUND))
    try:
        for seq in range(3):
            assert sender.send(packet(seq, 100 + seq)) == 1
            assert inbound.unprotect(peer.recv(2048)) == packet(seq, 100 + seq)
        assert sender.send(bytes(1501)) == -1  # over SRTP_ROOM: never sent
    finally:
        sender.close()
        ours.close()
        peer.close()


def test_a_peer_that_stops_reading_makes_it_drop_not_queue(tmp_path: Path) -> None:
    path = str(tmp_path / "peer")
    peer = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    peer.bind(path)  # and never reads
    ours = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sender = Sender(transport(ours, path), max_buffer=1 << 16)
    slot = Consumer("0", "audio", 0xABC, sender, lambda *a: None)
    slot.configure(111, {})
    try:
        results = [sender.send(packet(seq)) for seq in range(2000)]
        # Sent until the peer's queue was full, then refused at once, every time after.
        first_drop = results.index(-1)
        assert first_drop > 0 and set(results[:first_drop]) == {1}
        assert set(results[first_drop:]) == {-1}
        # A slot fed by a producer counts what its sender dropped.
        source = producer()
        slot.attach(source, 0)
        source.receive(packet(1), 0)
        assert (slot.dropped, slot.packets) == (1, 0)
    finally:
        sender.close()
        ours.close()
        peer.close()
