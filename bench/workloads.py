"""The workloads (issue 6): each runs one system once and returns plain numbers.

Conventions: MB = 10^6 bytes; times from time.perf_counter(); every wait has a timeout; every
process is stopped in a `finally`. Rates are measured at the receiving viewer, after decryption.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pty
import shlex
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

from . import procs
from .systems import Relay, sh
from .viewer_pool import ViewerPool

MB = 1_000_000


async def _wait_any(events: Sequence[asyncio.Event], timeout: float) -> bool:
    """True if any event fired within `timeout`."""
    tasks = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        done, _ = await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        return bool(done)
    finally:
        for t in tasks:
            t.cancel()


async def _start_viewers(system: Any, url: str | Sequence[str], count: int, timeout: float, batch: int = 25) -> list[Any]:
    """`count` viewers of one link (or of `url[i % len(url)]`: the same session through several relays)."""
    urls = [url] if isinstance(url, str) else list(url)
    viewers = [system.Viewer(urls[i % len(urls)]) for i in range(count)]
    try:
        for i in range(0, count, batch):
            group = viewers[i : i + batch]
            await asyncio.wait_for(asyncio.gather(*(v.start() for v in group)), timeout)
            await asyncio.wait_for(asyncio.gather(*(v.ready(timeout) for v in group)), timeout)
    except BaseException:
        await _close(viewers)
        raise
    return viewers


async def _close(items: Sequence[Any], batch: int = 100) -> None:
    for i in range(0, len(items), batch):
        await asyncio.gather(*(x.close() for x in items[i : i + batch]), return_exceptions=True)


async def _all_reached(viewers: Sequence[Any], timeout: float) -> None:
    async def one(v: Any) -> None:
        await _wait_any([v.reached, v.done], timeout)

    await asyncio.gather(*(one(v) for v in viewers))


def _gate(size: int, file: Path) -> str:
    """Wait for one keystroke (so the clock starts when the viewer asks), then write `size` bytes."""
    return sh(f"head -c1 >/dev/null; exec head -c {size} {shlex.quote(str(file))}")


# -- 1. throughput (and 7. wire bytes, share RSS under load) ----------------------------------------
def _machine_cost(size: int, elapsed: float, busy: float) -> dict[str, float]:
    """What a transfer cost the whole machine (sharer, relay, viewer, the command, the kernel): CPU
    ms per MB, cores busy, and the rate at which that cost per MB would keep every core busy.
    Why: on a small machine the pipeline and the command writing share the cores, so this rate
    bounds what the pipeline can reach whatever it overlaps."""
    mb = max(size, 1) / MB
    busy = max(busy, 1e-9)
    return {"machine_cpu_ms_per_mb": busy * 1000 / mb, "cores_busy": busy / elapsed,
            "mb_per_s_all_cores_busy": procs.cpus() * mb / busy}


async def throughput(system: Any, relay: Relay, file: Path, size: int, timeout: float) -> dict[str, Any]:
    share = system.start_share(relay, _gate(size, file))
    viewers: list[Any] = []
    try:
        viewers = await _start_viewers(system, share.url, 1, 20)
        v = viewers[0]
        relay_cpu0, share_cpu0 = procs.cpu_seconds(relay.pid), procs.cpu_seconds(share.pid)
        with procs.RssSampler(share.pid, 0.1) as share_rss:
            v.reset_counters(size)
            busy0 = procs.machine_busy_seconds()
            t0 = time.perf_counter()
            await v.send_input(b"g")
            await _wait_any([v.reached, v.done], timeout)
            busy = procs.machine_busy_seconds() - busy0
            elapsed = max((v.last_output_at or time.perf_counter()) - t0, 1e-9)
        return {
            "mb_per_s": v.output_bytes / elapsed / MB,
            "bytes": v.output_bytes,
            "payload_bytes": size,
            "complete": v.output_bytes == size,
            "seconds": elapsed,
            "wire_per_byte": v.wire_bytes / max(v.output_bytes, 1),
            "frame_kb": v.wire_bytes / max(v.frames, 1) / 1000,
            "share_rss_peak_mb": share_rss.peak / MB,
            "relay_cpu_s": procs.cpu_seconds(relay.pid) - relay_cpu0,
            "share_cpu_s": procs.cpu_seconds(share.pid) - share_cpu0,
            **_machine_cost(v.output_bytes, elapsed, busy),
        }
    finally:
        await _close(viewers)
        share.stop()


def pty_drain(file: Path, size: int, timeout: float) -> dict[str, Any]:
    """The limit: Python reading the same command's output from a local PTY, 64 KiB reads."""
    pid, fd = pty.fork()
    if pid == 0:  # child
        try:
            os.execvp("sh", ["sh", "-c", f"stty raw -echo; head -c1 >/dev/null; exec head -c {size} {shlex.quote(str(file))}"])
        finally:
            os._exit(127)
    try:
        deadline = time.monotonic() + 10
        while termios.tcgetattr(fd)[3] & termios.ICANON and time.monotonic() < deadline:
            time.sleep(0.001)  # until `stty raw` took effect, so the gate byte is not echoed
        total = 0
        busy0 = procs.machine_busy_seconds()
        t0 = time.perf_counter()
        os.write(fd, b"g")
        stop_at = t0 + timeout
        while time.perf_counter() < stop_at:
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            total += len(data)
        elapsed = time.perf_counter() - t0
        busy = procs.machine_busy_seconds() - busy0
    finally:
        os.close(fd)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    return {"mb_per_s": total / elapsed / MB, "bytes": total, "payload_bytes": size, "complete": total == size, "seconds": elapsed,
            **_machine_cost(total, elapsed, busy)}


