"""Message search end to end: a real daemon, Russian and English words, visibility, redaction
down to the index's files, restarts and crashes, hostile queries, pages.

Messages are staged in their own commit and moved into the FTS5 index in batches
(``store.search``), so most tests run twice: with every message still staged
(``flush_interval_s`` of an hour) and with every message moved into the index first.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clients.sdk import Client, ClientError
from sferumd import textsearch
from sferumd.store.migrations import migrate
from tests.e2e_peer import Peer

STAGED = "[search]\nflush_interval_s = 3600.0\npurge_delay_s = 0.1\n"
INDEXED = "[search]\nflush_interval_s = 0.05\npurge_delay_s = 0.1\n"
FAST = "[websocket]\nrate_per_s = 100000.0\nrate_burst = 100000\n"


@dataclass
class World:
    daemon: Any
    peers: dict[str, Peer]
    indexed: bool  # wait for the index to take staged messages before searching

    async def settle(self) -> None:
        """In the indexed mode: until nothing is staged any more (bounded)."""
        if self.indexed:
            await wait_db(
                self.daemon,
                lambda db: not db.execute("SELECT 1 FROM search_pending LIMIT 1").fetchone(),
            )


async def wait_db(
    daemon: Any, pred: Callable[[sqlite3.Connection], bool], timeout: float = 10.0
) -> None:
    """Poll the daemon's database (read only, from outside) until ``pred`` holds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        db = sqlite3.connect(daemon.data_dir / "sferumd.sqlite", timeout=5.0)
        try:
            if pred(db):
                return
        finally:
            db.close()
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the database did not reach the expected state in time")
        await asyncio.sleep(0.05)


@pytest.fixture(params=["staged", "indexed"])
async def world(request, daemon_factory) -> AsyncIterator[World]:  # type: ignore[no-untyped-def]
    mode = request.param
    daemon = daemon_factory(config=(STAGED if mode == "staged" else INDEXED) + FAST)
    peers: dict[str, Peer] = {}
    try:
        for name in ("anna", "boris", "vera", "gleb"):
            user = daemon.add_user(first=name.title(), last="Test")
            peers[name] = await Peer.login(daemon.url, user.token)
        yield World(daemon, peers, mode == "indexed")
    finally:
        for peer in peers.values():
            await peer.close()


async def room_of(owner: Peer, *joiners: Peer, name: str = "7В") -> str:
    room = (await owner.request("create_room", name=name, invite=[p.user_id for p in joiners]))[
        "room_id"
    ]
    for peer in joiners:
        await peer.request("join", room_id=room)
    return str(room)


async def say(peer: Peer, room: str, body: str) -> dict[str, Any]:
    return (await peer.request("send", room_id=room, content={"body": body}))["event"]  # type: ignore[no-any-return]


async def found(peer: Peer, query: str, **fields: Any) -> list[str]:
    """Bodies of every hit, all pages, newest first."""
    out: list[str] = []
    before = None
    for _ in range(100):
        page = await peer.request("search", query=query, before=before, **fields)
        out += [hit["event"]["content"].get("body", "") for hit in page["results"]]
        if page["next"] is None:
            return out
        before = page["next"]
    raise AssertionError("search pages did not end")


# -- words -----------------------------------------------------------------------------------


async def test_russian_word_forms_find_each_other(world: World) -> None:
    anna, boris = world.peers["anna"], world.peers["boris"]
    room = await room_of(anna, boris)
    bodies = [
        "Завтра контрольная по алгебре",
        "Кто написал контрольную?",
        "Оценки за контрольной работой будут в пятницу",
    ]
    for body in bodies:
        await say(anna, room, body)
    await say(anna, room, "Домашнее задание: параграф 12")
    await world.settle()
    for query in ("контрольная", "контрольной", "контрольную", "КОНТРОЛЬНЫЕ"):
        assert await found(boris, query) == bodies[::-1], query
    # Every word must match: "контрольная пятница" is only the third message.
    assert await found(boris, "контрольная пятница") == [bodies[2]]
    assert await found(boris, "параграфы") == ["Домашнее задание: параграф 12"]


