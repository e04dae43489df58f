"""The session page against a real relay and a real sharer under a PTY: typing, read-only, late join,
resize, reload, and query replies that must not be typed."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .conftest import PROMPT, PtyShare, open_live, screen, type_in_page, wait_screen, wait_state


def header_text(page: Any, selector: str) -> str:
    loc = page.locator(selector)
    return "" if loc.is_hidden() else str(loc.text_content()).strip()


def test_read_write_link_types_into_the_shell(page: Any, share: PtyShare) -> None:
    open_live(page, share.rw)
    wait_screen(page, r"^\$$")  # the snapshot has the prompt
    assert header_text(page, ".badge") == "Read-write"
    page.wait_for_function("window.termshare.viewers() === 1")

    type_in_page(page, "echo from-page-$((6*7))")
    # The shell got the keys (its echo shows at the sharer) and its output reaches both screens.
    share.expect(rb"echo from-page-\$\(\(6\*7\)\)")
    share.expect(rb"\r\nfrom-page-42\r\n")
    wait_screen(page, r"^from-page-42$", pump=share)
    wait_screen(page, r"^\$ echo from-page-\$\(\(6\*7\)\)$")
    assert "from-page-42" in share.pty.screen_lines()

    # The sharer types too, and the page follows.
    share.type("echo from-sharer-$((5*11))\r")
    wait_screen(page, r"^from-sharer-55$", pump=share)


def test_read_only_link_cannot_type(page: Any, share: PtyShare, tmp_path: Path) -> None:
    open_live(page, share.ro)
    wait_screen(page, r"^\$$")
    assert header_text(page, ".badge") == "Read-only"

    marker = tmp_path / f"ro-{uuid.uuid4().hex}"
    type_in_page(page, f"touch {marker}")
    page.keyboard.type("echo typed-$((1+1))\n")
    share.pty.pump(1.0)  # give stray input every chance to arrive

    share.type("echo control-$((3*4))\r")
    share.expect(rb"\r\ncontrol-12\r\n")
    share.expect(PROMPT)
    wait_screen(page, r"^control-12$", pump=share)
    share.pty.pump(0.3)
    assert not marker.exists()
    assert marker.name.encode() not in share.pty.output
    assert b"typed-2" not in share.pty.output
    assert marker.name not in screen(page)
    assert state_is_live(page)


def state_is_live(page: Any) -> bool:
    return bool(page.evaluate("window.termshare.state() === 'live'"))


def test_late_joiner_sees_the_current_screen(page: Any, share: PtyShare) -> None:
    share.type("echo early-$((2*21))\r")
    share.expect(rb"\r\nearly-42\r\n")
    share.expect(PROMPT)
    share.pty.pump(0.3)

    open_live(page, share.ro)
    # The first screen (the snapshot) already has what was printed before the page opened.
    text = screen(page)
    assert re.search(r"^early-42$", text, re.M), text
    assert re.search(r"^\$ echo early-\$\(\(2\*21\)\)$", text, re.M), text


def size_chip(page: Any) -> str:
    return header_text(page, ".chip.size")


def test_sharer_resize_reaches_the_page(page: Any, share: PtyShare) -> None:
    open_live(page, share.rw)
    page.wait_for_function("document.querySelector('.chip.size')?.textContent === '80×24'")
    assert screen(page).count("\n") == 23

    for cols, rows in ((100, 30), (60, 20)):
        share.pty.resize(cols, rows)
        share.pty.pump(0.2)
        page.wait_for_function(f"document.querySelector('.chip.size')?.textContent === '{cols}×{rows}'")
        assert screen(page).count("\n") == rows - 1  # screenText() has one line per terminal row
        # The shell sees the new size, typed from the page and shown in the page.
        type_in_page(page, f"clear; stty size; echo size-{cols}x{rows}-$((100+1))")
        wait_screen(page, rf"^{rows} {cols}\nsize-{cols}x{rows}-101$", pump=share)
        share.expect(rf"{rows} {cols}\r\nsize-{cols}x{rows}-101".encode())
        # xterm.js has exactly `cols` columns: `cols` + 1 characters wrap after the `cols`th.
        type_in_page(page, f"printf '%{cols}s|\\n' | tr ' ' '='")
        wait_screen(page, rf"^={{{cols}}}\n\|$", pump=share)


def test_reloaded_viewer_comes_back(page: Any, share: PtyShare) -> None:
    open_live(page, share.rw)
    type_in_page(page, "echo before-$((10+1))")
    wait_screen(page, r"^before-11$", pump=share)

    page.reload()
    wait_state(page, "live")
    wait_screen(page, r"^before-11$", pump=share)  # the snapshot after the reload
    page.wait_for_function("window.termshare.viewers() === 1")  # the old viewer left

    share.type("echo after-$((10+2))\r")
    wait_screen(page, r"^after-12$", pump=share)
    type_in_page(page, "echo typed-after-reload-$((10+3))")  # and it can still type
    share.expect(rb"\r\ntyped-after-reload-13\r\n")
    wait_screen(page, r"^typed-after-reload-13$", pump=share)


def test_query_replies_are_not_typed(page: Any, share: PtyShare) -> None:
    open_live(page, share.rw)
    wait_screen(page, r"^\$$")
    # The shell prints a cursor position request and a device attributes request, then listens for
    # 2 s without echo: anything the page's xterm.js answered would arrive here and be shown by cat -v.
    share.type("clear; printf '\\033[6n\\033[c'; stty -icanon -echo min 0 time 20; cat -v; stty sane;"
               " echo END-$((2+3))\r")
    share.expect(rb"END-5\r\n", 15)
    share.expect(PROMPT)
    wait_screen(page, r"^END-5$", pump=share)
    lines = share.pty.screen_lines()
    # `clear` homed the cursor; the queries print nothing, so cat -v printed nothing iff END-5 is first.
    assert lines[0] == "END-5", f"the shell read something after the queries:\n{share.pty.screen_text()}"
    end = 0

    type_in_page(page, "echo done")
    share.expect(rb"\r\ndone\r\n")
    share.expect(PROMPT)
    wait_screen(page, r"^done$", pump=share)
    lines = share.pty.screen_lines()
    assert lines[end + 1] == "$ echo done", share.pty.screen_text()
    assert lines[end + 2] == "done", share.pty.screen_text()
    assert b"^[" not in share.pty.output
    assert not re.search(rb"\x1b\[\d+;\d+R|\x1b\[\?[\d;]*c", bytes(share.pty.output)), share.pty.tail()


def cell_png(page: Any, col: int, row: int, cols: int, rows: int) -> bytes:
    """A screenshot of one character cell of the terminal (PNG bytes)."""
    box = page.locator(".xterm-screen").bounding_box()
    assert box is not None
    w, h = box["width"] / cols, box["height"] / rows
    clip = {"x": box["x"] + col * w, "y": box["y"] + row * h, "width": w, "height": h}
    return bytes(page.screenshot(clip=clip, animations="disabled"))


def prompt_cell(page: Any) -> tuple[int, int]:
    """Where the cursor is after a bare `$ ` prompt on the page's last non-empty line."""
    lines = screen(page).split("\n")
    y = max(i for i, line in enumerate(lines) if line)
    assert lines[y] == "$", lines
    return 2, y


