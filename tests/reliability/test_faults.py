"""Fault injection with real processes on loopback (issue #5): relay restarts, network blips,
stalled viewers. The figures are printed (pytest -s) for the closing notes; the assertions are
about correctness and bounds, not speed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import time
from collections.abc import AsyncIterator

import pytest

from termshare.protocol import events as ev
from termshare.protocol.wire import FrameKind

from ..procs import HeadlessShare, Relay, free_port, stop, timeout
from .client import Recorder
from .proxy import Proxy

TICKER = "sh -c 'i=0; while [ $i -lt {n} ]; do echo tick-$i; i=$((i+1)); sleep {pause}; done'"


def ticks(data: bytes) -> list[int]:
    return [int(m) for m in re.findall(rb"tick-(\d+)", data)]


def output_ticks_in_order(rec: Recorder) -> list[int]:
    """Ticks carried by Output events (snapshots repaint, they are not output)."""
    seen = [t for _, e in rec.events if isinstance(e, ev.Output) for t in ticks(e.data)]
    assert seen == sorted(set(seen)), f"output shown twice or out of order: {seen}"
    return seen


async def wait_for(predicate, seconds: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout(seconds)
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


# 30 MB at an easy pace (the sharer never falls behind, so it never resyncs anyone itself), then
# `then`. 30 MB is well past what the relay's queue (4 MiB) and both loopback socket buffers can hold
# for a viewer that stopped reading, so a hole in what that viewer gets is certain.
PACED_30MB = ("sh -c 'sleep 1; i=0; while [ $i -lt 30 ]; do head -c 1000000 /dev/zero | tr \"\\\\0\" y; "
              "sleep 0.1; i=$((i+1)); done; {then}'")


async def share_says(share: HeadlessShare, event: str, seconds: float) -> None:
    """Until `share --json` prints `event` (its stdout is read in a thread: the pipe blocks)."""
    assert share.proc.stdout is not None
    stdout = share.proc.stdout

    def read() -> None:
        while line := stdout.readline():
            if json.loads(line).get("event") == event:
                return
        raise AssertionError(f"share ended without saying '{event}'")

    await asyncio.wait_for(asyncio.to_thread(read), timeout(seconds))


@contextlib.asynccontextmanager
async def share_behind_proxy(relay: Relay, cmd: str) -> AsyncIterator[tuple[Proxy, HeadlessShare, Recorder, asyncio.Task[object]]]:
    """A share whose path to the relay goes through a Proxy the test controls, and a live viewer
    (its task) that talks to the relay directly, so that only the sharer's path breaks."""
    proxy = Proxy(relay.port)
    await proxy.start()
    share = await asyncio.to_thread(HeadlessShare, "--host", "127.0.0.1", "--port", str(proxy.port), "--cmd", cmd)
    try:
        viewer = Recorder(share.links["read_only"].replace(f":{proxy.port}/", f":{relay.port}/"))
        task: asyncio.Task[object] = asyncio.create_task(viewer.run_once())
        await wait_for(lambda: "Snapshot" in viewer.kinds(), 10)
        yield proxy, share, viewer, task
    finally:
        share.close()
        await proxy.close()


async def fall_behind(behind: Recorder, fast: Recorder, until) -> list[asyncio.Task[object]]:  # type: ignore[no-untyped-def]
    """`behind` joins and stops reading after its first snapshot, `fast` joins; returns their
    tasks once until() holds. `behind` reads again when the caller clears its stop_reading."""
    tasks: list[asyncio.Task[object]] = [asyncio.create_task(behind.run_once())]
    await wait_for(lambda: "Snapshot" in behind.kinds(), 10)
    behind.stop_reading = True
    tasks.append(asyncio.create_task(fast.run_once()))
    await wait_for(until, 60)
    return tasks


