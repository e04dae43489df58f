"""Output throughput smoke test: a flood of output with the page open (no timed assertion on speed)."""

from __future__ import annotations

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
        done = False
        while not done:
            assert time.monotonic() < deadline, f"the flood never finished in the page (state {state(page)!r})"
            started = time.monotonic()
            assert page.evaluate("1+1") == 2
            slowest = max(slowest, time.monotonic() - started)
            states.add(state(page))
            done = bool(page.evaluate("/^FLOOD-42-DONE$/m.test(window.termshare.screenText())"))
            time.sleep(0.2)
        assert slowest < timeout(3), f"the page did not answer for {slowest:.1f}s during the flood"
        wait_state(page, "live")
        wait_screen(page, r"^FLOOD-42-DONE$")
        assert states <= {"live", "reconnecting", "connecting"}, states
        # And it still works afterwards.
        type_in_page(page, "echo after-flood-$((1+2))")
        wait_screen(page, r"^after-flood-3$")
    finally:
        share.close()