# -- 2. keystroke echo ---------------------------------------------------------------------------------
async def echo_latency(system: Any, relay: Relay, count: int, interval: float, flood_file: Path | None,
                       flood_seconds: float, warmup: float = 1.0, viewer_url: Callable[[str], str] | None = None) -> dict[str, Any]:
    """`count` keystrokes, one every `interval` s (or as soon as the last echo came back, if later);
    latency = keystroke sent -> its echo decrypted. With `flood_file`, another session on the same
    relay streams that file in a loop to a viewer in another process meanwhile. `viewer_url` maps
    the share's link to the one the viewer uses (another relay node)."""
    flood = drain = None
    share = None
    viewers: list[Any] = []
    try:
        if flood_file is not None:
            flood = system.start_share(relay, f"timeout {int(flood_seconds) + 5} " + sh(f"while :; do cat {shlex.quote(str(flood_file))}; done"))
            drain = system.drain_process(flood.url, flood_seconds)
            await asyncio.sleep(warmup)  # let the flood reach full speed
        share = system.start_share(relay, sh("exec cat"))
        viewers = await _start_viewers(system, viewer_url(share.url) if viewer_url else share.url, 1, 20)
        v = viewers[0]
        samples: list[float] = []
        lost = 0
        deadline = time.monotonic() + flood_seconds
        for _ in range(count):
            if time.monotonic() > deadline:
                break
            # Wait before typing: bookkeeping after the keystroke would hold up the loop, and with
            # it the echo's arrival, as a viewer waiting for its terminal's output does not (the
            # floor's client is set up the same way).
            v.got_output.clear()
            waiter = asyncio.ensure_future(v.got_output.wait())
            guard = asyncio.get_running_loop().call_later(2.0, waiter.cancel)
            await asyncio.sleep(0)  # the waiter now waits on the event
            t0 = time.perf_counter()
            await v.send_input(b"x")
            try:
                await waiter
                samples.append(v.last_output_at - t0)
            except asyncio.CancelledError:
                if not waiter.cancelled():
                    raise
                lost += 1
            finally:
                guard.cancel()
            await asyncio.sleep(max(0.0, t0 + interval - time.perf_counter()))
        samples.sort()
        if not samples:
            raise procs.BenchError("no keystroke came back")
        return {
            "p50_ms": _pct(samples, 50) * 1000,
            "p99_ms": _pct(samples, 99) * 1000,
            "max_ms": samples[-1] * 1000,
            "keystrokes": len(samples),
            "lost": lost,
            "samples_ms": _ms(samples),
            "flood_alive": drain is None or drain.poll() is None,
        }
    finally:
        await _close(viewers)
        for s in (share, flood):
            if s is not None:
                s.stop()
        if drain is not None:
            procs.stop(drain)


