"""Terminals, for `share` and `join`: window sizes, and raw mode that is always restored."""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
import termios
import tty
from collections.abc import Iterator

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
