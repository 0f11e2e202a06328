"""Everything the SFU needs from aiortc and aioice that they do not offer publicly.

aiortc has no API for forwarding encoded RTP (see aiortc issues 55, 449 and 550: its
maintainer's advice is to patch the transport's handlers, which is what this module does).
This is the only module of the project that touches private names of aiortc, aioice or
pylibsrtp; it refuses to load with any other aiortc or pylibsrtp version than the ones it was
written and tested against, and the real-browser tests guard what it relies on:

- ``RTCDtlsTransport._handle_rtp_data`` / ``_handle_rtcp_data``: replaced on the instance (the
  bundled transport of a peer connection) so decrypted RTP and RTCP come to the SFU; RTCP is
  also handed on to aiortc (its senders keep their receiver-report statistics).
- ``RTCDtlsTransport._rx_srtp``/``_tx_srtp`` (its libsrtp sessions, through pylibsrtp's
  private ``Session._srtp`` and cffi binding: pylibsrtp is pinned too): SRTP decrypted in a
  buffer of ours as it is read; and with aioice's nominated candidate pair, a synchronous
  send (protect, then ``sendto`` on the pair's datagram socket) so one incoming packet is
  forwarded to all its subscribers without a coroutine per copy, with the socket's send
  buffer bounded.
- ``RTCRtpSender._run_rtcp``: replaced on the SFU's slot senders by a loop that sends nothing;
  their receive transport sends the slots' sender reports (the publisher's NTP time and the
  rewritten RTP time, so lip-sync holds) in one compound packet instead.
- ``RTCRtpTransceiver._codecs`` / ``_headerExtensions``: the negotiated payload types and
  header extension ids.
- ``aioice.ice.get_host_addresses``: skips 127.0.0.1; ``allow_loopback`` adds it back (tests
  and loopback-only benchmarks).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import socket
import struct
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aioice.ice
import aiortc
import aiortc.clock
import pylibsrtp
from aiortc import RTCPeerConnection, RTCRtpSender, RTCRtpTransceiver
from aiortc.rtcdtlstransport import RTCDtlsTransport, State

# pylibsrtp's cffi binding: the sender protects in place with it (and bench.srtp_ceiling,
# which must measure the very same path).
from pylibsrtp._binding import ffi as srtp_ffi  # type: ignore[import-not-found]
from pylibsrtp._binding import lib as srtp_lib

AIORTC_VERSION = "1.16.0"
if aiortc.__version__ != AIORTC_VERSION:  # pragma: no cover - a wrong install
    raise ImportError(
        f"media.aiortc_hooks patches private methods of aiortc {AIORTC_VERSION}; "
        f"aiortc {aiortc.__version__} is installed (pin aiortc=={AIORTC_VERSION})"
    )
PYLIBSRTP_VERSION = "1.0.0"
if pylibsrtp.__version__ != PYLIBSRTP_VERSION:  # pragma: no cover - a wrong install
    raise ImportError(
        f"media.aiortc_hooks calls libsrtp through pylibsrtp {PYLIBSRTP_VERSION}'s private "
        f"binding; pylibsrtp {pylibsrtp.__version__} is installed"
    )

MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"

OnRtp = Callable[[bytes, int], None]
OnRtcp = Callable[[bytes], None]

_original_host_addresses = aioice.ice.get_host_addresses
_loopback = False


def allow_loopback(on: bool) -> None:
    """Let aioice offer 127.0.0.1 as a host candidate (it skips it by default). Affects the
    whole process: the daemon's ``[media] loopback_candidates`` or a test client."""
    global _loopback
    _loopback = on
    aioice.ice.get_host_addresses = _host_addresses


def _host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    addresses: list[str] = _original_host_addresses(use_ipv4, use_ipv6)
    if _loopback and use_ipv4 and "127.0.0.1" not in addresses:
        addresses.insert(0, "127.0.0.1")
    return addresses


