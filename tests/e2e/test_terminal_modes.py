"""`share` puts the user's terminal in raw mode and restores it exactly, on a normal exit and on SIGTERM."""

from __future__ import annotations

import os
import shlex
import signal
import sys
import termios
from pathlib import Path

import pytest

from .conftest import LINK_RO, PROMPT, SHELL_CMD, Procs, Relay, timeout

SCRIPT = """\
export PS1='$ '  # a non-interactive bash drops PS1 from its environment
stty -g > {dir}/before
{python} -m termshare share --host 127.0.0.1 --port {port} --cmd {cmd}
echo "share-status=$?"
stty -g > {dir}/after
echo script-done
"""


@pytest.mark.parametrize("ending", ["exit", "SIGTERM"])
def test_terminal_modes_restored(procs: Procs, shared_relay: Relay, tmp_path: Path, ending: str) -> None:
    script = tmp_path / "run-share.sh"
    script.write_text(SCRIPT.format(dir=shlex.quote(str(tmp_path)), python=shlex.quote(sys.executable),
                                    port=shared_relay.port, cmd=shlex.quote(SHELL_CMD)))
    outer = procs.pty(["bash", "--norc", "--noprofile", str(script)], name="outer")
    outer.expect(LINK_RO, timeout())
    outer.expect(PROMPT, timeout())  # the shared shell is up, so share is in its raw-mode block
    lflag = outer.termios()[3]
    assert not lflag & (termios.ECHO | termios.ICANON | termios.ISIG), "share did not put the terminal in raw mode"

    if ending == "exit":
        outer.type("exit\r")
        expected = 0
    else:
        outer.type("echo share-pid=$PPID\r")  # the shared shell's parent is the share process
        pid = int(outer.expect(rb"\r\nshare-pid=(\d+)\r\n", timeout()).group(1))
        outer.expect(PROMPT, timeout())
        outer.pump(0.2)
        os.kill(pid, signal.SIGTERM)
        expected = 128 + signal.SIGTERM
    outer.expect(rf"share-status={expected}\r\n", timeout())
    outer.expect(rb"script-done", timeout())
    assert outer.wait(timeout()) == 0
    before = (tmp_path / "before").read_text().strip()
    after = (tmp_path / "after").read_text().strip()
    assert before and after == before
    # Nothing but the share's own lines may reach the user's terminal: no traceback on the way out.
    assert b"Traceback" not in outer.output, outer.tail()
