"""Server-to-client websocket frames as bytes (RFC 6455 section 5.2).

Server frames are never masked, so one encoded frame is the same bytes for every
recipient: the hub builds it once and writes the same object to every connection.
"""

from __future__ import annotations

import struct

OP_TEXT = 0x1
OP_BINARY = 0x2


def frame(payload: bytes, binary: bool) -> bytes:
    first = 0x80 | (OP_BINARY if binary else OP_TEXT)  # FIN + opcode
    n = len(payload)
    if n < 126:
        header = bytes((first, n))
    elif n < 1 << 16:
        header = struct.pack("!BBH", first, 126, n)
    else:
        header = struct.pack("!BBQ", first, 127, n)
    return header + payload
