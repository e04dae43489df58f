"""Fixtures for the end-to-end tests: real `termshare` processes, real sockets, real PTYs.

Every process a test starts is registered with the `procs` fixture and killed (its whole process
group) when the test ends, whatever happened. Timeouts are a base number of seconds times
TERMSHARE_TEST_TIMEOUT_FACTOR (default 1), see `timeout`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..procs import shell_env as make_env
from .ptyproc import PtyProcess

REPO = Path(__file__).resolve().parents[2]
FACTOR = float(os.environ.get("TERMSHARE_TEST_TIMEOUT_FACTOR", "1") or 1)
SHELL_CMD = "bash --norc --noprofile"  # what every test shares: no rc files, PS1 from the environment
PROMPT = rb"\$ "


def timeout(seconds: float = 10.0) -> float:
    """A bounded wait, scaled for slow machines."""
    return seconds * FACTOR


def termshare(*args: str) -> list[str]:
    return [sys.executable, "-m", "termshare", *args]




class Proc:
    """A process with stdout and stderr going to files (never a full pipe), stdin a pipe or /dev/null."""

    def __init__(self, argv: Sequence[str], *, env: Mapping[str, str], workdir: Path, name: str,
                 stdin: bool = False, stdout_path: Path | None = None) -> None:
        self.name = name
        self.stdout_path = stdout_path or workdir / f"{name}.out"
        self.stderr_path = workdir / f"{name}.err"
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                list(argv), stdin=subprocess.PIPE if stdin else subprocess.DEVNULL, stdout=out, stderr=err,
                env=dict(env), cwd=REPO, start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stdout(self) -> bytes:
        return self.stdout_path.read_bytes()

    def stderr(self) -> str:
        return self.stderr_path.read_bytes().decode("utf-8", "replace")

    def _wait_for(self, read, pattern: str | bytes, seconds: float, what: str) -> re.Match:  # type: ignore[no-untyped-def]
        regex = re.compile(pattern)
        deadline = time.monotonic() + seconds
        while True:
            text = read()
            match = regex.search(text)
            if match is not None:
                return match
            if time.monotonic() > deadline or self.proc.poll() is not None and regex.search(read()) is None:
                raise AssertionError(
                    f"{self.name}: {pattern!r} not in {what} after {seconds:.1f}s "
                    f"(exit status {self.proc.poll()});\nstdout: {self.stdout()[-1500:]!r}\nstderr: {self.stderr()[-1500:]}"
                )
            time.sleep(0.02)

    def wait_stdout(self, pattern: bytes, seconds: float) -> re.Match[bytes]:
        return self._wait_for(self.stdout, pattern, seconds, "stdout")

    def wait_stderr(self, pattern: str, seconds: float) -> re.Match[str]:
        return self._wait_for(self.stderr, pattern, seconds, "stderr")

    def write(self, data: str | bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data.encode() if isinstance(data, str) else data)
        self.proc.stdin.flush()

    def wait(self, seconds: float) -> int:
        try:
            return self.proc.wait(seconds)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} (pid {self.pid}) did not exit within {seconds:.1f}s;\n"
                                 f"stdout: {self.stdout()[-1500:]!r}\nstderr: {self.stderr()[-1500:]}") from None

    def json_events(self) -> list[dict]:
        return [json.loads(line) for line in self.stdout().decode().splitlines() if line.strip()]

    def wait_event(self, name: str, seconds: float) -> dict:
        self.wait_stdout(rb'"event": "' + name.encode() + rb'"', seconds)
        return next(e for e in self.json_events() if e["event"] == name)

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()


@dataclass
class Relay:
    proc: Proc
    port: int
    scheme: str = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def health(self) -> dict:
        assert self.scheme == "http"
        with urllib.request.urlopen(f"{self.url}/healthz", timeout=timeout(5)) as response:
            return json.loads(response.read())


class Procs:
    """Starts processes for one test and kills every one of them at the end."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.env = env
        self._all: list[Proc | PtyProcess] = []
        self._count = 0

    def _name(self, name: str) -> str:
        self._count += 1
        return f"{self._count:02d}-{name}"

    def pty(self, argv: Sequence[str], *, cols: int = 80, rows: int = 24, name: str = "pty",
            env: Mapping[str, str] | None = None) -> PtyProcess:
        proc = PtyProcess(argv, env=env or self.env, cols=cols, rows=rows, cwd=str(REPO), name=self._name(name))
        self._all.append(proc)
        return proc

    def pipe(self, argv: Sequence[str], *, name: str = "proc", stdin: bool = False,
             stdout_path: Path | None = None, env: Mapping[str, str] | None = None) -> Proc:
        proc = Proc(argv, env=env or self.env, workdir=self.workdir, name=self._name(name), stdin=stdin,
                    stdout_path=stdout_path)
        self._all.append(proc)
        return proc

    def relay(self, *extra: str) -> Relay:
        """`termshare serve --port 0 ...`; the port is read from the line it prints on stderr."""
        proc = self.pipe(termshare("serve", "--host", "127.0.0.1", "--port", "0", *extra), name="relay")
        match = proc.wait_stderr(r"termshare relay on (https?)://127\.0\.0\.1:(\d+)", timeout(10))
        relay = Relay(proc, int(match[2]), match[1])
        if relay.scheme == "http":
            wait_healthy(relay)
        return relay

    def close_all(self) -> None:
        for proc in reversed(self._all):
            proc.close()