@dataclass(frozen=True, slots=True)
class Negotiated:
    """What one transceiver agreed on with the remote side."""

    mid: str
    kind: str  # audio | video (the m-line's kind)
    mime_type: str  # the first common codec
    clock_rate: int
    payload_type: int
    extensions: dict[str, int]  # uri -> id


def negotiated(transceiver: RTCRtpTransceiver) -> Negotiated | None:
    codecs = [c for c in transceiver._codecs if not c.mimeType.lower().endswith("/rtx")]
    if transceiver.mid is None or not codecs or codecs[0].payloadType is None:
        return None
    codec = codecs[0]
    assert codec.payloadType is not None
    return Negotiated(
        mid=transceiver.mid,
        kind=transceiver.kind,
        mime_type=codec.mimeType,
        clock_rate=codec.clockRate,
        payload_type=codec.payloadType,
        extensions={e.uri: e.id for e in transceiver._headerExtensions},
    )


def bundle_transport(pc: RTCPeerConnection) -> RTCDtlsTransport | None:
    """The DTLS transport every m-line of a bundled connection uses."""
    for transceiver in pc.getTransceivers():
        transport: RTCDtlsTransport = transceiver.receiver.transport
        return transport
    return None


def tap(
    transport: RTCDtlsTransport,
    on_rtp: OnRtp,
    on_rtcp: OnRtcp,
    now_ms: Callable[[], int] = aiortc.clock.current_ms,
) -> None:
    """Decrypted RTP of ``transport`` goes to ``on_rtp`` with its arrival time (``now_ms``:
    ms since the NTP epoch), and no longer to aiortc's receivers: nothing is depacketised or
    decoded. RTCP goes to ``on_rtcp`` and then on to aiortc.

    SRTP is taken out of aioice's ``data_received`` (called in the socket's read callback)
    and decrypted and handed on right there: aiortc's own path is a queue and a task switch
    per packet, about a fifth of the SFU's CPU in a lesson of 31 microphones (py-spy). DTLS
    and SRTCP keep aiortc's path."""
    original_rtcp: Callable[[bytes], Awaitable[None]] = transport._handle_rtcp_data

    async def handle_rtp(data: bytes, arrival_time_ms: int) -> None:
        on_rtp(data, arrival_time_ms)  # RTP that took aiortc's path all the same

    async def handle_rtcp(data: bytes) -> None:
        on_rtcp(data)
        await original_rtcp(data)

    setattr(transport, "_handle_rtp_data", handle_rtp)  # noqa: B010
    setattr(transport, "_handle_rtcp_data", handle_rtcp)  # noqa: B010

    connection: Any = transport.transport._connection
    queued: Callable[[bytes, int], None] = connection.data_received

    unprotect = Unprotector().unprotect

    def data_received(data: bytes, component: int) -> None:
        size = len(data)
        # RFC 7983's first byte 128-191 is RTP or RTCP; RFC 5761's 192-223 second byte, RTCP.
        media = size > 0 and 127 < data[0] < 192
        if not size or (media and size > SRTP_ROOM):
            # Anyone can aim datagrams at this port: an empty one fails aiortc's first-byte
            # read, and an (S)RTP(C) one beyond pylibsrtp's buffer raises ValueError; either
            # ended the whole connection.
            return
        srtp = transport._rx_srtp
        if srtp is None or size < 12 or not media or 191 < data[1] < 224:
            queued(data, component)
            return
        clear = unprotect(srtp, data)
        if clear is not None:  # else forged, replayed or not for this session: dropped
            on_rtp(clear, now_ms())

    setattr(connection, "data_received", data_received)  # noqa: B010
    for protocol in connection._protocols:
        _skip_stun_parse(protocol)


