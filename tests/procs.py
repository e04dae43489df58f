"""Real termshare processes for tests: a relay on a free port, a headless sharer, a piped viewer."""

from __future__ import annotations

import contextlib
import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

FACTOR = float(os.environ.get("TERMSHARE_TEST_TIMEOUT_FACTOR", "1"))
ROOT = Path(__file__).parents[1]


def timeout(seconds: float) -> float:
    return seconds * FACTOR


def env() -> dict[str, str]:
    e = dict(os.environ, PYTHONPATH=str(ROOT), TERM="xterm-256color", SHELL="/bin/bash")
    e.pop("TERMSHARE_DEBUG", None)
    return e


def shell_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A deterministic bash for terminal tests: `$ ` prompt, no rc files' surprises, no bracketed paste."""
    inputrc = home / ".inputrc"  # no bracketed-paste mode: command output then follows a plain CR LF
    inputrc.write_text("set enable-bracketed-paste off\n")
    runtime = home / "run"  # each test's own control sockets (termshare viewers / remove)
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "SHELL": "/bin/bash",
        "TERM": "xterm-256color",
        "PS1": "$ ",
        "PS2": "> ",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HISTFILE": "/dev/null",
        "INPUTRC": str(inputrc),
        "XDG_RUNTIME_DIR": str(runtime),
        "PYTHONPATH": str(ROOT),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    if extra:
        env.update(extra)
    return env


def free_port() -> int:
    """A port nobody listens on right now (bound to 0, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def termshare(*args: str, **kwargs: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "termshare", *args], env=env(), start_new_session=True, **kwargs)


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout(5))
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def read_until(stream: IO[bytes], pattern: bytes, seconds: float) -> bytes:
    """Read from a pipe until `pattern` (a regex) matches what was read; AssertionError on timeout."""
    buf = b""
    sel = selectors.DefaultSelector()
    sel.register(stream, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout(seconds)
    fd = stream.fileno()
    try:
        while not re.search(pattern, buf):
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                raise AssertionError(f"timed out waiting for {pattern!r}; got {buf[-2000:]!r}")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError(f"stream closed before {pattern!r}; got {buf[-2000:]!r}")
            buf += chunk
    finally:
        sel.close()
    return buf


class Relay:
    def __init__(self, *extra: str, port: int = 0) -> None:
        self.proc = termshare("serve", "--port", str(port), *extra, stderr=subprocess.PIPE)
        assert self.proc.stderr is not None
        line = read_until(self.proc.stderr, rb"relay on \S+:(\d+)", 15)
        match = re.search(rb"relay on (\S+):(\d+)", line)
        assert match
        self.port = int(match[2])
        self.url = f"{match[1].decode()}:{self.port}"

    def close(self) -> None:
        stop(self.proc)

    def rss(self) -> int:
        """Resident memory of the relay process, in bytes."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0


class HeadlessShare:
    """`termshare share --json`: events on stdout, no terminal mirror."""

    def __init__(self, *args: str) -> None:
        self.proc = termshare("share", "--json", *args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
        assert self.proc.stdout is not None
        line = read_until(self.proc.stdout, rb"\n", 20)
        self.links = json.loads(line.splitlines()[0])
        assert self.links["event"] == "links", self.links

    def close(self) -> None:
        stop(self.proc)