def _ms(samples: Sequence[float]) -> list[float]:
    """Every latency in ms, for results.json and for merging rounds (bench/run.py)."""
    return [round(x * 1000, 4) for x in samples]


def _pct(sorted_samples: Sequence[float], pct: float) -> float:
    index = min(len(sorted_samples) - 1, max(0, round(pct / 100 * len(sorted_samples) + 0.5) - 1))
    return sorted_samples[index]


# -- 3. fan-out ------------------------------------------------------------------------------------------
async def fanout(system: Any, relay: Relay, file: Path, viewers_n: int, size: int, timeout: float) -> dict[str, Any]:
    share = system.start_share(relay, _gate(size, file))
    pool = ViewerPool(system.name, share.url, viewers_n)
    try:
        t_join = time.perf_counter()
        await pool.start()
        join_s = time.perf_counter() - t_join
        await asyncio.sleep(0.3)  # let the join notices (viewer counts) settle
        cpu0, share0 = procs.cpu_seconds(relay.pid), procs.cpu_seconds(share.pid)
        got = await pool.run(size, timeout)
        elapsed = got.seconds
        cpu = procs.cpu_seconds(relay.pid) - cpu0
        share_cpu = procs.cpu_seconds(share.pid) - share0
        total = got.total_bytes
        return {
            "viewers": viewers_n,
            "viewer_processes": len(pool.pids),
            "aggregate_mb_per_s": total / elapsed / MB,
            "per_viewer_mb": size / MB,
            "complete_viewers": got.complete,
            "resynced_viewers": got.resynced,  # fell behind, skipped output and resynced: by design
            "incomplete_unexplained": got.unexplained,  # short without a resync: should be 0
            "frame_kb": got.frame_kb,
            "relay_cpu_s": cpu,
            "relay_cpu_s_per_mb": cpu / max(total / MB, 1e-9),
            # What one saturated relay core would deliver at this cost: the relay's capacity, which
            # the aggregate cannot show when the viewers are the busiest processes.
            "relay_mb_per_cpu_s": total / MB / max(cpu, 0.01),
            "relay_cpu_share": cpu / elapsed,  # fraction of one core
            "viewers_cpu_share": got.cpu_seconds / elapsed,  # all viewer processes together
            "share_cpu_share": share_cpu / elapsed,
            "seconds": elapsed,
            "join_seconds": join_s,
        }
    finally:
        await pool.close()
        share.stop()


# -- 4. a viewer that stops reading (or reads slowly) ---------------------------------------------------
SLOW_RATE: Final = 2 * MB  # bytes/s a slow viewer reads: a viewer on a slow link


async def stalled(system: Any, relay: Relay, file: Path, others_n: int, size: int, timeout: float,
                  mode: str) -> dict[str, Any]:
    """`others_n` viewers read `size` bytes; with mode "stalled", one more viewer joins and stops
    reading; with "slow", it reads SLOW_RATE bytes/s, and how long after the others it has the
    end too (termshare: the final screen and exit status; TermPair: every byte) is measured. The
    others run in worker processes, as in fan-out (bench/viewer_pool.py); the extra one here."""
    share = system.start_share(relay, _gate(size, file))
    pool = ViewerPool(system.name, share.url, others_n)
    staller: list[Any] = []
    try:
        await pool.start()
        if mode != "none":
            staller = await _start_viewers(system, share.url, 1, 30)
            await asyncio.sleep(0.3)
            if mode == "stalled":
                staller[0].pause()
            else:
                staller[0].throttle(SLOW_RATE)
            staller[0].reset_counters(size)
        rss0 = procs.rss_bytes(relay.pid)
        with procs.RssSampler(relay.pid, 0.1) as relay_rss, procs.RssSampler(share.pid, 0.1) as share_rss:
            got = await pool.run(size, timeout)
            others_done = time.perf_counter()
            await asyncio.sleep(0.3)  # one more RSS sample after the flood
        slow: dict[str, Any] = {}
        if mode == "slow":
            v = staller[0]
            await _wait_any([v.done, v.reached], timeout)
            caught_up = v.ended or v.reached.is_set()
            slow = {"slow_caught_up": int(caught_up), "slow_wire_per_byte": v.wire_bytes / size,
                    "slow_lag_s": time.perf_counter() - others_done}  # not caught up: how long it was given
        # Somebody froze (short without a resync): the whole wait counts, not just until the last byte.
        elapsed = got.waited if got.unexplained else got.seconds
        return slow | {
            "others_mb_per_s": got.total_bytes / elapsed / MB,
            "slowest_other_mb_per_s": got.slowest_bytes / elapsed / MB,
            "others_complete": got.complete,
            "others_resynced": got.resynced,  # fell behind the relay's soft cap and resynced: by design
            "incomplete_unexplained": got.unexplained,
            "relay_rss_growth_mb": max(relay_rss.peak - rss0, 0) / MB,
            "relay_rss_mb": relay_rss.peak / MB,
            "share_rss_peak_mb": share_rss.peak / MB,
            "stalled_dropped": bool(staller and staller[0].done.is_set()),
            "rss_series": [(round(t, 2), round(b / MB, 1)) for t, b in relay_rss.samples],
            "seconds": elapsed,
        }
    finally:
        await _close(staller)
        await pool.close()
        share.stop()