def _skip_stun_parse(protocol: Any) -> None:
    """aioice tries every datagram as STUN first and takes the ValueError as "data": a
    first byte of 128-191 is RTP or RTCP (RFC 7983), never STUN (0-3), so it goes to the
    connection at once."""
    stun_first: Callable[[bytes, tuple[Any, ...]], None] = protocol.datagram_received
    component: int = protocol.local_candidate.component

    def datagram_received(data: bytes, addr: tuple[Any, ...]) -> None:
        if data and 127 < data[0] < 192:
            protocol.receiver.data_received(data, component)
        else:
            stun_first(data, addr)

    setattr(protocol, "datagram_received", datagram_received)  # noqa: B010


def is_tapped(transport: RTCDtlsTransport) -> bool:
    return "_handle_rtp_data" in vars(transport)


def srtp_context(session: pylibsrtp.Session) -> Any:
    """The libsrtp context (``srtp_t``) of a pylibsrtp session, for ``srtp_lib`` calls."""
    return session._srtp[0]


_CONNECTED = State.CONNECTED  # read per packet: a module global, not an Enum lookup
SRTP_ROOM = 1500  # the largest (S)RTP(C) packet sent: an Ethernet MTU
_SRTP_TRAILER = 64  # libsrtp's largest trailer (tag, SRTCP index, MKI) fits in this
SIOCOUTQ = 0x5411  # linux/sockios.h (TIOCOUTQ): bytes in a socket's send queue
# Looked up once: an attribute of a cffi library is a slow lookup, and these run per copy.
_protect = srtp_lib.srtp_protect
_protect_rtcp = srtp_lib.srtp_protect_rtcp
_unprotect = srtp_lib.srtp_unprotect


class InPlace:
    """A buffer of ours where libsrtp protects or unprotects one packet at a time, with the
    pylibsrtp session it last used and that session's ``srtp_t`` (looked up on a change)."""

    __slots__ = ("_buffer", "_context", "_length", "_session", "view")

    def __init__(self, size: int):
        self._buffer = srtp_ffi.new("char[]", size)
        self.view = memoryview(srtp_ffi.buffer(self._buffer))
        self._length = srtp_ffi.new("int *")
        self._session: Any = None
        self._context: Any = None

    def _apply(self, func: Callable[[Any, Any, Any], int], session: Any, size: int) -> int:
        """libsrtp's ``func`` on the first ``size`` bytes of ``view`` with ``session``'s
        context: the packet's new length, or -1 when libsrtp refused it."""
        if session is not self._session:
            self._session, self._context = session, srtp_context(session)
        length = self._length
        length[0] = size
        return -1 if func(self._context, self._buffer, length) else int(length[0])


