"""Late joiners of full-screen programs see the sharer's screen (issue #5): vim, less, top, tmux.

The sharer runs under a real PTY; a viewer (`termshare join`, under another PTY of the same size)
joins once the program has drawn, and the text of both screens is compared line by line."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from ..e2e.ptyproc import PtyProcess
from ..procs import ROOT, Relay, timeout
from ..procs import env as base_env

PROGRAMS = {
    "vim": ("vim -u NONE -N -n /etc/services", r"Network services"),
    "less": ("less /etc/services", r"Network services"),
    "top": ("top -d 100", r"PID\s+USER"),
    "tmux": ("tmux -f /dev/null -L termshare-test new-session \"sh -c 'echo inside-tmux; sleep 100'\"", r"inside-tmux"),
}


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_late_joiner_sees_the_same_full_screen(name: str, tmp_path: Path) -> None:
    command, ready = PROGRAMS[name]
    relay = Relay()
    env = dict(base_env(), HOME=str(tmp_path), LANG="C.UTF-8")
    share = PtyProcess([os.sys.executable, "-m", "termshare", "share", "--host", "127.0.0.1", "--port",
                        str(relay.port), "--cmd", command], env=env, cols=80, rows=24, cwd=str(ROOT), name="share")
    viewer = None
    try:
        link = share.expect(rb"read-write link: (\S+)", timeout(20)).group(1).decode()
        share.wait_screen(ready, timeout(20))
        share.pump(1.0)  # let the program finish drawing
        viewer = PtyProcess([os.sys.executable, "-m", "termshare", "join", link], env=env, cols=80, rows=24,
                            cwd=str(ROOT), name="join")
        deadline = time.monotonic() + timeout(15)
        while True:
            viewer.pump(0.3)
            share.pump(0.1)
            mine, theirs = share.screen_lines(), viewer.screen_lines()
            if mine == theirs or time.monotonic() > deadline:
                break
        differing = [(i, a, b) for i, (a, b) in enumerate(zip(mine, theirs, strict=False)) if a != b]
        if name == "top":  # its clock and load figures may tick between the two reads
            differing = [d for d in differing if not re.match(r"top - |Tasks:|%Cpu|MiB", d[1])]
        assert not differing, "\n".join(f"{i}: sharer {a!r}\n{i}: viewer {b!r}" for i, a, b in differing)
        assert any(re.search(ready, line) for line in theirs)
    finally:
        if viewer is not None:
            viewer.close()
        share.close()
        relay.close()
        if name == "tmux":
            os.system("tmux -L termshare-test kill-server 2>/dev/null")
