"""The websocket ops of hand-made chats: the closed-chat switch, knocks and moderation.

They join the daemon's op table (api.ws) when api.invites registers its routes; frames and
schemas are in protocol/, the decisions in services.invites and services.moderation.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from protocol import frames as f
from sferumd.model import Device
from sferumd.services.invites import InviteService
from sferumd.services.moderation import ModerationService

Handler = Callable[[Device, Any], Awaitable[Any]]


def build(invites: InviteService, moderation: ModerationService) -> dict[str, Handler]:
    async def set_closed(d: Device, r: f.SetClosed) -> dict[str, Any]:
        return {"event": (await moderation.set_closed(d, r)).to_wire()}

    async def knocks(d: Device, r: f.Knocks) -> dict[str, Any]:
        return {"knocks": invites.knocks(d, r)}

    async def accept_knock(d: Device, r: f.AcceptKnock) -> dict[str, Any]:
        return {"event": (await invites.accept(d, r)).to_wire()}

    async def refuse_knock(d: Device, r: f.RefuseKnock) -> dict[str, Any]:
        return {"event": (await invites.refuse(d, r)).to_wire()}

    async def mute(d: Device, r: f.Mute) -> dict[str, Any]:
        return {"event": (await moderation.mute(d, r)).to_wire()}

    async def unmute(d: Device, r: f.Unmute) -> dict[str, Any]:
        return {"event": (await moderation.unmute(d, r)).to_wire()}

    async def report(d: Device, r: f.Report) -> dict[str, Any]:
        return await moderation.report(d, r)

    async def reports(d: Device, r: f.Reports) -> dict[str, Any]:
        return {"reports": await moderation.list_reports(d, r)}

    return {
        "set_closed": set_closed,
        "knocks": knocks,
        "accept_knock": accept_knock,
        "refuse_knock": refuse_knock,
        "mute": mute,
        "unmute": unmute,
        "report": report,
        "reports": reports,
    }