async def open_idle_sessions(count: int, deadline: float, sharer_at: Callable[[int], Any],
                             viewers_of: Callable[[int, Any], list[Any]], sharers: list[Any], viewers: list[Any]) -> None:
    """Open `count` quiet sessions in batches of 25 until `deadline`: `sharer_at(i)` makes the i-th
    sharer, `viewers_of(i, sharer)` its viewers. Appends to `sharers`/`viewers` as it goes, so the
    caller's cleanup closes whatever was opened."""
    batch = 25
    for i in range(0, count, batch):
        if time.monotonic() > deadline:
            break
        group = [sharer_at(i + j) for j in range(min(batch, count - i))]
        sharers += group
        await asyncio.wait_for(asyncio.gather(*(s.start() for s in group)), 30)
        if hasattr(group[0], "live"):
            await asyncio.wait_for(asyncio.gather(*(s.live.wait() for s in group)), 30)
        vs = [v for j, s in enumerate(group) for v in viewers_of(i + j, s)]
        viewers += vs
        await asyncio.wait_for(asyncio.gather(*(v.start() for v in vs)), 30)
        await asyncio.wait_for(asyncio.gather(*(v.ready(30) for v in vs)), 30)


# -- 5. idle cost ---------------------------------------------------------------------------------------------
async def idle_cost(system: Any, relay: Relay, sessions: int, viewers_per: int, idle_seconds: float,
                    setup_timeout: float) -> dict[str, Any]:
    """`sessions` quiet sessions (in-process sharers without a PTY) with `viewers_per` viewers each."""
    rss0 = procs.rss_bytes(relay.pid)
    sharers: list[Any] = []
    viewers: list[Any] = []
    t_setup = time.perf_counter()
    deadline = time.monotonic() + setup_timeout
    try:
        await open_idle_sessions(sessions, deadline, lambda _: system.IdleSharer(relay.base),
                                 lambda _, s: [system.IdleViewer(s.read_only_url) for _ in range(viewers_per)],
                                 sharers, viewers)
        setup_s = time.perf_counter() - t_setup
        await asyncio.sleep(1.0)
        rss1 = procs.rss_bytes(relay.pid)
        cpu0 = procs.cpu_seconds(relay.pid)
        await asyncio.sleep(idle_seconds)
        cpu = procs.cpu_seconds(relay.pid) - cpu0
        rss2 = procs.rss_bytes(relay.pid)
        alive = sum(1 for v in viewers if not v.done.is_set())
        return {
            "sessions": len(sharers),
            "sessions_wanted": sessions,
            "viewers": alive,
            "viewers_opened": len(viewers),
            "relay_rss_mb": max(rss1, rss2) / MB,
            "relay_rss_empty_mb": rss0 / MB,
            "cpu_s": cpu,
            "cpu_s_per_min": cpu / idle_seconds * 60,
            "idle_seconds": idle_seconds,
            "setup_seconds": setup_s,
        }
    finally:
        await _close(viewers)
        await _close(sharers)