async def test_english_plurals_and_case(world: World) -> None:
    anna, boris = world.peers["anna"], world.peers["boris"]
    room = await room_of(anna, boris)
    await say(anna, room, "Tomorrow's LESSON is moved")
    await say(anna, room, "Both lessons are online")
    await say(anna, room, "Unrelated text")
    await world.settle()
    expected = ["Both lessons are online", "Tomorrow's LESSON is moved"]
    assert await found(boris, "lesson") == expected
    assert await found(boris, "Lessons") == expected
    assert await found(boris, "LESSONS online") == ["Both lessons are online"]


async def test_yo_and_ye_are_one_letter(world: World) -> None:
    anna, boris = world.peers["anna"], world.peers["boris"]
    room = await room_of(anna, boris)
    await say(anna, room, "Ёлка в актовом зале")
    await say(anna, room, "елки и шары")
    await world.settle()
    both = ["елки и шары", "Ёлка в актовом зале"]
    assert await found(boris, "ёлка") == both
    assert await found(boris, "ЕЛКА") == both
    assert await found(boris, "Ёлки") == both


async def test_last_word_matches_as_a_prefix_and_hits_carry_snippets(world: World) -> None:
    anna, boris = world.peers["anna"], world.peers["boris"]
    room = await room_of(anna, boris)
    body = "Напоминаю: контрольная по геометрии в среду"
    await say(anna, room, body)
    await world.settle()
    assert await found(boris, "контр") == [body]  # typing: the last word is a prefix
    assert await found(boris, "контр ") == []  # a finished word is a whole word
    assert await found(boris, "ко") == []  # too short to be a prefix
    page = await boris.request("search", query="контрольные геометрия")
    snippet = page["results"][0]["snippet"]
    assert snippet["text"] == body
    marked = [snippet["text"][a:b] for a, b in snippet["highlights"]]
    assert marked == ["контрольная", "геометрии"]


# -- rooms and visibility ------------------------------------------------------------------


async def test_per_room_and_across_rooms_newest_first(world: World) -> None:
    anna, boris = world.peers["anna"], world.peers["boris"]
    first = await room_of(anna, boris, name="7В")
    second = await room_of(anna, boris, name="8А")
    a = await say(anna, first, "собрание в пятницу")
    b = await say(anna, second, "собрание в четверг")
    c = await say(boris, first, "на собрание приду")
    await world.settle()
    page = await boris.request("search", query="собрание")
    assert [h["event"]["event_id"] for h in page["results"]] == [
        c["event_id"],
        b["event_id"],
        a["event_id"],
    ]
    assert page["results"][0]["event"] == c  # the event as stored, as history returns it
    only_first = await boris.request("search", query="собрание", room_id=first)
    assert [h["event"]["room_id"] for h in only_first["results"]] == [first, first]
    assert await found(boris, "собрание", room_id=second) == ["собрание в четверг"]


async def test_a_late_joiner_finds_nothing_from_before_the_join(world: World) -> None:
    anna, boris, vera = world.peers["anna"], world.peers["boris"], world.peers["vera"]
    room = await room_of(anna, boris)
    await say(anna, room, "секретное расписание до прихода Веры")
    await anna.request("invite", room_id=room, user_id=vera.user_id)
    # Invited only: nothing, and the room answers like a room that does not exist.
    assert await found(vera, "расписание") == []
    assert await vera.reject("search", query="расписание", room_id=room) == "not_member"
    await vera.request("join", room_id=room)
    await say(anna, room, "новое расписание для всех")
    await world.settle()
    assert await found(vera, "расписание") == ["новое расписание для всех"]
    assert await found(vera, "расписание", room_id=room) == ["новое расписание для всех"]
    assert len(await found(boris, "расписание")) == 2


