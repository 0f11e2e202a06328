"""Roster import and reconciliation: a generated school through the journal's signed HTTP API.

    python -m bench.roster --json [--users 5000] [--classes 80] [--batch 5000] [--linked 0.2]
                                  [--late-links 20] [--seed 1] [--no-snapshot]

Starts sferumd on a temporary directory and registers a journal with ``sferumd admin
add-journal``. A ``--linked`` share of the generated school's accounts
(``sferumd.demo.generated_school``) is linked first, each to its own user: the journal
creates a link session (signed request) and the user confirms it over HTTP with a device
token, as a person's browser would. Linking happens before the roster arrives, so its
reconciliations are cheap and not measured; the import then has real joins to make.

Measured phases, each wall clock from the first request until the last answer (the daemon
answers a delivery once it is committed and reconciled), with the daemon's user+system CPU
seconds (psutil) and the events it committed (``/metrics``):

1. ``import``: the whole school as signed webhook batches of ``--batch`` changes to
   ``POST /journal/v1/events``.
2. ``redelivery``: the same batches again under new delivery ids. Nothing may change: the
   answers must add up to ``applied == 0`` and no event may be written.
3. ``move``: three students of one class moved to another (their enrollments upserted with
   the new class at a later version), with the reconciliation that follows.
4. ``late_link``: ``--late-links`` more accounts linked one at a time after the import, as
   people do once the school is in; each confirm returns when the person is in their chats.
5. ``snapshot`` (unless ``--no-snapshot``): the same school for a second journal, linked the
   same way, as one ``POST /journal/v1/snapshot``; then the same snapshot again under a new
   delivery id (``snapshot_redelivery``), which must change nothing either.

After phases 1, 3 and 4 a sample of linked users (and the moved students, their parents and
the late-linked) is checked over the websocket: each must be in exactly the journal chats
``reconcile.desired`` computes here from the same changes, as admin or not, and each chat
must have the right member count (``spot_check_*``).

Targets (``target_*`` with ``met_*``, never failing the run): import + reconcile under 10 s,
re-delivery under 1 s. The exit status is 1 only if a correctness check fails (``ok``).
Every request goes to 127.0.0.1 and has a timeout; every loop is bounded.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import secrets
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import (
    BenchDir,
    BenchUser,
    ServerProcess,
    authed,
    base_parser,
    log,
    make_users,
    pin_load_generator,
    run_bench,
    start_daemon,
)
from sferumd.demo import generated_school
from sferumd.services.roster.changes import parse_batch
from sferumd.services.roster.reconcile import desired
from sferumd.services.roster.state import RosterState

TARGET_IMPORT_S = 10.0
TARGET_REDELIVERY_S = 1.0
MOVED_STUDENTS = 3
SPOT_CHECKS = 12  # linked users whose chats are compared with what reconciliation wants
LINK_CONCURRENCY = 8
REQUEST_TIMEOUT_S = 300.0
# Link sessions are rate-limited per journal; the bench makes a thousand in seconds.
JOURNAL_CONFIG = """
[journal]
link_sessions_per_minute = 1000000
"""

Change = dict[str, Any]


class RosterBenchError(Exception):
    pass


# -- signed journal requests ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JournalKey:
    journal_id: str
    secret: str


def journal_headers(key: JournalKey, method: str, path: str, body: bytes) -> dict[str, str]:
    """The signature headers of a journal request: hex HMAC-SHA256 with the journal's secret
    of ``timestamp.nonce.METHOD path.body`` (PROTOCOL.md, "Journal linking (HTTP)")."""
    ts = str(int(time.time()))
    nonce = secrets.token_urlsafe(16)
    message = f"{ts}.{nonce}.{method.upper()} {path}.".encode() + body
    return {
        "Content-Type": "application/json",
        "X-Sferum-Journal": key.journal_id,
        "X-Sferum-Timestamp": ts,
        "X-Sferum-Nonce": nonce,
        "X-Sferum-Signature": hmac.new(key.secret.encode(), message, hashlib.sha256).hexdigest(),
    }


def add_journal(data_dir: Path, name: str) -> JournalKey:
    argv = [sys.executable, "-m", "sferumd", "admin", "add-journal"]
    argv += ["--data-dir", str(data_dir), "--name", name]
    out = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=60)
    made = json.loads(out.stdout)
    return JournalKey(made["journal_id"], made["secret"])


class Journal:
    """One journal's side of the conversation with the daemon."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str, key: JournalKey):
        self.http = http
        self.base_url = base_url
        self.key = key

    async def call(self, method: str, path: str, body: Any) -> dict[str, Any]:
        raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        headers = journal_headers(self.key, method, path, raw)
        async with self.http.request(
            method, self.base_url + path, data=raw, headers=headers
        ) as resp:
            answer: dict[str, Any] = await resp.json()
            if resp.status != 200:
                raise RosterBenchError(f"{method} {path}: {resp.status} {answer}")
            return answer

    async def deliver(self, delivery_id: str, changes: Sequence[Change]) -> dict[str, Any]:
        body = {"delivery_id": delivery_id, "changes": list(changes)}
        return await self.call("POST", "/journal/v1/events", body)

    async def snapshot(
        self, delivery_id: str, version: int, entities: Sequence[Change]
    ) -> dict[str, Any]:
        body = {"delivery_id": delivery_id, "version": version, "entities": list(entities)}
        return await self.call("POST", "/journal/v1/snapshot", body)

    async def link(self, account_id: str, role: str, user: BenchUser) -> None:
        """A link session for the account, confirmed by the user's device."""
        session = await self.call(
            "POST",
            "/journal/v1/link-sessions",
            {"account_id": account_id, "role": role, "school_id": "SCH-1"},
        )
        token = session["url"].rsplit("/", 1)[1]
        auth = {"Authorization": f"Bearer {user.token}"}
        async with self.http.post(f"{self.base_url}/v1/link/{token}/confirm", headers=auth) as resp:
            if resp.status != 200:
                raise RosterBenchError(f"confirm {account_id}: {resp.status} {await resp.text()}")

    async def link_all(self, accounts: Sequence[tuple[str, str, BenchUser]]) -> None:
        sem = asyncio.Semaphore(LINK_CONCURRENCY)

        async def one(account_id: str, role: str, user: BenchUser) -> None:
            async with sem:
                await self.link(account_id, role, user)

        await asyncio.gather(*(one(*a) for a in accounts))


