"""``sferum``: a command-line client. Every command prints JSON lines on stdout.

sferum --server http://127.0.0.1:8080 --token TOKEN rooms create "7B"
sferum ... send ROOM "hello" [--txn ID] [--file FILE]   (--file: upload it and attach it)
sferum ... upload FILE [--name NAME] [--type TYPE]       (prints the file's id and details)
sferum ... download FILE_ID [-o PATH] [--thumbnail]
sferum ... tail
sferum ... search TEXT [--room ROOM]     (one hit a line, then {"next": POS} if there are more)
sferum --server URL login PHONE          (asks for the SMS code on stdin; prints the token)
sferum ... profile [--set first_name=Анна --set last_name=Иванова ...]
sferum ... devices [revoke DEVICE_ID]
sferum ... link URL                      (link the journal account behind a link URL)
sferum ... links                         (your linked journal accounts)
sferum ... unlink JOURNAL_ID ACCOUNT_ID
sferum ... rooms create NAME --closed     (a closed chat: only admins invite, rename, pin)
sferum ... closed ROOM on|off
sferum ... invite-link create ROOM [--expires 7d] [--uses N] [--approval]
sferum ... invite-link list ROOM | invite-link revoke ROOM LINK_ID
sferum ... join-link URL [--preview]     (join a chat by its invite link, or ask to)
sferum --server URL qr CODE -o FILE.png  (the link's QR code; .svg for SVG)
sferum ... knocks ROOM | knock accept|refuse ROOM USER [--reason R]
sferum ... mute ROOM USER [--for 1h] | unmute ROOM USER
sferum ... report ROOM EVENT_ID [--reason R] | reports ROOM
sferum ... send ROOM TEXT --reply-to EVENT_ID --mention USER   (a reply; mentions get a push)
sferum ... edit ROOM EVENT_ID TEXT | edits ROOM EVENT_ID
sferum ... react ROOM EVENT_ID 👍 | reactions ROOM EVENT_ID   (take one back: redact its event)
sferum ... pin ROOM EVENT_ID | unpin ROOM EVENT_ID
sferum ... forward FROM_ROOM EVENT_ID TO_ROOM
sferum ... poll create ROOM QUESTION OPTION OPTION ... [--multiple] [--anonymous]
sferum ... poll vote ROOM EVENT_ID N [N ...] | poll close ROOM EVENT_ID | poll results ROOM EVENT_ID
sferum ... call start ROOM | call join|show|leave|end CALL_ID | call hand CALL_ID [--lower]
sferum ... call permission CALL_ID screen allow --user USER | call mute CALL_ID [--user U]
sferum ... breakout plan CALL_ID --random 12 | breakout start|close CALL_ID   (clients/cli_calls)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from clients import cli_calls, sdk
from clients.durations import parse_duration
from clients.sdk import Client, ClientError, ConnectionLost

# Commands that talk HTTP rather than the websocket.
HTTP_COMMANDS = frozenset(
    {"login", "profile", "devices", "logout", "link", "links", "unlink"}
    | {"invite-link", "join-link", "qr"}
    | {"upload", "download"}
)


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
    create.add_argument("--closed", action="store_true", help="only admins invite, rename, pin")
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
    send.add_argument("text", nargs="?", help="the text (with --file: default the file's name)")
    send.add_argument("--file", help="upload this file and attach it to the message")
    send.add_argument("--txn", help="transaction id; reusing one returns the original event")
    send.add_argument("--reply-to", metavar="EVENT_ID", help="the message this one answers")
    send.add_argument("--mention", action="append", default=[], metavar="USER")
    history = sub.add_parser("history", help="a room's recent events, oldest first")
    history.add_argument("room")
    history.add_argument("--limit", type=int, default=50)
    history.add_argument("--before", type=int, help="only events before this position")
    search = sub.add_parser("search", help="find messages by their words, newest first")
    search.add_argument("text", help="the words to look for (plain text, any language)")
    search.add_argument("--room", help="only this room (default: all your rooms)")
    search.add_argument("--limit", type=int, default=20)
    search.add_argument("--before", type=int, help="only messages before this position")
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
    _chat_commands(sub)
    _file_commands(sub)
    _message_commands(sub)
    cli_calls.add_commands(sub)  # call, breakout
    return p


def _file_commands(sub: Any) -> None:
    upload = sub.add_parser("upload", help="upload a file; prints its id and details")
    upload.add_argument("file")
    upload.add_argument("--name", help="the name to show (default: the file's own)")
    upload.add_argument("--type", help="its media type (default: guessed from the extension)")
    download = sub.add_parser("download", help="save a file you may read")
    download.add_argument("file_id")
    download.add_argument("-o", "--output", default=".", help="a file or directory (default .)")
    download.add_argument("--thumbnail", action="store_true", help="a picture's thumbnail")


def _duration(text: str) -> int:
    try:
        return parse_duration(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _chat_commands(sub: Any) -> None:
    """Closed chats, invite links and their QR codes, requests to join, moderation."""
    closed = sub.add_parser("closed", help="close a chat (only admins invite) or open it")
    closed.add_argument("room")
    closed.add_argument("state", choices=("on", "off"))
    links = sub.add_parser("invite-link", help="make, list or revoke a chat's invite links")
    links_sub = links.add_subparsers(dest="links_command", required=True)
    make = links_sub.add_parser("create", help="a new link; prints its url (shown only now)")
    make.add_argument("room")
    make.add_argument("--expires", type=_duration, metavar="DURATION", help="e.g. 7d, 12h")
    make.add_argument("--uses", type=int, metavar="N", help="how many may join by it")
    make.add_argument("--approval", action="store_true", help="an admin accepts each joiner")
    listing = links_sub.add_parser("list", help="the chat's usable links, one a line")
    listing.add_argument("room")
    revoke = links_sub.add_parser("revoke", help="revoke a link")
    revoke.add_argument("room")
    revoke.add_argument("link_id")
    join = sub.add_parser("join-link", help="join a chat by its invite link (or ask to)")
    join.add_argument("url", help="the link, or its code")
    join.add_argument("--preview", action="store_true", help="only show where it leads")
    qr = sub.add_parser("qr", help="save the QR code of an invite link")
    qr.add_argument("code", help="the link, or its code")
    qr.add_argument("-o", "--output", required=True, help="FILE.png or FILE.svg")
    knocks = sub.add_parser("knocks", help="pending requests to join a chat")
    knocks.add_argument("room")
    knock = sub.add_parser("knock", help="accept or refuse a request to join")
    knock.add_argument("decision", choices=("accept", "refuse"))
    knock.add_argument("room")
    knock.add_argument("user")
    knock.add_argument("--reason")
    mute = sub.add_parser("mute", help="stop a member sending for a while")
    mute.add_argument("room")
    mute.add_argument("user")
    mute.add_argument(
        "--for", dest="duration", type=_duration, help="e.g. 1h; default: until unmuted"
    )
    unmute = sub.add_parser("unmute", help="let a muted member send again")
    unmute.add_argument("room")
    unmute.add_argument("user")
    report = sub.add_parser("report", help="report a message to the chat's admins")
    report.add_argument("room")
    report.add_argument("event_id")
    report.add_argument("--reason")
    reports = sub.add_parser("reports", help="reports of a chat's messages (admins)")
    reports.add_argument("room")


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
    elif cmd in ("invite-link", "join-link", "qr"):
        await _link_command(args)
    elif cmd == "upload":
        _line(await sdk.upload(server, token, args.file, name=args.name, content_type=args.type))
    elif cmd == "download":
        saved = await sdk.download(
            server, token, args.file_id, args.output, thumbnail=args.thumbnail
        )
        _line({"saved": str(saved), "bytes": saved.stat().st_size})
    return 0


async def _link_command(args: argparse.Namespace) -> None:
    server, token, cmd = args.server, args.token, args.command
    if cmd == "invite-link" and args.links_command == "create":
        _line(
            await sdk.create_invite_link(
                server,
                token,
                args.room,
                expires_in_s=args.expires,
                max_uses=args.uses,
                approval=args.approval,
            )
        )
    elif cmd == "invite-link" and args.links_command == "list":
        for link in await sdk.invite_links(server, token, args.room):
            _line(link)
    elif cmd == "invite-link":
        _line(await sdk.revoke_invite_link(server, token, args.room, args.link_id))
    elif cmd == "join-link" and args.preview:
        _line(await sdk.invite_preview(server, args.url))
    elif cmd == "join-link":
        _line(await sdk.join_by_link(server, token, args.url))
    elif cmd == "qr":
        kind = "svg" if args.output.lower().endswith(".svg") else "png"
        data = await sdk.invite_qr(server, args.code, kind)
        with open(args.output, "wb") as fh:
            fh.write(data)
        _line({"saved": args.output, "format": kind, "bytes": len(data)})


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
            closed=args.closed or None,
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
    elif cmd == "send" and args.file is not None:
        _line(await client.send_file(args.room, args.file, args.text, txn=args.txn))
    elif cmd == "send":
        if args.text is None:
            raise ClientError("usage", "send needs TEXT or --file FILE")
        mentions = args.mention or None
        _line(
            await client.send(
                args.room, args.text, txn=args.txn, reply_to=args.reply_to, mentions=mentions
            )
        )
    elif cmd == "history":
        result = await client.history(args.room, before=args.before, limit=args.limit)
        for event in result["events"]:
            _line(event)
    elif cmd == "search":
        found = await client.search(
            args.text, room_id=args.room, before=args.before, limit=args.limit
        )
        for hit in found["results"]:
            _line(hit)
        if found["next"] is not None:
            _line({"next": found["next"]})
    elif cmd in CHAT_COMMANDS:
        await _chat_command(client, args)
    elif cmd in cli_calls.COMMANDS:
        return await cli_calls.run(client, args)
    elif cmd in MESSAGE_COMMANDS:
        await _message_command(client, args)
    elif cmd == "tail":
        async for push in client.stream():
            if "ev" in push:
                _line(push["ev"])
            elif "closed" in push:
                return 1
    return 0


CHAT_COMMANDS = frozenset({"closed", "knocks", "knock", "mute", "unmute", "report", "reports"})
MESSAGE_COMMANDS = frozenset(
    {"edit", "edits", "react", "reactions", "pin", "unpin", "forward", "poll"}
)


def _message_commands(sub: Any) -> None:
    """Edits, reactions, pins, forwarding and polls (replies and mentions are send's)."""
    for name, help_ in [
        ("edit", "replace the text of one of your messages"),
        ("edits", "a message's texts, first to newest, one a line"),
        ("react", "react to a message (a repeat returns the first reaction)"),
        ("reactions", "a message's reactions: key, count, users"),
        ("pin", "pin a message in the room"),
        ("unpin", "unpin a message"),
    ]:
        cmd = sub.add_parser(name, help=help_)
        cmd.add_argument("room")
        cmd.add_argument("event_id")
        if name == "edit":
            cmd.add_argument("text")
        elif name == "react":
            cmd.add_argument("key", help="one emoji or a short word")
    forward = sub.add_parser("forward", help="copy a message into another room")
    forward.add_argument("from_room")
    forward.add_argument("event_id")
    forward.add_argument("to_room")
    poll = sub.add_parser("poll", help="make, vote in, close or read a poll")
    poll_sub = poll.add_subparsers(dest="poll_command", required=True)
    create = poll_sub.add_parser("create", help="post a poll; prints its message")
    create.add_argument("room")
    create.add_argument("question")
    create.add_argument("options", nargs="+", metavar="OPTION")
    create.add_argument("--multiple", action="store_true", help="voters may pick several")
    create.add_argument("--anonymous", action="store_true", help="nobody sees who chose what")
    vote = poll_sub.add_parser("vote", help="vote (again: replaces your vote); prints results")
    vote.add_argument("room")
    vote.add_argument("event_id")
    vote.add_argument("choices", nargs="+", type=int, metavar="N", help="option numbers from 0")
    for name, help_ in [("close", "end the voting"), ("results", "the poll's tally")]:
        cmd = poll_sub.add_parser(name, help=help_)
        cmd.add_argument("room")
        cmd.add_argument("event_id")


async def _message_command(client: Client, args: argparse.Namespace) -> None:
    cmd = args.command
    if cmd == "edit":
        _line(await client.edit(args.room, args.event_id, args.text))
    elif cmd == "edits":
        for version in await client.edits(args.room, args.event_id):
            _line(version)
    elif cmd == "react":
        _line(await client.react(args.room, args.event_id, args.key))
    elif cmd == "reactions":
        for reaction in await client.reactions(args.room, args.event_id):
            _line(reaction)
    elif cmd == "pin":
        _line(await client.pin(args.room, args.event_id))
    elif cmd == "unpin":
        _line(await client.unpin(args.room, args.event_id))
    elif cmd == "forward":
        _line(await client.forward(args.from_room, args.event_id, args.to_room))
    elif args.poll_command == "create":
        _line(
            await client.create_poll(
                args.room,
                args.question,
                args.options,
                multiple=args.multiple,
                anonymous=args.anonymous,
            )
        )
    elif args.poll_command == "vote":
        _line(await client.vote(args.room, args.event_id, args.choices))
    elif args.poll_command == "close":
        _line(await client.close_poll(args.room, args.event_id))
    else:
        _line(await client.poll_results(args.room, args.event_id))


async def _chat_command(client: Client, args: argparse.Namespace) -> None:
    cmd = args.command
    if cmd == "closed":
        _line(await client.set_closed(args.room, args.state == "on"))
    elif cmd == "knocks":
        for knock in await client.knocks(args.room):
            _line(knock)
    elif cmd == "knock" and args.decision == "accept":
        _line(await client.accept_knock(args.room, args.user))
    elif cmd == "knock":
        _line(await client.refuse_knock(args.room, args.user, args.reason))
    elif cmd == "mute":
        _line(await client.mute(args.room, args.user, args.duration))
    elif cmd == "unmute":
        _line(await client.unmute(args.room, args.user))
    elif cmd == "report":
        _line(await client.report(args.room, args.event_id, args.reason))
    elif cmd == "reports":
        for report in await client.reports(args.room):
            _line(report)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    needs_token = args.command not in ("login", "qr") and not (
        (args.command == "link" and args.show) or (args.command == "join-link" and args.preview)
    )
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