async def test_a_member_who_left_finds_nothing_after_leaving(world: World) -> None:
    anna, boris = world.peers["anna"], world.peers["boris"]
    room = await room_of(anna, boris)
    await say(anna, room, "экскурсия в музей")
    await boris.request("leave", room_id=room)
    await say(anna, room, "экскурсия переносится")
    await world.settle()
    assert await found(boris, "экскурсия") == ["экскурсия в музей"]
    assert await found(boris, "экскурсия", room_id=room) == ["экскурсия в музей"]
    # Kicked from a room joined again: the two stretches, not the gap between them.
    await anna.request("state", room_id=room, type="join_rule", content={"join_rule": "public"})
    await boris.request("join", room_id=room)
    await say(anna, room, "экскурсия состоится")
    await anna.request("kick", room_id=room, user_id=boris.user_id)
    await say(anna, room, "экскурсия отменена")
    await world.settle()
    assert await found(boris, "экскурсия") == ["экскурсия состоится", "экскурсия в музей"]
    assert len(await found(anna, "экскурсия")) == 4


async def test_an_outsider_finds_nothing_and_cannot_tell_a_room_exists(world: World) -> None:
    anna, gleb = world.peers["anna"], world.peers["gleb"]
    room = await room_of(anna)
    await say(anna, room, "пароль от журнала")
    await world.settle()
    assert await found(gleb, "пароль") == []
    real = await gleb.call("search", query="пароль", room_id=room)
    fake = await gleb.call("search", query="пароль", room_id="!doesnotexist0000")
    assert real["error"]["code"] == fake["error"]["code"] == "not_member"
    assert real["error"]["message"].replace(room, "R") == fake["error"]["message"].replace(
        "!doesnotexist0000", "R"
    )


# -- redaction -------------------------------------------------------------------------------

SECRET = "qzxwvkjh"  # a word no other term in these tests starts like


def index_holds(db: sqlite3.Connection, word: bytes) -> list[str]:
    """The shadow tables of the index (and the staging table) that hold ``word``."""
    where: list[str] = []
    for table in ("search_index_data", "search_index_idx", "search_index_content"):
        for row in db.execute(f"SELECT * FROM {table}"):
            if any(word in (v if isinstance(v, bytes) else str(v).encode()) for v in row):
                where.append(table)
                break
    if db.execute(
        "SELECT 1 FROM search_pending WHERE terms LIKE ?", (f"%{word.decode()}%",)
    ).fetchone():
        where.append("search_pending")
    return where


async def test_a_redacted_message_is_not_found_and_its_terms_leave_the_index_files(
    world: World,
) -> None:
    anna, boris = world.peers["anna"], world.peers["boris"]
    room = await room_of(anna, boris)
    secret = await say(anna, room, f"код доступа {SECRET} не говорите никому")
    kept = await say(anna, room, "код от кабинета у завуча")
    for i in range(30):  # more segments in the index: the purge has to merge them all
        await say(anna, room, f"сообщение номер {i} про код")
    await world.settle()
    daemon = world.daemon
    staged_or_indexed = "search_index_data" if world.indexed else "search_pending"
    await wait_db(daemon, lambda db: staged_or_indexed in index_holds(db, SECRET.encode()))
    assert await found(boris, SECRET) == [secret["content"]["body"]]

    await anna.request("redact", room_id=room, event_id=secret["event_id"])
    assert await found(boris, SECRET) == []
    assert await found(anna, "доступа") == []
    codes = await found(boris, "код")
    assert secret["content"]["body"] not in codes and kept["content"]["body"] in codes
    await wait_db(daemon, lambda db: index_holds(db, SECRET.encode()) == [])
    await wait_db(
        daemon, lambda db: db.execute("SELECT pending FROM search_purge").fetchone()[0] == 0
    )
    assert await found(boris, "кабинета") == [kept["content"]["body"]]  # the rest intact


# -- edits, polls, files -------------------------------------------------------------------


