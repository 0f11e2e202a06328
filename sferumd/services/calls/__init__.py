"""Online lessons and calls: the control plane, as pure sans-IO decisions.

One module per concept; none of them does I/O, reads a clock or keeps global state. Every
function takes the current time (milliseconds since the epoch) as a parameter and returns new
immutable values; a rejected request raises a ``CallError`` and leaves every value as it was.

- ``settings``: ``CallSettings``, every limit and default these modules use.
- ``errors``: ``CallError`` and its codes; ``CallStateError``, ``BreakoutStateError``.
- ``lifecycle``: scheduled -> open -> running -> ended (or cancelled), the scheduler's ``due``.
- ``participants``: the roster: invitees, admins, presence intervals, waiting room, joining.
- ``permissions``: microphone, camera, screen, chat, whiteboard; defaults, overrides, mutes.
- ``hands``: the raise-hand queue.
- ``breakout``: breakout plans and their phases, timers, moves, visits, broadcasts.
- ``whiteboard``: validated drawing ops per board, replay, the token-bucket rate limit.
- ``attendance``: join/leave intervals to the journal's present / minutes / late.
- ``naming``: "7В - История - 26.01.2024 - 12.00 - 13.00".
"""
