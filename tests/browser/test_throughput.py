"""Output throughput smoke test: a flood of output with the page open (no timed assertion on speed)."""

from __future__ import annotations

import re
import time
from typing import Any

from tests.procs import HeadlessShare, Relay, timeout

from .conftest import open_live, state, type_in_page, wait_screen, wait_state


def test_page_stays_responsive_during_a_20mb_flood(page: Any, own_relay: Relay) -> None:
    share = HeadlessShare("--host", "127.0.0.1", "--port", str(own_relay.port), "--cmd", "bash --norc --noprofile")
    try:
        open_live(page, share.links["read_write"])
        type_in_page(page, "head -c 20000000 /dev/urandom | base64; echo FLOOD-$((6*7))-DONE")
        deadline = time.monotonic() + timeout(60)
        slowest = 0.0
        states: set[str] = set()
        samples = 0
        saw_flood = False
        done = False
        while not done:
            assert time.monotonic() < deadline, f"the flood never finished in the page (state {state(page)!r})"
            started = time.monotonic()
            assert page.evaluate("1+1") == 2
            slowest = max(slowest, time.monotonic() - started)
            states.add(state(page))
            samples += 1
            text = str(page.evaluate("window.termshare.screenText()"))
            saw_flood = saw_flood or re.search(r"^[A-Za-z0-9+/]{76}$", text, re.M) is not None
            done = re.search(r"^FLOOD-42-DONE$", text, re.M) is not None
            time.sleep(0.2)
        assert saw_flood and samples >= 3, (saw_flood, samples)  # the page was checked while the flood ran
        assert slowest < timeout(3), f"the page did not answer for {slowest:.1f}s during the flood"
        wait_state(page, "live")
        wait_screen(page, r"^FLOOD-42-DONE$")
        assert states <= {"live", "reconnecting", "connecting"}, states
        # And it still works afterwards.
        type_in_page(page, "echo after-flood-$((1+2))")
        wait_screen(page, r"^after-flood-3$")
    finally:
        share.close()