async def test_an_edited_message_is_found_by_its_new_words_not_its_old_ones(world: World) -> None:
    anna, boris = world.peers["anna"], world.peers["boris"]
    room = await room_of(anna, boris)
    msg = await say(anna, room, "собрание в понедельник")
    await world.settle()
    first = (
        await anna.request(
            "edit", room_id=room, event_id=msg["event_id"], body="собрание во вторник"
        )
    )["event"]
    await world.settle()
    assert await found(boris, "понедельник") == []
    page = await boris.request("search", query="вторник")
    assert [h["event"]["event_id"] for h in page["results"]] == [msg["event_id"]]
    assert page["results"][0]["event"]["content"]["body"] == "собрание во вторник"
    second = (
        await anna.request("edit", room_id=room, event_id=msg["event_id"], body="собрание в среду")
    )["event"]
    await world.settle()
    assert await found(boris, "вторник") == [] and await found(boris, "среда") == [
        "собрание в среду"
    ]
    # Redacting the newest edit: the message shows (and is found by) the text before it.
    await anna.request("redact", room_id=room, event_id=second["event_id"])
    assert await found(boris, "среда") == []
    assert await found(boris, "вторник") == ["собрание во вторник"]
    assert first["content"]["replaces"] == msg["event_id"]
    await anna.request("redact", room_id=room, event_id=msg["event_id"])
    assert await found(boris, "собрание") == []
    await wait_db(world.daemon, lambda db: index_holds(db, "понедельник".encode()[:12]) == [])


async def test_poll_questions_options_and_file_names_are_found(world: World) -> None:
    anna, boris = world.peers["anna"], world.peers["boris"]
    room = await room_of(anna, boris)
    poll = (
        await anna.request(
            "poll",
            room_id=room,
            question="Когда едем на экскурсию?",
            options=["В субботу", "В воскресенье"],
        )
    )["event"]
    info = await upload(world.daemon.url, anna.token, "Список литературы на лето.txt")
    content = {"body": "прикрепила файл", "file": {"id": info["id"]}}
    post = (await anna.request("send", room_id=room, content=content))["event"]
    await world.settle()
    assert [
        h["event"]["event_id"]
        for h in (await boris.request("search", query="экскурсия"))["results"]
    ] == [poll["event_id"]]
    assert [
        h["event"]["event_id"]
        for h in (await boris.request("search", query="воскресенье"))["results"]
    ] == [poll["event_id"]]
    hits = (await boris.request("search", query="литература"))["results"]
    assert [h["event"]["event_id"] for h in hits] == [post["event_id"]]
    snippet = hits[0]["snippet"]
    assert [snippet["text"][a:b] for a, b in snippet["highlights"]] == ["литературы"]


async def upload(url: str, token: str | None, name: str) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            url + "/v1/files",
            params={"name": name},
            data="Пушкин, Лермонтов".encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "text/plain"},
        ) as resp,
    ):
        assert resp.status in (200, 201), await resp.text()
        return await resp.json()  # type: ignore[no-any-return]


# -- durability ----------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["restart", "crash"])
async def test_the_index_survives_a_restart_and_a_crash(daemon_factory, how: str) -> None:  # type: ignore[no-untyped-def]
    daemon = daemon_factory(config=STAGED)  # nothing moved into the index before the stop
    anna_user = daemon.add_user(first="Anna", last="Test")
    anna = await Peer.login(daemon.url, anna_user.token)
    room = await room_of(anna)
    bodies = [f"олимпиада по физике, тур {i}" for i in range(5)]
    for body in bodies:
        await say(anna, room, body)  # each acknowledged: committed with its terms
    await anna.close()
    if how == "crash":
        daemon.kill()
    else:
        daemon.stop()
    daemon.config.write_text(INDEXED)  # this time the staged rows are moved at once
    daemon.start()
    anna = await Peer.login(daemon.url, anna_user.token)
    try:
        assert await found(anna, "олимпиады") == bodies[::-1]
        await wait_db(daemon, lambda db: not db.execute("SELECT 1 FROM search_pending").fetchone())
        assert await found(anna, "физика тур") == bodies[::-1]
    finally:
        await anna.close()