# -- 6. start-up, 7. share RSS at rest -------------------------------------------------------------------
def startup(system: Any, relay: Relay) -> dict[str, Any]:
    share = system.start_share(relay, "sleep 60")
    try:
        seconds = share.linked - share.started
        time.sleep(1.0)
        return {"seconds": seconds, "share_rss_mb": procs.rss_bytes(share.pid) / MB}
    finally:
        share.stop()


# What a sharer cannot do without: an event loop (asyncio, which imports ssl whether or not TLS is
# used) and the primitives of docs/PROTOCOL.md §3 from cryptography (its Rust extension carries its
# own OpenSSL), each used once, as a sharer does before it prints its link (first use pulls in more
# of OpenSSL). A process holding only these is the least RSS any Python sharer of this design has.
_LIBRARIES = """
import asyncio, os, time
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
ed25519.Ed25519PrivateKey.generate().sign(b"m")
x25519.X25519PrivateKey.generate().exchange(x25519.X25519PrivateKey.generate().public_key())
AESGCM(os.urandom(32)).encrypt(os.urandom(12), b"m", None)
HKDF(hashes.SHA256(), 32, None, None).derive(b"k")
asyncio.run(asyncio.sleep(0))
time.sleep(5)
"""


def python_floor() -> dict[str, Any]:
    """The limits for start-up and footprint: a bare interpreter starting, and its RSS at rest; and
    the RSS at rest of an interpreter holding the libraries a sharer needs."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "share_rss_mb": _rss_at_rest("import time; time.sleep(5)") / MB,
            "libraries_rss_mb": _rss_at_rest(_LIBRARIES) / MB}


def _rss_at_rest(code: str) -> int:
    proc = procs.start([sys.executable, "-c", code])
    try:
        time.sleep(1.0)
        if proc.poll() is not None:
            raise RuntimeError(f"the footprint probe exited with {proc.returncode}")
        return procs.rss_bytes(proc.pid)
    finally:
        procs.stop(proc)


_PTY_FLOOD = """
import os, pty, sys, time
pid, fd = pty.fork()
if pid == 0:
    os.execvp("sh", ["sh", "-c", 'stty raw -echo; while :; do cat "$0"; done', sys.argv[1]])
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    os.read(fd, 65536)
"""


def pty_echo(count: int, interval: float, flood_file: Path | None = None, flood_seconds: float = 60,
             warmup: float = 1.0) -> dict[str, Any]:
    """The limit for echo: a keystroke written to a local PTY running `cat`, read back by Python;
    with `flood_file`, another Python process drains a PTY that streams that file meanwhile."""
    flood = None
    if flood_file is not None:
        flood = procs.start(["timeout", str(int(flood_seconds) + 1), sys.executable, "-c", _PTY_FLOOD,
                             str(flood_file), str(flood_seconds)])
        time.sleep(warmup)
    try:
        return _pty_echo(count, interval)
    finally:
        if flood is not None:
            procs.stop(flood)


def _pty_echo(count: int, interval: float) -> dict[str, Any]:
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execvp("sh", ["sh", "-c", "stty raw -echo; exec cat"])
        finally:
            os._exit(127)
    samples: list[float] = []
    try:
        deadline = time.monotonic() + 10
        while termios.tcgetattr(fd)[3] & termios.ICANON and time.monotonic() < deadline:
            time.sleep(0.001)
        time.sleep(0.05)  # let `exec cat` start
        import select

        for _ in range(count):
            t0 = time.perf_counter()
            os.write(fd, b"x")
            if select.select([fd], [], [], 2.0)[0]:
                os.read(fd, 1024)
                samples.append(time.perf_counter() - t0)
            time.sleep(max(0.0, t0 + interval - time.perf_counter()))
    finally:
        os.close(fd)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    samples.sort()
    return {"p50_ms": _pct(samples, 50) * 1000, "p99_ms": _pct(samples, 99) * 1000,
            "max_ms": samples[-1] * 1000, "keystrokes": len(samples), "lost": count - len(samples),
            "samples_ms": _ms(samples)}
