"""serve + share (under a PTY) + join (under another PTY): typing, read-only, late join, resize, end."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from .conftest import PROMPT, Procs, Relay, start_json_share, start_pty_join, start_pty_share, termshare, timeout


def test_typing_at_viewer_and_sharer_reaches_both(procs: Procs, shared_relay: Relay) -> None:
    share, links = start_pty_share(procs, shared_relay)
    assert links["rw"].startswith(f"{shared_relay.url}/s/") and "#w." in links["rw"]
    viewer = start_pty_join(procs, links["rw"], name="join-rw")
    share.expect(rb"\x1b\]2;termshare: 1 viewer\x07", timeout())  # the sharer's title counts the viewer

    # The viewer types: the shell gets the keys (its echo of the command line shows at the sharer)
    # and the command's output reaches both terminals. $((6*7)) makes the output differ from the echo.
    viewer.type("echo from-viewer-$((6*7))\r")
    share.expect(rb"echo from-viewer-\$\(\(6\*7\)\)", timeout())
    share.expect(rb"\r\nfrom-viewer-42\r\n", timeout())
    viewer.expect(rb"\r\nfrom-viewer-42\r\n", timeout())

    # The sharer types: the viewer sees the echo and the output.
    share.type("echo from-sharer-$((5*11))\r")
    viewer.expect(rb"echo from-sharer-\$\(\(5\*11\)\)", timeout())
    viewer.expect(rb"\r\nfrom-sharer-55\r\n", timeout())
    share.expect(rb"\r\nfrom-sharer-55\r\n", timeout())
    viewer.expect(PROMPT, timeout())
    for term in (share, viewer):
        lines = term.screen_lines()
        assert "from-viewer-42" in lines and "from-sharer-55" in lines, term.screen_text()

    # Ctrl-] leaves; the sharer's title goes back to 0 viewers; the shell is unaffected.
    viewer.write(b"\x1d")
    assert viewer.wait(timeout()) == 0
    assert b"termshare: left the session" in viewer.output
    share.expect(rb"\x1b\]2;termshare: 0 viewers\x07", timeout())
    share.type("exit\r")
    assert share.wait(timeout()) == 0


@pytest.mark.parametrize("how", ["read-only link", "read-write link with join --read-only"])
def test_read_only_viewer_keystrokes_never_arrive(procs: Procs, shared_relay: Relay, tmp_path: Path, how: str) -> None:
    share, links = start_pty_share(procs, shared_relay)
    if how == "read-only link":
        assert "#r." in links["ro"]
        viewer = start_pty_join(procs, links["ro"], name="join-ro")
    else:
        viewer = start_pty_join(procs, links["rw"], "--read-only", name="join-rw-as-ro")
    assert b"read-only (Ctrl-] leaves)" in viewer.output

    marker = tmp_path / f"x-{uuid.uuid4().hex}"
    viewer.type(f"touch {marker}\r")
    viewer.expect(rb"read-only link: your keystrokes are not sent", timeout())
    share.pump(1.0)  # give stray input every chance to arrive before the control command

    share.type("echo control-$((3*4))\r")
    viewer.expect(rb"\r\ncontrol-12\r\n", timeout())
    share.expect(rb"\r\ncontrol-12\r\n", timeout())
    share.expect(PROMPT, timeout())
    share.pump(0.3)
    assert not marker.exists()
    assert marker.name.encode() not in share.output
    assert marker.name.encode() not in viewer.output
    share.type("exit\r")
    assert share.wait(timeout()) == 0
    assert viewer.wait(timeout()) == 0


def test_read_only_share_has_no_read_write_link(procs: Procs, shared_relay: Relay) -> None:
    share, links = start_pty_share(procs, shared_relay, "--read-only")
    banner = share.output[: share.cursor]
    assert b"read-only link:" in banner
    assert b"read-write" not in banner and b"#w." not in banner
    assert "#r." in links["ro"]
    share.type("exit\r")
    assert share.wait(timeout()) == 0

    # The same in --json mode: the links event has no read-write link.
    json_share, event = start_json_share(procs, shared_relay.url, "--read-only")
    assert event["read_write"] is None
    assert "#r." in event["read_only"]
    json_share.write("exit\n")
    assert json_share.wait(timeout()) == 0


def _shell_part(lines: list[str]) -> list[str]:
    """The sharer's screen below its banner (the banner is local; viewers see only the shell)."""
    last = max(i for i, line in enumerate(lines) if "Exit the shell to stop sharing" in line)
    return _trim(lines[last + 1:])