async def test_messages_stored_before_the_index_existed_are_indexed_after_the_upgrade(
    daemon_factory,  # type: ignore[no-untyped-def]
) -> None:
    daemon = daemon_factory(config=INDEXED)
    anna_user = daemon.add_user(first="Anna", last="Test")
    anna = await Peer.login(daemon.url, anna_user.token)
    room = await room_of(anna)
    await say(anna, room, "старое объявление о каникулах")
    gone = await say(anna, room, "удалённое объявление о каникулах")
    await anna.request("redact", room_id=room, event_id=gone["event_id"])
    await anna.close()
    daemon.stop()
    # As a database of the version before search: no index, everything to backfill.
    db = sqlite3.connect(daemon.data_dir / "sferumd.sqlite")
    db.execute("DELETE FROM search_index")
    db.execute("DELETE FROM search_pending")
    db.execute("INSERT INTO search_backfill SELECT 0, max(pos) FROM events")
    db.commit()
    db.close()
    daemon.start()
    anna = await Peer.login(daemon.url, anna_user.token)
    try:
        await wait_db(daemon, lambda db: not db.execute("SELECT 1 FROM search_backfill").fetchone())
        assert await found(anna, "каникулы") == ["старое объявление о каникулах"]
    finally:
        await anna.close()


# -- pages ---------------------------------------------------------------------------------


async def test_pages_go_back_by_position_without_repeats(world: World) -> None:
    anna, boris = world.peers["anna"], world.peers["boris"]
    room = await room_of(anna, boris)
    sent = [await say(anna, room, f"урок номер {i}") for i in range(7)]
    await say(anna, room, "не про это")
    await world.settle()
    seen: list[int] = []
    before = None
    pages = 0
    while True:
        page = await boris.request("search", query="уроки", limit=3, before=before)
        pages += 1
        seen += [h["event"]["pos"] for h in page["results"]]
        if page["next"] is None:
            break
        assert page["next"] == page["results"][-1]["event"]["pos"]
        before = page["next"]
    assert pages == 3
    assert seen == [e["pos"] for e in sent][::-1]
    exact = await boris.request("search", query="уроки", limit=7)
    assert len(exact["results"]) == 7 and exact["next"] is None  # no empty page after the last


async def test_bad_search_requests_are_refused_at_the_edge(world: World) -> None:
    boris = world.peers["boris"]
    assert await boris.reject("search", query="x" * 501) == "too_large"
    assert await boris.reject("search", query="x", limit=0) == "invalid_field"
    assert await boris.reject("search", query="x", limit=101) == "invalid_field"
    assert await boris.reject("search", query=5) == "invalid_field"
    assert await boris.reject("search", room_id="!abc") == "missing_field"
    assert await boris.reject("search", query="x", room_id="not a room") == "invalid_field"
    assert await boris.reject("search", query="x", before=-1) == "invalid_field"
    assert (await boris.request("search", query="x" * 500)) == {"results": [], "next": None}


# -- hostile queries ----------------------------------------------------------------------

WORDS = ["контрольная", "урок", "lesson", "секрет", "пароль", "7В", "ёлка", "test"]
SYNTAX = [
    '"',
    "NEAR(",
    "AND",
    "OR",
    "NOT",
    "*",
    "(",
    ")",
    ":",
    "{",
    "}",
    "^",
    "-",
    "+",
    "terms:",
    "room:",
    "_",
    "'",
    "\\",
    "\x00",
    "%",
    "NEAR/2",
    "rowid",
    ";",
    "--",
]
hostile = st.one_of(
    st.text(max_size=500),
    st.lists(st.sampled_from(WORDS + SYNTAX), max_size=40).map(" ".join),
    st.lists(st.sampled_from(WORDS + SYNTAX), max_size=40).map("".join),
    st.lists(st.sampled_from(WORDS), min_size=1, max_size=300).map(" ".join).map(lambda s: s[:500]),
)


@dataclass
class Stage:
    world: World
    boris: Peer
    room: str
    visible: set[str]  # event ids boris was delivered


