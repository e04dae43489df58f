"""PtyReader on a real PTY: every byte in order, bulk output read by a thread, echoes by the loop."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from pathlib import Path

from termshare.protocol.wire import MAX_OUTPUT
from termshare.share.pty import PtyReader, spawn


class Collector:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.threaded: list[bool] = []  # was the thread reading when each chunk arrived
        self.off_loop = 0  # chunks delivered outside the loop's thread
        self.reader: PtyReader | None = None

    def __call__(self, data: bytes) -> None:
        assert self.reader is not None
        self.chunks.append(data)
        self.threaded.append(self.reader.threaded)
        self.off_loop += threading.current_thread() is not threading.main_thread()

    @property
    def size(self) -> int:
        return sum(map(len, self.chunks))


async def until(predicate: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def start(script: str, collector: Collector) -> tuple[int, int, PtyReader]:
    # raw: the line discipline passes bytes through unchanged (no \n -> \r\n)
    pid, master = spawn(["sh", "-c", f"stty raw -echo; {script}"], 80, 24, dict(os.environ))
    reader = PtyReader(master, collector, MAX_OUTPUT)
    collector.reader = reader
    reader.start(asyncio.get_running_loop())
    return pid, master, reader


def finish(pid: int, master: int, reader: PtyReader) -> None:
    reader.stop()
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    os.waitpid(pid, 0)
    os.close(master)


def test_bulk_goes_to_the_thread_and_back_with_every_byte_in_order(tmp_path: Path) -> None:
    payload = b"".join(b"%08d\n" % i for i in range(1_000_000))  # 9 MB, every line different
    (tmp_path / "bulk").write_bytes(payload)
    expected = b"first" + payload + b"last"

    async def main() -> Collector:
        got = Collector()
        pid, master, reader = start(f"printf first; sleep 0.3; cat {tmp_path / 'bulk'}; sleep 0.3; printf last; sleep 5",
                                    got)
        try:
            await until(lambda: got.size >= len(expected), 30)
        finally:
            finish(pid, master, reader)
        return got

    got = asyncio.run(main())
    assert b"".join(got.chunks) == expected
    assert got.chunks[0] == b"first" and got.threaded[0] is False  # an echo: read on the loop
    assert any(got.threaded), "bulk output never reached the thread"
    assert got.chunks[-1] == b"last" and got.threaded[-1] is False  # quiet again: back on the loop
    assert got.off_loop == 0  # on_data always runs on the loop
    assert max(map(len, got.chunks)) <= MAX_OUTPUT


def paced(writes: int, size: int, pause: float) -> Collector:
    """What the reader delivered of a child writing `writes` times `size` bytes, `pause` s apart."""
    writer = f"import os, time\nfor _ in range({writes}):\n    os.write(1, b'x' * {size}); time.sleep({pause})\n"

    async def main() -> Collector:
        got = Collector()
        pid, master, reader = start(f"python3 -c \"{writer}\"; sleep 5", got)
        try:
            await until(lambda: got.size >= writes * size, 30)
        finally:
            finish(pid, master, reader)
        return got

    got = asyncio.run(main())
    assert got.size == writes * size
    return got


def test_steady_output_in_small_writes_goes_to_the_thread() -> None:
    # 8 KiB every 2 ms: each loop read finds one small write, yet the output never pauses; judging
    # by one read's size, a loop that keeps up would never hand bulk output to the thread
    assert any(paced(400, 8192, 0.002).threaded), "steady output never reached the thread"


def test_a_slow_steady_trickle_stays_on_the_loop() -> None:
    # 600 B every 10 ms (60 kB/s, a busy `top` or a spinner): more than 64 KiB in all, never paused,
    # but far from bulk: every chunk, and so every echo among them, is read on the loop
    assert not any(paced(150, 600, 0.01).threaded), "a 60 kB/s trickle went to the thread"


def test_stop_during_bulk_is_prompt_and_final() -> None:
    async def main() -> tuple[float, int, int]:
        got = Collector()
        pid, master, reader = start("exec cat /dev/zero", got)
        try:
            await until(lambda: got.size >= 8 * MAX_OUTPUT, 30)
            assert reader.threaded
            t0 = time.monotonic()
            reader.stop()
            took = time.monotonic() - t0
            await asyncio.sleep(0.05)  # batches queued before stop() returned arrive now
            after_stop = got.size
            await asyncio.sleep(0.3)
            return took, after_stop, got.size
        finally:
            finish(pid, master, reader)

    took, after_stop, later = asyncio.run(main())
    assert took < 1.0
    assert later == after_stop  # nothing read after stop()


def test_child_exit_ends_the_thread() -> None:
    async def main() -> Collector:
        got = Collector()
        pid, master, reader = start("head -c 3000000 /dev/zero", got)
        try:
            await until(lambda: got.size >= 3_000_000, 30)
            await until(lambda: not reader.threaded, 5)  # EIO after the child's last byte
        finally:
            finish(pid, master, reader)
        return got

    assert asyncio.run(main()).size == 3_000_000