def _trim(lines: list[str]) -> list[str]:
    while lines and not lines[-1]:
        lines = lines[:-1]
    return lines


def test_late_joiner_sees_current_screen(procs: Procs, shared_relay: Relay) -> None:
    share, links = start_pty_share(procs, shared_relay)
    share.type("printf 'late-%s-%s\\n' marker $((2+3))\r")
    share.expect(rb"\r\nlate-marker-5\r\n", timeout())
    share.expect(PROMPT, timeout())
    share.pump(0.3)  # let the sharer's screen model settle

    viewer = start_pty_join(procs, links["ro"])
    viewer.wait_screen(r"(?m)^late-marker-5$", timeout())
    viewer.pump(0.3)
    for term in (share, viewer):
        assert [line for line in term.screen_lines() if "late-marker-5" in line] == ["late-marker-5"], term.screen_text()
    # The viewer's screen is the sharer's shell area, line for line.
    assert _trim(viewer.screen_lines()) == _shell_part(share.screen_lines())
    share.type("exit\r")
    assert share.wait(timeout()) == 0
    assert viewer.wait(timeout()) == 0


def test_resize_propagates_to_the_shell_and_the_viewer(procs: Procs, shared_relay: Relay) -> None:
    share, links = start_pty_share(procs, shared_relay, cols=80, rows=24)
    viewer = start_pty_join(procs, links["rw"], cols=120, rows=40)
    assert b"\x1b[8;24;80t" in viewer.output  # the first snapshot carries the sharer's size

    share.resize(100, 30)
    viewer.expect(rb"\x1b\[8;30;100t", timeout())  # the viewer's terminal is asked to become 100x30
    share.type("stty size\r")
    viewer.expect(rb"\r\n30 100\r\n", timeout())
    share.expect(rb"\r\n30 100\r\n", timeout())

    share.resize(60, 20)
    viewer.expect(rb"\x1b\[8;20;60t", timeout())
    viewer.type("stty size\r")  # typed at the (read-write) viewer this time
    viewer.expect(rb"\r\n20 60\r\n", timeout())
    share.type("exit\r")
    assert share.wait(timeout()) == 0
    assert viewer.wait(timeout()) == 0


def test_sharer_exit_ends_viewers(procs: Procs, relay: Relay) -> None:
    share, links = start_pty_share(procs, relay)
    viewer = start_pty_join(procs, links["ro"])
    piped = procs.pipe(termshare("join", links["rw"]), name="join-piped")
    share.expect(rb"termshare: 2 viewers\x07", timeout())
    health = relay.health()
    assert health["sessions"] == 1 and health["viewers"] == 2, health

    share.type("exit 3\r")
    assert share.wait(timeout()) == 3
    assert viewer.wait(timeout()) == 0
    assert b"termshare: the sharer ended the session (exit status 3)" in viewer.output
    assert piped.wait(timeout()) == 0
    assert "the sharer ended the session (exit status 3)" in piped.stderr()
    deadline = time.monotonic() + timeout(5)
    while (health := relay.health())["sessions"] != 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert health["sessions"] == 0 and health["viewers"] == 0, health


def test_bulk_output_then_exit_reaches_the_viewer_whole_and_in_order(procs: Procs, shared_relay: Relay,
                                                                      tmp_path: Path) -> None:
    # 6 MB: read by the share's PTY thread and cut into full frames; the child exits right after
    # its last byte, so the exit path runs while batches are still on their way to the loop.
    payload = b"".join(b"%07d %s\n" % (i, b"abcdefghijklmnopqrstuvwxyz" * 2) for i in range(100_000))
    (tmp_path / "bulk").write_bytes(payload)
    gate = tmp_path / "gate"
    script = f"stty raw -echo; while [ ! -e {gate} ]; do sleep 0.02; done; cat {tmp_path / 'bulk'}; exit 7"
    share = procs.pipe(termshare("share", "--json", "--relay", shared_relay.url, "--cmd", f"sh -c '{script}'"),
                       name="share")
    links = share.wait_event("links", timeout())
    viewer = procs.pipe(termshare("join", links["read_only"]), name="join")
    share.wait_event("viewer_joined", timeout())
    gate.touch()
    assert share.proc.wait(timeout(60)) == 7
    assert viewer.proc.wait(timeout(30)) == 0
    out = viewer.stdout()
    assert out.count(payload) == 1, f"got {len(out)} bytes for {len(payload)}"
    assert len(out) - out.index(payload) - len(payload) < 64  # nothing of it repeated after
