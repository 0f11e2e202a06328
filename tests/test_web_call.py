"""The lessons list and the call page in real headless Chromium (R18, R19, R21, R22, R25):
a lesson made through the journal's API (tests.lesson_world, on the daemon's test clock) and
the diary's list with its "Перейти" link working from the start time; a chat call with its
waiting room and moderation. The steps of a lesson with three people (everyone sees the
others' video, decoded frames read with getStats through rtc.js; a raised hand; the screen
share refused until the teacher allows it; the call's chat and whiteboard; breakout rooms;
the recording; "Завершить для всех") are helpers here, walked by
tests/test_web_demo_lesson.py. Screenshots of each step are kept under
test-artifacts/web-call-*/."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from playwright.async_api import Browser, Page, expect

from clients.sdk import Client
from protocol.calls import CALL_ID
from tests.browser import Shots, chromium
from tests.lesson_world import CLOCK, at, lesson, set_clock, small_school

NAME = "7В - История - 04.03.2030 - 10.00 - 10.45"
MEDIA = CLOCK + "\n[media]\nloopback_candidates = true\n"
TIMEOUT_MS = 20_000


async def signed_in(browser: Browser, token: str, locale: str = "ru-RU") -> Page:
    """A browser context of its own (like a separate computer) whose pages find the device
    token where the sign-in page leaves it."""
    context = await browser.new_context(locale=locale)
    await context.add_init_script(f"localStorage.setItem('sferum.token', {json.dumps(token)})")
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    return page


async def wait_for(page: Page, script: str, arg: Any = None, what: str = "") -> Any:
    """Polls a page expression until it is truthy (Playwright's own wait, no sleeps)."""
    handle = await page.wait_for_function(script, arg=arg, timeout=TIMEOUT_MS, polling=200)
    value = await handle.json_value()
    assert value, what
    return value


FRAMES = "([user, kind]) => sferumCall.media ? sferumCall.media.framesDecoded(user, kind) : 0"
STATS = "() => sferumCall.media ? sferumCall.media.receiverStats() : []"


async def frames_from(page: Page, user: str, kind: str = "video", above: int = 0) -> int:
    """Waits until this page has decoded more than ``above`` frames of the user's camera (or
    screen), read with getStats through rtc.js (an async read, so polled here, every 200 ms,
    with a deadline)."""
    deadline = asyncio.get_running_loop().time() + TIMEOUT_MS / 1000
    while True:
        frames = int(await page.evaluate(FRAMES, [user, kind]))
        if frames > above:
            return frames
        if asyncio.get_running_loop().time() > deadline:
            stats = await page.evaluate(STATS)
            raise AssertionError(f"no {kind} frames from {user}; receivers: {stats}")
        await page.wait_for_timeout(200)


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.text(max_size=70) | st.from_regex(CALL_ID, fullmatch=True))
def test_the_call_page_is_served_for_call_ids_only(daemon, name: str) -> None:  # type: ignore[no-untyped-def]
    """Any text after /calls/: the page for what can be a call id (whatever call it names:
    the script asks the server), 404 for anything else; never a server error."""
    path = "/calls/" + urllib.parse.quote(name, safe="")
    try:
        with urllib.request.urlopen(daemon.url + path, timeout=10) as resp:
            status, headers = resp.status, resp.headers
            body = resp.read().decode()
    except urllib.error.HTTPError as err:
        status, headers, body = err.code, err.headers, ""
    if CALL_ID.fullmatch(name):
        assert status == 200, name
        assert '<script type="module" src="/web/call.js"></script>' in body
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert headers["Cache-Control"] == "no-store"
    else:
        assert status == 404, name


