"""Phone sign-in, profile and devices over HTTP against a real daemon; codes are read from
the console SMS gateway's lines in the daemon log."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import sqlite3
import time
import urllib.error
import urllib.request
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clients import sdk
from protocol.errors import CloseCode
from tests.test_cli import SFERUM

FAST = """
[auth]
resend_cooldown_s = 0.0
codes_per_phone_per_hour = 1000
codes_per_address_per_hour = 1000
"""


def codes(daemon: Any, phone: str) -> list[str]:
    out = []
    for line in daemon.log().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("msg") == "sms code" and rec.get("phone") == phone:
            out.append(rec["code"])
    return out


async def call(
    url: str, method: str, path: str, body: Any = None, token: str | None = None
) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, url + path, json=body, headers=headers) as r,
    ):
        return r.status, await r.json()


async def sign_in(daemon: Any, phone: str, name: str | None = None) -> dict[str, Any]:
    status, sent = await call(daemon.url, "POST", "/v1/auth/code", {"phone": phone})
    assert status == 200, sent
    code = codes(daemon, sent["phone"])[-1]
    body = {"phone": phone, "code": code} | ({"device_name": name} if name else {})
    status, out = await call(daemon.url, "POST", "/v1/auth/verify", body)
    assert status == 200, out
    return out


def db_dump(daemon: Any) -> list[Any]:
    conn = sqlite3.connect(daemon.data_dir / "sferumd.sqlite")
    try:
        return [
            conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
            for t in ("users", "devices", "auth_codes", "auth_sends")
        ]
    finally:
        conn.close()


async def test_sign_in_new_then_same_phone(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(FAST)
    first = await sign_in(d, "+7 999 111-22-33", "laptop")
    assert first["needs_profile"] is True and set(first) == {
        "user_id",
        "device_id",
        "token",
        "needs_profile",
    }
    second = await sign_in(d, "8 (999) 111 22 33")
    assert second["user_id"] == first["user_id"]
    assert second["device_id"] != first["device_id"] and second["token"] != first["token"]
    users = db_dump(d)[0]
    assert len(users) == 1 and users[0][1] == "+79991112233"
    devs = await sdk.devices(d.url, second["token"])
    assert [(x["name"], x["current"]) for x in devs] == [("laptop", False), (None, True)]
    assert all("token" not in x for x in devs)
    # Tokens and codes are hashed at rest.
    raw = (d.data_dir / "sferumd.sqlite").read_bytes()
    assert first["token"].encode() not in raw


async def test_existing_admin_user_signs_into_same_profile(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(FAST)
    admin = d.add_user(phone="+79995550011")
    out = await sign_in(d, "89995550011")
    assert out["user_id"] == admin.user_id and out["needs_profile"] is False


@pytest.mark.parametrize(
    "raw", ["8 999 123-45-67", "+7 999 123 45 67", "+7-999-123-45-67", "89991234567", "9991234567"]
)
async def test_formats_normalise(daemon_factory, raw: str) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(FAST)
    status, out = await call(d.url, "POST", "/v1/auth/code", {"phone": raw})
    assert status == 200 and out["phone"] == "+79991234567"


def test_garbage_phones_never_500(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(FAST)

    @settings(
        max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(st.one_of(st.text(max_size=40), st.integers(), st.none(), st.lists(st.text())))
    def check(phone: Any) -> None:
        req = urllib.request.Request(
            d.url + "/v1/auth/code", data=json.dumps({"phone": phone}).encode(), method="POST"
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                status, body = r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            status, body = e.code, json.loads(e.read())
        assert status in (200, 400), (status, body)
        if status == 400:
            assert body["error"]["code"] == "invalid_phone"
        else:
            assert body["phone"].startswith("+")

    check()
    status, _ = asyncio.run(call(d.url, "GET", "/health"))
    assert status == 200


async def test_bad_bodies(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(FAST)
    async with aiohttp.ClientSession() as s:
        for data in (b"not json", b"[1]", b"\xff\xfe", b"x" * 10_000):
            async with s.post(d.url + "/v1/auth/code", data=data) as r:
                assert r.status in (400, 413)
                assert (await r.json())["error"]["code"] in ("bad_json", "too_large")
    for code in ("12345", "1234567", "abcdef", 123456, None, "１２３４５６"):
        status, out = await call(
            d.url, "POST", "/v1/auth/verify", {"phone": "+79990000001", "code": code}
        )
        assert status == 400 and out["error"]["code"] == "invalid_field", (code, out)
    assert db_dump(d) == [[], [], [], []]


async def test_wrong_codes_burn_and_reuse_refused(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(FAST)
    phone = "+79990000002"
    status, out = await call(d.url, "POST", "/v1/auth/verify", {"phone": phone, "code": "000000"})
    assert status == 400 and out["error"]["code"] == "no_code"
    await call(d.url, "POST", "/v1/auth/code", {"phone": phone})
    good = codes(d, phone)[-1]
    wrong = f"{(int(good) + 1) % 1_000_000:06d}"
    seen = []
    for _ in range(5):
        status, out = await call(d.url, "POST", "/v1/auth/verify", {"phone": phone, "code": wrong})
        assert status == 400
        seen.append((out["error"]["code"], out["error"].get("tries_left")))
    assert seen == [
        ("wrong_code", 4),
        ("wrong_code", 3),
        ("wrong_code", 2),
        ("wrong_code", 1),
        ("code_burned", None),
    ]
    status, out = await call(d.url, "POST", "/v1/auth/verify", {"phone": phone, "code": good})
    assert status == 400 and out["error"]["code"] == "code_burned"
    assert db_dump(d)[0] == []  # no user was made
    # A fresh code works once, then can't be reused.
    await call(d.url, "POST", "/v1/auth/code", {"phone": phone})
    good = codes(d, phone)[-1]
    status, _ = await call(d.url, "POST", "/v1/auth/verify", {"phone": phone, "code": good})
    assert status == 200
    status, out = await call(d.url, "POST", "/v1/auth/verify", {"phone": phone, "code": good})
    assert status == 400 and out["error"]["code"] == "no_code"


async def test_expired_code(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(FAST + "code_ttl_s = 0.2\n")
    phone = "+79990000003"
    await call(d.url, "POST", "/v1/auth/code", {"phone": phone})
    code = codes(d, phone)[-1]
    await asyncio.sleep(0.4)
    status, out = await call(d.url, "POST", "/v1/auth/verify", {"phone": phone, "code": code})
    assert status == 400 and out["error"]["code"] == "code_expired"


async def test_cooldown_and_limits(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(
        "[auth]\nresend_cooldown_s = 60.0\ncodes_per_phone_per_hour = 2\n"
        "codes_per_address_per_hour = 3\n"
    )
    status, _ = await call(d.url, "POST", "/v1/auth/code", {"phone": "+79990000004"})
    assert status == 200
    before = db_dump(d)
    status, out = await call(d.url, "POST", "/v1/auth/code", {"phone": "+79990000004"})
    assert status == 429 and out["error"]["code"] == "rate_limited"
    assert 55 <= out["error"]["retry_after"] <= 60
    assert db_dump(d) == before and len(codes(d, "+79990000004")) == 1

    d2 = daemon_factory(
        "[auth]\nresend_cooldown_s = 0.0\ncodes_per_phone_per_hour = 2\n"
        "codes_per_address_per_hour = 3\n",
        name="d2",
    )
    for _ in range(2):
        assert (await call(d2.url, "POST", "/v1/auth/code", {"phone": "+79990000005"}))[0] == 200
    status, out = await call(d2.url, "POST", "/v1/auth/code", {"phone": "+79990000005"})
    assert status == 429 and out["error"]["code"] == "rate_limited"  # per phone
    assert (await call(d2.url, "POST", "/v1/auth/code", {"phone": "+79990000006"}))[0] == 200
    status, out = await call(d2.url, "POST", "/v1/auth/code", {"phone": "+79990000007"})
    assert status == 429 and out["error"]["code"] == "rate_limited"  # per address
    assert 3590 <= out["error"]["retry_after"] <= 3600
    assert codes(d2, "+79990000007") == []


class FakeProvider:
    def __init__(self, secret: str, fail: bool = False):
        self.secret = secret
        self.fail = fail
        self.got: list[dict[str, Any]] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        ts = request.headers["X-Sferum-Timestamp"]
        expected = hmac.new(self.secret.encode(), ts.encode() + b"." + body, hashlib.sha256)
        assert hmac.compare_digest(request.headers["X-Sferum-Signature"], expected.hexdigest())
        assert abs(int(ts) - time.time()) < 60
        self.got.append(json.loads(body))
        return web.json_response({}, status=500 if self.fail else 200)


async def _provider(p: FakeProvider) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/send", p.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}/send"


async def test_http_gateway_signed_and_failure(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    good, bad = FakeProvider("s3cret"), FakeProvider("s3cret", fail=True)
    r1, url1 = await _provider(good)
    r2, url2 = await _provider(bad)
    try:
        cfg = FAST + 'sms_gateway = "http"\nsms_http_secret = "s3cret"\nsms_http_url = "{}"\n'
        d = daemon_factory(cfg.format(url1))
        status, _ = await call(d.url, "POST", "/v1/auth/code", {"phone": "+79990000008"})
        assert status == 200
        assert good.got[0]["phone"] == "+79990000008"
        code = good.got[0]["text"].split("входа ")[1][:6]
        assert code.isdigit() and codes(d, "+79990000008") == []  # not logged
        status, out = await call(
            d.url, "POST", "/v1/auth/verify", {"phone": "+79990000008", "code": code}
        )
        assert status == 200, out

        d2 = daemon_factory(cfg.format(url2), name="d2")
        status, out = await call(d2.url, "POST", "/v1/auth/code", {"phone": "+79990000009"})
        assert status == 502 and out["error"]["code"] == "sms_failed"
        assert len(bad.got) == 1
        assert db_dump(d2)[2] == []  # the unsent code is not usable
        status, out = await call(
            d2.url, "POST", "/v1/auth/verify", {"phone": "+79990000009", "code": "123456"}
        )
        assert out["error"]["code"] == "no_code"
    finally:
        await r1.cleanup()
        await r2.cleanup()


BAD_PROFILES: list[tuple[dict[str, Any], str]] = [
    ({"last_name": "Б"}, "first_name"),
    ({"first_name": "   ", "last_name": "Б"}, "first_name"),
    ({"first_name": "А" * 101, "last_name": "Б"}, "first_name"),
    ({"first_name": "А\x00", "last_name": "Б"}, "first_name"),
    ({"first_name": "А", "last_name": 5}, "last_name"),
    ({"first_name": "А", "last_name": "Б", "patronymic": "x\u202e"}, "patronymic"),
    ({"first_name": "А", "last_name": "Б", "birth_date": "2010-02-30"}, "birth_date"),
    ({"first_name": "А", "last_name": "Б", "birth_date": "1899-12-31"}, "birth_date"),
    ({"first_name": "А", "last_name": "Б", "birth_date": "2999-01-01"}, "birth_date"),
    ({"first_name": "А", "last_name": "Б", "birth_date": "20100101"}, "birth_date"),
    ({"first_name": "А", "last_name": "Б", "gender": "other"}, "gender"),
    ({"first_name": "А", "last_name": "Б", "phone": "+79990000000"}, "phone"),
]


async def test_profile(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(FAST)
    me = await sign_in(d, "+79990000010")
    status, out = await call(d.url, "GET", "/v1/profile")
    assert status == 401 and out["error"]["code"] == "auth_failed"
    status, out = await call(d.url, "GET", "/v1/profile", token="nope")
    assert status == 401 and out["error"]["code"] == "auth_failed"
    before = db_dump(d)
    for body, field in BAD_PROFILES:
        status, out = await call(d.url, "PUT", "/v1/profile", body, token=me["token"])
        assert status == 400 and out["error"]["code"] == "invalid_field", body
        assert out["error"]["message"].startswith(field), (body, out)
    assert db_dump(d) == before
    fields = {
        "first_name": " Анна ",
        "last_name": "Иванова",
        "patronymic": "Сергеевна",
        "birth_date": "2011-05-04",
        "gender": "female",
    }
    out = await sdk.update_profile(d.url, me["token"], fields)
    assert out["first_name"] == "Анна" and out["needs_profile"] is False
    got = await sdk.profile(d.url, me["token"])
    assert got == out and got["phone"] == "+79990000010" and got["birth_date"] == "2011-05-04"
    again = await sign_in(d, "+79990000010")
    assert again["needs_profile"] is False and again["user_id"] == me["user_id"]


async def test_devices_revoke_logout(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(FAST)
    a1 = await sign_in(d, "+79990000011", "phone")
    a2 = await sign_in(d, "+79990000011", "laptop")
    b = await sign_in(d, "+79990000012")
    live = sdk.Client(d.url, a1["token"], reconnect=False)
    await live.connect()
    try:
        # Another user's device is not found; nothing changes.
        with pytest.raises(sdk.ClientError) as err:
            await sdk.revoke_device(d.url, b["token"], a1["device_id"])
        assert err.value.code == "not_found"
        listed = await sdk.devices(d.url, a2["token"])
        assert {x["device_id"] for x in listed} == {a1["device_id"], a2["device_id"]}
        assert next(x for x in listed if x["device_id"] == a1["device_id"])["last_seen_ts"]
        await sdk.revoke_device(d.url, a2["token"], a1["device_id"])
        closed = await asyncio.wait_for(_close_code(live), 5)
        assert closed == CloseCode.DEVICE_REVOKED
    finally:
        await live.close()
    for path, method in (("/v1/profile", "GET"), ("/v1/devices", "GET")):
        status, out = await call(d.url, method, path, token=a1["token"])
        assert status == 401 and out["error"]["code"] == "auth_failed"
    again = sdk.Client(d.url, a1["token"], reconnect=False)
    with pytest.raises(sdk.ClientError) as err:
        await again.connect()
    assert err.value.code == "auth_failed"
    await again.close()
    with pytest.raises(sdk.ClientError) as err:
        await sdk.revoke_device(d.url, a2["token"], a1["device_id"])  # already revoked
    assert err.value.code == "not_found"
    assert [x["device_id"] for x in await sdk.devices(d.url, a2["token"])] == [a2["device_id"]]
    await sdk.logout(d.url, a2["token"])
    status, out = await call(d.url, "GET", "/v1/devices", token=a2["token"])
    assert status == 401
    assert len(await sdk.devices(d.url, b["token"])) == 1


async def _close_code(client: sdk.Client) -> int:
    async for push in client.stream():
        if "closed" in push:
            return int(push["closed"]["code"])
    raise AssertionError("stream ended without a close")


async def test_cli_login_profile_devices(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(FAST)
    proc = await asyncio.create_subprocess_exec(
        *SFERUM,
        "--server",
        d.url,
        "login",
        "8 999 000 00 13",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stderr is not None
    prompt = await asyncio.wait_for(proc.stderr.readuntil(b": "), 20)
    assert b"+79990000013" in prompt
    code = codes(d, "+79990000013")[-1]
    out, _ = await asyncio.wait_for(proc.communicate((code + "\n").encode()), 20)
    assert proc.returncode == 0
    login = json.loads(out)
    token = login["token"]

    async def run(*args: str) -> tuple[int, str, str]:
        p = await asyncio.create_subprocess_exec(
            *SFERUM,
            "--server",
            d.url,
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        o, e = await asyncio.wait_for(p.communicate(), 20)
        assert p.returncode is not None
        return p.returncode, o.decode(), e.decode()

    rc, o, e = await run(
        "--token", token, "profile", "--set", "first_name=Пётр", "--set", "last_name=Сидоров"
    )
    assert rc == 0, e
    assert json.loads(o)["first_name"] == "Пётр"
    rc, o, e = await run("--token", token, "profile", "--set", "gender=robot")
    assert rc == 1 and json.loads(e)["error"]["code"] == "invalid_field"
    rc, o, _ = await run("--token", token, "devices")
    [dev] = [json.loads(line) for line in o.splitlines()]
    assert dev["current"] is True and dev["device_id"] == login["device_id"]
    rc, o, e = await run("profile")
    assert rc == 2 and "--token" in e
    rc, o, _ = await run("--token", token, "devices", "revoke", dev["device_id"])
    assert rc == 0
    rc, o, e = await run("--token", token, "devices")
    assert rc == 1 and json.loads(e)["error"]["code"] == "auth_failed"
