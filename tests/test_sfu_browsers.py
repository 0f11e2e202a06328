"""The SFU with Chromium participants where the call page's own checks can't tell: the SFU
itself refuses a screen producer without the screen permission and lets it through once the
admin grants it (asked through rtc.js directly, past the page's button); Chrome keeps
decoding a receive slot when the SFU remaps it to another source (breakout rooms and back:
sequence numbers, timestamps and VP8 picture ids made continuous); and a recording of
browser media that PyAV decodes to the length recorded (R20). Each page is a separate
browser context with Chromium's fake camera and microphone."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.async_api import Page

from clients.sdk import Client
from tests.browser import Shots, chromium
from tests.test_call_record import decoded, recording_message
from tests.test_web_call import MEDIA, frames_from, joined, signed_in, wait_for

# A click in the page starts the share (getDisplayMedia wants a user gesture); the outcome
# lands in window.shareResult: "shared" or the refusal's code.
SHARE_BUTTON = """() => {
  const button = document.createElement("button");
  button.id = "test-share";
  button.textContent = "share";
  button.onclick = () => {
    window.shareResult = null;
    sferumCall.media.startScreen().then(
      () => (window.shareResult = "shared"),
      (err) => (window.shareResult = err.code || String(err)),
    );
  };
  document.body.append(button);
}"""
# Sender reports Chrome got for its receive slots (it keeps them as remote-outbound-rtp).
REPORTS = """async () => {
  let reports = 0;
  for (const t of sferumCall.media.recv.getTransceivers()) {
    (await t.receiver.getStats()).forEach((s) => {
      if (s.type === "remote-outbound-rtp") reports += s.reportsSent || 0;
    });
  }
  return reports;
}"""
ONLY_ME = """(me) => Object.values(sferumCall.media.slots)
  .every((slot) => !slot || slot.user_id === me)"""


@dataclass
class Lesson:
    client: Client  # the host's: the call's owner and admin
    call_id: str
    room_id: str  # the call's own chat
    pages: dict[str, Page]  # user id -> page; the host's first


@asynccontextmanager
async def lesson(d: Any, shots: Shots, guests: int) -> AsyncIterator[Lesson]:
    """A chat call with the host and ``guests`` pupils, each in a Chromium context of their
    own, joined with camera and microphone."""
    host = d.add_user(first="Анна", last="Иванова")
    pupils = [d.add_user(first=f"Ученик{i}", last="Петров") for i in range(guests)]
    async with Client(d.url, host.token) as anna:
        room = await anna.create_room("Физика", invite=[p.user_id for p in pupils])
        for p in pupils:
            async with Client(d.url, p.token) as c:
                await c.join(room)
        call = await anna.call_start(room)
        async with chromium(media=True) as browser:
            pages = {}
            for i, user in enumerate([host, *pupils]):
                page = await signed_in(browser, user.token)
                await joined(page, f"{d.url}/calls/{call['call_id']}", shots, f"p{i}")
                pages[user.user_id] = page
            yield Lesson(anna, call["call_id"], call["room_id"], pages)


async def test_the_sfu_refuses_a_screen_until_the_admin_allows_it(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(MEDIA)
    async with lesson(d, Shots("sfu-browser-screen"), guests=1) as call:
        (_, host), (pupil_id, pupil) = call.pages.items()
        await pupil.evaluate(SHARE_BUTTON)
        await pupil.click("#test-share")
        assert await wait_for(pupil, "() => window.shareResult") == "forbidden"

        await call.client.call_permission(call.call_id, "screen", True, pupil_id)
        await wait_for(pupil, "(u) => sferumCall.participant(u).caps.includes('screen')", pupil_id)
        # The same transceiver, rolled back after the refusal, is offered again.
        await pupil.click("#test-share")
        assert await wait_for(pupil, "() => window.shareResult") == "shared"
        assert await frames_from(host, pupil_id, "screen") > 0
        # The SFU's compound sender reports (derived from the publishers') reach Chrome.
        deadline = time.monotonic() + 20
        while await host.evaluate(REPORTS) == 0:
            assert time.monotonic() < deadline, "no sender report reached the receiver"
            await host.wait_for_timeout(200)
    assert "Traceback" not in d.log()


async def frames_grow(page: Page, user: str, by: int) -> None:
    """New frames of the user's camera decoded on this page from now on."""
    await frames_from(page, user, above=await frames_from(page, user) + by - 1)


async def test_chrome_keeps_decoding_slots_the_sfu_remaps(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(MEDIA)
    async with lesson(d, Shots("sfu-browser-remap"), guests=2) as call:
        (host_id, _), (id1, page1), (id2, page2) = call.pages.items()
        await frames_from(page1, id2)
        await call.client.breakout_plan(call.call_id, "hand", rooms=[[id1], [id2]])
        await call.client.breakout_start(call.call_id)
        # Alone in their rooms: no slot of theirs carries anyone else (the host stays in
        # the main room).
        for me, page in ((id1, page1), (id2, page2)):
            await wait_for(page, ONLY_ME, me, f"{me} still receives someone in another room")
        await call.client.breakout_close(call.call_id, immediate=True)
        # Back together on the same receive transceivers (no new offer needed): the slots
        # now carry each other again and Chrome decodes the new source from its keyframe.
        await frames_grow(page1, id2, 10)
        await frames_grow(page2, id1, 10)
        await frames_grow(page1, host_id, 10)
    assert "Traceback" not in d.log()


async def test_a_recording_of_browsers_decodes_to_the_time_recorded(
    daemon_factory: Any, tmp_path: Path
) -> None:
    d = daemon_factory(MEDIA)
    async with lesson(d, Shots("sfu-browser-recording"), guests=1) as call:
        (host_id, _), (_, pupil) = call.pages.items()
        await call.client.call_record(call.call_id, True)
        started = time.monotonic()
        # About three seconds of media: 90 frames of the fake camera (30 a second).
        await frames_grow(pupil, host_id, 90)
        await call.client.call_record(call.call_id, False)
        recorded_s = time.monotonic() - started
        message = await recording_message(call.client, call.room_id)
        content = message["content"]
        assert content["call_recording"]["streams"] == ["camera", "audio"]
        path = await call.client.download(content["file"]["id"], tmp_path / "r.webm")
    got = decoded(path)
    assert got.codecs == ["vp8", "opus"]
    assert all(n > 0 for n in got.frames.values())
    assert abs(got.duration_s - recorded_s) <= 0.1 * recorded_s + 0.5, (got, recorded_s)
