"""Fixtures for the real-browser tests of the web viewer: headless Chromium (Playwright), a real relay,
real `termshare share` processes (under a PTY, via tests/e2e/ptyproc.py, when the sharer's screen matters).

Chromium is the system one (`/usr/bin/chromium`); Playwright never downloads a browser here. When
Chromium or Playwright is missing the tests skip, unless TERMSHARE_REQUIRE_BROWSER=1 (CI), where they
fail. Timeouts are base seconds times TERMSHARE_TEST_TIMEOUT_FACTOR (tests/procs.py `timeout`).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.ptyproc import PtyProcess
from tests.procs import ROOT, Relay, shell_env, timeout

ARTIFACTS = ROOT / "test-artifacts"
SHELL_CMD = "bash --norc --noprofile"
PROMPT = rb"\$ "
LINK_RW = re.compile(rb"read-write link: (\S+)")
LINK_RO = re.compile(rb"read-only link: +(\S+)")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
VIEWPORT = {"width": 1280, "height": 800}


def _unavailable(reason: str) -> None:
    if os.environ.get("TERMSHARE_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser tests are required here (TERMSHARE_REQUIRE_BROWSER=1) but {reason}", pytrace=False)
    pytest.skip(reason)


def ms(seconds: float) -> float:
    """A scaled timeout in milliseconds, for Playwright."""
    return timeout(seconds) * 1000


# -- the browser -------------------------------------------------------------------------------------
@pytest.fixture(scope="package")  # torn down after tests/browser: Playwright's sync API holds an event loop
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        _unavailable(f"Playwright for Python is not installed ({exc}; pip install playwright)")
    executable = shutil.which("chromium")
    if executable is None:
        _unavailable("no `chromium` on PATH (Debian: apt-get install chromium)")
    pw = sync_playwright().start()
    try:
        try:
            instance = pw.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        except Exception as exc:  # noqa: BLE001 - any launch failure means "no usable browser"
            _unavailable(f"Chromium ({executable}) does not start under Playwright: {exc}")
        try:
            yield instance
        finally:
            instance.close()
    finally:
        pw.stop()


class PageErrors:
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.console: list[str] = []


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport=VIEWPORT)
    ctx.set_default_timeout(ms(15))
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def page_errors() -> PageErrors:
    return PageErrors()


@pytest.fixture
def new_page(context: Any, page_errors: PageErrors) -> Callable[[], Any]:
    """Open another page (tab) in this test's browser context; uncaught page errors fail the test."""

    def make() -> Any:
        page = context.new_page()
        page.on("pageerror", lambda exc: page_errors.errors.append(f"{page.url}: {exc}"))
        page.on("console", lambda msg: page_errors.console.append(f"[{msg.type}] {msg.text}"))
        return page

    return make


@pytest.fixture
def page(new_page: Callable[[], Any], page_errors: PageErrors) -> Iterator[Any]:
    p = new_page()
    yield p
    assert not page_errors.errors, f"uncaught errors in the page: {page_errors.errors}"


# -- relay and sharers -------------------------------------------------------------------------------
@pytest.fixture(scope="package")  # torn down after tests/browser: Playwright's sync API holds an event loop
def relay() -> Iterator[Relay]:
    r = Relay("--host", "127.0.0.1")
    try:
        yield r
    finally:
        r.close()


@pytest.fixture
def own_relay() -> Iterator[Relay]:
    r = Relay("--host", "127.0.0.1")
    try:
        yield r
    finally:
        r.close()


class PtyShare:
    """`termshare share --cmd 'bash --norc --noprofile'` under a real PTY; the links from its banner."""

    def __init__(self, relay: Relay, home: Path, *extra: str, cols: int = 80, rows: int = 24) -> None:
        argv = [sys.executable, "-m", "termshare", "share", "--host", "127.0.0.1", "--port", str(relay.port),
                "--cmd", SHELL_CMD, *extra]
        self.pty = PtyProcess(argv, env=shell_env(home), cols=cols, rows=rows, cwd=str(ROOT), name="share")
        try:
            self.rw = self.pty.expect(LINK_RW, timeout(15)).group(1).decode()
            self.ro = self.pty.expect(LINK_RO, timeout(5)).group(1).decode()
            self.pty.expect(PROMPT, timeout(10))
        except BaseException:
            self.pty.close()
            raise

    def type(self, text: str) -> None:
        self.pty.type(text)

    def expect(self, pattern: str | bytes, seconds: float = 10) -> re.Match[bytes]:
        return self.pty.expect(pattern, timeout(seconds))

    def close(self) -> None:
        self.pty.close()


@pytest.fixture
def share_factory(tmp_path: Path) -> Iterator[Callable[..., PtyShare]]:
    started: list[PtyShare] = []

    def make(relay: Relay, *extra: str, cols: int = 80, rows: int = 24) -> PtyShare:
        home = tmp_path / f"home{len(started)}"
        home.mkdir()
        share = PtyShare(relay, home, *extra, cols=cols, rows=rows)
        started.append(share)
        return share

    try:
        yield make
    finally:
        for share in reversed(started):
            share.close()


@pytest.fixture
def share(share_factory: Callable[..., PtyShare], relay: Relay) -> PtyShare:
    """A PTY sharer of bash on the session relay."""
    return share_factory(relay)


# -- page helpers ------------------------------------------------------------------------------------
def state(page: Any) -> str:
    return str(page.evaluate("window.termshare ? window.termshare.state() : 'no-api'"))


def screen(page: Any) -> str:
    """The page's screen text, trailing blanks of each line removed (xterm.js keeps written spaces)."""
    text = str(page.evaluate("window.termshare ? window.termshare.screenText() : ''"))
    return "\n".join(line.rstrip() for line in text.split("\n"))


def wait_state(page: Any, want: str, seconds: float = 15) -> None:
    try:
        page.wait_for_function("s => window.termshare && window.termshare.state() === s", arg=want,
                               timeout=ms(seconds))
    except Exception as exc:  # noqa: BLE001 - rephrase Playwright's timeout with what the page shows
        raise AssertionError(f"the page never reached state {want!r} (it is {state(page)!r}); screen:\n"
                             f"{screen(page)}\nbody text:\n{page.inner_text('body')[:2000]}") from exc


def wait_screen(page: Any, pattern: str, seconds: float = 10, pump: PtyShare | None = None) -> re.Match[str]:
    """Wait until the page's terminal screen matches `pattern` (a str regex), reading `pump` meanwhile."""
    regex = re.compile(pattern, re.M)
    deadline = time.monotonic() + timeout(seconds)
    while True:
        text = screen(page)
        match = regex.search(text)
        if match is not None:
            return match
        if time.monotonic() > deadline:
            raise AssertionError(f"the page's screen never matched {pattern!r} (state {state(page)!r}); screen:\n{text}")
        if pump is not None:
            pump.pty.pump(0.05)
        else:
            time.sleep(0.05)


def open_live(page: Any, url: str, seconds: float = 15) -> Any:
    """Go to a session link and wait until the terminal is live; returns the page's HTTP response."""
    response = page.goto(url)
    wait_state(page, "live", seconds)
    return response


def type_in_page(page: Any, text: str, enter: bool = True) -> None:
    """Click the terminal (focus) and type like a person."""
    page.click(".xterm-screen")
    page.keyboard.type(text)
    if enter:
        page.keyboard.press("Enter")


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path))
    return path
