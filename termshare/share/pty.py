"""The child's pseudo-terminal and the user's own terminal (raw mode that is always restored)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import signal
import struct
import termios
import tty
from collections.abc import Iterator, Sequence

_WINSZ = struct.Struct("HHHH")


def get_size(fd: int) -> tuple[int, int] | None:
    """(cols, rows) of the terminal on fd, or None when fd is not a terminal."""
    try:
        rows, cols, _, _ = _WINSZ.unpack(fcntl.ioctl(fd, termios.TIOCGWINSZ, bytes(_WINSZ.size)))
    except OSError:
        return None
    return (cols, rows) if cols and rows else None


def set_size(fd: int, cols: int, rows: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, _WINSZ.pack(rows, cols, 0, 0))


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


@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    """Put the user's terminal in raw mode; restore it on every way out of the block."""
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd, termios.TCSANOW)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSAFLUSH, saved)