# -- measuring -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Phase:
    seconds: float
    cpu_s: float
    events: int  # committed by the daemon during the phase (memberships, rooms, ...)
    answers: list[dict[str, Any]]

    def total(self, field: str) -> int:
        return sum(int(a.get(field, 0)) for a in self.answers)

    def report(self, name: str) -> dict[str, Any]:
        return {
            f"{name}_s": round(self.seconds, 3),
            f"{name}_cpu_s": round(self.cpu_s, 3),
            f"{name}_events": self.events,
            f"{name}_applied": self.total("applied"),
            f"{name}_unchanged": self.total("unchanged"),
            f"{name}_rejected": self.total("rejected"),
        }


def events_committed(daemon: ServerProcess) -> int:
    return int(daemon.metric("sferumd_events_appended_total") or 0)


Call = Callable[[], Awaitable[dict[str, Any]]]


async def measure(daemon: ServerProcess, calls: Sequence[Call]) -> Phase:
    """Makes the calls one after another, as a journal sends its batches in order."""
    events0, cpu0, t0 = events_committed(daemon), daemon.cpu_s(), time.perf_counter()
    answers = [await call() for call in calls]
    seconds, cpu = time.perf_counter() - t0, daemon.cpu_s() - cpu0
    return Phase(seconds, cpu, events_committed(daemon) - events0, answers)


def deliveries(journal: Journal, name: str, parts: Sequence[Sequence[Change]]) -> list[Call]:
    """One call per batch, each under its own new delivery id."""
    return [partial(journal.deliver, f"{name}-{i}", part) for i, part in enumerate(parts)]


def batches(changes: Sequence[Change], size: int) -> list[Sequence[Change]]:
    return [changes[i : i + size] for i in range(0, len(changes), size)]


