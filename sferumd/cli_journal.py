"""``sferumd journal ...``: what a school's operator does on the journal's behalf, through
the running daemon's own signed journal API (so everything goes where a real journal's
requests go)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from clients.journal import JournalClient, JournalError
from sferumd import config

ZIP = "application/zip"


def add_parser(sub: Any) -> None:
    journal = sub.add_parser("journal", help="act for a registered journal")
    journal_sub = journal.add_subparsers(dest="journal_command", required=True)
    imp = journal_sub.add_parser(
        "import-oneroster", help="import a OneRoster 1.2 CSV zip (bulk or delta) with progress"
    )
    imp.add_argument("file", type=Path, help="the OneRoster zip")
    imp.add_argument("--journal-id", required=True)
    imp.add_argument("--server", default="http://127.0.0.1:8080", help="the daemon's address")
    key = imp.add_mutually_exclusive_group(required=True)
    key.add_argument("--secret", help="the journal's secret")
    key.add_argument("--data-dir", help="read the journal's secret from this data directory")
    imp.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def run(args: argparse.Namespace) -> int:
    try:
        data = args.file.read_bytes()
    except OSError as exc:
        print(f"sferumd: can't read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    secret = args.secret or _secret_from(args.data_dir, args.journal_id)
    if secret is None:
        print(f"sferumd: no journal {args.journal_id} in {args.data_dir}", file=sys.stderr)
        return 2
    try:
        result = asyncio.run(_import(args, data, secret))
    except JournalError as err:
        print(json.dumps({"error": {"code": err.code, "message": err.message}}), file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"sferumd: can't reach {args.server}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, ensure_ascii=False))
    return 0 if not result.get("errors") else 3  # some rows were refused (listed in errors)


def _secret_from(data_dir: str, journal_id: str) -> str | None:
    from sferumd.store.sqlite import connect_sync

    conn = connect_sync(config.load(None, data_dir=data_dir).db_path)
    try:
        row = conn.execute(
            "SELECT secret FROM journals WHERE journal_id = ?", (journal_id,)
        ).fetchone()
    finally:
        conn.close()
    return str(row[0]) if row else None


async def _import(args: argparse.Namespace, data: bytes, secret: str) -> dict[str, Any]:
    from tqdm import tqdm

    bar: Any = None
    phase = ""
    async with JournalClient(args.server, args.journal_id, secret) as client:
        try:
            async for line in client.stream("/journal/v1/oneroster", data, ZIP):
                if "progress" in line and not args.no_progress:
                    p = line["progress"]
                    if p["phase"] != phase:
                        if bar is not None:
                            bar.close()
                        phase = p["phase"]
                        label = {"rows": "rows", "reconcile": "chats"}.get(phase, phase)
                        bar = tqdm(total=p["total"] or None, desc=label, unit="", file=sys.stderr)
                    bar.n = p["done"]
                    bar.refresh()
                elif "error" in line:
                    raise JournalError(400, line["error"]["code"], line["error"]["message"])
                elif "result" in line:
                    if bar is not None:
                        bar.n = bar.total or bar.n
                        bar.close()
                    result: dict[str, Any] = line["result"]
                    return result
        finally:
            if bar is not None:
                bar.close()
    raise JournalError(502, "no_result", "the daemon's answer ended without a result")
