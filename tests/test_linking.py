"""Journal linking against a real daemon: signed journal requests, link sessions, confirming,
R5, unlinking from both sides, webhooks (a fake journal on 127.0.0.1) and the OpenAPI
document."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import sqlite3
import subprocess
import sys
import time
from typing import Any

import aiohttp
from aiohttp import web

from tests.test_auth import call


def add_journal(daemon: Any, name: str = "Дневник", webhook: str | None = None) -> dict[str, str]:
    cmd = [
        sys.executable,
        "-m",
        "sferumd",
        "admin",
        "add-journal",
        "--data-dir",
        str(daemon.data_dir),
        "--name",
        name,
    ]
    if webhook:
        cmd += ["--webhook-url", webhook]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    data: dict[str, str] = json.loads(out.stdout)
    return data


def signature(
    secret: str, ts: str, body: bytes, method: str = "", path: str = "", nonce: str = ""
) -> str:
    """Journal requests sign a nonce, METHOD and path too; webhooks (no method) the body."""
    signed = f"{nonce}.{method} {path}".encode() + b"." + body if method else body
    return hmac.new(secret.encode(), ts.encode() + b"." + signed, hashlib.sha256).hexdigest()


def signed_headers(
    journal: dict[str, str],
    method: str,
    path: str,
    raw: bytes,
    *,
    ts: int | None = None,
    secret: str | None = None,
    journal_id: str | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    stamp = str(int(time.time()) if ts is None else ts)
    nonce = secrets.token_urlsafe(16) if nonce is None else nonce
    return {
        "Content-Type": "application/json",
        "X-Sferum-Journal": journal["journal_id"] if journal_id is None else journal_id,
        "X-Sferum-Timestamp": stamp,
        "X-Sferum-Nonce": nonce,
        "X-Sferum-Signature": signature(
            secret or journal["secret"], stamp, raw, method, path, nonce
        ),
    }


async def jcall(
    daemon: Any,
    journal: dict[str, str],
    method: str,
    path: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    **sign: Any,
) -> tuple[int, dict[str, Any]]:
    """A signed journal request; ``sign`` overrides parts of the signing (to forge one),
    ``headers`` replaces the signed headers altogether (to replay some)."""
    raw = b"" if body is None else json.dumps(body).encode()
    headers = headers or signed_headers(journal, method, path, raw, **sign)
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, daemon.url + path, data=raw, headers=headers) as r,
    ):
        return r.status, await r.json()


async def new_session(
    daemon: Any, journal: dict[str, str], account: str, role: str, school: str = "s1"
) -> str:
    status, out = await jcall(
        daemon,
        journal,
        "POST",
        "/journal/v1/link-sessions",
        {"account_id": account, "role": role, "school_id": school, "school_name": "Школа 1"},
    )
    assert status == 200, out
    assert out["url"].startswith(daemon.url + "/link/")
    token: str = out["url"].rsplit("/", 1)[1]
    return token


def table(daemon: Any, name: str) -> list[Any]:
    conn = sqlite3.connect(daemon.data_dir / "sferumd.sqlite")
    try:
        return conn.execute(f"SELECT * FROM {name}").fetchall()
    finally:
        conn.close()


async def test_forged_journal_requests_refused(daemon) -> None:  # type: ignore[no-untyped-def]
    j = add_journal(daemon)
    body = {"account_id": "a1", "role": "student", "school_id": "s1"}
    path = "/journal/v1/link-sessions"
    cases = [
        ({"journal_id": "Jnope"}, "unknown_journal"),
        ({"journal_id": ""}, "unknown_journal"),
        ({"secret": "0" * 64}, "bad_signature"),
        ({"ts": int(time.time()) - 301}, "stale_request"),
        ({"ts": int(time.time()) + 400}, "stale_request"),
    ]
    for kw, code in cases:
        status, out = await jcall(daemon, j, "POST", path, body, **kw)
        assert (status, out["error"]["code"]) == (401, code), (kw, out)
    # A body changed after signing.
    headers = signed_headers(j, "POST", path, json.dumps(body).encode())
    status, out = await jcall(daemon, j, "POST", path, body | {"role": "t"}, headers=headers)
    assert (status, out["error"]["code"]) == (401, "bad_signature")
    status, out = await jcall(daemon, j, "GET", "/journal/v1/accounts/a1/link", secret="x")
    assert (status, out["error"]["code"]) == (401, "bad_signature")
    # A signature made for reading a link status is no good for deleting that link.
    link_path = "/journal/v1/accounts/a1/link"
    read = signed_headers(j, "GET", link_path, b"")
    status, out = await jcall(daemon, j, "DELETE", link_path, headers=read)
    assert (status, out["error"]["code"]) == (401, "bad_signature")
    # The same signed request twice: the copy is refused, whatever its timing.
    copy = signed_headers(j, "GET", link_path, b"")
    assert (await jcall(daemon, j, "GET", link_path, headers=copy))[0] == 200
    status, out = await jcall(daemon, j, "GET", link_path, headers=copy)
    assert (status, out["error"]["code"]) == (401, "replayed_request")
    # Nonces are required and well-formed (checked after the signature).
    for nonce in ("", "short", "x" * 65, "bad nonce with spaces!!"):
        status, out = await jcall(daemon, j, "POST", path, body, nonce=nonce)
        assert (status, out["error"]["code"]) == (401, "bad_nonce"), nonce
    assert table(daemon, "link_sessions") == []
    # Bad fields of a signed request.
    for bad in (
        {**body, "role": "admin"},
        {**body, "account_id": ""},
        {**body, "x": 1},
        {"role": "student", "school_id": "s"},
    ):
        status, out = await jcall(daemon, j, "POST", path, bad)
        assert (status, out["error"]["code"]) == (400, "invalid_field"), bad
    assert table(daemon, "link_sessions") == []
    # Session tokens are stored hashed.
    token = await new_session(daemon, j, "a1", "student")
    assert token not in json.dumps(table(daemon, "link_sessions"))


async def test_link_flow_one_time_and_status(daemon) -> None:  # type: ignore[no-untyped-def]
    j = add_journal(daemon, "Журнал")
    other = add_journal(daemon, "Другой")
    alice, bob = daemon.add_user("Алиса", "А"), daemon.add_user("Боб", "Б")
    token = await new_session(daemon, j, "t-1", "teacher", "school-7")
    status, out = await call(daemon.url, "GET", f"/v1/link/{token}")
    assert status == 200 and out["role"] == "teacher" and out["school_id"] == "school-7"
    assert out["journal"] == "Журнал" and "expires_at" in out
    status, out = await call(daemon.url, "POST", f"/v1/link/{token}/confirm")
    assert (status, out["error"]["code"]) == (401, "auth_failed")
    # The role and school come from the session, whatever the request body says.
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            f"{daemon.url}/v1/link/{token}/confirm",
            json={"role": "student", "school_id": "evil"},
            headers={"Authorization": f"Bearer {alice.token}"},
        ) as r,
    ):
        out = await r.json()
        assert r.status == 200, out
    assert out["role"] == "teacher" and out["school_id"] == "school-7"
    assert out["account_id"] == "t-1"
    # Second person opening the used URL: refused, nothing changes.
    before = table(daemon, "links")
    status, out = await call(daemon.url, "POST", f"/v1/link/{token}/confirm", token=bob.token)
    assert (status, out["error"]["code"]) == (410, "link_used")
    status, out = await call(daemon.url, "GET", f"/v1/link/{token}")
    assert (status, out["error"]["code"]) == (410, "link_used")
    assert table(daemon, "links") == before
    status, out = await call(daemon.url, "GET", "/v1/link/nope")
    assert (status, out["error"]["code"]) == (404, "link_not_found")
    status, out = await call(daemon.url, "POST", "/v1/link/nope/confirm", token=bob.token)
    assert (status, out["error"]["code"]) == (404, "link_not_found")
    # Status for this journal only.
    status, out = await jcall(daemon, j, "GET", "/journal/v1/accounts/t-1/link")
    assert status == 200 and out["linked"] is True and out["user_id"] == alice.user_id
    assert "linked_at" in out
    status, out = await jcall(daemon, other, "GET", "/journal/v1/accounts/t-1/link")
    assert (status, out) == (200, {"linked": False})
    # A new session for the same account, confirmed by someone else: already linked.
    token2 = await new_session(daemon, j, "t-1", "teacher")
    status, out = await call(daemon.url, "POST", f"/v1/link/{token2}/confirm", token=bob.token)
    assert (status, out["error"]["code"]) == (409, "already_linked")
    status, out = await call(daemon.url, "GET", "/v1/links", token=alice.token)
    assert status == 200 and len(out["links"]) == 1
    link = out["links"][0]
    assert link["journal"] == "Журнал" and link["role"] == "teacher"
    assert link["account_id"] == "t-1" and link["school_id"] == "school-7"
    status, out = await call(daemon.url, "GET", "/v1/links", token=bob.token)
    assert out == {"links": []}


async def test_expired_session(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory("[journal]\nlink_ttl_s = 0.3\n")
    j = add_journal(d)
    user = d.add_user()
    token = await new_session(d, j, "s-1", "student")
    deadline = time.monotonic() + 10
    while True:
        status, out = await call(d.url, "GET", f"/v1/link/{token}")
        if status != 200 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert (status, out["error"]["code"]) == (410, "link_expired")
    status, out = await call(d.url, "POST", f"/v1/link/{token}/confirm", token=user.token)
    assert (status, out["error"]["code"]) == (410, "link_expired")
    assert table(d, "links") == []


async def test_role_conflict_both_ways(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory('[journal]\nsupport_contact = "help@school.example"\n')
    j = add_journal(d)
    parent, child = d.add_user("Мама", "И"), d.add_user("Сын", "И")
    t = await new_session(d, j, "p-1", "parent")
    assert (await call(d.url, "POST", f"/v1/link/{t}/confirm", token=parent.token))[0] == 200
    t = await new_session(d, j, "s-1", "student")
    status, out = await call(d.url, "POST", f"/v1/link/{t}/confirm", token=parent.token)
    assert (status, out["error"]["code"]) == (409, "role_conflict")
    assert "child's own phone number" in out["error"]["message"]
    assert "help@school.example" in out["error"]["message"]
    # Refused, not burnt: the child can still use it.
    status, out = await call(d.url, "POST", f"/v1/link/{t}/confirm", token=child.token)
    assert status == 200, out
    for role in ("teacher", "parent"):
        t = await new_session(d, j, f"{role}-2", role)
        status, out = await call(d.url, "POST", f"/v1/link/{t}/confirm", token=child.token)
        assert (status, out["error"]["code"]) == (409, "role_conflict"), role
        assert "help@school.example" in out["error"]["message"]
    assert sorted(r[1] for r in table(d, "links")) == ["p-1", "s-1"]


async def test_unlink_both_sides_and_webhooks(daemon) -> None:  # type: ignore[no-untyped-def]
    got: list[tuple[dict[str, str], bytes]] = []
    arrived = asyncio.Event()
    fail_first = [True]

    async def hook(request: web.Request) -> web.Response:
        if fail_first[0]:  # the daemon retries
            fail_first[0] = False
            return web.Response(status=503)
        got.append((dict(request.headers), await request.read()))
        arrived.set()
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        j = add_journal(daemon, webhook=f"http://127.0.0.1:{port}/hook")
        user = daemon.add_user()

        async def next_hook() -> dict[str, Any]:
            await asyncio.wait_for(arrived.wait(), 15)
            arrived.clear()
            headers, body = got[-1]
            ts = headers["X-Sferum-Timestamp"]
            assert hmac.compare_digest(
                headers["X-Sferum-Signature"], signature(j["secret"], ts, body)
            )
            assert abs(int(ts) - time.time()) < 60
            data: dict[str, Any] = json.loads(body)
            return data

        t = await new_session(daemon, j, "acc", "parent")
        assert (await call(daemon.url, "POST", f"/v1/link/{t}/confirm", token=user.token))[0] == 200
        hook1 = await next_hook()
        assert hook1["type"] == "linked" and hook1["account_id"] == "acc"
        assert hook1["user_id"] == user.user_id and isinstance(hook1["ts"], int)
        # Unlink from the journal; idempotent.
        for _ in range(2):
            status, out = await jcall(daemon, j, "DELETE", "/journal/v1/accounts/acc/link")
            assert (status, out) == (200, {"linked": False})
        assert (await next_hook())["type"] == "unlinked"
        status, out = await jcall(daemon, j, "GET", "/journal/v1/accounts/acc/link")
        assert out == {"linked": False}
        # Link again, unlink from the profile.
        t = await new_session(daemon, j, "acc", "parent")
        assert (await call(daemon.url, "POST", f"/v1/link/{t}/confirm", token=user.token))[0] == 200
        assert (await next_hook())["type"] == "linked"
        other = daemon.add_user()
        path = f"/v1/links/{j['journal_id']}/acc"
        status, out = await call(daemon.url, "DELETE", path, token=other.token)
        assert (status, out["error"]["code"]) == (404, "not_found")
        status, out = await call(daemon.url, "DELETE", path, token=user.token)
        assert (status, out) == (200, {"linked": False})
        assert (await next_hook())["type"] == "unlinked"
        status, out = await jcall(daemon, j, "GET", "/journal/v1/accounts/acc/link")
        assert out == {"linked": False}
        assert (await call(daemon.url, "GET", "/v1/links", token=user.token))[1] == {"links": []}
        assert len(got) == 4
    finally:
        await runner.cleanup()


async def test_webhook_failure_does_not_block(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory("[journal]\nwebhook_attempts = 2\nwebhook_backoff_s = 0.05\n")
    j = add_journal(d, webhook="http://127.0.0.1:9/nowhere")
    user = d.add_user()
    t = await new_session(d, j, "acc", "teacher")
    status, _ = await call(d.url, "POST", f"/v1/link/{t}/confirm", token=user.token)
    assert status == 200
    deadline = time.monotonic() + 15
    while "webhook failed" not in d.log() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert "webhook failed" in d.log()


async def test_openapi_lists_every_route(daemon) -> None:  # type: ignore[no-untyped-def]
    async with aiohttp.ClientSession() as s, s.get(daemon.url + "/journal/v1/openapi.json") as r:
        assert r.status == 200
        doc = json.loads(await r.text())
    assert doc["openapi"].startswith("3.")
    ops = {(path, m) for path, item in doc["paths"].items() for m in item if m != "parameters"}
    assert ops == {
        ("/journal/v1/link-sessions", "post"),
        ("/journal/v1/accounts/{account_id}/link", "get"),
        ("/journal/v1/accounts/{account_id}/link", "delete"),
        ("/journal/v1/openapi.json", "get"),
        ("/journal/v1/events", "post"),
        ("/journal/v1/snapshot", "post"),
        ("/journal/v1/oneroster", "post"),
        ("/journal/v1/accounts/{account_id}/chats", "get"),
        ("/journal/v1/subject-chats", "post"),
        ("/journal/v1/subject-chats/{chat_id}", "get"),
        ("/journal/v1/subject-chats/{chat_id}", "patch"),
        ("/journal/v1/subject-chats/{chat_id}", "delete"),
        ("/journal/v1/subject-chats/{chat_id}/members", "post"),
        ("/journal/v1/videoconferences", "post"),
        ("/journal/v1/videoconferences/{videoconference_id}", "get"),
        ("/journal/v1/videoconferences/{videoconference_id}", "patch"),
        ("/journal/v1/videoconferences/{videoconference_id}", "delete"),
        ("/journal/v1/videoconferences/{videoconference_id}/end", "post"),
        ("/journal/v1/videoconferences/{videoconference_id}/participants/{account_id}", "put"),
        ("/journal/v1/videoconferences/{videoconference_id}/attendance", "get"),
        ("/journal/v1/accounts/{account_id}/videoconferences", "get"),
    }
    for path, method in ops:
        assert doc["paths"][path][method]["responses"]
    # ... and exactly the routes the daemon serves under /journal/v1/.
    from sferumd import config
    from sferumd.api.app import create_app

    app = create_app(config.load(None, data_dir=str(daemon.data_dir / "app")))
    served = {
        (r.resource.canonical, r.method.lower())
        for r in app.router.routes()
        if r.resource is not None
        and r.resource.canonical.startswith("/journal/v1/")
        and r.method != "HEAD"
    }
    assert served == ops


def test_add_journal_cli_refuses_bad_input(tmp_path) -> None:  # type: ignore[no-untyped-def]
    base = [sys.executable, "-m", "sferumd", "admin", "add-journal", "--data-dir", str(tmp_path)]
    for extra in (["--name", " "], ["--name", "x", "--webhook-url", "ftp://x"]):
        r = subprocess.run(base + extra, capture_output=True, text=True)
        assert r.returncode == 2, r.stderr


async def test_link_session_rate_limit_and_cleanup(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory("[journal]\nlink_sessions_per_minute = 3\nlink_retention_s = 0\n")
    j, other = add_journal(d), add_journal(d, "Другой")
    tokens = [await new_session(d, j, f"a{i}", "student") for i in range(3)]
    body = {"account_id": "a9", "role": "student", "school_id": "s1"}
    status, out = await jcall(d, j, "POST", "/journal/v1/link-sessions", body)
    assert (status, out["error"]["code"]) == (429, "rate_limited")
    assert 1 <= out["error"]["retry_after"] <= 60
    assert len(table(d, "link_sessions")) == 3
    # The limit is per journal.
    await new_session(d, other, "b1", "parent")
    # Expired sessions past their retention are deleted when the next one is made; the old
    # URL then reads as unknown, the others still work.
    conn = sqlite3.connect(d.data_dir / "sferumd.sqlite")
    with conn:
        conn.execute("UPDATE link_sessions SET expires_ts = 0 WHERE account_id = 'a0'")
    conn.close()
    status, out = await call(d.url, "GET", f"/v1/link/{tokens[0]}")
    assert (status, out["error"]["code"]) == (410, "link_expired")
    await new_session(d, other, "b2", "parent")
    status, out = await call(d.url, "GET", f"/v1/link/{tokens[0]}")
    assert (status, out["error"]["code"]) == (404, "link_not_found")
    assert (await call(d.url, "GET", f"/v1/link/{tokens[1]}"))[0] == 200
    assert len(table(d, "link_sessions")) == 4


async def test_cli_link_links_unlink(daemon) -> None:  # type: ignore[no-untyped-def]
    from tests.test_cli import SFERUM

    j = add_journal(daemon)
    user = daemon.add_user()
    status, out = await jcall(
        daemon,
        j,
        "POST",
        "/journal/v1/link-sessions",
        {"account_id": "p-1", "role": "parent", "school_id": "s1", "school_name": "Школа 1"},
    )
    assert status == 200, out
    url = out["url"]

    async def run(*args: str) -> tuple[int, list[Any], str]:
        p = await asyncio.create_subprocess_exec(
            *SFERUM,
            "--server",
            daemon.url,
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        o, e = await asyncio.wait_for(p.communicate(), 30)
        assert p.returncode is not None
        return p.returncode, [json.loads(line) for line in o.decode().splitlines()], e.decode()

    rc, [offer], _ = await run("link", "--show", url)
    assert rc == 0 and (offer["role"], offer["school_name"]) == ("parent", "Школа 1")
    rc, [linked], e = await run("--token", user.token, "link", url)
    assert rc == 0, e
    assert (linked["linked"], linked["account_id"]) == (True, "p-1")
    rc, _, e = await run("--token", user.token, "link", url)
    assert rc == 1 and json.loads(e)["error"]["code"] == "link_used"
    rc, rows, _ = await run("--token", user.token, "links")
    assert [(r["journal_id"], r["account_id"]) for r in rows] == [(j["journal_id"], "p-1")]
    rc, [out2], _ = await run("--token", user.token, "unlink", j["journal_id"], "p-1")
    assert rc == 0 and out2 == {"linked": False}
    _, out = await jcall(daemon, j, "GET", "/journal/v1/accounts/p-1/link")
    assert out == {"linked": False}
    rc, rows, _ = await run("--token", user.token, "links")
    assert rc == 0 and rows == []
