"""Refusals of the media plane, with the websocket error code they become."""

from __future__ import annotations


class MediaRefused(Exception):
    """A participant's SDP, tracks or request that the SFU refuses; nothing changed.

    ``code`` is a websocket error code (PROTOCOL.md, "Media"): ``bad_sdp``,
    ``unsupported_codec``, ``forbidden``, ``too_large``, ``invalid_field``, ``conflict``,
    ``not_joined``.
    """

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message
