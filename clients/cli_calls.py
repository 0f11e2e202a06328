"""``sferum`` commands for calls and breakout rooms (PROTOCOL.md "Calls"); every command
prints JSON lines on stdout, like the rest of the command-line client.

sferum ... call start ROOM                  (a call in a chat, or the one running there)
sferum ... call show CALL_ID                (its state)
sferum ... call join CALL_ID                (join, then print its pushes until it ends)
sferum ... call end CALL_ID | call leave CALL_ID
sferum ... call hand CALL_ID [--lower] [--user USER]
sferum ... call permission CALL_ID CAPABILITY allow|deny|reset [--user USER]
sferum ... call mute CALL_ID [--user USER] [--force]
sferum ... call admit|refuse|remove CALL_ID USER
sferum ... breakout plan CALL_ID --random N [--seed S] [--minutes M]
sferum ... breakout plan CALL_ID --room @a,@b --room @c [--name "Группа А" ...]
sferum ... breakout start|close CALL_ID | breakout move CALL_ID USER ROOM
sferum ... breakout broadcast CALL_ID TEXT
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from clients.sdk import Client, ClientError

COMMANDS = frozenset({"call", "breakout"})
ALLOWED = {"allow": True, "deny": False, "reset": None}


MEDIA_PUSHES = frozenset({"media_offer", "slots", "speaker"})


def _line(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False), flush=True)


def add_commands(sub: Any) -> None:
    call = sub.add_parser("call", help="online lessons and calls in chats")
    calls = call.add_subparsers(dest="call_command", required=True)
    start = calls.add_parser("start", help="start a call in a chat; prints its state")
    start.add_argument("room")
    for name, help_ in (
        ("show", "the call's state"),
        ("join", "join, then print the call's pushes until it ends"),
        ("leave", "leave the call"),
        ("end", "end the call for everyone (admins)"),
    ):
        calls.add_parser(name, help=help_).add_argument("call_id")
    hand = calls.add_parser("hand", help="raise your hand (or lower one with --lower)")
    hand.add_argument("call_id")
    hand.add_argument("--lower", action="store_true")
    hand.add_argument("--user", help="(admins) lower this user's hand")
    perm = calls.add_parser("permission", help="(admins) a capability for a user or everyone")
    perm.add_argument("call_id")
    perm.add_argument(
        "capability", choices=("microphone", "camera", "screen", "chat", "whiteboard")
    )
    perm.add_argument("decision", choices=tuple(ALLOWED))
    perm.add_argument("--user", help="one user; without it, everyone")
    record = calls.add_parser("record", help="(admins) record the call, or stop with --stop")
    record.add_argument("call_id")
    record.add_argument("--stop", action="store_true")
    mute = calls.add_parser("mute", help="(admins) ask a user, or everyone, to mute")
    mute.add_argument("call_id")
    mute.add_argument("--user")
    mute.add_argument("--force", action="store_true", help="revoke the microphone instead")
    for name, help_ in (
        ("admit", "(admins) let a user in from the waiting room"),
        ("refuse", "(admins) turn a user in the waiting room away"),
        ("remove", "(admins) put a user out of the call"),
    ):
        cmd = calls.add_parser(name, help=help_)
        cmd.add_argument("call_id")
        cmd.add_argument("user")

    breakout = sub.add_parser("breakout", help="breakout rooms of a call (admins)")
    rooms = breakout.add_subparsers(dest="breakout_command", required=True)
    plan = rooms.add_parser("plan", help="plan rooms at random or by hand; prints the plan")
    plan.add_argument("call_id")
    plan.add_argument("--random", type=int, metavar="N", help="N rooms, students at random")
    plan.add_argument("--seed", type=int)
    plan.add_argument(
        "--room", action="append", default=[], metavar="USERS", help="one room: @a,@b"
    )
    plan.add_argument("--name", action="append", default=[], help="room names, in order")
    plan.add_argument("--minutes", type=int, help="close the rooms after this long")
    for name in ("start", "close"):
        rooms.add_parser(name, help=f"{name} the rooms").add_argument("call_id")
    move = rooms.add_parser("move", help="move a user to a room (or main)")
    move.add_argument("call_id")
    move.add_argument("user")
    move.add_argument("room")
    say = rooms.add_parser("broadcast", help="a message to every room")
    say.add_argument("call_id")
    say.add_argument("text")


async def run(client: Client, args: argparse.Namespace) -> int:
    if args.command == "breakout":
        await _breakout(client, args)
        return 0
    cmd = args.call_command
    if cmd == "start":
        _line(await client.call_start(args.room))
    elif cmd == "show":
        _line(await client.call(args.call_id))
    elif cmd == "join":
        return await _watch(client, args.call_id)
    elif cmd == "leave":
        await client.call_leave(args.call_id)
    elif cmd == "end":
        await client.call_end(args.call_id)
    elif cmd == "record":
        await client.call_record(args.call_id, not args.stop)
    elif cmd == "hand" and args.lower:
        _line({"hands": await client.lower_hand(args.call_id, args.user)})
    elif cmd == "hand":
        _line({"hands": await client.raise_hand(args.call_id)})
    elif cmd == "permission":
        allowed = ALLOWED[args.decision]
        _line(await client.call_permission(args.call_id, args.capability, allowed, args.user))
    elif cmd == "mute":
        _line({"asked": await client.call_mute(args.call_id, args.user, force=args.force)})
    elif cmd == "admit":
        await client.call_admit(args.call_id, args.user)
    elif cmd == "refuse":
        await client.call_refuse(args.call_id, args.user)
    elif cmd == "remove":
        await client.call_remove(args.call_id, args.user)
    return 0


async def _watch(client: Client, call_id: str) -> int:
    joined = await client.call_join(call_id)
    _line(joined)
    async for push in client.stream():
        if "closed" in push:
            return 1
        value = push.get("call")
        # The media plane's pushes (SDP offers, slot maps, the speaker) are for media
        # clients: a terminal has no camera to answer them with.
        if value is None or value.get("call_id") != call_id or value["type"] in MEDIA_PUSHES:
            continue
        _line(value)
        if value["type"] == "state" and value["state"]["state"] in ("ended", "cancelled"):
            return 0
        if value["type"] in ("removed", "refused"):
            return 1
    return 0


async def _breakout(client: Client, args: argparse.Namespace) -> None:
    cmd = args.breakout_command
    if cmd == "plan":
        fields: dict[str, Any] = {"names": args.name or None}
        if args.minutes is not None:
            fields["duration_s"] = args.minutes * 60
        if args.random is not None and args.room:
            raise ClientError("usage", "plan either --random N or --room USERS ...")
        if args.random is not None:
            plan = await client.breakout_plan(
                args.call_id, "random", room_count=args.random, seed=args.seed, **fields
            )
        elif args.room:
            rooms = [[u for u in room.split(",") if u] for room in args.room]
            plan = await client.breakout_plan(args.call_id, "hand", rooms=rooms, **fields)
        else:
            raise ClientError("usage", "plan needs --random N or --room USERS")
        _line(plan)
    elif cmd == "start":
        _line(await client.breakout_start(args.call_id))
    elif cmd == "close":
        _line(await client.breakout_close(args.call_id))
    elif cmd == "move":
        _line(await client.breakout_move(args.call_id, args.user, args.room))
    elif cmd == "broadcast":
        _line({"rooms": await client.breakout_broadcast(args.call_id, args.text)})
