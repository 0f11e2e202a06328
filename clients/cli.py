"""``sferum``: a command-line client. Every command prints JSON lines on stdout.

sferum --server http://127.0.0.1:8080 --token TOKEN rooms create "7B"
sferum ... send ROOM "hello" [--txn ID]
sferum ... tail
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from clients.sdk import Client, ClientError, ConnectionLost


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sferum", description="sferumd command-line client")
    p.add_argument(
        "--server", required=True, help="daemon base address, e.g. http://127.0.0.1:8080"
    )
    p.add_argument("--token", required=True, help="device token")
    p.add_argument("--json-wire", action="store_true", help="use the JSON subprotocol")
    sub = p.add_subparsers(dest="command", required=True)

    rooms = sub.add_parser("rooms", help="create or list rooms")
    rooms_sub = rooms.add_subparsers(dest="rooms_command", required=True)
    create = rooms_sub.add_parser("create", help="create a room; prints {room_id}")
    create.add_argument("name")
    create.add_argument("--topic")
    create.add_argument("--public", action="store_true", help="anyone may join by id")
    create.add_argument("--invite", action="append", default=[], metavar="USER")
    rooms_sub.add_parser("list", help="rooms you are in or invited to, one a line")

    invite = sub.add_parser("invite", help="invite a user to a room")
    invite.add_argument("room")
    invite.add_argument("user")
    join = sub.add_parser("join", help="join a room")
    join.add_argument("room")
    leave = sub.add_parser("leave", help="leave a room")
    leave.add_argument("room")
    send = sub.add_parser("send", help="send a text message; prints the stored event")
    send.add_argument("room")
    send.add_argument("text")
    send.add_argument("--txn", help="transaction id; reusing one returns the original event")
    history = sub.add_parser("history", help="a room's recent events, oldest first")
    history.add_argument("room")
    history.add_argument("--limit", type=int, default=50)
    history.add_argument("--before", type=int, help="only events before this position")
    tail = sub.add_parser("tail", help="print events as they arrive until interrupted")
    tail.add_argument("--since", type=int, help="resume from this position (default: now)")
    return p


def _line(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False), flush=True)


async def _run(args: argparse.Namespace) -> int:
    tailing = args.command == "tail"
    client = Client(
        args.server,
        args.token,
        json=args.json_wire,
        reconnect=tailing,
        since=args.since if tailing else None,
        # Tail from now: no catch-up events unless a position to resume from was given.
        sync_limit=0 if tailing and args.since is None else None,
    )
    await client.connect()
    try:
        return await _command(client, args)
    finally:
        await client.close()


async def _command(client: Client, args: argparse.Namespace) -> int:
    cmd = args.command
    if cmd == "rooms" and args.rooms_command == "create":
        room_id = await client.create_room(
            args.name,
            topic=args.topic,
            join_rule="public" if args.public else None,
            invite=args.invite or None,
        )
        _line({"room_id": room_id})
    elif cmd == "rooms":
        for room in await client.rooms():
            _line(room)
    elif cmd == "invite":
        _line(await client.invite(args.room, args.user))
    elif cmd == "join":
        _line(await client.join(args.room))
    elif cmd == "leave":
        _line(await client.leave(args.room))
    elif cmd == "send":
        _line(await client.send(args.room, args.text, txn=args.txn))
    elif cmd == "history":
        result = await client.history(args.room, before=args.before, limit=args.limit)
        for event in result["events"]:
            _line(event)
    elif cmd == "tail":
        async for push in client.stream():
            if "ev" in push:
                _line(push["ev"])
            elif "closed" in push:
                return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return asyncio.run(_run(args))
    except ClientError as err:
        print(json.dumps({"error": {"code": err.code, "message": err.message}}), file=sys.stderr)
        return 1
    except (ConnectionLost, OSError) as err:
        print(json.dumps({"error": {"code": "connection", "message": str(err)}}), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
