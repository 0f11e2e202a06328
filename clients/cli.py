"""``sferum``: a command-line client. Every command prints JSON lines on stdout.

sferum --server http://127.0.0.1:8080 --token TOKEN rooms create "7B"
sferum ... send ROOM "hello" [--txn ID]
sferum ... tail
sferum --server URL login PHONE          (asks for the SMS code on stdin; prints the token)
sferum ... profile [--set first_name=Анна --set last_name=Иванова ...]
sferum ... devices [revoke DEVICE_ID]
sferum ... link URL                      (link the journal account behind a link URL)
sferum ... links                         (your linked journal accounts)
sferum ... unlink JOURNAL_ID ACCOUNT_ID
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from clients import sdk
from clients.sdk import Client, ClientError, ConnectionLost

# Commands that talk HTTP rather than the websocket.
HTTP_COMMANDS = frozenset({"login", "profile", "devices", "logout", "link", "links", "unlink"})


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sferum", description="sferumd command-line client")
    p.add_argument(
        "--server", required=True, help="daemon base address, e.g. http://127.0.0.1:8080"
    )
    p.add_argument("--token", help="device token (every command but login needs one)")
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

    login = sub.add_parser("login", help="sign in by phone; asks for the SMS code on stdin")
    login.add_argument("phone")
    login.add_argument("--device-name", help="a name for this device in the devices list")
    profile = sub.add_parser("profile", help="print your profile, or change it with --set")
    profile.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", dest="fields")
    devices = sub.add_parser("devices", help="list your devices, or revoke one")
    devices_sub = devices.add_subparsers(dest="devices_command")
    revoke = devices_sub.add_parser("revoke", help="revoke a device; closes its connections")
    revoke.add_argument("device_id")
    sub.add_parser("logout", help="revoke this device's token")
    link = sub.add_parser("link", help="link the journal account behind a link URL to you")
    link.add_argument("url", help="the URL the journal gave, or its token")
    link.add_argument("--show", action="store_true", help="only print what the URL offers")
    sub.add_parser("links", help="your linked journal accounts, one a line")
    unlink = sub.add_parser("unlink", help="unlink one of your journal accounts")
    unlink.add_argument("journal_id")
    unlink.add_argument("account_id")
    return p


def _line(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False), flush=True)


async def _http_command(args: argparse.Namespace) -> int:
    server, token, cmd = args.server, args.token, args.command
    if cmd == "login":
        sent = await sdk.request_code(server, args.phone)
        print(f"code sent to {sent['phone']}; enter it: ", end="", file=sys.stderr, flush=True)
        code = sys.stdin.readline().strip()
        _line(await sdk.verify_code(server, sent["phone"], code, args.device_name))
    elif cmd == "profile" and args.fields:
        fields: dict[str, Any] = {}
        for item in args.fields:
            key, sep, value = item.partition("=")
            if not sep:
                raise ClientError("usage", f"--set wants FIELD=VALUE, got {item!r}")
            fields[key] = value
        current = await sdk.profile(server, token)
        keep = ("first_name", "last_name", "patronymic", "birth_date", "gender")
        merged = {k: current[k] for k in keep if current.get(k)} | fields
        _line(await sdk.update_profile(server, token, merged))
    elif cmd == "profile":
        _line(await sdk.profile(server, token))
    elif cmd == "devices" and args.devices_command == "revoke":
        _line(await sdk.revoke_device(server, token, args.device_id))
    elif cmd == "devices":
        for device in await sdk.devices(server, token):
            _line(device)
    elif cmd == "logout":
        _line(await sdk.logout(server, token))
    elif cmd == "link" and args.show:
        _line(await sdk.link_offer(server, args.url))
    elif cmd == "link":
        _line(await sdk.confirm_link(server, token, args.url))
    elif cmd == "links":
        for link in await sdk.links(server, token):
            _line(link)
    elif cmd == "unlink":
        _line(await sdk.unlink(server, token, args.journal_id, args.account_id))
    return 0


async def _run(args: argparse.Namespace) -> int:
    if args.command in HTTP_COMMANDS:
        return await _http_command(args)
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
    parser = _parser()
    args = parser.parse_args(argv)
    needs_token = args.command != "login" and not (args.command == "link" and args.show)
    if args.token is None and needs_token:
        parser.error(f"{args.command} needs --token (get one with: sferum login PHONE)")
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