class Sender(InPlace):
    """A synchronous, bounded way to send (S)RTP(C) on a connected DTLS transport.

    Runs once per packet per subscriber, so it skips the per-call costs of pylibsrtp's
    ``Session.protect`` and uvloop's ``sendto`` (together about a quarter of forwarding's
    CPU, py-spy --native): the packet is in a buffer of this sender (``view``: a consumer
    writes its copy there, ``send`` copies bytes in), protected there by libsrtp with the
    transport's own session, and sent from that buffer with ``socket.sendto`` on a
    duplicate of the nominated pair's socket (no uvloop address cache, no queue). A full
    kernel send buffer (``SO_SNDBUF`` set to ``max_buffer``) drops the packet: a peer or
    network that does not keep up."""

    __slots__ = ("_addr", "_nominated", "_pair", "_sock", "max_buffer", "room", "transport")

    def __init__(self, transport: RTCDtlsTransport, max_buffer: int):
        super().__init__(SRTP_ROOM + _SRTP_TRAILER)  # ``view``: a packet is written here
        self.transport = transport
        self.max_buffer = max_buffer
        # aioice keeps (and clears, never replaces) this dict for the connection's life.
        self._nominated: dict[int, Any] = transport.transport._connection._nominated
        self._pair: Any = None
        self._sock: socket.socket | None = None
        self._addr: tuple[str, int] = ("", 0)
        self.room = SRTP_ROOM

    def send(self, data: bytes, rtcp: bool = False) -> int:
        """1: sent; 0: not connected (yet or any more); -1: dropped (the socket's send
        buffer is full, or the packet is over ``SRTP_ROOM``)."""
        size = len(data)
        if size > SRTP_ROOM:
            return -1
        self.view[:size] = data
        return self.send_written(size, rtcp)

    def send_written(self, size: int, rtcp: bool = False) -> int:
        """``send`` of the packet a caller wrote into ``view`` (``size`` bytes, at most
        ``room``): protected in place, no copy (a consumer's per-packet path)."""
        transport = self.transport
        srtp = transport._tx_srtp
        if srtp is None or transport._state is not _CONNECTED:
            return 0
        pair = self._nominated.get(1)
        if pair is None:
            return 0
        if pair is not self._pair and not self._use(pair):
            return 0
        protected = self._apply(_protect_rtcp if rtcp else _protect, srtp, size)
        if protected < 0:
            return -1  # libsrtp refused (cannot happen with aiortc's policy; never sent)
        try:
            self._sock.sendto(self.view[:protected], self._addr)  # type: ignore[union-attr]
        except BlockingIOError:
            return -1
        except OSError:
            return 0  # the socket is closing
        return 1

    def _use(self, pair: Any) -> bool:
        """Send on ``pair`` (newly nominated) from now on: False while it has no socket."""
        self.close()
        if pair.protocol.transport is None:
            return False
        raw = pair.protocol.transport.get_extra_info("socket")
        sock = socket.socket(fileno=os.dup(raw.fileno()))
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.max_buffer)
        self._pair, self._sock, self._addr = pair, sock, pair.remote_addr
        return True

    def buffered(self) -> int:
        """Bytes in the kernel's send queue of the socket the media goes out on."""
        if self._sock is None:
            return 0
        try:
            raw = fcntl.ioctl(self._sock.fileno(), SIOCOUTQ, bytes(4))
        except OSError:
            return 0
        return int.from_bytes(raw, sys.byteorder, signed=True)

    def close(self) -> None:
        """Closes this sender's duplicate of the socket (aioice closes its own)."""
        if self._sock is not None:
            self._sock.close()
            self._sock, self._pair = None, None


class Unprotector(InPlace):
    """Decrypts SRTP with a transport's libsrtp session in a buffer of its own (per packet:
    pylibsrtp's ``Session.unprotect`` allocates and checks on every call)."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(SRTP_ROOM)

    def unprotect(self, session: pylibsrtp.Session, data: bytes) -> bytes | None:
        """The clear packet, or None: refused by libsrtp (its tag, its replay window) or
        over ``SRTP_ROOM``."""
        size = len(data)
        if size > SRTP_ROOM:
            return None
        self.view[:size] = data
        clear = self._apply(_unprotect, session, size)
        return None if clear < 0 else bytes(self.view[:clear])


def quiet_rtcp(sender: RTCRtpSender) -> None:
    """Replaces ``sender``'s own RTCP loop (a task sending a sender report and SDES about
    once a second) with one that sends nothing: the SFU's receive transport sends one
    compound report for all its slots instead. A task and a packet per slot was about 0.13
    of a core in an idle 31-person lesson (bench.sfu). Must run before negotiation starts
    the sender; aiortc's ``stop()`` still finds its started/exited events set."""
    started: asyncio.Event = getattr(sender, "_RTCRtpSender__rtcp_started")  # noqa: B009
    exited: asyncio.Event = getattr(sender, "_RTCRtpSender__rtcp_exited")  # noqa: B009

    async def run_rtcp() -> None:
        started.set()
        try:
            await asyncio.Event().wait()  # until stop() cancels it
        except asyncio.CancelledError:
            pass
        finally:
            exited.set()

    setattr(sender, "_run_rtcp", run_rtcp)  # noqa: B010


def sender_ssrc(sender: RTCRtpSender) -> int:
    ssrc: int = sender._ssrc
    return ssrc


