"""The `share` driver: PTY <-> user's terminal, PTY -> ShareProtocol -> relay, relay input -> PTY.

Theory of operation
-------------------
Everything runs on one asyncio loop, except reading the PTY during bulk output: then a thread
drains it (PtyReader) so the child keeps writing while the loop sends. Each batch read goes at
once to the user's terminal (which is never slowed by the network), to the lazy screen model, and
to a pending buffer that is sealed into GROUP frames: immediately when the output follows a quiet
period (a keystroke echo is never delayed), otherwise after COALESCE (COALESCE_BULK while the
thread reads) so bulk output travels in large frames. The relay connection reconnects with
backoff and jitter and resumes the session under the same links (docs/PROTOCOL.md §8). The
terminal is restored on every path out of `run()`, and the child gets SIGHUP when sharing stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import random
import signal
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from ..connection import RelayConnection, WebSocketError
from ..net import websocket_url
from ..protocol import events as ev
from ..protocol.errors import InvalidState, TermshareError
from ..protocol.share import ShareProtocol, ShareState
from ..protocol.wire import MAX_OUTPUT, CloseCode
from ..sender import Sender
from ..terminal import get_size, raw_terminal, set_size
from .control import ControlError, ControlServer
from .pty import PtyReader, exit_status, hang_up, spawn
from .screen import SLICE, Screen

READ_BATCH: Final = MAX_OUTPUT  # bytes read from the PTY and handed over at most at a time (256 KiB)
COALESCE: Final = 0.002  # seconds to gather output into one frame
# ... and during bulk output (the PTY thread reading), when the next bytes are sure to follow: full
# frames, each costing the relay and every viewer one signature check, instead of one per 2 ms.
COALESCE_BULK: Final = 0.010
STOP_SIGNALS: Final = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
# Seconds after BYE for viewers that missed it to catch up (ShareProtocol.end): long enough for one
# that is socket buffers behind on a ~1 MB/s link (the relay drops the output it had queued for it,
# relay/outbox.py). Viewers that got the BYE leave at once, so only a session with a slow or stuck
# viewer waits; after LINGER_QUIET it says so.
LINGER: Final = 10.0
LINGER_QUIET: Final = 0.5
WAIT_POLL: Final = 0.02  # seconds between looks while waiting (for at most LINGER)
QUIET: Final = 0.010  # seconds without output after which the next byte is sent at once
IDLE_PARSE: Final = 0.05  # seconds of quiet before the screen model parses its backlog
FATAL_CLOSES: Final = {
    CloseCode.SESSION_TAKEN: "the relay says this session id belongs to someone else",
    CloseCode.TOKEN_REQUIRED: "the relay requires a sharer token: pass --share-token or set TERMSHARE_SHARE_TOKEN",
    CloseCode.TIMEOUT: "the relay ended the session because it was idle",  # only idle expiry closes a sharer 4408
    CloseCode.LIMIT: "the relay refused: a limit was reached",
    CloseCode.BAD_FRAME: "the relay refused our frames (a version mismatch?)",
}


class ShareError(TermshareError):
    pass


@dataclass
class ShareOptions:
    argv: list[str]
    base: str
    read_only: bool = False
    ssl_context: ssl.SSLContext | None = None
    json: bool = False
    qr: bool = False
    open_browser: bool = False
    embedded: bool = False
    share_token: str | None = None  # sent as `Authorization: Bearer` to relays that require one


class ShareSession:
    def __init__(self, opts: ShareOptions, in_fd: int = 0, out_fd: int = 1) -> None:
        self.opts = opts
        self.in_fd, self.out_fd = in_fd, out_fd
        self.mirror = not opts.json  # in --json mode stdout carries events, not the terminal
        cols, rows = get_size(in_fd) or get_size(out_fd) or (80, 24)
        self.screen = Screen(cols, rows)
        self.protocol = ShareProtocol(
            rng=os.urandom, clock=time.monotonic, screen=self.screen.snapshot, read_only=opts.read_only
        )
        self.sender = Sender(self._on_drained)
        self._pending: list[bytes | memoryview] = []  # output not yet sealed into a frame
        self._pending_size = 0
        self._flush_handle: asyncio.TimerHandle | None = None
        self._idle_handle: asyncio.TimerHandle | None = None
        self._last_output = 0.0
        self._skipped = False
        self._to_child = bytearray()
        self._waiting_child = False  # a writer callback is registered for the PTY
        self._reader: PtyReader | None = None
        self._pid = 0
        self._master = -1
        self._pidfd = -1
        self._conn: RelayConnection | None = None
        self._delay = 0.25  # seconds before the next reconnection attempt
        self._done: asyncio.Future[int] | None = None
        self._fatal: str | None = None
        self._connected_once = asyncio.Event()
        self._stop_waiting = False  # a signal came while finishing: wait for nobody
        self._joined: dict[int, float] = {}  # viewer id -> when it joined (Unix time), for `termshare viewers`
        self._control: ControlServer | None = None

    # -- links and messages -------------------------------------------------------------------
    @property
    def links(self) -> dict[str, str | None]:
        return {
            "read_write": self.protocol.read_write_link(self.opts.base),
            "read_only": self.protocol.read_only_link(self.opts.base),
        }

    def _emit(self, event: str, **fields: Any) -> None:
        if self.opts.json:
            line = json.dumps({"event": event, **fields}) + "\n"
            os.write(self.out_fd, line.encode())

    def banner(self) -> str:
        links = self.links
        name = os.path.basename(self.opts.argv[0])
        where = (f"embedded relay on {self.opts.base}, reachable from this machine only"
                 if self.opts.embedded else f"relay {self.opts.base}")
        lines = [f"termshare: sharing {name} through the {where}"]
        if links["read_write"]:
            lines.append(f"  read-write link: {links['read_write']}")
        lines.append(f"  read-only link:  {links['read_only']}")
        lines.append(f"  session {self.protocol.sid}; the key after '#' never reaches the relay.")
        lines.append("  Viewers are counted in this terminal's title. Exit the shell to stop sharing.")
        if self.opts.qr:
            lines.append(_qr(links["read_only"] if self.opts.read_only or not links["read_write"] else links["read_write"]))
        return "\n".join(lines) + "\n"

    def _title(self) -> None:
        if self.mirror and os.isatty(self.out_fd):
            count = self.protocol.viewer_count
            away = " (relay connection lost, retrying)" if self.protocol.state is ShareState.AWAY else ""
            title = f"termshare: {count} viewer{'s' if count != 1 else ''}{away}"
            self._write_local(f"\x1b]2;{title}\x07".encode())

    # -- main ---------------------------------------------------------------------------------------
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        conn_task = asyncio.create_task(self._connection_loop())
        first = asyncio.create_task(self._connected_once.wait())
        await asyncio.wait({conn_task, first}, return_when=asyncio.FIRST_COMPLETED)
        if not self._connected_once.is_set():
            first.cancel()
            raise ShareError(self._fatal or "could not reach the relay")
        links = self.links
        if self.opts.json:
            self._emit("links", session=self.protocol.sid, relay=self.opts.base, **links)
        else:
            os.write(self.out_fd, self.banner().encode())
        if self.opts.open_browser:
            import webbrowser

            webbrowser.open(links["read_only"] or "")
        await self._start_control()
        env = dict(os.environ, TERMSHARE_SESSION=self.protocol.sid)
        env.setdefault("TERM", "xterm-256color")
        self._pid, self._master = spawn(self.opts.argv, self.screen.cols, self.screen.rows, env)
        status = 1
        try:
            with raw_terminal(self.in_fd) if self.mirror else contextlib.nullcontext():
                self._install(loop)
                self._title()
                status = await self._done
        finally:
            self._uninstall(loop)
            try:
                await self._finish(status, conn_task)
            finally:  # until here a signal cuts the wait for late viewers short (_on_signal)
                for sig in STOP_SIGNALS:
                    loop.remove_signal_handler(sig)
        return status

    def _install(self, loop: asyncio.AbstractEventLoop) -> None:
        self._reader = PtyReader(self._master, self._output, READ_BATCH)
        self._reader.start(loop)
        with contextlib.suppress(OSError, ValueError):
            loop.add_reader(self.in_fd, self._on_stdin)
        loop.add_signal_handler(signal.SIGWINCH, self._on_winch)
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, self._on_signal, sig)
        self._watch_child(loop)

    def _uninstall(self, loop: asyncio.AbstractEventLoop) -> None:
        self._close_pidfd(loop)
        if self._reader is not None:
            self._reader.stop()
        for fd in (self._master, self.in_fd):
            with contextlib.suppress(Exception):
                loop.remove_reader(fd)
        with contextlib.suppress(Exception):
            loop.remove_writer(self._master)
        loop.remove_signal_handler(signal.SIGWINCH)

    def _watch_child(self, loop: asyncio.AbstractEventLoop) -> None:
        self._pidfd = os.pidfd_open(self._pid)

        def exited() -> None:
            self._close_pidfd(loop)
            try:
                _, wait_status = os.waitpid(self._pid, 0)
            except ChildProcessError:
                return
            self._pid = 0
            if self._reader is not None:
                self._reader.stop()
            # After the batches the thread handed over (already queued on the loop): what is left.
            loop.call_soon(self._read_rest_and_stop, exit_status(wait_status))

        loop.add_reader(self._pidfd, exited)

    def _close_pidfd(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._pidfd >= 0:
            loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = -1

    def _stop(self, status: int) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_result(status)

    def _on_signal(self, sig: int) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_result(128 + sig)
        elif not self._stop_waiting:  # already finishing: wait for late viewers or the relay no longer
            self._stop_waiting = True
        else:  # a second signal while finishing: its default action, now
            loop = asyncio.get_running_loop()
            for stop in STOP_SIGNALS:
                loop.remove_signal_handler(stop)
            signal.raise_signal(sig)

    async def _finish(self, status: int, conn_task: asyncio.Task[None]) -> None:
        if self._control is not None:
            self._control.close()
        if self._pid:
            await _reap(self._pid)
        self._flush()
        if self.protocol.state in (ShareState.AWAY, ShareState.REGISTERING) and self.protocol.viewer_count:
            # Reconnecting: END alone would leave the viewers waiting for the sharer's return (or,
            # lost with the connection, for the relay's resume grace). A moment more brings the BYE.
            await self._wait_for(lambda: conn_task.done() or self.protocol.state is ShareState.LIVE,
                                 "for the relay to come back, to tell {n} viewer(s) the session ended", "relay")
        if self._skipped and self.protocol.state is ShareState.LIVE:
            # Output was skipped while the upload was backed up, and the snapshot that replaces it
            # waits for the queue to drain: send it now, or every viewer ends on a stale screen.
            self._skipped = False
            self.protocol.resync_all()
        if self.protocol.state is not ShareState.ENDED:
            self.protocol.end(status)
            self._pump()
        if self.protocol.state is ShareState.ENDING:
            await self._wait_for(lambda: self.protocol.state is ShareState.ENDED, "for {n} viewer(s) to catch up", "viewers")
            self.protocol.finish()
            self._pump()
        if self._conn is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.sender.drained(), 3)
            if self._conn is not None:
                await self._conn.close()  # after END, which the transport sends first
        conn_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await conn_task
        if self._master >= 0:
            os.close(self._master)
        if self.mirror and os.isatty(self.out_fd):
            self._write_local(b"\x1b]2;\x07")
        self._emit("ended", exit_status=status)

    async def _wait_for(self, done: Callable[[], bool], what: str, reason: str) -> None:
        """Until done(), a signal, or LINGER s; says what it waits for after LINGER_QUIET s, so that
        a prompt end stays silent."""
        loop = asyncio.get_running_loop()
        start, said = loop.time(), False
        while not done() and not self._stop_waiting and loop.time() - start < LINGER:
            if not said and loop.time() - start >= LINGER_QUIET:
                said = True
                n = self.protocol.viewer_count
                if self.mirror:
                    self._write_local(f"\r\ntermshare: waiting up to {LINGER:g} s {what.format(n=n)} "
                                      f"(Ctrl-C stops waiting)\r\n".encode())
                self._emit("waiting", reason=reason, viewers=n, seconds=LINGER)
            await asyncio.sleep(WAIT_POLL)

    # -- terminal I/O ---------------------------------------------------------------------------
    def _write_local(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                written = os.write(self.out_fd, view)
            except BlockingIOError:
                continue
            except OSError:
                return  # the user's terminal went away; the share goes on
            view = view[written:]

    def _read_rest_and_stop(self, status: int) -> None:
        if self._reader is not None:
            self._reader.read_rest()
        self._stop(status)

    def _output(self, data: bytes) -> None:
        if self.mirror:
            self._write_local(data)
        room = MAX_OUTPUT - self._pending_size
        if len(data) > room:
            # Bulk output travels in full frames, each costing the relay and every viewer one
            # signature check: fill this one, seal it, and go on with the rest.
            view = memoryview(data)
            self._pending.append(view[:room])
            self._pending_size = MAX_OUTPUT
            self._flush()
            self._pending.append(view[room:])
            self._pending_size = len(data) - room
        else:
            self._pending.append(data)
            self._pending_size += len(data)
        now = time.monotonic()
        quiet = now - self._last_output > QUIET
        self._last_output = now
        if quiet or self._pending_size >= MAX_OUTPUT:
            self._flush()
        elif self._flush_handle is None:
            bulk = self._reader is not None and self._reader.threaded
            self._flush_handle = asyncio.get_running_loop().call_later(COALESCE_BULK if bulk else COALESCE, self._flush)
        self._schedule_idle_parse()

    def _flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if not self._pending:
            return
        pending = self._pending
        self._pending, self._pending_size = [], 0
        # The screen model takes output as it becomes a frame, not as it is read: a snapshot made
        # while bytes wait here would otherwise contain them and the frame after it repeat them.
        for chunk in pending:
            self.screen.feed(chunk)
        if self.sender.backlogged or self.protocol.state is not ShareState.LIVE:
            self._skipped = self.protocol.state is ShareState.LIVE
            return  # viewers get a snapshot instead (resync_all / resume)
        first = pending[0]
        self.protocol.send_output(first if len(pending) == 1 and isinstance(first, bytes) else b"".join(pending))
        self._pump()

    def _schedule_idle_parse(self) -> None:
        if self._idle_handle is None:
            self._idle_handle = asyncio.get_running_loop().call_later(IDLE_PARSE, self._idle_parse)

    def _idle_parse(self) -> None:
        self._idle_handle = None
        if time.monotonic() - self._last_output < IDLE_PARSE:
            self._schedule_idle_parse()
            return
        self.screen.catch_up(SLICE)
        if self.screen.behind:
            self._idle_handle = asyncio.get_running_loop().call_soon(self._idle_parse)  # type: ignore[assignment]

    def _on_stdin(self) -> None:
        try:
            data = os.read(self.in_fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(self.in_fd)
            return
        self._type(data)

    def _type(self, data: bytes) -> None:
        self._to_child += data
        self._write_child()

    def _write_child(self) -> None:
        try:
            written = os.write(self._master, self._to_child)
            del self._to_child[:written]
        except BlockingIOError:
            pass
        except OSError:
            self._to_child.clear()
        if bool(self._to_child) != self._waiting_child:  # (un)register only on a change: keystrokes are hot
            self._waiting_child = bool(self._to_child)
            loop = asyncio.get_running_loop()
            if self._waiting_child:
                loop.add_writer(self._master, self._write_child)
            else:
                with contextlib.suppress(Exception):
                    loop.remove_writer(self._master)

    def _on_winch(self) -> None:
        size = get_size(self.in_fd) or get_size(self.out_fd)
        if size is None or size == (self.screen.cols, self.screen.rows):
            return
        cols, rows = size
        set_size(self._master, cols, rows)
        self.screen.resize(cols, rows)
        self._flush()
        if self.protocol.state is ShareState.LIVE:
            self.protocol.send_resize(cols, rows)
            self._pump()

    # -- relay connection -------------------------------------------------------------------------
    def _pump(self) -> None:
        self.sender.push(self.protocol.frames_to_send())
        for event in self.protocol.events_received():
            self._on_event(event)

    def _on_drained(self) -> None:
        if self._skipped:
            self._skipped = False
            self.protocol.resync_all()
            self._pump()

    def _on_event(self, event: object) -> None:
        if isinstance(event, ev.Input):
            self._type(event.data)
        elif isinstance(event, ev.ViewerJoined):
            self._joined[event.viewer_id] = time.time()
            self._emit("viewer_joined", viewer_id=event.viewer_id, can_write=event.can_write,
                       viewers=self.protocol.viewer_count)
            self._title()
        elif isinstance(event, ev.ViewerLeft | ev.ViewerRejected):
            self._joined.pop(event.viewer_id, None)
            self._emit("viewer_left", viewer_id=event.viewer_id, viewers=self.protocol.viewer_count)
            self._title()
        elif isinstance(event, ev.Registered) and event.resumed:
            self._emit("reconnected")
            self._title()

    def _on_frame(self, message: bytes) -> None:
        """A frame from the relay, handled in the loop iteration that read it."""
        self.protocol.receive_frame(message)
        if self.protocol.state is ShareState.LIVE:
            self._connected_once.set()
            self._delay = 0.25
        self._pump()
        if self.protocol.close_code is not None and self._conn is not None:
            self._conn.close_soon()

    # -- control socket (termshare viewers / remove) ---------------------------------------------
    async def _start_control(self) -> None:
        try:
            control = ControlServer(self.protocol.sid, self._control_request)
            await control.start()
        except (ControlError, OSError) as exc:
            message = f"viewers cannot be listed or removed from the command line: {exc}"
            if self.opts.json:
                self._emit("warning", message=message)
            else:
                os.write(self.out_fd, f"termshare: {message}\r\n".encode())
            return
        self._control = control

    def _control_request(self, request: dict[str, Any]) -> dict[str, Any]:
        command = request.get("cmd")
        if command == "viewers":
            return {"viewers": [{"id": vid, "can_write": can_write, "joined": self._joined.get(vid, 0.0)}
                                for vid, can_write in sorted(self.protocol.viewers.items())]}
        if command == "remove":
            vid = request.get("viewer")
            if not isinstance(vid, int) or isinstance(vid, bool) or vid not in self.protocol.viewers:
                return {"error": f"no viewer {vid} in this session"}
            try:
                self.protocol.remove_viewer(vid)
            except InvalidState as exc:
                return {"error": str(exc)}
            self._pump()
            return {"ok": True}
        return {"error": f"unknown command {command!r}"}

    async def _connection_loop(self) -> None:
        url = websocket_url(self.opts.base, "share", self.protocol.sid)
        token = self.opts.share_token
        headers = {"Authorization": f"Bearer {token}"} if token else None
        while self.protocol.state is not ShareState.ENDED:
            conn: RelayConnection | None = None
            try:
                conn = await RelayConnection.open(url, self._on_frame, ssl_context=self.opts.ssl_context, headers=headers)
                self._conn = conn
                self.protocol.connect()
                self.sender.attach(conn)
                self._pump()
                await conn.wait_closed()
            except (TimeoutError, OSError, WebSocketError) as exc:
                if not self._connected_once.is_set():
                    self._fatal = f"cannot reach the relay at {self.opts.base}: {_describe(exc)}"
                    return
            finally:
                self.sender.detach()
                self._conn = None
                if conn is not None:
                    conn.abort()  # no-op once closed; on cancellation, do not leave it open
            code = conn.close_code if conn is not None else None
            if code in FATAL_CLOSES:
                self._fatal = FATAL_CLOSES[CloseCode(code)]
                if not self._connected_once.is_set():
                    return
                self._stop_with_message(self._fatal)
                return
            if self._ended():
                return
            self.protocol.connection_lost()
            if self._ended():  # it was waiting for late viewers (ENDING): without a relay, it is over
                return
            self.sender.reset()
            self._title()
            if not self._connected_once.is_set():
                self._fatal = f"the relay at {self.opts.base} closed the connection (code {code})"
                return
            await asyncio.sleep(self._delay * (0.5 + random.random()))
            self._delay = min(self._delay * 2, 8.0)

    def _ended(self) -> bool:
        return self.protocol.state is ShareState.ENDED  # changes under callbacks, hidden from narrowing

    def _stop_with_message(self, message: str) -> None:
        if self.mirror:  # in --json mode stdout carries JSON lines only
            self._write_local(f"\r\ntermshare: {message}; sharing stopped, the shell keeps running.\r\n".encode())
        self._emit("error", message=message)


async def _reap(pid: int) -> None:
    """SIGHUP the child (as a closing terminal would), then SIGKILL it if it ignores that."""
    hang_up(pid)
    for _ in range(40):
        try:
            done, _status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if done:
            return
        await asyncio.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(os.getpgid(pid), signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted ({exc.verify_message}); use --cafile for a private CA"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is `termshare serve` running there?)"
    if isinstance(exc, OSError) and exc.errno in (errno.ENOENT, -2, -3, -5):
        return "unknown host"
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


def _qr(url: str | None) -> str:
    import io

    import segno

    out = io.StringIO()
    segno.make(url or "", error="l").terminal(out=out, compact=True)
    return out.getvalue()


