"""sferum wire protocol v1, sans-IO: bytes in, typed frames out.

Nothing here touches sockets or an event loop; the daemon, the Python SDK and the bench
tools all share it. ``PROTOCOL.md`` beside this file is the spec.
"""

from protocol.codec import JSON, MSGPACK, SUBPROTOCOLS, Codec, codec_for
from protocol.errors import CloseCode, ErrorCode, ProtocolError
from protocol.limits import Limits

__all__ = [
    "JSON",
    "MSGPACK",
    "SUBPROTOCOLS",
    "CloseCode",
    "Codec",
    "ErrorCode",
    "Limits",
    "ProtocolError",
    "codec_for",
]
