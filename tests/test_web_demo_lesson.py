"""The demo school's lesson, the whole story of the web client in real headless Chromium
against `sferumd serve --demo`: the subject teacher and the two pupils of the printed sign-in
hints, each in a browser context of their own, sign in with phone and code, talk in the
subject chat, the teacher sends a file; everyone opens "Уроки", follows "Перейти" to the demo
lesson and joins with Chromium's fake camera and microphone; a hand is raised and lowered,
only the teacher has the admin controls, a pupil gets the screen and shares it, the call's
chat and whiteboard (drawing allowed for all, replayed to a late opener, cleared), breakout
rooms open and close, the lesson is recorded
(the file comes to the call's chat) and ended for all. Screenshots of each step are kept
under test-artifacts/web-demo-lesson/."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from playwright.async_api import Page, expect

from tests.browser import Shots, chromium, new_page
from tests.test_auth import FAST
from tests.test_demo_school import hints
from tests.test_web_call import (
    admin_controls_only_for,
    breakout_and_back,
    call_chat_and_whiteboard,
    ended_for_all,
    everyone_sees_everyone,
    hand_raised_and_lowered,
    joined_here,
    recorded,
    screen_allowed_and_shared,
    tile,
)
from tests.test_web_messenger import message, open_chat, sign_in

CONFIG = FAST + "\n[media]\nloopback_candidates = true\n"
LESSON_LINE = re.compile(r"^Онлайн-урок «(.+?)» идёт сейчас", re.MULTILINE)


async def demo_printout(d: Any) -> str:
    """What `serve --demo` prints after its address, up to the line of the running lesson."""
    lines: list[str] = []
    while not lines or not LESSON_LINE.match(lines[-1]):
        line = await asyncio.wait_for(asyncio.to_thread(d.proc.stdout.readline), 60)
        assert line, "the daemon printed no demo lesson:\n" + "".join(lines)
        lines.append(line)
    return "".join(lines)


def demo_people(text: str) -> tuple[str, str, dict[str, tuple[str, str]]]:
    """The subject chat's name, the lesson's name, and the phone and shown name ("Фамилия
    Имя") of the subject teacher (the one whose `about` names the chat's subject) and of
    the two pupils of 7В."""
    found = re.search(r"предметный чат «(.+?)»", text)
    lesson = LESSON_LINE.search(text)
    assert found and lesson, text
    chat = found.group(1)
    stem = chat.split(" — ")[1].lower()[:-1]  # "Математика" -> "математик(и)"
    people = hints(text)
    [teacher] = [p for p, (role, _, about) in people.items() if role == "учитель" and stem in about]
    pupils = [p for p, (_, _, about) in people.items() if about in ("ученик 7В", "ученица 7В")]
    assert len(pupils) == 2, people
    phones = {"teacher": teacher, "pupil1": pupils[0], "pupil2": pupils[1]}
    named = {who: (phone, " ".join(people[phone][1].split()[:2])) for who, phone in phones.items()}
    return chat, lesson.group(1), named


async def to_the_lesson(page: Page, lesson: str, shots: Shots, who: str) -> str:
    """From the messenger to "Уроки", "Перейти" on the lesson, and in with camera and
    microphone; the user id the call page knows its person by."""
    await page.get_by_role("link", name="Уроки").click()
    await expect(page.get_by_role("heading", name="Видеоконференции")).to_be_visible()
    row = page.locator("tr", has=page.get_by_role("cell", name=lesson, exact=True))
    await expect(row.locator("td").nth(1)).to_have_text("Онлайн-урок")
    await shots.take(page, f"lessons-{who}")
    await row.get_by_role("link", name=f"Перейти в видеоконференцию «{lesson}»").click()
    await page.wait_for_url(re.compile(r"/calls/[^/]+$"))
    await joined_here(page, shots, who)
    return str(await page.evaluate("sferumCall.me"))


async def test_the_demo_lesson_in_three_browsers(daemon_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(CONFIG, args=["--demo"])
    chat, lesson, people = demo_people(await demo_printout(d))
    shots = Shots("web-demo-lesson")
    async with chromium(media=True) as browser:
        teacher, st1, st2 = [await new_page(browser) for _ in range(3)]
        for page, who in ((teacher, "teacher"), (st1, "pupil1"), (st2, "pupil2")):
            await sign_in(page, d, d.url + "/", people[who][0], shots, who)
            await open_chat(page, chat)
        # The chat's history names its members (a running call in it must not keep the
        # names from loading).
        for who in ("teacher", "pupil2"):
            joined = st1.locator(".system", has_text=f"{people[who][1]} в чате")
            await expect(joined).to_be_visible()
        await shots.take(st1, "subject-chat")

        # The teacher greets the class, a pupil answers: each message reaches the others
        # live in the open chat.
        composer = teacher.get_by_label("Сообщение", exact=True)
        await composer.fill("Здравствуйте! Начинаем урок.")
        await composer.press("Enter")
        for page in (st1, st2):
            await expect(message(page, "Начинаем урок.")).to_be_visible()
        await st1.get_by_label("Сообщение", exact=True).fill("Здравствуйте, я готов")
        await st1.get_by_label("Сообщение", exact=True).press("Enter")
        for page in (teacher, st2):
            await expect(message(page, "Здравствуйте, я готов")).to_be_visible()
        await shots.take(st2, "chat")

        # A file from the teacher: both pupils get it with its download button.
        task = tmp_path / "Задание.txt"
        task.write_text("№ 1–5 на странице 42\n")
        await composer.fill("Задание к уроку")
        await teacher.get_by_label("Прикрепить файл").set_input_files(str(task))
        for page in (st1, st2):
            sent = message(page, "Задание к уроку")
            await expect(sent.get_by_role("button", name="Скачать Задание.txt")).to_be_visible()
        await shots.take(st1, "file")

        # Everyone goes to the lesson from "Уроки" and sees and hears everyone.
        teacher_id = await to_the_lesson(teacher, lesson, shots, "teacher")
        st1_id = await to_the_lesson(st1, lesson, shots, "pupil1")
        st2_id = await to_the_lesson(st2, lesson, shots, "pupil2")
        await everyone_sees_everyone({teacher_id: teacher, st1_id: st1, st2_id: st2})
        await expect(tile(st1, teacher_id)).to_have_attribute("data-has-video", "true")
        await shots.take(teacher, "everyone-sees-everyone")
        await admin_controls_only_for(teacher, st1)

        await hand_raised_and_lowered(teacher, st1, st1_id, shots)
        await screen_allowed_and_shared(teacher, st1, st1_id, [teacher, st2], shots)
        await call_chat_and_whiteboard(teacher, st1, st2, shots)
        await breakout_and_back(teacher, teacher_id, {st1_id: st1, st2_id: st2}, shots)
        await recorded(teacher, [teacher, st1, st2], shots)

        # The recording comes to the call's chat as a file message.
        await st2.get_by_role("button", name="Чат", exact=True).click()
        await expect(st2.get_by_role("list", name="Чат звонка")).to_contain_text(
            f"Запись: {lesson}", timeout=30_000
        )
        await shots.take(st2, "recording-file")

        await ended_for_all(teacher, [teacher, st2, st1], shots)
    assert "Traceback" not in d.log()
