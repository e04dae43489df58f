"""Child processes of the bench: started in their own process group, always killed on the way out.

Also reads what the kernel says about a process (/proc/PID/stat and status): CPU seconds and RSS;
and about the machine (/proc/stat): CPU seconds busy.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import pty
import re
import signal
import socket
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_live: list[subprocess.Popen[bytes]] = []


class BenchError(Exception):
    pass


def start(argv: Sequence[str], **kwargs: object) -> subprocess.Popen[bytes]:
    """Popen in a new session (so the whole group can be killed), registered for cleanup."""
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    kwargs.setdefault("cwd", str(REPO))
    proc: subprocess.Popen[bytes] = subprocess.Popen(list(argv), start_new_session=True, **kwargs)  # type: ignore[call-overload]
    _live.append(proc)
    return proc


def stop(proc: subprocess.Popen[bytes], grace: float = 3.0) -> None:
    """SIGTERM the process group, then SIGKILL after `grace` seconds."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # stragglers left in the group (the shared command)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
    if proc in _live:
        _live.remove(proc)


def stop_all() -> None:
    for proc in list(_live):
        stop(proc, grace=1.0)


stopping = 0  # the signal that is stopping the run, once one came


def _on_signal(signum: int, frame: object) -> None:
    global stopping
    stopping = signum
    raise SystemExit(128 + signum)


def install_cleanup() -> None:
    atexit.register(stop_all)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.02)
    raise BenchError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


# -- /proc ----------------------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (not its children)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def machine_busy_seconds() -> float:
    """CPU seconds all cores together have spent busy since boot (/proc/stat: every state but idle
    and iowait), for every process and the kernel's own work (a PTY's flush worker included)."""
    with open("/proc/stat", "rb") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / _CLK_TCK


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            if line.startswith(b"VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class RssSampler:
    """Samples a process's RSS every `interval` seconds in a thread: (t, bytes) pairs."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError):
                self.samples.append((time.monotonic() - self._t0, rss_bytes(self.pid)))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)

    @property
    def peak(self) -> int:
        return max((b for _, b in self.samples), default=0)


# -- processes that insist on a terminal ----------------------------------------------------------
class PtyChild:
    """A process whose stdin/stdout/stderr is a PTY we drain in a thread (TermPair's `share` needs a
    terminal and mirrors everything to it). The drained text is kept only up to `keep` bytes."""

    def __init__(self, argv: Sequence[str], cols: int = 80, rows: int = 24, keep: int = 64 * 1024,
                 env: dict[str, str] | None = None) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.proc = start(argv, stdin=slave, stdout=slave, stderr=slave, env=env)
        os.close(slave)
        self.master = master
        self.head = bytearray()
        self._keep = keep
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                return
            if len(self.head) < self._keep:
                with self._lock:
                    self.head += data[: self._keep - len(self.head)]

    def wait_for(self, pattern: bytes, timeout: float) -> re.Match[bytes]:
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            with self._lock:
                match = regex.search(bytes(self.head))
            if match:
                return match
            if self.proc.poll() is not None:
                break
            time.sleep(0.001)
        raise BenchError(f"{self.proc.args!r} did not print {pattern!r} within {timeout} s: {bytes(self.head[-400:])!r}")

    def stop(self) -> None:
        stop(self.proc)
        with contextlib.suppress(OSError):
            os.close(self.master)
        self._thread.join(2)


def cpus() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0))


def python() -> str:
    return sys.executable
