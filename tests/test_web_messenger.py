"""The messenger web client (clients/web/index.html, app.js) in a real headless Chromium: a
teacher and two students of 7В, each in their own browser context, sign in with phone and
code, see their chats with kind badges, talk live (reply, edit, delete, react, a file with
its preview and download, a poll, typing), search, invite a newcomer by link and QR code,
revoke a device, switch to English. Screenshots of every step go to test-artifacts/."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import aiohttp
from PIL import Image
from playwright.async_api import Page, expect

from clients.sdk import Client
from tests.browser import Shots, chromium, new_page
from tests.test_auth import FAST, codes
from tests.test_link_pages import wait_code
from tests.test_linking import add_journal, jcall
from tests.test_roster_api import SCHOOL, deliver, link


async def school(d: Any) -> dict[str, Any]:
    """7В with its journal chats: Анна Классная (homeroom teacher: class, parents and
    colleagues chats), Вера and Глеб (students: class and history chats)."""
    j = add_journal(d)
    out = await deliver(d, j, "seed", SCHOOL)
    assert out["rejected"] == 0, out
    people = {
        "teacher": (d.add_user("Анна", "Классная", phone="+79990001001"), "T-HOME", "teacher"),
        "vera": (d.add_user("Вера", "Первая", phone="+79990001002"), "ST-1", "student"),
        "gleb": (d.add_user("Глеб", "Второй", phone="+79990001003"), "ST-2", "student"),
    }
    for user, account, role in people.values():
        await link(d, j, account, role, user.token)
    status, chat = await jcall(
        d,
        j,
        "POST",
        "/journal/v1/subject-chats",
        {"teacher_id": "T-HIST", "class_id": "C-7V", "subject_id": "HIST"},
    )
    assert status == 201, chat
    return {name: user for name, (user, _, _) in people.items()}


async def sign_in(page: Page, d: Any, url: str | None, phone: str, shots: Shots, step: str) -> None:
    if url is not None:
        await page.goto(url)
    await expect(page.get_by_role("heading", name="Вход в Сферум")).to_be_visible()
    count = len(codes(d, phone))
    await page.get_by_label("Номер телефона").fill(phone)
    await page.get_by_role("button", name="Получить код").click()
    await page.get_by_label("Код из SMS (6 цифр)").fill(await wait_code(d, phone, count + 1))
    await shots.take(page, f"{step}-code")
    await page.get_by_role("button", name="Войти").click()


def message(page: Page, text: str) -> Any:
    return page.locator("article.msg", has_text=text)


def exactly(page: Page, text: str) -> Any:
    return page.locator("article.msg .body", has_text=re.compile(f"^{re.escape(text)}$"))


async def open_chat(page: Page, name: str) -> None:
    exact = page.locator(".chat-name", has_text=re.compile(f"^{re.escape(name)}$"))
    await page.locator(".chat-list a", has=exact).click()
    await expect(page.locator("#chat-title")).to_have_text(name)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def png(path: Path) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (30, 120, 200)).save(out, "PNG")
    path.write_bytes(out.getvalue())
    return out.getvalue()


async def test_teacher_and_two_students_chat_in_chromium(daemon_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(FAST)
    people = await school(d)
    shots = Shots("web-messenger")
    async with chromium() as browser:
        teacher = await new_page(browser)
        vera = await new_page(browser)
        gleb = await new_page(browser)
        for page, who in ((teacher, "teacher"), (vera, "vera"), (gleb, "gleb")):
            await sign_in(page, d, d.url + "/", people[who].phone, shots, who)

        # Chats with their kinds: the teacher has the class, parents and colleagues chats and
        # a chat of her own; the students the class and the history chats.
        async with Client(d.url, people["teacher"].token) as c:
            own = await c.create_room("Кружок")
        items = teacher.locator(".chat-list li")
        await expect(items).to_have_count(4)
        for name, badge in (
            ("7В", "Класс"),
            ("7В — родители", "Родители"),
            ("7В — учителя", "Коллеги"),
            ("Кружок", "Другое"),
        ):
            item = teacher.locator(".chat-list a", has=teacher.get_by_text(name, exact=True))
            await expect(item.locator(".badge").first).to_have_text(badge)
        await expect(vera.locator(".chat-list li")).to_have_count(2)
        await expect(vera.locator(".chat-list .badge")).to_have_text(["Класс", "Предмет"])
        assert await teacher.evaluate("document.documentElement.lang") == "ru"
        await shots.take(teacher, "teacher-chats")

        # The teacher writes in the class chat: Вера sees it live in the open chat, Глеб as
        # an unread count and the last message in his list.
        await open_chat(teacher, "7В")
        await open_chat(vera, "7В")
        composer = teacher.get_by_label("Сообщение", exact=True)
        await composer.fill("Здравствуйте! Контрольная в пятницу.")
        await composer.press("Enter")
        await expect(message(vera, "Контрольная в пятницу")).to_contain_text("Классная Анна")
        gleb_item = gleb.locator(".chat-list li", has_text="Контрольная в пятницу")
        await expect(gleb_item.locator(".unread")).to_have_text("1")
        await shots.take(gleb, "gleb-unread")

        # Глеб opens it (read), types (the teacher sees it), and reacts.
        await open_chat(gleb, "7В")
        await expect(gleb.locator(".chat-list .unread")).to_have_count(0)
        await gleb.get_by_label("Сообщение", exact=True).fill("Хорошо")
        await expect(teacher.locator(".typing")).to_have_text("Второй Глеб печатает…")
        like = message(gleb, "Контрольная в пятницу").get_by_role("button", name="Реакция 👍")
        await like.click()
        await expect(
            message(teacher, "Контрольная в пятницу").get_by_role("button", name="Реакция 👍: 1")
        ).to_be_visible()
        await gleb.get_by_label("Сообщение", exact=True).press("Enter")
        await expect(message(teacher, "Хорошо")).to_be_visible()
        await expect(teacher.locator(".typing")).to_have_text("")
        await shots.take(teacher, "typing-and-reaction")

        # Вера replies, edits her reply, then deletes it: everyone sees each change.
        await message(vera, "Контрольная в пятницу").get_by_role("button", name="Ответить").click()
        await vera.get_by_label("Сообщение", exact=True).fill("А какие параграфы?")
        await vera.get_by_role("button", name="Отправить").click()
        reply = message(teacher, "А какие параграфы?")
        await expect(reply.locator("blockquote")).to_contain_text("Контрольная в пятницу")
        await shots.take(teacher, "reply")
        await message(vera, "А какие параграфы?").get_by_role("button", name="Изменить").click()
        await vera.get_by_label("Новый текст сообщения").fill("Какие параграфы учить?")
        await vera.get_by_role("button", name="Сохранить").click()
        edited = message(gleb, "Какие параграфы учить?")
        await expect(edited.locator(".edited")).to_have_text("(изменено)")
        await shots.take(gleb, "edited")
        await message(vera, "Какие параграфы учить?").get_by_role("button", name="Удалить").click()
        await vera.get_by_role("button", name="Да, удалить").click()
        await expect(teacher.locator("article.msg .deleted")).to_have_text("Сообщение удалено")
        await expect(message(teacher, "Какие параграфы")).to_have_count(0)
        await shots.take(teacher, "deleted")

        # A picture: uploaded by the teacher, previewed for Вера, downloaded byte for byte.
        picture = tmp_path / "Доска.png"
        data = png(picture)
        await composer.fill("Фото доски")
        await teacher.get_by_label("Прикрепить файл").set_input_files(str(picture))
        shown = message(vera, "Фото доски")
        thumb = shown.locator("img.thumb")
        await expect(thumb).to_have_attribute("alt", "Изображение Доска.png")
        await expect(thumb).to_have_attribute("src", re.compile(r"^blob:"))
        assert await thumb.evaluate("img => img.complete && img.naturalWidth > 0")
        await shots.take(vera, "picture")
        async with vera.expect_download() as waiting:
            await shown.get_by_role("button", name="Скачать Доска.png").click()
        download = await waiting.value
        assert download.suggested_filename == "Доска.png"
        assert Path(str(await download.path())).read_bytes() == data

        # A poll: the teacher asks, both students vote, everyone sees the tally.
        await teacher.get_by_role("button", name="Опрос", exact=True).click()
        await teacher.get_by_label("Вопрос").fill("Когда писать контрольную?")
        await teacher.get_by_label("Вариант 1").fill("Четверг")
        await teacher.get_by_label("Вариант 2").fill("Пятница")
        await teacher.get_by_role("button", name="Создать опрос").click()
        poll = message(vera, "Когда писать контрольную?")
        await poll.get_by_role("button", name="Пятница: голосов 0").click()
        second_vote = message(gleb, "Когда писать контрольную?")
        await second_vote.get_by_role("button", name="Пятница: голосов 1").click()
        mine = poll.get_by_role("button", name="Пятница: голосов 2")
        await expect(mine).to_have_attribute("aria-pressed", "true")
        theirs = message(teacher, "Когда писать контрольную?")
        await expect(theirs.get_by_role("button", name="Пятница: голосов 2")).to_be_visible()
        await expect(theirs.locator(".poll-summary")).to_contain_text("Проголосовали: 2")
        await shots.take(teacher, "poll")

        # Search by another form of a word finds the teacher's message.
        await gleb.get_by_role("link", name="Поиск").click()
        await gleb.get_by_label("Слова для поиска").fill("контрольной")
        await gleb.get_by_role("button", name="Найти").click()
        hit = gleb.locator(".search-results li", has_text="Контрольная в пятницу")
        await expect(hit.locator("mark").first).to_have_text("Контрольная")
        await shots.take(gleb, "search")
        await hit.get_by_role("link").click()
        await expect(gleb.locator("#chat-title")).to_have_text("7В")

        # A call running in the teacher's own chat: its "Войти" leads to the call page.
        await open_chat(teacher, "Кружок")
        async with Client(d.url, people["teacher"].token) as c:
            started = await c.request("call_start", room_id=own)
        join = teacher.get_by_role("link", name="Войти в звонок")
        await expect(join).to_have_attribute("href", f"/calls/{started['call']['call_id']}")
        lessons = teacher.get_by_role("link", name="Уроки")
        await expect(lessons).to_have_attribute("href", "/lessons")
        await shots.take(teacher, "call-running")

        # An invite link with its QR code; a newcomer opens it, signs up and joins.
        await open_chat(teacher, "7В")
        await teacher.get_by_role("button", name="Пригласить").click()
        await teacher.get_by_role("button", name="Создать ссылку").click()
        url = await teacher.get_by_label("Ссылка", exact=True).input_value()
        assert url.startswith(d.url + "/join/")
        qr = teacher.get_by_role("img", name="QR-код ссылки-приглашения")
        await expect(qr).to_be_visible()
        assert await qr.evaluate("img => img.complete && img.naturalWidth > 0")
        await shots.take(teacher, "invite-link")

        newcomer = await new_page(browser)
        await newcomer.goto(url)
        await newcomer.get_by_role("link", name="Присоединиться").click()
        await sign_in(newcomer, d, None, "+79990001009", shots, "newcomer")
        await expect(newcomer.get_by_role("heading", name="Ваш профиль")).to_be_visible()
        await newcomer.get_by_label("Фамилия").fill("Новый")
        await newcomer.get_by_label("Имя", exact=True).fill("Егор")
        await newcomer.get_by_role("button", name="Сохранить").click()
        await expect(newcomer.get_by_role("heading", name="Присоединиться к чату")).to_be_visible()
        await expect(newcomer.locator(".join-name")).to_have_text("7В")
        await shots.take(newcomer, "join")
        await newcomer.get_by_role("button", name="Присоединиться").click()
        await expect(newcomer.locator("#chat-title")).to_have_text("7В")
        await expect(message(newcomer, "Контрольная в пятницу")).to_be_visible()
        await expect(teacher.locator(".system", has_text="Новый Егор в чате")).to_be_visible()
        await shots.take(newcomer, "joined")
        await newcomer.context.close()

        # Devices: Вера signs in on a second browser, then signs it out from the first one.
        second = await new_page(browser)
        await sign_in(second, d, d.url + "/", people["vera"].phone, shots, "vera-second")
        await expect(second.locator(".chat-list li")).to_have_count(2)
        await vera.get_by_role("link", name="Профиль и устройства").click()
        await expect(vera.locator(".profile dd").first).to_have_text("Первая")
        await vera.get_by_role("button", name="Изменить профиль").click()
        await vera.get_by_label("Отчество (если есть)").fill("Игоревна")
        await vera.get_by_role("button", name="Сохранить").click()
        await expect(vera.locator(".profile dd").nth(2)).to_have_text("Игоревна")
        devices = vera.locator(".device-list li")
        await expect(devices).to_have_count(3)  # the test's own, and two browsers
        await shots.take(vera, "devices")
        other = vera.locator(".device-list li", has_not=vera.get_by_text("это устройство"))
        await other.get_by_role("button", name="Завершить сеанс").last.click()
        await expect(vera.get_by_role("status").last).to_contain_text("завершён")
        await expect(devices).to_have_count(2)
        await expect(
            second.get_by_text("Сеанс на этом устройстве завершён. Войдите снова.")
        ).to_be_visible()
        await expect(second.get_by_role("heading", name="Вход в Сферум")).to_be_visible()
        await shots.take(second, "signed-out")

        # English: the same screens in the other language, Russian again on the way back.
        await gleb.get_by_role("button", name="Switch to English").click()
        await expect(gleb.get_by_role("link", name="Chats")).to_be_visible()
        await expect(gleb.get_by_role("button", name="Send")).to_be_visible()
        await expect(gleb.locator(".chat-list .badge").first).to_have_text("Class")
        assert await gleb.evaluate("document.documentElement.lang") == "en"
        await shots.take(gleb, "english")
        await gleb.get_by_role("button", name="Sign out").click()
        await expect(gleb.get_by_role("heading", name="Sign in to Sferum")).to_be_visible()
        assert await gleb.evaluate("localStorage.getItem('sferum.token')") is None
        async with (
            aiohttp.ClientSession() as s,
            s.get(d.url + "/v1/devices", headers=bearer(people["gleb"].token)) as r,
        ):
            assert len((await r.json())["devices"]) == 1  # the browser's device is gone


async def signed_in(browser: Any, token: str) -> Page:
    """A page whose browser already holds a device token (no SMS round trip)."""
    page = await new_page(browser)
    await page.context.add_init_script(f"localStorage.setItem('sferum.token', '{token}')")
    return page


async def test_scroll_back_resume_and_phone_width(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    """Older pages come on demand; when the daemon restarts, the page reconnects and resumes:
    what was sent meanwhile shows once, and what was written offline is sent once."""
    d = daemon_factory(FAST)
    anna, boris = d.add_user("Анна", "Иванова"), d.add_user("Борис", "Смирнов")
    shots = Shots("web-messenger-resume")
    async with Client(d.url, anna.token) as c:
        room = await c.create_room("Кружок", invite=[boris.user_id])
        async with Client(d.url, boris.token) as b:
            await b.request("join", room_id=room)
        for n in range(1, 41):
            await c.request("send", room_id=room, content={"body": f"сообщение {n}"})
    async with chromium() as browser:
        page = await signed_in(browser, boris.token)
        await page.goto(f"{d.url}/chats/{room}")
        await expect(message(page, "сообщение 40")).to_be_visible()
        # The newest page only (30 events); the rest on demand.
        await expect(exactly(page, "сообщение 11")).to_have_count(1)
        await expect(exactly(page, "сообщение 10")).to_have_count(0)
        older = page.get_by_role("button", name="Показать более ранние сообщения")
        # By keyboard: the timeline scrolls while the page settles, which can leave a message
        # over the button for a pointer.
        await older.focus()
        await page.keyboard.press("Enter")
        await expect(exactly(page, "сообщение 1")).to_be_visible()
        await expect(older).to_be_hidden()
        await expect(page.locator("article.msg")).to_have_count(40)
        await shots.take(page, "scrolled-back")

        # The daemon goes away: the page says so, and keeps what is written meanwhile.
        d.stop()
        await expect(page.locator(".connection")).to_have_text("Подключение…")
        composer = page.get_by_label("Сообщение", exact=True)
        await composer.fill("написано без связи")
        await composer.press("Enter")
        await shots.take(page, "offline")
        d.start()
        # Back online: the page tries at once instead of waiting out its backoff (as when
        # the browser's network comes back).
        await page.evaluate("window.dispatchEvent(new Event('online'))")
        async with Client(d.url, anna.token) as c:
            await c.request("send", room_id=room, content={"body": "пока вас не было"})
        await expect(message(page, "пока вас не было")).to_have_count(1, timeout=20_000)
        await expect(message(page, "написано без связи")).to_have_count(1)
        await expect(page.locator(".connection")).to_have_text("")
        async with Client(d.url, anna.token) as c:
            await c.request("send", room_id=room, content={"body": "и снова на связи"})
            page_events = (await c.request("history", room_id=room, limit=5))["events"]
        await expect(message(page, "и снова на связи")).to_have_count(1)
        await expect(page.locator("article.msg")).to_have_count(43)
        bodies = [e["content"].get("body") for e in page_events if e["type"] == "message"]
        assert bodies.count("написано без связи") == 1
        await shots.take(page, "resumed")

        # A phone's width: one pane at a time, with a way back to the list.
        await page.set_viewport_size({"width": 390, "height": 800})
        await expect(page.locator(".list-pane")).to_be_hidden()
        await shots.take(page, "phone-chat")
        await page.get_by_role("button", name="Назад к списку чатов").click()
        await expect(page.locator(".list-pane")).to_be_visible()
        await expect(page.locator(".chat-list li")).to_have_count(1)
        await shots.take(page, "phone-list")


async def test_messenger_pages_carry_the_security_headers(daemon) -> None:  # type: ignore[no-untyped-def]
    async with aiohttp.ClientSession() as s:
        for path in ("/", "/chats/!abc", "/web/app.js", "/web/session.js", "/web/messenger.css"):
            async with s.get(daemon.url + path) as r:
                assert r.status == 200, path
                csp = r.headers["Content-Security-Policy"]
                assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp, path
                assert "img-src 'self' data: blob:;" in csp and "'unsafe-inline'" not in csp
                assert r.headers["X-Frame-Options"] == "DENY"
                assert r.headers["X-Content-Type-Options"] == "nosniff"
                assert r.headers["Referrer-Policy"] == "no-referrer"
        async with s.get(daemon.url + "/") as r:
            assert r.headers["Content-Type"].startswith("text/html")
            assert r.headers["Cache-Control"] == "no-store"
            assert '<script type="module" src="/web/app.js">' in await r.text()


async def test_a_chat_made_by_hand_closed_with_its_members(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    """R11 in the browser: a teacher makes a closed chat with a pupil from her class chat;
    the pupil accepts; the teacher adds another from "Участники"; in the closed chat the
    pupil may not add anyone (the server's refusal is shown); the teacher withdraws an
    invite; the pupil leaves the chat; someone asks to join by a link that needs approval,
    and the teacher lets her in; the owner renames the chat and opens it, and then a member
    may add people."""
    d = daemon_factory(FAST)
    anna, vera = d.add_user("Анна", "Классная"), d.add_user("Вера", "Первая")
    gleb, dina = d.add_user("Глеб", "Второй"), d.add_user("Дина", "Третья")
    shots = Shots("web-messenger-new-chat")
    async with Client(d.url, anna.token) as c:
        room = await c.create_room("7В", invite=[vera.user_id, gleb.user_id, dina.user_id])
        for who in (vera, gleb, dina):
            async with Client(d.url, who.token) as other:
                await other.request("join", room_id=room)
    async with chromium() as browser:
        teacher = await signed_in(browser, anna.token)
        pupil = await signed_in(browser, vera.token)
        for page in (teacher, pupil):
            await page.goto(d.url + "/")
            await expect(page.locator(".chat-list li")).to_have_count(1)

        await teacher.get_by_role("link", name="Новый чат").click()
        await expect(teacher.get_by_role("heading", name="Новый чат")).to_be_visible()
        await teacher.get_by_role("button", name="Создать чат").click()
        await expect(teacher.get_by_role("alert").first).to_have_text("Укажите название чата.")
        await teacher.get_by_label("Название").fill("Стенгазета")
        await teacher.get_by_label("Закрытый чат").check()
        people = teacher.locator(".picker li")
        await expect(people).to_have_count(3)  # everyone of her class chat but herself
        await teacher.get_by_label("Найти по имени").fill("вер")
        await expect(people.locator("visible=true")).to_have_count(1)
        await teacher.get_by_label("Первая Вера").check()
        await shots.take(teacher, "new-chat-form")
        await teacher.get_by_role("button", name="Создать чат").click()
        await expect(teacher.locator("#chat-title")).to_have_text("Стенгазета")
        await expect(teacher.locator(".chat-list li")).to_have_count(2)

        # The pupil has the invitation, live, and accepts it.
        await open_chat(pupil, "Стенгазета")
        await pupil.get_by_role("button", name="Принять приглашение").click()
        await expect(pupil.get_by_label("Сообщение", exact=True)).to_be_visible()
        await expect(pupil.locator(".timeline")).to_contain_text("Вы в чате")

        # The teacher sees her members and adds Глеб from the people she knows.
        await teacher.get_by_role("button", name="Участники").click()
        members = teacher.locator(".members li")
        await expect(members).to_have_count(2)
        await expect(members.filter(has_text="Вы")).to_contain_text("Владелец")
        await teacher.get_by_role("button", name="Добавить участников").click()
        await expect(teacher.locator(".picker li")).to_have_count(2)  # Глеб and Дина
        await teacher.get_by_label("Второй Глеб").check()
        await teacher.get_by_role("button", name="Пригласить выбранных").click()
        await expect(members).to_have_count(3)
        await expect(members.filter(has_text="Второй Глеб")).to_contain_text("Приглашён")
        await shots.take(teacher, "members")

        # A closed chat: the pupil may remove nobody and add nobody.
        await pupil.get_by_role("button", name="Участники").click()
        await expect(pupil.locator(".members li")).to_have_count(3)
        await expect(
            pupil.get_by_role("button", name=re.compile("^Удалить из чата"))
        ).to_have_count(0)
        await pupil.get_by_role("button", name="Добавить участников").click()
        await pupil.get_by_label("Третья Дина").check()
        await pupil.get_by_role("button", name="Пригласить выбранных").click()
        await expect(pupil.locator(".members-panel [role=alert]")).to_have_text(
            "У вас нет прав на это действие."
        )
        await shots.take(pupil, "closed-refused")

        # The teacher withdraws Глеб's invitation; the pupil leaves.
        await teacher.get_by_role("button", name="Удалить из чата: Второй Глеб").click()
        await expect(members).to_have_count(2)
        await expect(teacher.locator(".timeline")).to_contain_text(
            "Второй Глеб: исключение из чата (Вы)"
        )
        leave = pupil.get_by_role("button", name="Покинуть чат")
        await leave.click()
        await pupil.get_by_role("button", name="Точно покинуть? Нажмите ещё раз").click()
        await expect(pupil.locator(".chat-list li")).to_have_count(1)
        await expect(pupil).to_have_url(d.url + "/")

        # A link that needs approval: Дина asks to join, and the teacher's open members
        # panel shows the request live; she lets her in.
        await teacher.get_by_role("button", name="Пригласить").click()
        await teacher.get_by_label("Вступление одобряет администратор").check()
        await teacher.get_by_role("button", name="Создать ссылку").click()
        link = await teacher.locator("#invite-url").input_value()
        await teacher.get_by_role("button", name="Участники").click()
        await expect(members).to_have_count(1)
        newcomer = await signed_in(browser, dina.token)
        await newcomer.goto(link)  # the link's own page, then the messenger's
        await newcomer.get_by_role("link", name="Присоединиться").click()
        await newcomer.get_by_role("button", name="Присоединиться").click()
        await expect(newcomer.get_by_text(re.compile("^Запрос отправлен"))).to_be_visible()
        accept = teacher.get_by_role("button", name="Принять в чат: Третья Дина")
        await expect(accept).to_be_visible()
        await shots.take(teacher, "request-to-join")
        await accept.click()
        await expect(members).to_have_count(2)
        await expect(teacher.get_by_role("heading", name="Заявки на вступление")).to_have_count(0)
        await newcomer.goto(d.url + "/")
        await open_chat(newcomer, "Стенгазета")
        await expect(newcomer.get_by_label("Сообщение", exact=True)).to_be_visible()
        await expect(newcomer.locator(".timeline")).to_contain_text(
            "Вы: вступление одобрено (Классная Анна)"
        )
        await expect(newcomer.get_by_role("heading", name="Настройки чата")).to_have_count(0)

        # The owner renames the chat and opens it: now any member may add people.
        await teacher.get_by_label("Название").fill("Стенгазета 7В")
        await teacher.get_by_label("Закрытый чат").uncheck()
        await teacher.get_by_role("button", name="Сохранить").click()
        await expect(teacher.locator("#chat-title")).to_have_text("Стенгазета 7В")
        await expect(teacher.get_by_text("Сохранено.")).to_be_visible()
        await newcomer.get_by_role("button", name="Участники").click()
        await newcomer.get_by_role("button", name="Добавить участников").click()
        await newcomer.get_by_label("Второй Глеб").check()
        await newcomer.get_by_role("button", name="Пригласить выбранных").click()
        await expect(newcomer.locator(".members li")).to_have_count(3)
        await shots.take(teacher, "settings")

    async with Client(d.url, anna.token) as c:
        room = await _room_named(c, "Стенгазета 7В")
        state = await c.request("members", room_id=room)
        summary = next(r for r in (await c.request("rooms"))["rooms"] if r["room_id"] == room)
    assert sorted(m["user_id"] for m in state["members"]) == sorted(
        [anna.user_id, dina.user_id, gleb.user_id]
    )
    assert summary["closed"] is False


async def _room_named(c: Client, name: str) -> str:
    rooms = (await c.request("rooms"))["rooms"]
    return next(r["room_id"] for r in rooms if r["name"] == name)
