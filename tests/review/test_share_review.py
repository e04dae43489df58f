"""Security review findings on `termshare share` (each test fails until fixed)."""

from __future__ import annotations

import os
import time

from termshare.relay.server import EmbeddedRelay
from termshare.share.pty import spawn


def test_shared_shell_does_not_inherit_the_embedded_relays_listening_socket() -> None:
    """ATTACK/HYGIENE (fd leak into the shared shell).

    `relay.server.bind()` marks the listening socket inheritable (`sock.set_inheritable(True)`),
    and `termshare share` (no --relay) binds the embedded relay before it forks the shell, so the
    shell and everything started in it (including commands a read-write viewer types, and any
    background daemon that outlives the share) holds the relay's listening socket (seen as
    `/proc/<shell>/fd/6 -> socket:[...]` in LISTEN state). Such a process can accept() the
    connections meant for the relay (intercept viewers and the sharer's own reconnects), and keeps
    the port bound after termshare exits.

    Fix idea: keep the socket non-inheritable (only `termshare serve` with uvicorn workers might
    need otherwise; set it there), or close fds >= 3 in the child (`os.closerange`) before exec.
    """
    relay = EmbeddedRelay("127.0.0.1", 0)
    relay_fd = relay.sock.fileno()
    try:
        pid, master = spawn(["sh", "-c", "ls /proc/$$/fd"], 80, 24, dict(os.environ))
        out = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                chunk = os.read(master, 65536)
            except BlockingIOError:
                time.sleep(0.01)
                continue
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        os.waitpid(pid, 0)
        os.close(master)
    finally:
        relay.sock.close()
    fds = out.decode().split()
    assert str(relay_fd) not in fds, f"the shared shell inherited the relay's listening socket as fd {relay_fd}: {fds}"
