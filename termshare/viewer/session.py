"""The `join` driver: a websocket to the relay, a ViewerProtocol, and the user's terminal.

Theory of operation
-------------------
In a terminal, the viewer switches to raw mode, repaints the sharer's screen on each SNAPSHOT,
writes output as it comes, and types (when the link allows) what the user types, minus the
terminal's answers to queries and minus the leave key (Ctrl-]). On a pipe it writes the decrypted
byte stream and exits when the session ends. A dropped connection reconnects with backoff and a
fresh handshake; a clean end, a wrong key or a removal does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import ssl
from dataclasses import dataclass
from typing import Final

from ..connection import RelayConnection, WebSocketError
from ..net import websocket_url
from ..protocol import events as ev
from ..protocol.errors import InvalidState
from ..protocol.keys import derive_ro_secret
from ..protocol.link import Link
from ..protocol.viewer import ViewerProtocol, ViewerState
from ..protocol.wire import CloseCode, RejectReason, Role
from ..sender import Sender
from ..terminal import get_size, raw_terminal
from .record import Recording
from .replies import filter_replies

LEAVE_KEY: Final = b"\x1d"  # Ctrl-]
REJECTED: Final = {
    RejectReason.WRONG_KEY: "the sharer did not accept this link: the key is wrong (was the link copied whole?)",
    RejectReason.READ_ONLY_SHARE: "this share is read-only: use its read-only link or join with --read-only",
    RejectReason.REPLAYED_HELLO: "the sharer refused a replayed handshake",
    RejectReason.REMOVED: "the sharer removed you from the session",
    RejectReason.PROTOCOL_ERROR: "the sharer closed the channel after a protocol error",
}
FINAL_CLOSES: Final = {
    CloseCode.UNKNOWN_SESSION: "no such session: it ended, or the link is mistyped",
    CloseCode.SESSION_ENDED: "the session ended",
    CloseCode.LIMIT: "the relay refused: too many viewers or connections",
}


@dataclass
class JoinOptions:
    link: Link
    ssl_context: ssl.SSLContext | None = None
    record: str | None = None
    retry_seconds: float = 30.0  # how long to keep trying after a connection was lost


def as_read_only(link: Link) -> Link:
    if link.role is Role.READ_ONLY:
        return link
    return Link(link.base, link.sid, Role.READ_ONLY, derive_ro_secret(link.secret, link.sid), link.key_fp)


class JoinSession:
    def __init__(self, opts: JoinOptions, in_fd: int = 0, out_fd: int = 1) -> None:
        self.opts = opts
        self.in_fd, self.out_fd = in_fd, out_fd
        self.tty = os.isatty(out_fd)
        self.interactive = self.tty and os.isatty(in_fd)
        self.viewer: ViewerProtocol | None = None
        self._conn: RelayConnection | None = None
        self._joined = False  # the current connection got as far as LIVE
        self._result: asyncio.Future[tuple[int, str]] | None = None
        self._recording = Recording(open(opts.record, "w", encoding="utf-8")) if opts.record else None
        self._warned_read_only = False
        self._size: tuple[int, int] | None = None
        self._sender = Sender(lambda: None)

    async def run(self) -> tuple[int, str]:
        """Returns (exit status, a sentence for the user)."""
        loop = asyncio.get_running_loop()
        self._result = loop.create_future()
        task = asyncio.create_task(self._connection_loop())
        try:
            with raw_terminal(self.in_fd) if self.interactive else contextlib.nullcontext():
                if self.interactive:
                    loop.add_reader(self.in_fd, self._on_stdin)
                try:
                    return await self._result
                finally:
                    if self.interactive:
                        loop.remove_reader(self.in_fd)
                        self._write(b"\x1b[0m\x1b[?25h\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1006l\x1b[?2004l\x1b]2;\x07\r\n")
        finally:
            if self._conn is not None:
                await self._conn.close()  # a close handshake, not a dropped connection
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            if self._recording is not None:
                self._recording.close()

    def _finish(self, status: int, message: str) -> None:
        if self._result is not None and not self._result.done():
            self._result.set_result((status, message))

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.out_fd, view):]
            except BlockingIOError:
                continue
            except BrokenPipeError:
                self._finish(0, "")
                return

    def _status(self, text: str) -> None:
        if self.tty:
            self._write(f"\x1b]2;termshare: {text}\x07".encode())

    # -- keyboard -----------------------------------------------------------------------------
    def _on_stdin(self) -> None:
        try:
            data = os.read(self.in_fd, 65536)
        except BlockingIOError:
            return
        if not data:
            asyncio.get_running_loop().remove_reader(self.in_fd)
            return
        if LEAVE_KEY in data:
            self._finish(0, "left the session")
            data = data[: data.index(LEAVE_KEY)]
        data = filter_replies(data)
        viewer = self.viewer
        if not data or viewer is None:
            return
        if not viewer.can_write:
            if not self._warned_read_only and viewer.state is ViewerState.LIVE:
                self._warned_read_only = True
                self._status("read-only link: your keystrokes are not sent (Ctrl-] leaves)")
            return
        try:
            viewer.send_input(data)
        except InvalidState:
            return
        self._pump()

    # -- relay ----------------------------------------------------------------------------------
    def _pump(self) -> None:
        assert self.viewer is not None
        self._sender.push(self.viewer.frames_to_send())  # one writer keeps the channel's order
        for event in self.viewer.events_received():
            self._on_event(event)

    def _on_event(self, event: object) -> None:
        rec = self._recording
        if isinstance(event, ev.Output):
            self._write(event.data)
            if rec:
                rec.output(event.data)
        elif isinstance(event, ev.Snapshot):
            self._size = (event.cols, event.rows)
            if self.tty:
                self._write(b"\x1bc" + f"\x1b[8;{event.rows};{event.cols}t".encode() + event.data)
                self._check_size()
            else:
                self._write(event.data)
            if rec:
                rec.screen(event.cols, event.rows, event.data)
        elif isinstance(event, ev.Resize):
            self._size = (event.cols, event.rows)
            if self.tty:
                self._write(f"\x1b[8;{event.rows};{event.cols}t".encode())
                self._check_size()
            if rec:
                rec.resize(event.cols, event.rows)
        elif isinstance(event, ev.Viewers):
            self._status(f"{event.count} viewer{'s' if event.count != 1 else ''} (Ctrl-] leaves)")
        elif isinstance(event, ev.Welcomed):
            self._status("read-write (Ctrl-] leaves)" if event.can_write else "read-only (Ctrl-] leaves)")
        elif isinstance(event, ev.SharerAway):
            self._status("the sharer's connection dropped; waiting for it to come back")
        elif isinstance(event, ev.SharerBack):
            self._status("the sharer is back")
        elif isinstance(event, ev.StreamBroken):
            self._status("stream interrupted, resyncing")
        elif isinstance(event, ev.Ended):
            self._finish(0, f"the sharer ended the session (exit status {event.exit_status})")
        elif isinstance(event, ev.Rejected):
            self._finish(1, REJECTED.get(RejectReason(event.reason), "rejected by the sharer") if event.reason < 5 else "rejected by the sharer")
        elif isinstance(event, ev.Removed):
            self._finish(1, REJECTED[RejectReason.REMOVED])

    def _check_size(self) -> None:
        mine = get_size(self.out_fd)
        if self._size and mine and (mine[0] < self._size[0] or mine[1] < self._size[1]):
            cols, rows = self._size
            self._status(f"the sharer's terminal is {cols}x{rows}, yours is {mine[0]}x{mine[1]}: enlarge it to see everything")

    def _on_frame(self, message: bytes) -> None:
        """A frame from the relay, handled in the loop iteration that read it."""
        assert self.viewer is not None
        self.viewer.receive_frame(message)
        if self.viewer.state is ViewerState.LIVE:
            self._joined = True
        self._pump()
        if self.viewer.close_code is not None and self._conn is not None:
            self._conn.close_soon()

    async def _connection_loop(self) -> None:
        url = websocket_url(self.opts.link.base, "view", self.opts.link.sid)
        delay, lost_at, ever_joined = 0.25, 0.0, False
        loop = asyncio.get_running_loop()
        while True:
            conn: RelayConnection | None = None
            self.viewer = ViewerProtocol(self.opts.link, os.urandom)
            self._joined = False
            error = ""
            try:
                conn = await RelayConnection.open(url, self._on_frame, ssl_context=self.opts.ssl_context)
                self._conn = conn
                self._sender.reset()
                self._sender.attach(conn)
                await conn.wait_closed()
            except (TimeoutError, OSError, WebSocketError) as exc:
                error = str(exc) or type(exc).__name__
            finally:
                self._conn = None
                self._sender.detach()
                if conn is not None:
                    conn.abort()  # no-op once closed; on cancellation, do not leave it open
            if self._joined:
                ever_joined, delay, lost_at = True, 0.25, 0.0
            if self._result is not None and self._result.done():
                return
            code = conn.close_code if conn is not None else None
            if code in FINAL_CLOSES and not (ever_joined and code == CloseCode.UNKNOWN_SESSION):
                return self._finish(0 if code == CloseCode.SESSION_ENDED else 1, FINAL_CLOSES[CloseCode(code)])
            if code == CloseCode.REJECTED:
                reason = "".join(ch for ch in ((conn.close_reason if conn else "") or "") if ch.isprintable())[:200]
                return self._finish(1, reason or "rejected by the sharer")  # relay text: no escapes
            if not ever_joined:
                return self._finish(1, f"cannot join through {self.opts.link.base}: {error or f'closed with code {code}'}")
            now = loop.time()
            lost_at = lost_at or now
            if now - lost_at > self.opts.retry_seconds:
                return self._finish(1, "lost the connection to the relay and could not get it back")
            self._status("connection lost, reconnecting")
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 5.0)