async def test_lessons_list_and_its_go_link(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(CLOCK)
    school = await small_school(d, [lesson("L-1", at(0, 10))])
    await set_clock(d, at(-1, 10))  # Sunday: the lesson is tomorrow
    call_id = (await school.made("L-1"))["videoconference_id"]
    shots = Shots("web-call-lessons")
    async with chromium() as browser:
        page = await signed_in(browser, school.token("ST-1"))
        await page.goto(d.url + "/lessons")
        await expect(page.get_by_role("heading", name="Видеоконференции")).to_be_visible()
        row = page.locator(f"tr[data-call='{call_id}']")
        cells = ["7В - История - 04.03.2030 - 10.00 - 10.45", "Онлайн-урок", "04.03.2030"]
        cells += ["04.03.2030 10:00", "04.03.2030 10:45"]
        for i, text in enumerate(cells):
            await expect(row.locator("td").nth(i)).to_have_text(text)
        # Before the start there is no link to follow, and the page says from when.
        await expect(row.get_by_role("link")).to_have_count(0)
        await expect(row.get_by_role("button", name="Перейти")).to_be_disabled()
        await expect(row.get_by_text("Ссылка станет доступна в 04.03.2030 10:00")).to_be_visible()
        assert await page.evaluate("document.documentElement.lang") == "ru"
        await shots.take(page, "before-start")

        # The call page before the start says so.
        early = await signed_in(browser, school.token("ST-2"))
        await early.goto(f"{d.url}/calls/{call_id}")
        await expect(early.get_by_text("Звонок начнётся")).to_be_visible()
        await shots.take(early, "call-not-open")

        # At the start time the lesson starts by itself; the chat's call event brings the
        # link to the open list, and the join screen to the waiting call page.
        await set_clock(d, at(0, 10))
        await expect(early.get_by_role("heading", name="Присоединиться к звонку")).to_be_visible()
        go = row.get_by_role("link", name=f"Перейти в видеоконференцию «{NAME}»")
        await expect(go).to_be_visible()
        await shots.take(page, "go-link")

        # English on request, and back.
        await page.get_by_role("button", name="Switch to English").click()
        await expect(page.get_by_role("heading", name="Videoconferences")).to_be_visible()
        await expect(row.locator("td").nth(1)).to_have_text("Online lesson")
        await shots.take(page, "english")
        await page.get_by_role("button", name="Переключить на русский").click()

        await go.click()
        await page.wait_for_url(f"**/calls/{call_id}")
        await expect(page.get_by_role("heading", name="Присоединиться к звонку")).to_be_visible()
        await expect(page.get_by_text(NAME)).to_be_visible()
        await shots.take(page, "call-page")

        # A stranger's page is told plainly; an address that is no call id is no page.
        other = await signed_in(browser, d.add_user().token)
        await other.goto(f"{d.url}/calls/{call_id}")
        await expect(other.get_by_role("alert")).to_have_text(
            "Такого звонка нет или вы не его участник."
        )
        response = await other.goto(d.url + "/calls/not-a-call")
        assert response is not None and response.status == 404
    assert "Traceback" not in d.log()


Step = Callable[[Page], Awaitable[None]]


async def joined(page: Page, url: str, shots: Shots, who: str) -> None:
    await page.goto(url)
    await joined_here(page, shots, who)


async def joined_here(page: Page, shots: Shots, who: str) -> None:
    """Joins the call of the open call page with camera and microphone."""
    await expect(page.get_by_role("heading", name="Присоединиться к звонку")).to_be_visible()
    await page.get_by_role("button", name="С видео").click()
    await expect(page.get_by_role("navigation", name="Управление звонком")).to_be_visible()
    await expect(page.get_by_role("button", name="Камера")).to_have_attribute(
        "aria-pressed", "true"
    )
    await shots.take(page, f"joined-{who}")


# Moves of the pressed mouse, dispatched in the page at once (the mouse one by one over the
# debugging protocol takes tens of milliseconds each in a page with three video calls).
MOVES = """([x, y, n]) => {
  const board = document.querySelector('canvas.board');
  for (let i = 1; i <= n; i++) {
    board.dispatchEvent(new PointerEvent('pointermove', {
      bubbles: true, pointerId: 1, pointerType: 'mouse', buttons: 1,
      clientX: x + (140 * i) / n, clientY: y + (56 * i) / n,
    }));
  }
}"""


async def draw(page: Page, moves: int = 7) -> None:
    """A stroke across the open whiteboard: the mouse pressed, moved ``moves`` times (by
    hand, or for a long stroke in the page at once), released."""
    board = page.get_by_role("img", name="Интерактивная доска: рисуйте мышью или пальцем")
    box = await board.bounding_box()
    assert box is not None
    x, y = box["x"] + 30, box["y"] + 30
    await page.mouse.move(x, y)
    await page.mouse.down()
    if moves <= 20:
        for step in range(1, moves + 1):
            await page.mouse.move(x + step * 140 / moves, y + step * 56 / moves)
    else:
        await page.evaluate(MOVES, [x, y, moves])
    await page.mouse.up()


def tile(page: Page, user: str, kind: str = "video") -> Any:
    return page.locator(f"figure.tile[data-user='{user}'][data-kind='{kind}']")


# The steps of a lesson (shared with tests/test_web_demo_lesson.py); `pages`: user id -> page.


async def everyone_sees_everyone(pages: dict[str, Page]) -> None:
    """Everyone's tile on everyone's page, and the others' camera video decoded (R18)."""
    for me, page in pages.items():
        for other in pages:
            await expect(tile(page, other)).to_be_visible()
            if other != me:
                assert await frames_from(page, other) > 0


async def hand_raised_and_lowered(teacher: Page, pupil: Page, pupil_id: str, shots: Shots) -> None:
    """A raised hand reaches the teacher's queue; the teacher lowers it."""
    await pupil.get_by_role("button", name="Поднять руку").click()
    await expect(pupil.get_by_role("button", name="Опустить руку")).to_be_visible()
    await teacher.get_by_role("button", name="Участники", exact=True).click()
    hands = teacher.get_by_role("list", name="Поднятые руки")
    await expect(hands.locator(f"li[data-user='{pupil_id}']")).to_be_visible()
    await shots.take(teacher, "raised-hand")
    await hands.locator(f"li[data-user='{pupil_id}']").get_by_role("button").click()
    await expect(teacher.get_by_text("Рук не поднято.")).to_be_visible()
    await expect(pupil.get_by_role("button", name="Поднять руку")).to_be_visible()


async def screen_allowed_and_shared(
    teacher: Page, pupil: Page, pupil_id: str, watchers: list[Page], shots: Shots
) -> None:
    """The screen: refused until the teacher allows it ("Доступы участников", R22), then
    shared, and decoded by the watchers."""
    await pupil.get_by_role("button", name="Демонстрировать экран").click()
    await expect(
        pupil.get_by_text("Администратор не разрешил вам демонстрировать экран")
    ).to_be_visible()
    await shots.take(pupil, "screen-refused")
    await teacher.get_by_role("button", name="Доступы участников").click()
    allow = teacher.locator(f"tr[data-user='{pupil_id}']").get_by_role(
        "checkbox", name="Демонстрация экрана"
    )
    await expect(allow).not_to_be_checked()
    await allow.check()
    await shots.take(teacher, "screen-allowed")
    await expect(pupil.get_by_role("button", name="Демонстрировать экран")).to_be_visible()
    await wait_for(
        pupil,
        "(u) => sferumCall.participant(u).caps.includes('screen')",
        pupil_id,
        "the screen permission did not reach the student",
    )
    await pupil.get_by_role("button", name="Демонстрировать экран").click()
    await expect(pupil.get_by_role("button", name="Остановить демонстрацию")).to_be_visible()
    for page in watchers:
        await expect(tile(page, pupil_id, "screen")).to_be_visible()
        assert await frames_from(page, pupil_id, "screen") > 0
    await shots.take(watchers[-1], "screen-shown")


async def breakout_and_back(
    teacher: Page, teacher_id: str, pupils: dict[str, Page], shots: Shots
) -> None:
    """Breakout rooms (R21): two rooms at random, each of the two pupils in one, then back."""
    (id1, page1), (id2, page2) = pupils.items()
    await teacher.get_by_role("button", name="Сессионные залы").click()
    await teacher.get_by_label("Количество залов (до 50)").fill("2")
    await teacher.get_by_role("button", name="Распределить").click()
    await expect(teacher.get_by_text("Черновик")).to_be_visible()
    await teacher.get_by_role("button", name="Открыть залы").click()
    rooms = set()
    for page, other in ((page1, id2), (page2, id1)):
        label = page.locator(".room-label")
        await expect(label).to_have_text(re.compile(r"Сессионный зал \d"))
        rooms.add(await label.get_attribute("data-room"))
        await expect(tile(page, other)).to_have_count(0)
        await expect(tile(page, teacher_id)).to_have_count(0)
    assert len(rooms) == 2
    await shots.take(page1, "breakout-room")
    await shots.take(teacher, "breakout-admin")
    await teacher.get_by_role("button", name="Закрыть залы сейчас").click()
    for page, other in ((page1, id2), (page2, id1)):
        await expect(page.locator(".room-label")).to_have_text("Общий зал")
        await expect(tile(page, other)).to_be_visible()
        await expect(tile(page, teacher_id)).to_be_visible()
    await shots.take(page2, "breakout-back")


async def recorded(teacher: Page, pages: list[Page], shots: Shots) -> None:
    """Recording (R20): started and stopped by the teacher, the indicator for everyone."""
    await teacher.get_by_role("button", name="Начать запись").click()
    for page in pages:
        await expect(page.get_by_role("status").filter(has_text="Идёт запись")).to_be_visible()
    await shots.take(pages[-1], "recording")
    await teacher.get_by_role("button", name="Остановить запись").click()
    for page in pages:
        await expect(page.get_by_text("Идёт запись")).to_have_count(0)


async def ended_for_all(teacher: Page, pages: list[Page], shots: Shots) -> None:
    """The call ends on every page ("Завершить для всех", R23)."""
    await teacher.get_by_role("button", name="Завершить для всех").click()
    await teacher.get_by_role("button", name="Завершить для всех: Завершить звонок").click()
    for page in pages:
        await expect(page.get_by_role("heading", name="Звонок завершён")).to_be_visible()
    await shots.take(pages[-1], "ended")


async def admin_controls_only_for(teacher: Page, pupil: Page) -> None:
    """Only the teacher (the call's admin) has the admin controls."""
    await expect(teacher.get_by_role("button", name="Доступы участников")).to_be_visible()
    await expect(pupil.get_by_role("button", name="Доступы участников")).to_have_count(0)
    await expect(pupil.get_by_role("button", name="Завершить для всех")).to_have_count(0)


async def call_chat_and_whiteboard(teacher: Page, st1: Page, st2: Page, shots: Shots) -> None:
    """A pupil writes in the call's chat and the teacher reads it. The whiteboard: the
    teacher draws, a pupil sees it; the teacher lets everyone draw, a pupil draws, a late
    opener gets both (replay); a long stroke arrives whole; the teacher clears it for
    everyone."""
    await st2.get_by_role("button", name="Чат", exact=True).click()
    await st2.get_by_role("textbox", name="Сообщение").fill("Здравствуйте!")
    await st2.get_by_role("button", name="Отправить").click()
    await teacher.get_by_role("button", name="Чат", exact=True).click()
    await expect(teacher.get_by_role("list", name="Чат звонка")).to_contain_text("Здравствуйте!")
    await shots.take(teacher, "call-chat")

    await teacher.get_by_role("button", name="Интерактивная доска").click()
    await st1.get_by_role("button", name="Интерактивная доска").click()
    await expect(st1.get_by_text("Рисовать на доске можно с разрешения")).to_be_visible()
    await draw(teacher)
    await expect(st1.locator("canvas.board")).to_have_attribute("data-items", "1")
    await shots.take(st1, "whiteboard")
    await teacher.get_by_role("button", name="Доступы участников").click()
    await teacher.get_by_role("checkbox", name="Доска: Все участники").check()
    await expect(st1.get_by_role("group", name="Цвет")).to_be_visible()
    await st1.get_by_role("button", name="Цвет: Красный").click()
    await draw(st1)
    await st2.get_by_role("button", name="Интерактивная доска").click()
    await expect(st2.locator("canvas.board")).to_have_attribute("data-items", "2")
    await shots.take(st2, "whiteboard-replay")
    await teacher.get_by_role("button", name="Интерактивная доска").click()
    # A long stroke (1,901 points) goes out in two items that each fit an event's content;
    # sent whole, it was refused as too large and lost.
    await draw(teacher, moves=1900)
    await expect(st2.locator("canvas.board")).to_have_attribute("data-items", "4")
    await teacher.get_by_role("button", name="Очистить доску").click()
    for page in (st1, st2, teacher):
        await expect(page.locator("canvas.board")).to_have_attribute("data-items", "0")


UNNAMED = """() => [...document.querySelectorAll('button, input, select, textarea, canvas, a')]
  .filter((el) => el.offsetParent !== null)
  .filter((el) => {
    const label = el.getAttribute('aria-label') || el.getAttribute('aria-labelledby')
      || (el.labels && [...el.labels].map((l) => l.textContent).join(''))
      || (el.tagName === 'INPUT' ? '' : el.textContent);
    return !label || !label.trim();
  })
  .map((el) => el.outerHTML.slice(0, 80))"""


async def test_a_chat_call_waiting_room_and_moderation(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    """A call in a chat with the waiting room on (R26): the guest comes through the chat's
    "Войти", waits, is let in; force mute, layout, minimise, device choice, English, a name
    on every control, breakout rooms by hand with a message to every room, removal, leaving
    and coming back."""
    d = daemon_factory(MEDIA + "\n[calls]\nwaiting_room = true\n")
    host = d.add_user(first="Анна", last="Иванова")
    guest = d.add_user(first="Борис", last="Смирнов")
    async with Client(d.url, host.token) as anna, Client(d.url, guest.token) as boris:
        room_id = await anna.create_room("Стенгазета", invite=[guest.user_id])
        await boris.join(room_id)
        call_id = (await anna.call_start(room_id))["call_id"]
    url = f"{d.url}/calls/{call_id}"
    shots = Shots("web-call-chat-call")
    async with chromium(media=True) as browser:
        host_page = await signed_in(browser, host.token)
        guest_page = await signed_in(browser, guest.token)
        await host_page.goto(url)
        await host_page.get_by_role("button", name="С аудио").click()
        await expect(host_page.get_by_role("button", name="Камера")).to_have_attribute(
            "aria-pressed", "false"
        )

        # The guest comes from the chat's "Войти" (R26) and waits until the host lets them
        # in, then joins with media.
        await guest_page.goto(f"{d.url}/chats/{room_id}")
        await guest_page.get_by_role("link", name=re.compile("Войти в звонок")).click()
        await guest_page.wait_for_url(url)
        await guest_page.get_by_role("button", name="С видео").click()
        await expect(guest_page.get_by_text("Вы в зале ожидания")).to_be_visible()
        await shots.take(guest_page, "waiting")
        await host_page.get_by_role("button", name="Участники", exact=True).click()
        await expect(host_page.get_by_role("list", name="Зал ожидания")).to_contain_text(
            "Смирнов Борис"
        )
        await shots.take(host_page, "waiting-room")
        await host_page.get_by_role("button", name="Впустить: Смирнов Борис").click()
        await expect(
            guest_page.get_by_role("navigation", name="Управление звонком")
        ).to_be_visible()
        assert await frames_from(host_page, guest.user_id) > 0
        await expect(tile(guest_page, host.user_id)).to_have_attribute("data-has-video", "false")
        await shots.take(host_page, "admitted")

        # Force mute: the guest's microphone goes off on their page too.
        mic = guest_page.get_by_role("button", name="Микрофон")
        await expect(mic).to_have_attribute("aria-pressed", "true")
        await host_page.get_by_role("button", name="Выключить микрофон: Смирнов Борис").click()
        await expect(mic).to_have_attribute("aria-pressed", "false")

        # Layout, minimise and expand.
        layout = host_page.get_by_role("button", name="Отображение участников")
        await layout.click()
        await expect(layout).to_have_text("Отображение участников: Докладчик")
        await expect(host_page.locator(".call")).to_have_attribute("data-layout", "speaker")
        await shots.take(host_page, "speaker-layout")
        await host_page.get_by_role("button", name="Свернуть звонок").click()
        await expect(host_page.get_by_role("navigation", name="Управление звонком")).to_have_count(
            0
        )
        await shots.take(host_page, "minimised")
        await host_page.get_by_role("button", name="Развернуть звонок").click()
        await expect(host_page.get_by_role("navigation", name="Управление звонком")).to_be_visible()

        # Settings: another camera (Chromium's fake one) keeps the video going.
        await guest_page.get_by_role("button", name="Настройки").click()
        camera = guest_page.get_by_role("combobox", name="Камера")
        await expect(camera.locator("option")).not_to_have_count(1)
        device = await camera.locator("option").nth(1).get_attribute("value")
        await camera.select_option(device)
        await wait_for(
            guest_page,
            "(id) => sferumCall.media.local.video.getSettings().deviceId === id",
            device,
            "the chosen camera is not the one sending",
        )
        await shots.take(guest_page, "settings")

        # English on the call page, and every control has a name a screen reader reads.
        settings = guest_page.get_by_role("complementary", name="Настройки")
        await settings.get_by_role("button", name="Switch to English").click()
        await expect(guest_page.get_by_role("button", name="Raise hand")).to_be_visible()
        await expect(guest_page.get_by_role("complementary", name="Settings")).to_be_visible()
        await shots.take(guest_page, "english")
        banner = guest_page.get_by_role("banner")
        await banner.get_by_role("button", name="Переключить на русский").click()
        await expect(guest_page.get_by_role("button", name="Поднять руку")).to_be_visible()
        for panel in ("Чат", "Интерактивная доска", "Участники", "Настройки"):
            await host_page.get_by_role("button", name=panel, exact=True).click()
            assert await host_page.evaluate(UNNAMED) == [], panel
        for panel in ("Доступы участников", "Сессионные залы"):
            await host_page.get_by_role("button", name=panel, exact=True).click()
            assert await host_page.evaluate(UNNAMED) == [], panel
        assert await guest_page.evaluate(UNNAMED) == []

        # Breakout rooms by hand: the guest put into room 2, a message to every room, back.
        rooms_panel = host_page.get_by_role("complementary", name="Сессионные залы")
        await rooms_panel.get_by_text("Вручную").click()
        await rooms_panel.get_by_role("button", name="Распределить").click()
        await expect(rooms_panel.get_by_text("Черновик")).to_be_visible()
        await rooms_panel.get_by_role(
            "combobox", name="Зал для участника Смирнов Борис"
        ).select_option(label="Зал 2")
        await expect(rooms_panel.locator("li[data-room$='.2']")).to_contain_text("Смирнов Борис")
        await rooms_panel.get_by_role("button", name="Открыть залы").click()
        await expect(guest_page.locator(".room-label")).to_have_text("Сессионный зал 2")
        await rooms_panel.get_by_label("Сообщение во все залы").fill("Осталось 5 минут")
        await rooms_panel.get_by_role("button", name="Отправить во все залы").click()
        await expect(
            guest_page.get_by_text("Сообщение от Иванова Анна: Осталось 5 минут")
        ).to_be_visible()
        await shots.take(guest_page, "broadcast")
        await rooms_panel.get_by_role("button", name="Закрыть залы сейчас").click()
        await expect(guest_page.locator(".room-label")).to_have_text("Общий зал")
        await host_page.keyboard.press("Escape")  # closes the panel
        await expect(host_page.get_by_role("complementary")).to_have_count(0)

        # Removed by the host; the host leaves and may come back.
        await host_page.get_by_role("button", name="Участники", exact=True).click()
        await host_page.get_by_role("button", name="Удалить из звонка: Смирнов Борис").click()
        await expect(guest_page.get_by_text("Администратор удалил вас из звонка.")).to_be_visible()
        await expect(guest_page.get_by_role("heading", name="Вы не в звонке")).to_be_visible()
        await shots.take(guest_page, "removed")
        await host_page.get_by_role("button", name="Выход из звонка").click()
        await expect(host_page.get_by_role("heading", name="Вы вышли из звонка")).to_be_visible()
        await host_page.get_by_role("button", name="Вернуться в звонок").click()
        await expect(host_page.get_by_role("navigation", name="Управление звонком")).to_be_visible()
    assert "Traceback" not in d.log()
