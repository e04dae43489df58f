"""The two systems under test behind one interface: start a relay, start a sharer, make viewers.

Relays and sharers are real processes (`python -m termshare serve/share`, `termpair serve/share`);
viewers live in the bench's event loop (ts_client / termpair_client).
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from . import procs
from .reference import Reference
from .termpair_client import TpIdleSharer, TpIdleViewer, TpViewer
from .ts_client import TsIdleSharer, TsViewer

# Every workload that needs a relay limit above the defaults (one client address for everything).
TS_SERVE_LIMITS = ["--max-sessions", "20000", "--max-viewers", "1000", "--max-per-ip", "20000"]


@dataclass
class Relay:
    proc: subprocess.Popen[bytes]
    port: int

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Share:
    """A running sharer: `pid` is the share process itself (not the command it runs)."""
    pid: int
    url: str  # read-write link
    started: float  # perf_counter() when the process was launched
    linked: float  # perf_counter() when the link was seen
    _stop: Callable[[], None] | None = None
    lines: list[str] = field(default_factory=list)

    def stop(self) -> None:
        if self._stop is not None:
            self._stop()


class _LineReader:
    """Reads a pipe line by line in a thread, so a chatty child never blocks on a full pipe."""

    def __init__(self, stream: object) -> None:
        self.lines: list[str] = []
        self.first = threading.Event()
        self.first_at = 0.0
        self._stream = stream
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        for raw in self._stream:  # type: ignore[attr-defined]
            if not self.lines:
                self.first_at = time.perf_counter()
            self.lines.append(raw.decode(errors="replace"))
            self.first.set()
        self.first.set()


class Termshare:
    name = "termshare"
    Viewer = TsViewer
    IdleSharer = TsIdleSharer
    IdleViewer = TsViewer

    def start_relay(self, *extra: str) -> Relay:
        proc = procs.start([sys.executable, "-m", "termshare", "serve", "--port", "0", *TS_SERVE_LIMITS, *extra],
                           stderr=subprocess.PIPE)
        assert proc.stderr is not None
        line = proc.stderr.readline().decode()  # bounded: the relay prints this first or dies
        match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        if not match:
            procs.stop(proc)
            raise procs.BenchError(f"termshare serve did not start: {line!r}")
        threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()  # type: ignore[union-attr]
        return Relay(proc, int(match.group(1)))

    def start_share(self, relay: Relay, cmd: str, timeout: float = 20) -> Share:
        t0 = time.perf_counter()
        proc = procs.start([sys.executable, "-m", "termshare", "share", "--host", "127.0.0.1", "--port",
                            str(relay.port), "--json", "--cmd", cmd], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        reader = _LineReader(proc.stdout)
        if not reader.first.wait(timeout) or not reader.lines:
            procs.stop(proc)
            raise procs.BenchError(f"termshare share printed no link within {timeout} s")
        first = json.loads(reader.lines[0])
        if first.get("event") != "links":
            procs.stop(proc)
            raise procs.BenchError(f"termshare share's first line is not the links: {reader.lines[0]!r}")
        return Share(proc.pid, first["read_write"], t0, reader.first_at, lambda: procs.stop(proc), reader.lines)

    def drain_process(self, url: str, seconds: float) -> subprocess.Popen[bytes]:
        return procs.start(["timeout", str(int(seconds) + 1), sys.executable, "-m", "termshare", "join", url],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class TermPair:
    name = "termpair"
    Viewer = TpViewer
    IdleSharer = TpIdleSharer
    IdleViewer = TpIdleViewer

    def __init__(self, ref: Reference) -> None:
        self.ref = ref

    def start_relay(self) -> Relay:
        port = procs.free_port()
        proc = procs.start([self.ref.termpair, "serve", "--host", "127.0.0.1", "--port", str(port)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            procs.wait_port(port, 20)
        except procs.BenchError:
            procs.stop(proc)
            raise
        return Relay(proc, port)

    def start_share(self, relay: Relay, cmd: str, timeout: float = 20) -> Share:
        t0 = time.perf_counter()
        child = procs.PtyChild([self.ref.termpair, "share", "--host", "http://127.0.0.1", "--port",
                                str(relay.port), "--cmd", cmd])
        try:
            match = child.wait_for(rb"Shareable link: (\S+)", timeout)
        except procs.BenchError:
            child.stop()
            raise
        return Share(child.proc.pid, match.group(1).decode(), t0, time.perf_counter(), child.stop)

    def drain_process(self, url: str, seconds: float) -> subprocess.Popen[bytes]:
        return procs.start([sys.executable, "-m", "bench.termpair_client", "drain", url, str(seconds)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def sh(script: str) -> str:
    """A --cmd string that runs `script` under sh, in raw mode (no CR/LF translation, no echo)."""
    return f"sh -c {shlex.quote('stty raw -echo; ' + script)}"
