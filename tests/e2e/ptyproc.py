"""Run a command under a real pseudo-terminal (stdlib `pty`/`os`), for end-to-end tests.

`PtyProcess` spawns a command as the session leader of a fresh PTY of a given size, so the command
sees a real terminal on stdin, stdout and stderr (and owns it as its controlling terminal). The test
side holds the master end: it types with `write`, reads everything the command prints into
`output` (with a timeout, never blocking forever), waits for text with `expect`, resizes the
terminal, waits for the exit status, and kills the whole process group on `close`. Every byte read
is also fed to a `pyte` screen, so tests can compare what a person would see (`screen_lines`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Mapping, Sequence

import pyte

from termshare.share.screen import emulator


def _winsize(cols: int, rows: int) -> bytes:
    return struct.pack("HHHH", rows, cols, 0, 0)


def _take_controlling_terminal() -> None:  # runs in the child, after setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class PtyProcess:
    def __init__(self, argv: Sequence[str], *, env: Mapping[str, str], cols: int = 80, rows: int = 24,
                 cwd: str | None = None, name: str = "") -> None:
        self.name = name or os.path.basename(argv[0])
        self.cols, self.rows = cols, rows
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, _winsize(cols, rows))
        try:
            self.proc = subprocess.Popen(
                list(argv), stdin=slave, stdout=slave, stderr=slave, env=dict(env), cwd=cwd,
                start_new_session=True, preexec_fn=_take_controlling_terminal, close_fds=True,
            )
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        self.master = master
        os.set_blocking(master, False)
        self.output = bytearray()  # everything the command printed, raw
        self.cursor = 0  # `expect` searches from here and moves it past each match
        self.eof = False
        self.screen = emulator(cols, rows)  # pyte with the alternate screen, as real terminals have
        self._stream = pyte.ByteStream(self.screen)

    @property
    def pid(self) -> int:
        return self.proc.pid

    # -- reading ----------------------------------------------------------------------------------
    def read_some(self, timeout: float) -> bytes:
        """Read what is available within `timeout` seconds (b"" on timeout or end of file)."""
        if self.eof:
            return b""
        ready, _, _ = select.select([self.master], [], [], max(0.0, timeout))
        if not ready:
            return b""
        try:
            data = os.read(self.master, 65536)
        except BlockingIOError:
            return b""
        except OSError as exc:  # EIO: every slave fd is closed (the command exited)
            if exc.errno != errno.EIO:
                raise
            data = b""
        if not data:
            self.eof = True
            return b""
        self.output += data
        self._stream.feed(data)
        return data

    def pump(self, seconds: float) -> None:
        """Keep reading for `seconds` (to collect output that must NOT show up, or to drain)."""
        deadline = time.monotonic() + seconds
        while not self.eof and (left := deadline - time.monotonic()) > 0:
            self.read_some(left)

    def read_to_eof(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.eof and (left := deadline - time.monotonic()) > 0:
            self.read_some(left)

    def expect(self, pattern: str | bytes | re.Pattern[bytes], timeout: float) -> re.Match[bytes]:
        """Wait until `pattern` (a regex on the raw bytes) appears after the cursor; move past it."""
        regex = _compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.output, self.cursor)
            if match is not None:
                self.cursor = match.end()
                return match
            left = deadline - time.monotonic()
            if left <= 0 or self.eof:
                raise AssertionError(
                    f"{self.name}: {regex.pattern!r} did not appear within {timeout:.1f}s"
                    f"{' (the process closed its terminal)' if self.eof else ''}; output tail:\n"
                    f"{self.tail()}"
                )
            self.read_some(min(left, 0.5))

    def seen(self, pattern: str | bytes | re.Pattern[bytes]) -> bool:
        return _compile(pattern).search(self.output) is not None

    def tail(self, size: int = 2000) -> str:
        return bytes(self.output[-size:]).decode("utf-8", "replace")

    def screen_lines(self) -> list[str]:
        return [line.rstrip() for line in self.screen.display]

    def screen_text(self) -> str:
        return "\n".join(self.screen_lines())

    def wait_screen(self, pattern: str, timeout: float) -> re.Match[str]:
        """Wait until the rendered screen matches `pattern` (a str regex)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.screen_text())
            if match is not None:
                return match
            left = deadline - time.monotonic()
            if left <= 0 or self.eof:
                raise AssertionError(f"{self.name}: screen never matched {pattern!r}; screen:\n{self.screen_text()}")
            self.read_some(min(left, 0.5))

    # -- writing and control ------------------------------------------------------------------------
    def write(self, data: str | bytes) -> None:
        view = memoryview(data.encode() if isinstance(data, str) else data)
        deadline = time.monotonic() + 10
        while view:
            try:
                view = view[os.write(self.master, view):]
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{self.name}: the terminal does not take input") from None
                self.read_some(0.05)  # the command may be blocked writing to us

    def type(self, text: str, delay: float = 0.0) -> None:
        """Type `text`; with `delay`, one key at a time like a person."""
        if not delay:
            self.write(text)
            return
        for char in text:
            self.write(char)
            self.pump(delay)

    def resize(self, cols: int, rows: int) -> None:
        """Change the terminal size (TIOCSWINSZ) and signal the foreground command (SIGWINCH)."""
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, _winsize(cols, rows))
        self.cols, self.rows = cols, rows
        self.screen.resize(rows, cols)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGWINCH)

    def termios(self) -> list[object]:
        """The terminal's current modes as `termios.tcgetattr` reports them (read via the master)."""
        return termios.tcgetattr(self.master)

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, sig)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout: float) -> int:
        """The exit status (negative for a signal), reading output meanwhile so the child never blocks."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{self.name} (pid {self.pid}) did not exit within {timeout:.1f}s; "
                                     f"output tail:\n{self.tail()}")
            if self.eof:
                time.sleep(min(left, 0.05))
            else:
                self.read_some(min(left, 0.1))
        self.pump(0.05 if not self.eof else 0)  # collect the last words
        return self.proc.returncode

    def close(self) -> None:
        """Kill the process group (TERM, then KILL) and release the terminal."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + 3
            while self.proc.poll() is None and time.monotonic() < deadline:
                if not self.eof:
                    self.read_some(0.05)
                else:
                    time.sleep(0.05)
            if self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self.master >= 0:
            os.close(self.master)
            self.master = -1


def _compile(pattern: str | bytes | re.Pattern[bytes]) -> re.Pattern[bytes]:
    if isinstance(pattern, re.Pattern):
        return pattern
    return re.compile(pattern.encode() if isinstance(pattern, str) else pattern)