def observe(transport: RTCDtlsTransport, on_rtp: OnRtp) -> None:
    """``on_rtp`` sees each decrypted RTP packet of ``transport`` before aiortc handles it
    as usual (a client counting what it receives, per slot)."""
    original: Callable[[bytes, int], Awaitable[None]] = transport._handle_rtp_data

    async def handle_rtp(data: bytes, arrival_time_ms: int) -> None:
        on_rtp(data, arrival_time_ms)
        await original(data, arrival_time_ms)

    setattr(transport, "_handle_rtp_data", handle_rtp)  # noqa: B010


def pause_reading(transport: RTCDtlsTransport) -> bool:
    """Stop reading the connection's UDP socket (a peer that never reads, in tests)."""
    pair = transport.transport._connection._nominated.get(1)
    if pair is None or pair.protocol.transport is None:
        return False
    sock: Any = pair.protocol.transport
    sock.pause_reading()
    return True


def remote_address(transport: RTCDtlsTransport) -> tuple[str, int] | None:
    """The far end of the connection's nominated candidate pair (where its media goes)."""
    pair = transport.transport._connection._nominated.get(1)
    return None if pair is None else tuple(pair.remote_addr)  # type: ignore[return-value]


def decoded_packets(pc: RTCPeerConnection) -> int:
    """RTP packets aiortc's own receive path (depacketiser, jitter buffer, decoder) took on
    this connection: 0 on a tapped connection, the proof that the SFU decodes nothing."""
    total = 0
    for transceiver in pc.getTransceivers():
        streams: dict[int, Any] = getattr(
            transceiver.receiver, "_RTCRtpReceiver__remote_streams", {}
        )
        total += sum(s.packets_received for s in streams.values())
    return total


def loopback_only() -> None:
    """This process offers 127.0.0.1 as its only ICE host candidate, so every pair it can
    nominate stays on the loopback interface (the SFU benchmark's client)."""

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return ["127.0.0.1"] if use_ipv4 else []

    aioice.ice.get_host_addresses = host_addresses


def count_srtp(transport: RTCDtlsTransport, keep: Callable[[bytes], bool]) -> None:
    """Each SRTP packet (not SRTCP) arriving on ``transport`` goes to ``keep`` first, still
    encrypted (its RTP header is in clear); only those it keeps are decrypted and handled.
    A benchmark subscriber counts packets this way without aiortc's per-packet receive
    cost; DTLS and SRTCP go on as usual. Install it after ``tap`` (which then only gets
    what ``keep`` kept)."""
    connection: Any = transport.transport._connection
    original: Callable[[bytes, int], None] = connection.data_received

    def data_received(data: bytes, component: int) -> None:
        srtp = len(data) > 12 and 127 < data[0] < 192 and not 191 < data[1] < 224
        if srtp and not keep(data):
            return
        original(data, component)

    setattr(connection, "data_received", data_received)  # noqa: B010


SIOCGSTAMPNS = 0x8907  # linux/sockios.h: the receive time of the last datagram read
_TIMESPEC = struct.Struct("@qq")


def arrival_ns(transport: RTCDtlsTransport) -> tuple[int, bool]:
    """When the datagram just read on ``transport`` reached its socket, in ``time.time_ns``
    terms, and whether the kernel said so (SIOCGSTAMPNS). Called from ``count_srtp``'s
    ``keep`` (synchronously in the read callback), it excludes the time the datagram waited
    in the socket for this process's event loop. The first call on a socket turns the
    kernel's stamping on and, like any failure, falls back to now (False)."""
    pair = transport.transport._connection._nominated.get(1)
    sock = None if pair is None or pair.protocol.transport is None else pair.protocol.transport
    if sock is not None:
        try:
            raw = fcntl.ioctl(sock.get_extra_info("socket").fileno(), SIOCGSTAMPNS, bytes(16))
        except OSError:
            pass
        else:
            sec, nsec = _TIMESPEC.unpack(raw)
            return sec * 1_000_000_000 + nsec, True
    return time.time_ns(), False