async def stop_all(tasks: list[asyncio.Task[object]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def skipped_at(rec: Recorder) -> tuple[list[FrameKind], int]:
    """The kinds of the frames `rec` received, and where the relay's first SKIPPED is among them."""
    kinds = [h.kind for h in rec.headers]
    assert FrameKind.SKIPPED in kinds
    return kinds, kinds.index(FrameKind.SKIPPED)


def test_relay_killed_and_restarted_sessions_continue() -> None:
    port = free_port()
    relay = Relay(port=port)
    share = HeadlessShare("--host", "127.0.0.1", "--port", str(port), "--cmd", TICKER.format(n=60, pause=0.1))
    rec = Recorder(share.links["read_only"])

    async def scenario() -> float:
        task = asyncio.create_task(rec.run(reconnect_for=timeout(30)))
        await wait_for(lambda: len(ticks(rec.output())) >= 5, 10)
        nonlocal relay
        relay.proc.send_signal(signal.SIGKILL)
        relay.close()
        await asyncio.sleep(0.5)
        relay = Relay(port=port)
        restarted = time.monotonic()
        before = len(rec.events)
        await wait_for(lambda: any(isinstance(e, ev.Output) for _, e in rec.events[before:]), 15)
        back = next(t for t, e in rec.events[before:] if isinstance(e, ev.Output)) - restarted
        await asyncio.wait_for(task, timeout(30))
        return back

    try:
        back = asyncio.run(scenario())
        print(f"\nrelay restart: output flowing again {back:.2f} s after the new relay started")
        seen = output_ticks_in_order(rec)
        assert seen[-1] == 59
        assert rec.kinds().count("Snapshot") >= 2  # the first join, and the resync after the restart
        assert any(isinstance(e, ev.Ended) for _, e in rec.events)
        assert share.proc.wait(timeout(10)) == 0
        assert back < timeout(10)
    finally:
        share.close()
        relay.close()


def test_sharer_network_blip_resumes_same_session() -> None:
    relay = Relay()

    async def scenario() -> tuple[float, Recorder, HeadlessShare]:
        proxy = Proxy(relay.port)
        await proxy.start()
        share = await asyncio.to_thread(  # the proxy runs on this loop while share starts
            HeadlessShare, "--host", "127.0.0.1", "--port", str(proxy.port), "--cmd", TICKER.format(n=50, pause=0.1))
        # The viewer connects to the relay directly, so only the sharer's path breaks.
        url = share.links["read_only"].replace(f":{proxy.port}/", f":{relay.port}/")
        rec = Recorder(url)
        task = asyncio.create_task(rec.run())
        try:
            await wait_for(lambda: len(ticks(rec.output())) >= 5, 10)
            cut = time.monotonic()
            proxy.cut()
            await wait_for(lambda: "SharerBack" in rec.kinds(), 10)
            back = next(t for t, e in rec.events if isinstance(e, ev.SharerBack)) - cut
            await asyncio.wait_for(task, timeout(20))
        finally:
            await proxy.close()
        return back, rec, share

    back, rec, share = asyncio.run(scenario())
    try:
        print(f"\nsharer blip: resumed {back:.2f} s after the cut")
        kinds = rec.kinds()
        assert kinds.index("SharerAway") < kinds.index("SharerBack")
        assert kinds.count("Snapshot") == 2  # join, then resume
        assert output_ticks_in_order(rec)[-1] == 49
        assert rec.kinds()[-1] == "Ended"
        assert share.proc.wait(timeout(10)) == 0
    finally:
        share.close()
        relay.close()


def test_stalled_viewer_costs_bounded_memory_and_slows_no_one() -> None:
    relay = Relay()
    size = 100_000_000
    cmd = f"sh -c 'sleep 1; head -c {size} /dev/zero | tr \"\\\\0\" x; echo; echo all-done; sleep 1'"
    share = HeadlessShare("--host", "127.0.0.1", "--port", str(relay.port), "--cmd", cmd)
    fast, stalled = Recorder(share.links["read_only"]), Recorder(share.links["read_only"])
    peak = 0

    async def scenario() -> float:
        nonlocal peak
        stalled_task = asyncio.create_task(stalled.run_once())
        await wait_for(lambda: "Snapshot" in stalled.kinds(), 10)
        stalled.stop_reading = True  # from now on it never reads again
        start = time.monotonic()
        fast_task = asyncio.create_task(fast.run_once())
        while not fast_task.done():
            peak = max(peak, relay.rss())
            await asyncio.sleep(0.1)
            assert time.monotonic() - start < timeout(120)
        elapsed = time.monotonic() - start
        stalled_task.cancel()
        return elapsed

    try:
        elapsed = asyncio.run(scenario())
        received = len(fast.output())
        print(f"\nstalled viewer: fast viewer got {received / 1e6:.1f} MB in {elapsed:.1f} s; relay peak RSS {peak / 2**20:.0f} MiB")
        assert b"all-done" in fast.output()
        assert "Ended" in fast.kinds()
        # The relay queues at most HARD_CAP (16 MiB) per viewer; everything else is the interpreter.
        assert peak < 150 * 2**20
    finally:
        share.close()
        relay.close()


def test_a_viewer_that_fell_behind_catches_up_while_the_sharer_is_quiet() -> None:
    """The relay skipped output for a stalled viewer, then no output follows to reveal the gap: the
    SKIPPED hint the relay queued at the hole makes the viewer resync anyway (PROTOCOL §4.2)."""
    relay = Relay()
    cmd = PACED_30MB.format(then="echo; clear; echo quiet-screen-$((6*7)); sleep 60")  # a screen that stays put
    share = HeadlessShare("--host", "127.0.0.1", "--port", str(relay.port), "--cmd", cmd)
    fast, stalled = Recorder(share.links["read_only"]), Recorder(share.links["read_only"])

    async def scenario() -> None:
        tasks = await fall_behind(stalled, fast, lambda: b"quiet-screen-42" in fast.output())
        stalled.stop_reading = False  # reads what the relay kept for it; nothing new is coming
        await wait_for(lambda: any(b"quiet-screen-42" in s for s in stalled.snapshots()), 20)
        await stop_all(tasks)

    try:
        asyncio.run(scenario())
        # The relay marked the hole: a SKIPPED frame, and the next GROUP frame (if any came) is not
        # the one after the last GROUP frame before it.
        kinds, at = skipped_at(stalled)
        group_stream = (FrameKind.GROUP, FrameKind.GROUP_DIRECT)
        before = [h.seq for h in stalled.headers[:at] if h.kind in group_stream]
        after = [h.seq for h in stalled.headers[at:] if h.kind in group_stream]
        assert before and (not after or after[0] > before[-1] + 1), (before[-3:], after[:3])
        broken = [e for _, e in stalled.events if isinstance(e, ev.StreamBroken)]
        assert broken and broken[0].reason in ("skipped", "gap")
        assert len(stalled.output()) < 30_000_000  # it really was skipped past, not fed everything
    finally:
        share.close()
        relay.close()


def test_a_viewer_that_fell_behind_gets_no_stale_output_before_its_snapshot() -> None:
    """Once the relay skips output for a viewer, the output still queued for it and the output that
    follows are of no use to it until its snapshot: the relay drops them rather than make the
    viewer read through megabytes it throws away (relay/outbox.py). Here the viewer reads again
    while the flood goes on: before, the relay queued the new output behind the SKIPPED frame, and
    the viewer's snapshot behind that."""
    relay = Relay()
    # Output goes on after the flood, so that some reaches the viewer after its snapshot however late it gets there.
    after = "while :; do echo after-the-flood; sleep 0.05; done"
    share = HeadlessShare("--host", "127.0.0.1", "--port", str(relay.port), "--cmd", PACED_30MB.format(then=after))
    fast, behind = Recorder(share.links["read_only"]), Recorder(share.links["read_only"])

    async def scenario() -> None:
        # 20 MB: past what the kernel's socket buffers and the relay's 4 MiB queue hold for `behind`.
        tasks = await fall_behind(behind, fast, lambda: len(fast.output()) > 20_000_000)
        behind.stop_reading = False  # about 10 MB of the flood are still to come
        await wait_for(lambda: len(behind.snapshots()) >= 2, 20)
        await wait_for(lambda: len(fast.output()) >= 30_000_000, 20)
        await stop_all(tasks)

    try:
        asyncio.run(scenario())
        kinds, at = skipped_at(behind)
        snapshot_at = kinds.index(FrameKind.DIRECT, at)  # the answer to its RESYNC
        group_stream = {FrameKind.GROUP, FrameKind.GROUP_DIRECT}
        assert not group_stream & set(kinds[at:snapshot_at]), kinds[at:snapshot_at][:10]
        assert group_stream & set(kinds[snapshot_at:])  # and the flood went on reaching it after
    finally:
        share.close()
        relay.close()


def test_a_viewer_behind_when_the_session_ends_gets_the_final_screen_and_exit_status() -> None:
    """The relay skipped the end of the output and the BYE for a viewer that had stopped reading:
    once it reads again it resyncs, and the sharer, lingering after its BYE (PROTOCOL §7.2), answers
    with the final screen and the BYE again. Before, it got neither: only the close 4410."""
    relay = Relay()
    cmd = PACED_30MB.format(then="clear; echo final-screen-$((6*7)); exit 3")
    share = HeadlessShare("--host", "127.0.0.1", "--port", str(relay.port), "--cmd", cmd)
    fast, behind = Recorder(share.links["read_only"]), Recorder(share.links["read_only"])

    async def scenario() -> None:
        tasks = await fall_behind(behind, fast, fast.exit_statuses)
        behind.stop_reading = False  # the BYE went by while it was not reading
        await wait_for(behind.exit_statuses, 10)
        await asyncio.gather(*tasks, return_exceptions=True)

    try:
        asyncio.run(scenario())
        assert fast.exit_statuses() == [3] and behind.exit_statuses() == [3]
        assert b"final-screen-42" in fast.output()
        final = behind.snapshots()[-1]
        assert b"final-screen-42" in final, final[-200:]
        assert len(behind.output()) < 30_000_000  # it really was skipped past
        assert share.proc.wait(timeout(10)) == 3  # the command's exit status
    finally:
        share.close()
        relay.close()


@pytest.mark.parametrize("signalled", [False, True])
def test_the_sharer_waits_for_a_stuck_viewer_a_bounded_time_or_until_a_signal(signalled: bool) -> None:
    """A viewer that never reads again holds the ending session (PROTOCOL §7.2) only until the
    sharer's wait (10 s) is over, or until the share process gets SIGTERM; then END, and the relay
    closes the stuck viewer 4410. The share says that it waits."""
    relay = Relay()
    share = HeadlessShare("--host", "127.0.0.1", "--port", str(relay.port), "--cmd", PACED_30MB.format(then="exit 4"))
    fast, stuck = Recorder(share.links["read_only"]), Recorder(share.links["read_only"])
    waited: list[float] = []

    async def scenario() -> None:
        tasks = await fall_behind(stuck, fast, lambda: "Ended" in fast.kinds())
        t0 = time.monotonic()  # the BYE is out: the sharer now waits for the stuck viewer
        await share_says(share, "waiting", 5)
        if signalled:
            share.proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(share.proc.wait, timeout(20))
        waited.append(time.monotonic() - t0)
        stuck.stop_reading = False
        await wait_for(lambda: bool(stuck.closes), 20)
        await asyncio.gather(*tasks, return_exceptions=True)

    try:
        asyncio.run(scenario())
        print(f"\nshare exited {waited[0]:.2f} s after its BYE reached the fast viewer (signalled: {signalled})")
        assert share.proc.returncode == 4  # the command's status: the signal only cut the wait short
        assert stuck.closes == [4410] and "Ended" not in stuck.kinds()
        if signalled:
            assert waited[0] < 3.0  # not the whole wait
        else:
            assert waited[0] > 8.0  # it did wait for the stuck viewer
    finally:
        share.close()
        relay.close()


def test_viewers_get_the_final_screen_when_the_sharers_upload_was_backed_up_at_the_end() -> None:
    """The sharer's path stalls: it skips output rather than queue it, and the snapshot that
    replaces the skipped part is due when its queue drains. The shell exits meanwhile: the snapshot
    must go with the BYE, or the viewer ends on a stale screen."""
    relay = Relay()
    rec: list[Recorder] = []

    async def scenario() -> None:
        cmd = PACED_30MB.format(then="clear; echo final-marker-$((6*7)); exit 3")
        async with share_behind_proxy(relay, cmd) as (proxy, share, viewer, task):
            rec.append(viewer)
            proxy.stall_current()
            await share_says(share, "waiting", 60)  # the shell has exited; the BYE waits behind the stall
            proxy.resume()
            await wait_for(lambda: "Ended" in viewer.kinds(), 20)
            await task
            assert await asyncio.to_thread(share.proc.wait, timeout(20)) == 3

    try:
        asyncio.run(scenario())
        (viewer,) = rec
        assert viewer.exit_statuses() == [3]
        assert any(b"final-marker-42" in s for s in viewer.snapshots())
        assert len(viewer.output()) < 30_000_000  # output was skipped while the path was stalled
    finally:
        relay.close()


def test_a_shell_exiting_while_the_sharer_reconnects_still_gets_its_bye_to_the_viewers() -> None:
    """The sharer's connection dropped and its new one is held up when the shell exits: rather
    than end with END alone (lost with the connection, the viewers would wait out the relay's resume
    grace), the share waits for the relay to come back and ends the session properly."""
    relay = Relay()
    rec: list[Recorder] = []

    async def scenario() -> None:
        async with share_behind_proxy(relay, "sh -c 'sleep 2; exit 7'") as (proxy, share, viewer, task):
            rec.append(viewer)
            proxy.stalled = True  # the reconnection that follows is held up too
            proxy.cut()
            await share_says(share, "waiting", 10)  # the shell has exited while the sharer was away
            proxy.stalled = False
            await wait_for(lambda: "Ended" in viewer.kinds(), 20)
            await task
            assert await asyncio.to_thread(share.proc.wait, timeout(20)) == 7

    try:
        asyncio.run(scenario())
        (viewer,) = rec
        assert "SharerAway" in viewer.kinds()
        assert viewer.exit_statuses() == [7]
    finally:
        relay.close()


def test_a_second_signal_while_the_sharer_finishes_stops_it_at_once() -> None:
    """The first signal cuts the wait for late viewers short; the share then still tries to hand
    its END to a relay it cannot reach (a stalled path): a second signal ends it there."""
    relay = Relay()
    exits: list[tuple[int | None, float]] = []

    async def scenario() -> None:
        async with share_behind_proxy(relay, "sh -c 'sleep 1; exit 5'") as (proxy, share, _, task):
            proxy.stall_current()  # the BYE never reaches the viewer: the sharer waits for it
            await share_says(share, "waiting", 10)
            share.proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.5)  # now waiting for its END to drain
            t0 = time.monotonic()
            share.proc.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(share.proc.wait, timeout(10))
            exits.append((code, time.monotonic() - t0))
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    try:
        asyncio.run(scenario())
        ((code, seconds),) = exits
        assert code == -signal.SIGTERM and seconds < 1.0, exits  # the default action, not the 3 s drain wait
    finally:
        relay.close()


def test_stalled_sharer_path_is_detected_and_resumed() -> None:
    """The sharer's TCP path goes silent (no RST, no FIN): websocket pings notice, share reconnects."""
    relay = Relay()
    shares: list[HeadlessShare] = []  # closed below however the scenario ends

    async def scenario() -> tuple[float, Recorder, HeadlessShare]:
        proxy = Proxy(relay.port)
        await proxy.start()
        share = await asyncio.to_thread(
            HeadlessShare, "--host", "127.0.0.1", "--port", str(proxy.port), "--cmd", TICKER.format(n=300, pause=0.1))
        shares.append(share)
        url = share.links["read_only"].replace(f":{proxy.port}/", f":{relay.port}/")
        rec = Recorder(url)
        task = asyncio.create_task(rec.run())
        try:
            await wait_for(lambda: len(ticks(rec.output())) >= 5, 10)
            stalled = time.monotonic()
            proxy.stall_current()
            await wait_for(lambda: rec.kinds().count("Snapshot") >= 2, 30)  # the resume's snapshot
            back = time.monotonic() - stalled
            before = len(ticks(rec.output()))
            await wait_for(lambda: len(ticks(rec.output())) > before + 3, 10)
            task.cancel()
        finally:
            await proxy.close()
        return back, rec, share

    try:
        back, rec, _ = asyncio.run(scenario())
        print(f"\nstalled sharer path: resumed {back:.1f} s after the stall")
        output_ticks_in_order(rec)
        assert back < timeout(25)
    finally:
        for share in shares:
            share.close()
        relay.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_signal_ends_share_cleanly_and_tells_viewers(sig: int) -> None:
    relay = Relay()
    share = HeadlessShare("--host", "127.0.0.1", "--port", str(relay.port), "--cmd", "sleep 60")
    rec = Recorder(share.links["read_only"])

    async def scenario() -> None:
        task = asyncio.create_task(rec.run())
        await wait_for(lambda: "Snapshot" in rec.kinds(), 10)
        share.proc.send_signal(sig)
        await asyncio.wait_for(task, timeout(10))

    try:
        asyncio.run(scenario())
        assert share.proc.wait(timeout(10)) == 128 + sig
        assert any(isinstance(e, ev.Ended) and e.exit_status == 128 + sig for _, e in rec.events)
        assert share.proc.stderr is not None and b"Traceback" not in share.proc.stderr.read()
    finally:
        stop(share.proc)
        relay.close()