def wait_healthy(relay: Relay) -> None:
    deadline = time.monotonic() + timeout(10)
    while True:
        try:
            relay.health()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def env(home: Path) -> dict[str, str]:
    return make_env(home)


@pytest.fixture
def procs(tmp_path: Path, env: dict[str, str]) -> Iterator[Procs]:
    manager = Procs(tmp_path, env)
    try:
        yield manager
    finally:
        manager.close_all()


@pytest.fixture(scope="session")
def shared_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relay]:
    """One relay for the tests that do not look at its session count."""
    workdir = tmp_path_factory.mktemp("relay")
    home = workdir / "home"
    home.mkdir()
    manager = Procs(workdir, make_env(home))
    try:
        yield manager.relay()
    finally:
        manager.close_all()


@pytest.fixture
def relay(procs: Procs) -> Relay:
    """A relay of this test's own."""
    return procs.relay()


# -- sharing helpers ---------------------------------------------------------------------------------
LINK_RW = re.compile(rb"read-write link: (\S+)")
LINK_RO = re.compile(rb"read-only link: +(\S+)")


def start_pty_share(procs: Procs, relay: Relay, *extra: str, cols: int = 80, rows: int = 24,
                    name: str = "share") -> tuple[PtyProcess, dict[str, str]]:
    """`share` under a PTY; waits for the banner and the shell's first prompt; returns the links."""
    share = procs.pty(termshare("share", "--host", "127.0.0.1", "--port", str(relay.port), "--cmd", SHELL_CMD, *extra),
                      cols=cols, rows=rows, name=name)
    links: dict[str, str] = {}
    if "--read-only" not in extra:
        links["rw"] = share.expect(LINK_RW, timeout()).group(1).decode()
    links["ro"] = share.expect(LINK_RO, timeout()).group(1).decode()
    share.expect(PROMPT, timeout())
    return share, links


def start_pty_join(procs: Procs, link: str, *extra: str, cols: int = 80, rows: int = 24,
                   name: str = "join") -> PtyProcess:
    """`join` under a PTY; waits until it has been welcomed and painted the first snapshot."""
    viewer = procs.pty(termshare("join", link, *extra), cols=cols, rows=rows, name=name)
    viewer.expect(rb"\x1b\]2;termshare: read-(write|only) \(Ctrl-\] leaves\)\x07", timeout())
    viewer.expect(rb"\x1bc\x1b\[8;\d+;\d+t", timeout())  # the snapshot: reset, size, screen
    return viewer


def start_json_share(procs: Procs, base: str | None, *extra: str, name: str = "share",
                     env: Mapping[str, str] | None = None) -> tuple[Proc, dict]:
    """`share --json` with stdin a pipe (typed into the shell); returns the process and its links event."""
    relay_args = ["--relay", base] if base is not None else []
    share = procs.pipe(termshare("share", "--json", *relay_args, "--cmd", SHELL_CMD, *extra), name=name, stdin=True,
                       env=env)
    links = share.wait_event("links", timeout())
    return share, links