@pytest.fixture
async def stage(world: World) -> Stage:
    """Boris joins late, sees some messages, leaves; more are said before, after and in a
    room he never joins, every one of them made of the words the queries are made of."""
    anna, boris = world.peers["anna"], world.peers["boris"]
    room = await room_of(anna)
    other = await room_of(anna, world.peers["vera"])
    text = " ".join(WORDS)
    await say(anna, room, "до: " + text)
    await say(anna, other, "чужая комната: " + text)
    await anna.request("invite", room_id=room, user_id=boris.user_id)
    mark = boris.mark()
    await boris.request("join", room_id=room)
    for i in range(3):
        await say(anna, room, f"при Борисе {i}: " + text)
    await boris.request("leave", room_id=room)
    await say(anna, room, "после: " + text)
    await boris.barrier()
    await world.settle()
    visible = {ev["event_id"] for ev in boris.events(mark)}
    return Stage(world, boris, room, visible)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(query=hostile)
async def test_hostile_queries_never_fail_and_never_show_what_was_not_delivered(
    stage: Stage, query: str
) -> None:
    for fields in ({}, {"room_id": stage.room}, {"limit": 1}):
        page = await stage.boris.request("search", query=query, **fields)
        ids = {h["event"]["event_id"] for h in page["results"]}
        assert ids <= stage.visible, (query, page)
    assert len(await found(stage.boris, "секрет")) == 3


# -- the analysis alone, against a real FTS5 table (no daemon) ------------------------------


def _index_db() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:", isolation_level=None)
    migrate(db)
    return db


@settings(max_examples=400, deadline=None)
@given(text=st.text(max_size=300), probe=st.text(max_size=100))
def test_any_text_is_a_valid_query_and_a_message_is_found_by_its_own_words(
    text: str, probe: str
) -> None:
    db = _index_db()
    terms = textsearch.document_terms([text])
    room = textsearch.room_term("!room")
    if terms:
        db.execute("INSERT INTO search_index (rowid, terms, room) VALUES (1, ?, ?)", (terms, room))
    for q in (text, probe, text + " " + probe, text[: len(text) // 2]):
        query = textsearch.parse_query(q, 16, 3)
        if query:
            db.execute(
                "SELECT rowid FROM search_index WHERE search_index MATCH ?", (query.fts([room]),)
            ).fetchall()
    own = textsearch.parse_query(text + " ", 1000, 3)  # whole words only
    if own:
        hits = db.execute(
            "SELECT rowid FROM search_index WHERE search_index MATCH ?", (own.fts([room]),)
        ).fetchall()
        assert hits == [(1,)], (text, terms, own)


async def test_sdk_search_pages_through_hits(daemon) -> None:  # type: ignore[no-untyped-def]
    anna = daemon.add_user(first="Anna", last="Test")
    async with Client(daemon.url, anna.token) as client:
        room = await client.create_room("7В")
        for i in range(3):
            await client.send(room, f"Диктант номер {i}")
        page = await client.search("диктанты", room_id=room, limit=2)
        assert [h["event"]["content"]["body"] for h in page["results"]] == [
            "Диктант номер 2",
            "Диктант номер 1",
        ]
        rest = await client.search("диктанты", before=page["next"])
        assert [h["event"]["content"]["body"] for h in rest["results"]] == ["Диктант номер 0"]
        assert rest["next"] is None
        with pytest.raises(ClientError) as err:
            await client.search("диктант", room_id="!nosuchroom")
        assert err.value.code == "not_member"


def test_cli_search_prints_hits_as_json_lines(daemon) -> None:  # type: ignore[no-untyped-def]
    anna = daemon.add_user(first="Anna", last="Test")

    def cli(*args: str) -> list[str]:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "clients.cli",
                "--server",
                daemon.url,
                "--token",
                anna.token,
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=Path(__file__).parent.parent,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.splitlines()

    room = json.loads(cli("rooms", "create", "7В")[0])["room_id"]
    cli("send", room, "Контрольная перенесена")
    cli("send", room, "Контрольные работы проверены")
    hits = [
        json.loads(line) for line in cli("search", "контрольной", "--room", room, "--limit", "1")
    ]
    assert hits[0]["event"]["content"]["body"] == "Контрольные работы проверены"
    assert hits[1] == {"next": hits[0]["event"]["pos"]}
    assert [json.loads(line) for line in cli("search", "физика")] == []
