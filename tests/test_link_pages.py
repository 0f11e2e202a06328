"""The linking pages in a real headless Chromium: a journal asks for a link session, a person
opens the URL, gives a phone, reads the code (from the console SMS gateway's log), fills in
or checks the profile and confirms; the journal then sees "linked" and gets its webhook.
Screenshots of every step are kept under test-artifacts/."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from playwright.async_api import Page, expect

from tests.browser import Shots, chromium, new_page
from tests.fake_journal import JournalHooks
from tests.test_auth import FAST, call, codes
from tests.test_linking import add_journal, jcall

SUPPORT = "support@school.example"
CONFIG = FAST + f'\n[journal]\nsupport_contact = "{SUPPORT}"\n'


async def link_url(daemon: Any, journal: dict[str, str], account: str, role: str) -> str:
    status, out = await jcall(
        daemon,
        journal,
        "POST",
        "/journal/v1/link-sessions",
        {"account_id": account, "role": role, "school_id": "s1", "school_name": "Школа № 1"},
    )
    assert status == 200, out
    url: str = out["url"]
    return url


async def wait_code(daemon: Any, phone: str, count: int = 1) -> str:
    """The newest code the console gateway logged for the phone, once `count` were sent."""
    for _ in range(200):
        found = codes(daemon, phone)
        if len(found) >= count:
            return found[-1]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no SMS code for {phone} in the log")


async def sign_in_on_page(page: Page, daemon: Any, typed: str, phone: str, shots: Shots) -> None:
    await page.get_by_label("Номер телефона").fill(typed)
    await shots.take(page, "phone")
    await page.get_by_role("button", name="Получить код").click()
    await expect(page.get_by_role("heading", name="Код из SMS")).to_be_visible()
    await expect(page.get_by_text(f"Код отправлен на {phone}")).to_be_visible()
    await page.get_by_label("Код из SMS (6 цифр)").fill(await wait_code(daemon, phone))
    await shots.take(page, "code")
    await page.get_by_role("button", name="Войти").click()


async def test_whole_link_flow_in_chromium(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(CONFIG)
    shots = Shots("link-flow")
    async with JournalHooks() as hooks, chromium() as browser:
        j = add_journal(d, webhook=hooks.url)
        hooks.secret = j["secret"]
        url = await link_url(d, j, "acc-student-1", "student")
        page = await new_page(browser)
        await page.goto(url)

        # What the journal offers, in Russian by default; role and school only from it.
        await expect(page.get_by_role("heading", name="Привязка учётной записи")).to_be_visible()
        await expect(page.get_by_text("Журнал «Дневник» предлагает")).to_be_visible()
        await expect(page.locator("[data-field=role]")).to_have_text("Ученик")
        await expect(page.locator("[data-field=school]")).to_have_text("Школа № 1")
        assert await page.evaluate("document.documentElement.lang") == "ru"
        await shots.take(page, "offer")
        await page.get_by_role("button", name="Продолжить").click()

        # A national-format number is normalised; the code comes from the SMS log.
        await sign_in_on_page(page, d, "8 (999) 000-11-22", "+79990001122", shots)

        # A new phone: the profile must be filled in; a missing last name is refused.
        await expect(page.get_by_role("heading", name="Ваш профиль")).to_be_visible()
        await page.get_by_label("Имя", exact=True).fill("Мария")
        await page.get_by_role("button", name="Сохранить").click()
        await expect(page.get_by_role("alert")).to_have_text("Проверьте поле «Фамилия».")
        await page.get_by_label("Фамилия").fill("Иванова")
        await page.get_by_label("Отчество (если есть)").fill("Сергеевна")
        await page.get_by_label("Дата рождения").fill("2011-04-05")
        await page.get_by_label("Женский").check()
        await shots.take(page, "profile")
        await page.get_by_role("button", name="Сохранить").click()

        await expect(page.get_by_role("heading", name="Подтверждение")).to_be_visible()
        await expect(page.get_by_text("к профилю Иванова Мария Сергеевна")).to_be_visible()
        await shots.take(page, "confirm")
        await page.get_by_role("button", name="Привязать").click()
        await expect(page.get_by_role("heading", name="Учётная запись привязана")).to_be_visible()
        await expect(page.get_by_text("Дневник: Ученик, Школа № 1")).to_be_visible()
        await shots.take(page, "done")

        # The journal sees it: status and the signed webhook.
        status, out = await jcall(d, j, "GET", "/journal/v1/accounts/acc-student-1/link")
        assert status == 200 and out["linked"] is True
        hook = await hooks.next()
        assert (hook["type"], hook["account_id"], hook["user_id"]) == (
            "linked",
            "acc-student-1",
            out["user_id"],
        )
        # The profile holds what the page sent, under the phone the person signed in with.
        token = await page.evaluate("localStorage.getItem('sferum.token')")
        status, me = await call(d.url, "GET", "/v1/profile", token=token)
        assert (me["phone"], me["last_name"], me["first_name"]) == (
            "+79990001122",
            "Иванова",
            "Мария",
        )
        assert (me["patronymic"], me["birth_date"], me["gender"]) == (
            "Сергеевна",
            "2011-04-05",
            "female",
        )
        assert me["user_id"] == out["user_id"]

        # A second person opening the used URL is told so, and nothing changes.
        other = await new_page(browser)
        await other.goto(url)
        await expect(other.get_by_role("alert")).to_have_text(
            "Эта ссылка уже использована. Попросите в журнале новую."
        )
        await shots.take(other, "used-link")

        # Unlinking from the profile ("Отвязать учетную запись"): the journal is told.
        await page.get_by_role("button", name="Отвязать учётную запись «Ученик», Школа № 1").click()
        await expect(page.get_by_role("status")).to_have_text("Учётная запись отвязана.")
        await expect(page.get_by_text("Привязанных учётных записей нет.")).to_be_visible()
        assert (await hooks.next())["type"] == "unlinked"
        status, out = await jcall(d, j, "GET", "/journal/v1/accounts/acc-student-1/link")
        assert out == {"linked": False}


async def test_existing_profile_english_wrong_code_and_r5(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    """A parent who already has a profile signs in, sees it for checking (in English), and
    is refused a student account with the reason and the support contact (R5)."""
    d = daemon_factory(CONFIG)
    parent = d.add_user("Ольга", "Смирнова", phone="+79990002233")
    shots = Shots("link-r5-en")
    async with JournalHooks() as hooks, chromium() as browser:
        j = add_journal(d, webhook=hooks.url)
        hooks.secret = j["secret"]
        first = await link_url(d, j, "acc-parent-1", "parent")
        status, _ = await call(
            d.url, "POST", f"/v1/link/{first.rsplit('/', 1)[1]}/confirm", token=parent.token
        )
        assert status == 200
        url = await link_url(d, j, "acc-student-2", "student")

        page = await new_page(browser, locale="en-GB")
        await page.goto(url + "?lang=en")
        await expect(page.locator("[data-field=role]")).to_have_text("Student")
        await page.get_by_role("button", name="Continue").click()
        await page.get_by_label("Phone number").fill("+7 999 000-22-33")
        await page.get_by_role("button", name="Get a code").click()
        code = await wait_code(d, "+79990002233")
        wrong = "000000" if code != "000000" else "111111"
        await page.get_by_label("Code from the SMS (6 digits)").fill(wrong)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("alert")).to_have_text("Wrong code. Tries left: 4.")
        await shots.take(page, "wrong-code")
        await page.get_by_label("Code from the SMS (6 digits)").fill(code)
        await page.get_by_role("button", name="Sign in").click()

        # The existing profile is shown for checking, never a second one.
        await expect(page.get_by_role("heading", name="Check your profile")).to_be_visible()
        await expect(page.get_by_text("Смирнова")).to_be_visible()
        await shots.take(page, "check-profile")
        await page.get_by_role("button", name="That's right").click()
        await page.get_by_role("button", name="Link", exact=True).click()
        alert = page.get_by_role("alert")
        await expect(alert).to_contain_text("a student account can't be linked")
        await expect(alert).to_contain_text("the child's own phone number")
        await expect(alert).to_contain_text(SUPPORT)
        await shots.take(page, "role-conflict")

        # Switching to Russian redraws the same step.
        await page.get_by_role("button", name="Переключить на русский").click()
        await expect(page.get_by_role("heading", name="Подтверждение")).to_be_visible()

        status, out = await jcall(d, j, "GET", "/journal/v1/accounts/acc-student-2/link")
        assert out == {"linked": False}
        status, mine = await call(d.url, "GET", "/v1/links", token=parent.token)
        assert [link["account_id"] for link in mine["links"]] == ["acc-parent-1"]
        assert (await hooks.next())["account_id"] == "acc-parent-1"
        assert len(hooks.got) == 1


async def test_pages_are_locked_down(daemon) -> None:  # type: ignore[no-untyped-def]
    """Only the web folder's own files are served, with headers that forbid inline script,
    framing and leaking the link token through a referrer."""
    async with aiohttp.ClientSession() as s:
        async with s.get(daemon.url + "/link/anything") as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/html")
            assert r.headers["Referrer-Policy"] == "no-referrer"
            assert "script-src 'self'" in r.headers["Content-Security-Policy"]
            assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
            assert r.headers["Cache-Control"] == "no-store"
        async with s.get(daemon.url + "/web/link.js") as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/javascript")
        for bad in ("/web/..%2Fpages.py", "/web/%2e%2e%2fapi", "/web/nope.js", "/web/"):
            async with s.get(daemon.url + bad) as r:
                assert r.status == 404, bad
