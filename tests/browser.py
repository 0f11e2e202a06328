"""Real headless Chromium for tests: the Debian package, driven by Playwright with
``executable_path`` (Playwright never downloads a browser here). `make test` installs the
package; a missing browser fails the test that needs it, it is never skipped."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

CHROMIUM = os.environ.get("SFERUM_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(
    os.environ.get("SFERUM_ARTIFACTS", Path(__file__).parent.parent / "test-artifacts")
)

# Flags for a closed, loopback-only machine: without the background-networking ones Chromium
# keeps trying to reach Google's hosts.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
]
# Calls: Chromium's fake camera and microphone (no prompt), the screen picked without a
# dialog, and ICE over 127.0.0.1 (the daemon offers loopback candidates in tests).
MEDIA_FLAGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--auto-select-desktop-capture-source=Entire screen",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required",
]


@asynccontextmanager
async def chromium(media: bool = False) -> AsyncIterator[Browser]:
    """The browser; ``media``: with MEDIA_FLAGS, for pages that join calls."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
    args = FLAGS + MEDIA_FLAGS if media else FLAGS
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        try:
            yield browser
        finally:
            await browser.close()


async def new_page(browser: Browser, locale: str = "ru-RU") -> Page:
    """A fresh context per person: its own storage, like a separate browser."""
    context = await browser.new_context(locale=locale)
    page = await context.new_page()
    page.set_default_timeout(15_000)
    return page


class Shots:
    """Screenshots of each step, kept as test artefacts under test-artifacts/NAME/."""

    def __init__(self, name: str):
        self.folder = ARTIFACTS / name
        self.folder.mkdir(parents=True, exist_ok=True)
        self.count = 0

    async def take(self, page: Page, step: str) -> None:
        self.count += 1
        await page.screenshot(
            path=str(self.folder / f"{self.count:02d}-{step}.png"), full_page=True
        )
