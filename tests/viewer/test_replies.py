from __future__ import annotations

import pytest

from termshare.viewer.replies import filter_replies


@pytest.mark.parametrize("reply", [
    b"\x1b[12;40R", b"\x1b[?62;22c", b"\x1b[>0;276;0c", b"\x1b[?2004;1$y", b"\x1b[0n",
    b"\x1b]11;rgb:0000/0000/0000\x07", b"\x1b]10;rgb:ffff/ffff/ffff\x1b\\", b"\x1bP1$r0m\x1b\\",
    b"\x1bP>|xterm(390)\x1b\\", b"\x1b[I", b"\x1b[8;24;80t",
])
def test_replies_are_dropped(reply: bytes) -> None:
    assert filter_replies(b"ls" + reply + b"\r") == b"ls\r"


@pytest.mark.parametrize("keys", [
    b"\x1b[A", b"\x1b[1;5C", b"\x1bOP", b"\x1b[3~", b"\x1b[200~pasted\x1b[201~", b"\x1b[<0;10;5M", b"\x03", b"\x1b",
])
def test_keys_and_mouse_pass(keys: bytes) -> None:
    assert filter_replies(keys) == keys
