"""The child's pseudo-terminal: fork, size, exit status, hang-up."""

from __future__ import annotations

import contextlib
import os
import pty
import signal
from collections.abc import Sequence

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
