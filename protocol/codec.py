"""Codecs for the two subprotocols: msgpack on binary frames, JSON on text frames."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgpack

from protocol.errors import ErrorCode, ProtocolError

MSGPACK_SUBPROTOCOL = "sferum.v1.msgpack"
JSON_SUBPROTOCOL = "sferum.v1.json"


@dataclass(frozen=True, slots=True)
class Codec:
    subprotocol: str
    binary: bool  # websocket opcode: binary (msgpack) or text (JSON)
    encode: Callable[[Any], bytes]
    _decode: Callable[[bytes], Any]

    def decode(self, data: bytes) -> Any:
        """Bytes of one frame to a Python value; any failure is a bad_frame error."""
        try:
            return self._decode(data)
        except (ValueError, TypeError, UnicodeDecodeError, msgpack.ExtraData) as exc:
            raise ProtocolError(ErrorCode.BAD_FRAME, f"cannot decode frame: {exc}") from None
        except Exception as exc:  # msgpack raises several unrelated types on garbage
            raise ProtocolError(ErrorCode.BAD_FRAME, f"cannot decode frame: {exc!r}") from None


def _refuse_ext(code: int, data: bytes) -> Any:
    # max_ext_len=0 lets an ext type with an empty payload through; this refuses those too.
    raise ValueError(f"msgpack ext type {code} is not allowed")


def _msgpack_decode(data: bytes) -> Any:
    # strict_map_key keeps maps keyed by strings; ext types are refused here, raw bytes
    # later by validation. Length caps stop a tiny frame from claiming a huge array.
    n = len(data)
    return msgpack.unpackb(
        data,
        raw=False,
        strict_map_key=True,
        max_str_len=n,
        max_bin_len=n,
        max_array_len=n,
        max_map_len=n,
        max_ext_len=0,
        ext_hook=_refuse_ext,
    )


_packer = msgpack.Packer(use_bin_type=True)


def _msgpack_encode(value: Any) -> bytes:
    return _packer.pack(value)  # type: ignore[no-any-return]


def _json_encode(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


# A \uD800-\uDFFF escape; a valid pair decodes to one character, a lone one stays a surrogate.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _json_decode(data: bytes) -> Any:
    value = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    # A lone surrogate escape decodes to a str that can never be encoded again (not for
    # SQLite, not for an echoed frame), so it stops here. Only escapes can make one.
    if _SURROGATE_ESCAPE.search(data):
        try:
            _json_encode(value)
        except UnicodeEncodeError:
            raise ValueError("a string holds a lone UTF-16 surrogate") from None
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


MSGPACK = Codec(MSGPACK_SUBPROTOCOL, True, _msgpack_encode, _msgpack_decode)
JSON = Codec(JSON_SUBPROTOCOL, False, _json_encode, _json_decode)
SUBPROTOCOLS: dict[str, Codec] = {c.subprotocol: c for c in (MSGPACK, JSON)}


def codec_for(subprotocol: str) -> Codec | None:
    return SUBPROTOCOLS.get(subprotocol)
