"""OneRoster import through the running daemon: over HTTP (JSON, or NDJSON progress) and with
``sferumd journal import-oneroster`` (a progress bar on stderr); the chats follow."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import aiohttp

from clients.journal import signed_headers
from tests.test_linking import add_journal
from tests.test_oneroster import ENROLLMENTS, SCHOOL_FILES, make_zip
from tests.test_roster_api import chats, link


async def run_import(
    d: Any, j: dict[str, str], data: bytes, tmp_path: Any, *extra: str
) -> tuple[int, str, str]:
    path = tmp_path / "roster.zip"
    path.write_bytes(data)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sferumd",
        "journal",
        "import-oneroster",
        str(path),
        "--server",
        d.url,
        "--journal-id",
        j["journal_id"],
        "--data-dir",
        str(d.data_dir),
        *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_cli_import_with_progress_then_chats_and_a_bulk_reimport(daemon, tmp_path) -> None:  # type: ignore[no-untyped-def]
    d = daemon
    j = add_journal(d)
    rc, out, err = await run_import(d, j, make_zip(SCHOOL_FILES), tmp_path)
    assert rc == 0, err
    result = json.loads(out)
    assert result["errors"] == [] and result["applied"] > 10 and result["rows"] > 20
    assert "rows" in err and "100%" in err  # tqdm's bar reached the end
    teacher = d.add_user()
    await link(d, j, "T1", "teacher", teacher.token)
    mine = await chats(d, teacher.token)
    assert {k: r["name"] for k, r in mine.items()} == {
        "class": "7А",
        "parents": "7А — родители",
        "colleagues": "7А — учителя",
    }
    pupil = d.add_user()
    await link(d, j, "P3", "student", pupil.token)
    assert "class" in await chats(d, pupil.token)

    # The same bulk export without P3's enrollment: she leaves the class chat.
    files = dict(SCHOOL_FILES)
    files["enrollments.csv"] = [row for row in ENROLLMENTS if row[0] not in ("E-P3", "E-M3")]
    rc, out, err = await run_import(d, j, make_zip(files), tmp_path, "--no-progress")
    assert rc == 0, err
    again = json.loads(out)
    assert again["deactivated"] >= 1 and again["applied"] >= 1
    assert err == ""
    assert "class" not in await chats(d, pupil.token)
    # The identical export once more changes nothing.
    rc, out, _ = await run_import(d, j, make_zip(files), tmp_path, "--no-progress")
    assert (json.loads(out)["applied"], json.loads(out)["deactivated"]) == (0, 0)


async def test_http_import_reports_bad_rows_and_refuses_bad_zips(daemon, tmp_path) -> None:  # type: ignore[no-untyped-def]
    d = daemon
    j = add_journal(d)
    files = dict(SCHOOL_FILES)
    files["enrollments.csv"] = [*ENROLLMENTS, ["E-BAD", "", "", "C7A", "S1", "", "student", ""]]
    data = make_zip(files)
    path = "/journal/v1/oneroster"
    headers = {**signed_headers(j["journal_id"], j["secret"], "POST", path, data)}
    async with aiohttp.ClientSession() as s, s.post(d.url + path, data=data, headers=headers) as r:
        assert r.status == 200
        out = await r.json()
    [bad] = out["errors"]
    assert (bad["file"], bad["code"]) == ("enrollments.csv", "missing_value")
    assert bad["line"] == len(ENROLLMENTS) + 1
    assert out["applied"] > 10

    rc, _, err = await run_import(d, j, b"not a zip at all", tmp_path)
    assert rc == 1 and json.loads(err)["error"]["code"] == "bad_zip"
    rc, _, err = await run_import(d, {**j, "journal_id": "Jnope"}, data, tmp_path)
    assert rc == 2 and "no journal" in err