def cursor_drawn(page: Any, cols: int = 80, rows: int = 24, tries: int = 4) -> bool:
    """Whether the cell at the prompt's cursor differs from an empty cell of the same column below it."""
    x, y = prompt_cell(page)
    for _ in range(tries):  # a blinking cursor may be in its off phase: look a few times
        if cell_png(page, x, y, cols, rows) != cell_png(page, x, y + 3, cols, rows):
            return True
        page.wait_for_timeout(250)
    return False


def test_read_only_viewer_shows_the_sharers_cursor(new_page: Callable[[], Any], share: PtyShare) -> None:
    """People watching need to see where the sharer's cursor is (at the prompt, in an editor)."""
    share.type("echo cursor-$((2+2))\r")
    share.expect(rb"\r\ncursor-4\r\n")
    share.expect(PROMPT)
    # Control: a read-write viewer that clicked into the terminal shows the cursor, so the check works.
    rw = new_page()
    open_live(rw, share.rw)
    wait_screen(rw, r"^cursor-4\n\$$")
    rw.click(".xterm-screen")
    assert cursor_drawn(rw), "control failed: no cursor even in the focused read-write page"

    ro = new_page()
    open_live(ro, share.ro)
    wait_screen(ro, r"^cursor-4\n\$$")
    ro.wait_for_timeout(300)  # let the renderer draw
    assert cursor_drawn(ro), (
        "the read-only page does not draw the sharer's cursor (xterm.js hides it until the terminal is "
        "focused or the alternate screen is used: CoreService.isCursorInitialized)")


def test_focused_dom_terminal_does_not_animate_its_cursor(page: Any, share: PtyShare) -> None:
    """With the DOM renderer (headless Chromium has no GPU, so the app does not pick WebGL), a blinking
    cursor is an endless CSS animation: the page draws a frame at every vsync, and Chromium holds the
    page's tasks after each keystroke until that frame has run (DeferRendererTasksAfterInput), which
    made every echo a frame late (bench/browser.py: 13 ms instead of 3.5 in the page)."""
    open_live(page, share.rw)
    wait_screen(page, r"^\$$")
    page.click(".xterm-screen")
    page.wait_for_timeout(200)
    assert page.locator(".xterm-rows .xterm-cursor").count() == 1, "not the DOM renderer, or no cursor drawn"
    assert page.locator(".xterm-cursor-blink").count() == 0, "the focused read-write page animates its cursor"
