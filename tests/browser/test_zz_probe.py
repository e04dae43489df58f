from typing import Any
from .conftest import PROMPT, PtyShare, open_live, wait_screen
from .test_session import cell_png

def test_probe_25h(page: Any, share: PtyShare) -> None:
    open_live(page, share.ro)
    wait_screen(page, r"^\$$")
    share.type("printf '\\033[?25h'; echo cursor-$((2+2))\r")
    share.expect(rb"cursor-4\r\n"); share.expect(PROMPT); share.pty.pump(0.3)
    x, y = share.pty.screen.cursor.x, share.pty.screen.cursor.y
    wait_screen(page, r"^cursor-4\n\$$")
    page.wait_for_timeout(500)
    page.screenshot(path="/tmp/probe25h.png")
    assert cell_png(page, x, y, 80, 24) != cell_png(page, x, y + 3, 80, 24), (x, y)
