"""The child's pseudo-terminal: fork, size, exit status, hang-up, and the thread that reads it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pty
import select
import signal
import threading
import time
from collections.abc import Callable, Sequence

from ..terminal import set_size


def spawn(argv: Sequence[str], cols: int, rows: int, env: dict[str, str]) -> tuple[int, int]:
    """Fork `argv` on a new PTY of cols x rows; returns (pid, master fd)."""
    pid, master = pty.fork()
    if pid == 0:  # child
        try:
            set_size(0, cols, rows)
            os.execvpe(argv[0], list(argv), env)
        except BaseException as exc:  # noqa: BLE001 - report anything, then die without cleanup
            os.write(2, f"termshare: cannot run {argv[0]!r}: {exc}\r\n".encode())
        os._exit(127)
    os.set_blocking(master, False)
    return pid, master


def exit_status(wait_status: int) -> int:
    """The status a shell would report: the code, or 128 + signal."""
    if os.WIFSIGNALED(wait_status):
        return 128 + os.WTERMSIG(wait_status)
    return os.waitstatus_to_exitcode(wait_status)


def hang_up(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(os.getpgid(pid), signal.SIGHUP)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGHUP)


class PtyReader:
    """Reads the PTY master and hands what it read to `on_data`, on the loop, in order.

    Interactive output is read by a loop reader callback: an echo reaches `on_data` with no thread
    hop. Once the loop has read `bulk` bytes within `window` seconds, with no pause of `quiet`
    seconds between reads, the child is writing in bulk, and a thread takes over until the PTY has
    been quiet for `quiet` seconds. (Bytes over a window, not one read's size: a fast loop may keep
    up with the child in small reads, and the child still stalls while the loop seals and sends;
    the window keeps a slow steady trickle, a spinner or `top`, on the loop.) Why a thread: the
    kernel buffers only ~64 KiB between the child and us, so while the loop seals and sends a
    256 KiB frame (about half a millisecond) the child fills it and stops; reading and sending
    took turns. The thread keeps draining the PTY meanwhile (`poll` and `readv` release the GIL).
    At most `depth` batches wait for the loop: a loop that falls behind slows the child down
    instead of queueing its output here.
    """

    def __init__(self, fd: int, on_data: Callable[[bytes], None], batch: int, bulk: int = 64 * 1024,
                 quiet: float = 0.05, depth: int = 4, window: float = 0.2) -> None:
        self._fd, self._on_data = fd, on_data
        self._batch, self._bulk, self._quiet, self._window = batch, bulk, quiet, window
        self._buffer = memoryview(bytearray(batch))  # reused by whichever side reads: one copy per batch
        self._slots = threading.Semaphore(depth)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._run = 0  # bytes the loop read in the current window
        self._run_start = self._last_read = 0.0  # when that window began; when the loop last read
        self._wake_r, self._wake_w = os.pipe()

    @property
    def threaded(self) -> bool:
        """True while the thread reads (bulk output)."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        loop.add_reader(self._fd, self._on_readable)

    def stop(self) -> None:
        """Stop reading. Batches the thread handed over before are still delivered, ahead of
        anything the caller schedules on the loop afterwards."""
        if self._stopping:
            return
        self._stopping = True
        if self._loop is not None:
            self._loop.remove_reader(self._fd)
        self._slots.release()
        os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def read_rest(self) -> None:
        """After stop(): hand `on_data` what the PTY still holds (the child has exited)."""
        while True:
            size, closed = self._read()
            if size:
                self._on_data(bytes(self._buffer[:size]))
            if closed or size < self._batch:
                return

    def _read(self) -> tuple[int, bool]:
        """Read what the PTY holds into the buffer, up to a batch: (bytes read, child side closed)."""
        size = 0
        while size < self._batch:
            try:
                got = os.readv(self._fd, (self._buffer[size:],))
            except BlockingIOError:
                return size, False
            except OSError:  # EIO: the child side is closed
                return size, True
            if not got:
                return size, True
            size += got
        return size, False

    def _on_readable(self) -> None:
        assert self._loop is not None
        size, closed = self._read()
        if size:
            self._on_data(bytes(self._buffer[:size]))
        now = time.monotonic()
        if now - self._last_read > self._quiet or now - self._run_start > self._window:
            self._run, self._run_start = size, now
        else:
            self._run += size
        self._last_read = now
        if closed:
            self._loop.remove_reader(self._fd)
        elif self._run >= self._bulk and not self._stopping:
            self._loop.remove_reader(self._fd)
            if self._thread is not None:
                self._thread.join()  # the last burst's thread: it handed back and is ending
            self._thread = threading.Thread(target=self._drain, name="termshare-pty", daemon=True)
            self._thread.start()

    def _resume(self) -> None:
        if not self._stopping and self._loop is not None:
            self._loop.add_reader(self._fd, self._on_readable)

    def _deliver(self, data: bytes) -> None:
        self._slots.release()
        self._on_data(data)

    def _drain(self) -> None:
        assert self._loop is not None
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        while True:
            self._slots.acquire()
            ready = poller.poll(self._quiet * 1000)
            if self._stopping:
                return
            if not ready:  # quiet: back to the loop's reader
                self._slots.release()
                self._call(self._resume)
                return
            size, closed = self._read()
            if size:
                self._call(self._deliver, bytes(self._buffer[:size]))
            else:
                self._slots.release()
            if closed:
                return

    def _call(self, callback: Callable[..., None], *args: object) -> None:
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop is closed: the share is over
            self._loop.call_soon_threadsafe(callback, *args)
