"""``sferumd`` command line: ``serve`` and operator commands."""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import asdict
from pathlib import Path

from sferumd import cli_journal, config, logs

E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sferumd", description="School messenger daemon")
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the daemon")
    serve.add_argument("--data-dir", help="directory for the SQLite database (default ./data)")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8080; 0 picks one)")
    serve.add_argument("--config", type=Path, help="TOML settings file")
    serve.add_argument(
        "--demo", action="store_true", help="load the demo school once listening (make run)"
    )
    demo = sub.add_parser(
        "demo", help="load the demo school into a running daemon and print sign-in hints"
    )
    demo.add_argument("--server", default="http://127.0.0.1:8080", help="the daemon's address")
    demo.add_argument("--data-dir", default="./data", help="the daemon's data directory")

    admin = sub.add_parser("admin", help="operator commands")
    admin_sub = admin.add_subparsers(dest="admin_command", required=True)
    add = admin_sub.add_parser("add-user", help="create a user (or a new device of one)")
    add.add_argument("--data-dir", required=True)
    add.add_argument("--phone", required=True, help="E.164, e.g. +79990001122")
    add.add_argument("--first-name", required=True)
    add.add_argument("--last-name", required=True)
    journal = admin_sub.add_parser(
        "add-journal", help="register a school journal; prints its id and shared secret"
    )
    journal.add_argument("--data-dir", required=True)
    journal.add_argument("--name", required=True)
    journal.add_argument("--webhook-url", help="where link and unlink webhooks are POSTed")
    cli_journal.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "journal":
        return cli_journal.run(args)
    if args.command == "demo":
        return _demo(args)
    if args.admin_command == "add-journal":
        return _add_journal(args)
    return _add_user(args)


def _serve(args: argparse.Namespace) -> int:
    from sferumd.server import run

    try:
        settings = config.load(args.config, host=args.host, port=args.port, data_dir=args.data_dir)
    except (OSError, ValueError) as exc:
        print(f"sferumd: bad settings: {exc}", file=sys.stderr)
        return 2
    logs.setup(settings.server.log_level)
    return run(settings, demo=args.demo)


def _demo(args: argparse.Namespace) -> int:
    import asyncio

    from clients.journal import JournalError
    from sferumd.demo_loader import hints_text, load_demo

    try:
        loaded = asyncio.run(load_demo(args.server, Path(args.data_dir)))
    except JournalError as err:
        print(f"sferumd: the daemon refused the demo: {err}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"sferumd: can't reach {args.server}: {exc}", file=sys.stderr)
        return 1
    print(hints_text(loaded, args.server))
    return 0


def _add_user(args: argparse.Namespace) -> int:
    from sferumd.store.sqlite import add_user_device_sync, connect_sync

    if not E164.match(args.phone):
        print("sferumd: --phone must be in E.164 form, e.g. +79990001122", file=sys.stderr)
        return 2
    first, last = args.first_name.strip(), args.last_name.strip()
    if not first or not last:
        print("sferumd: first and last name must not be empty", file=sys.stderr)
        return 2
    settings = config.load(None, data_dir=args.data_dir)
    settings.data_path.mkdir(parents=True, exist_ok=True)
    conn = connect_sync(settings.db_path)
    try:
        new = add_user_device_sync(conn, args.phone, first, last)
    finally:
        conn.close()
    out = asdict(new)
    out["created"] = out.pop("created_user")
    print(json.dumps(out))
    return 0


def _add_journal(args: argparse.Namespace) -> int:
    from sferumd.store.sqlite import add_journal_sync, connect_sync

    name = args.name.strip()
    if not name or len(name) > 200:
        print("sferumd: --name must be 1..200 characters", file=sys.stderr)
        return 2
    url = args.webhook_url
    if url is not None and not re.match(r"^https?://[^\s]+$", url):
        print("sferumd: --webhook-url must be an http:// or https:// URL", file=sys.stderr)
        return 2
    settings = config.load(None, data_dir=args.data_dir)
    settings.data_path.mkdir(parents=True, exist_ok=True)
    conn = connect_sync(settings.db_path)
    try:
        journal = add_journal_sync(conn, name, url)
    finally:
        conn.close()
    print(json.dumps({"journal_id": journal.journal_id, "secret": journal.secret}))
    return 0