def pick_accounts(
    changes: Sequence[Change], share: float, late: int, seed: int
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(account id, role) of a ``share`` of the school's people, linked before the import,
    and of ``late`` others, linked after it; the same for a seed."""
    people = [(c["id"], c["data"]["role"]) for c in changes if c["kind"] == "person"]
    early = round(len(people) * min(1.0, max(0.0, share)))
    chosen = random.Random(seed).sample(people, min(len(people), early + late))
    return sorted(chosen[:early]), chosen[early:]


def move_students(
    changes: Sequence[Change], linked: set[str], count: int
) -> tuple[list[Change], int]:
    """Upserts moving ``count`` students of the first class to the second, linked students
    first (so the move has chat members to move); and how many of them are linked."""
    classes = [c["id"] for c in changes if c["kind"] == "class"]
    if len(classes) < 2:
        raise RosterBenchError("moving students needs at least two classes")
    source, target = classes[0], classes[1]
    enrolled = [c for c in changes if c["kind"] == "enrollment" and c["data"]["class_id"] == source]
    enrolled.sort(key=lambda c: (c["data"]["student_id"] not in linked, c["id"]))
    moved = [
        {**c, "version": c["version"] + 1, "data": {**c["data"], "class_id": target}}
        for c in enrolled[:count]
    ]
    return moved, sum(1 for c in moved if c["data"]["student_id"] in linked)


# -- checking the outcome --------------------------------------------------------------------------

ChatView = dict[tuple[str, str], tuple[bool, int]]  # (kind, class id) -> (admin, members)


def wanted_chats(changes: Sequence[Change], links: dict[str, str]) -> dict[str, ChatView]:
    """user -> the journal chats ``reconcile.desired`` puts them in, computed here from the
    same changes (the pure function the daemon runs, so this checks the daemon's plumbing:
    delivery, state, plan and membership events)."""
    batch = parse_batch({"delivery_id": "check", "changes": list(changes)}, len(changes))
    state = RosterState()
    state.apply_all(change for _, change in batch.changes)
    out: dict[str, ChatView] = {user: {} for user in links.values()}
    for chat in desired(state.live, links, []).chats.values():
        for user in chat.members:
            # The room's member count includes the journal's owner account.
            out[user][(chat.kind, chat.class_id)] = (user in chat.admins, len(chat.members) + 1)
    return out


async def chats_of(port: int, user: BenchUser, journal_id: str) -> ChatView:
    conn = await authed(port, user)
    try:
        rooms = (await conn.request("rooms"))["rooms"]
    finally:
        conn.close()
    return {
        (r["chat"]["kind"], r["chat"]["class_id"]): (r["power"] >= 100, r["members"])
        for r in rooms
        if r["chat"] and r["chat"].get("journal_id") == journal_id and r["membership"] == "join"
    }


@dataclass(slots=True)
class SpotCheck:
    users: int = 0
    chats: int = 0  # chats compared, so a run of users in no chat can't pass unnoticed
    mismatches: int = 0

    async def run(
        self, port: int, journal_id: str, users: Sequence[BenchUser], wanted: dict[str, ChatView]
    ) -> None:
        """Each user must be in exactly the chats it should be, as admin or not, and each
        of those chats must have the right number of members."""
        for user in users:
            got, want = await chats_of(port, user, journal_id), wanted[user.user_id]
            self.users += 1
            self.chats += len(want)
            if got != want:
                self.mismatches += 1
                log(f"{user.user_id}: in {sorted(got.items())}, wanted {sorted(want.items())}")


def families(changes: Sequence[Change], moves: Sequence[Change]) -> list[str]:
    """The moved students and their parents: whose chats a move changes."""
    students = {m["data"]["student_id"] for m in moves}
    parents = {
        c["data"]["parent_id"]
        for c in changes
        if c["kind"] == "guardianship" and c["data"]["student_id"] in students
    }
    return sorted(students | parents)


# -- the run ---------------------------------------------------------------------------------------


class RosterRun:
    """One journal's school in a running daemon, with the users linked to its accounts."""

    def __init__(self, daemon: ServerProcess, journal: Journal, changes: list[Change], seed: int):
        self.daemon = daemon
        self.journal = journal
        self.changes = changes
        self.rng = random.Random(seed)
        self.user_of: dict[str, BenchUser] = {}  # linked account -> its user
        self.checked = SpotCheck()

    @property
    def links(self) -> dict[str, str]:
        return {a: u.user_id for a, u in self.user_of.items()}

    async def link(self, accounts: Sequence[tuple[str, str]], users: Sequence[BenchUser]) -> None:
        pairs = list(zip(accounts, users, strict=True))
        await self.journal.link_all([(a, role, u) for (a, role), u in pairs])
        self.user_of |= {a: u for (a, _), u in pairs}

    async def link_one_by_one(
        self, accounts: Sequence[tuple[str, str]], users: Sequence[BenchUser]
    ) -> list[float]:
        """Seconds each link took (session and confirm; the confirm returns once the person
        is in their chats), one after another."""
        took = []
        for (account, role), user in zip(accounts, users, strict=True):
            t0 = time.perf_counter()
            await self.journal.link(account, role, user)
            took.append(time.perf_counter() - t0)
            self.user_of[account] = user
        return took

    async def check(self, users: Sequence[BenchUser]) -> None:
        wanted = wanted_chats(self.changes, self.links)
        await self.checked.run(self.daemon.port, self.journal.key.journal_id, users, wanted)

    def sample(self) -> list[BenchUser]:
        users = sorted(self.user_of.values(), key=lambda u: u.user_id)
        return self.rng.sample(users, min(SPOT_CHECKS, len(users)))


async def run_journal(
    daemon: ServerProcess,
    journal: Journal,
    changes: list[Change],
    args: Any,
    accounts: tuple[list[tuple[str, str]], list[tuple[str, str]]],
    users: list[BenchUser],
) -> dict[str, Any]:
    """Phases 1–3 and the late links for the first journal."""
    run = RosterRun(daemon, journal, list(changes), args.seed)
    early, late = accounts
    t0 = time.perf_counter()
    await run.link(early, users[: len(early)])
    link_s = time.perf_counter() - t0
    log(f"linked {len(early)} accounts in {link_s:.1f} s")

    parts = batches(changes, args.batch)
    imported = await measure(daemon, deliveries(journal, "import", parts))
    log(f"import: {imported.seconds:.2f} s, {imported.events} events")
    await run.check(run.sample())
    again = await measure(daemon, deliveries(journal, "again", parts))
    log(f"re-delivery: {again.seconds:.3f} s, applied {again.total('applied')}")

    moves, moved_linked = move_students(changes, set(run.user_of), MOVED_STUDENTS)
    moved = await measure(daemon, deliveries(journal, "move", [moves]))
    log(f"move: {moved.seconds:.3f} s, {moved.events} events")
    run.changes += moves
    movers = [run.user_of[a] for a in families(changes, moves) if a in run.user_of]
    await run.check([*movers, *run.sample()])

    late_users = users[len(early) :]
    cpu0, t0 = daemon.cpu_s(), time.perf_counter()
    took = sorted(await run.link_one_by_one(late, late_users))
    late_s, late_cpu = time.perf_counter() - t0, daemon.cpu_s() - cpu0
    if took:
        log(f"late links: {len(took)} in {late_s:.2f} s, median {took[len(took) // 2]:.3f} s")
    await run.check(late_users)
    return {
        "batch_size": args.batch,
        "batches": len(parts),
        "linked_accounts": len(early),
        "link_s": round(link_s, 3),
        **imported.report("import"),
        **again.report("redelivery"),
        **moved.report("move"),
        "moved_students": len(moves),
        "moved_linked": moved_linked,
        "late_links": len(took),
        "late_link_s": round(late_s, 3),
        "late_link_cpu_s": round(late_cpu, 3),
        "late_link_p50_ms": round(took[len(took) // 2] * 1000, 1) if took else None,
        "late_link_max_ms": round(took[-1] * 1000, 1) if took else None,
        "spot_checked_users": run.checked.users,
        "spot_checked_chats": run.checked.chats,
        "spot_check_mismatches": run.checked.mismatches,
    }


async def run_snapshot(
    daemon: ServerProcess,
    journal: Journal,
    changes: list[Change],
    accounts: list[tuple[str, str]],
    users: list[BenchUser],
) -> dict[str, Any]:
    """Phase 4: the same school for a second journal, as one snapshot, twice."""
    version = max(c["version"] for c in changes)
    pairs = zip(accounts, users[: len(accounts)], strict=True)
    await journal.link_all([(a, role, u) for (a, role), u in pairs])
    snap = await measure(daemon, [partial(journal.snapshot, "snap-1", version, changes)])
    log(f"snapshot import: {snap.seconds:.2f} s, {snap.events} events")
    again = await measure(daemon, [partial(journal.snapshot, "snap-2", version, changes)])
    return {
        **snap.report("snapshot"),
        "snapshot_deactivated": snap.total("deactivated"),
        **again.report("snapshot_redelivery"),
        "snapshot_redelivery_deactivated": again.total("deactivated"),
    }


async def main_async(args: Any) -> dict[str, Any]:
    server_cpus = pin_load_generator(args.pin)
    t0 = time.perf_counter()
    changes = generated_school(args.users, args.classes, seed=args.seed)
    result: dict[str, Any] = {
        "bench": "roster",
        "users": args.users,
        "classes": args.classes,
        "changes": len(changes),
        "generate_s": round(time.perf_counter() - t0, 3),
    }
    early, late = pick_accounts(changes, args.linked, args.late_links, args.seed)
    log(f"{len(changes)} changes for {args.users} users in {args.classes} classes;")
    log(f"{len(early)} accounts to link before the import, {len(late)} after")

    with BenchDir("roster") as workdir:
        users = make_users(workdir, len(early) + len(late))
        with start_daemon(workdir, cpus=server_cpus, extra_config=JOURNAL_CONFIG) as daemon:
            log("daemon at", daemon.url)
            timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
            connector = aiohttp.TCPConnector(limit=LINK_CONCURRENCY)
            async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
                first = Journal(http, daemon.url, add_journal(workdir / "data", "Bench"))
                result |= await run_journal(daemon, first, changes, args, (early, late), users)
                if args.snapshot:
                    second = Journal(http, daemon.url, add_journal(workdir / "data", "Bench 2"))
                    result |= await run_snapshot(daemon, second, changes, early, users)
            result["server_rss_mib"] = round(daemon.rss() / 2**20, 1)
    result |= {
        "target_import_s": TARGET_IMPORT_S,
        "met_import": result["import_s"] < TARGET_IMPORT_S,
        "target_redelivery_s": TARGET_REDELIVERY_S,
        "met_redelivery": result["redelivery_s"] < TARGET_REDELIVERY_S,
        "pinned": server_cpus is not None,
    }
    result["ok"] = correct(result)
    return result


def correct(r: dict[str, Any]) -> bool:
    """What must hold whatever the timings: everything applied once, nothing twice."""
    checks = [
        r["import_applied"] == r["changes"] and r["import_rejected"] == 0,
        r["redelivery_applied"] == 0 and r["redelivery_unchanged"] == r["changes"],
        r["redelivery_events"] == 0,
        r["spot_check_mismatches"] == 0 and r["spot_checked_chats"] > 0,
        r["move_applied"] == r["moved_students"],
        # Linked people were there to be put in chats, and moved ones to be moved.
        r["import_events"] > 0 or r["linked_accounts"] == 0,
        r["move_events"] > 0 or r["moved_linked"] == 0,
    ]
    if "snapshot_s" in r:
        checks += [
            r["snapshot_applied"] == r["changes"] and r["snapshot_deactivated"] == 0,
            r["snapshot_redelivery_applied"] == 0 and r["snapshot_redelivery_deactivated"] == 0,
            r["snapshot_redelivery_events"] == 0,
        ]
    return all(checks)


def main() -> int:
    p = base_parser(__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=5000, help="people in the generated school")
    p.add_argument("--classes", type=int, default=80, help="classes in the generated school")
    p.add_argument("--batch", type=int, default=5000, help="changes per webhook batch")
    p.add_argument(
        "--linked", type=float, default=0.2, help="share of accounts linked before the import"
    )
    p.add_argument(
        "--late-links",
        type=int,
        default=20,
        help="accounts linked one by one after the import (each reconciles the whole school)",
    )
    p.add_argument("--seed", type=int, default=1, help="the generated school's seed")
    p.add_argument(
        "--no-snapshot",
        dest="snapshot",
        action="store_false",
        help="skip the second journal's snapshot import",
    )
    args = p.parse_args()
    if args.users < 3 or args.classes < 2 or not 1 <= args.batch <= 10_000 or args.late_links < 0:
        p.error("--users >= 3, --classes >= 2, 1 <= --batch <= 10000, --late-links >= 0")
    result = run_bench(main_async, args)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
