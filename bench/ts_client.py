"""termshare's headless viewer and a PTY-less sharer, built from the project's own protocol code.

`TsViewer` is termshare.protocol.viewer.ViewerProtocol on a websockets client connection, in the
bench's own event loop, so hundreds of viewers run in one process. It counts at the receiving end,
after signature check and decryption: terminal bytes (Output events) and websocket payload bytes.
`TsIdleSharer` is ShareProtocol on a websocket with no PTY, for the idle-cost workload.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from termshare.net import websocket_url
from termshare.protocol import events as ev
from termshare.protocol.link import Link, parse_link
from termshare.protocol.share import ShareProtocol
from termshare.protocol.viewer import ViewerProtocol
from termshare.protocol.wire import MAX_FRAME

# The same websocket settings as `termshare join` / `termshare share` use.
_WS = dict(max_size=MAX_FRAME, compression=None, open_timeout=20, ping_interval=15, ping_timeout=15)


class TsViewer:
    """One viewer. `output_bytes`/`wire_bytes` count from the last `reset_counters()`."""

    system = "termshare"

    def __init__(self, url: str) -> None:
        self.link: Link = parse_link(url)
        self.protocol = ViewerProtocol(self.link, os.urandom)
        self.ws: ClientConnection | None = None
        self.output_bytes = 0
        self.wire_bytes = 0
        self.snapshots = 0
        self.broken = 0
        self.last_output_at = 0.0
        self.target = 0
        self.live = asyncio.Event()
        self.done = asyncio.Event()  # ended, closed or failed
        self.got_output = asyncio.Event()
        self.reached = asyncio.Event()  # output_bytes >= target
        self._task: asyncio.Task[None] | None = None
        self._paused = False

    async def start(self) -> None:
        self.ws = await connect(websocket_url(self.link.base, "view", self.link.sid), **_WS)
        self._task = asyncio.create_task(self._read())

    async def ready(self, timeout: float) -> None:
        await asyncio.wait_for(self.live.wait(), timeout)

    def reset_counters(self, target: int = 0) -> None:
        self.output_bytes = self.wire_bytes = 0
        self.target = target
        self.reached.clear()

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for message in self.ws:
                if isinstance(message, str):
                    continue
                self.wire_bytes += len(message)
                self.protocol.receive_frame(message)
                frames = self.protocol.frames_to_send()
                for frame in frames:
                    await self.ws.send(frame)
                self._events()
                if self.protocol.close_code is not None:
                    break
                if self._paused:
                    self.ws.transport.pause_reading()  # stop reading the socket for good
                    return
        except ConnectionClosed:
            pass
        finally:
            self.done.set()

    def _events(self) -> None:
        for event in self.protocol.events_received():
            if isinstance(event, ev.Output):
                self.output_bytes += len(event.data)
                self.last_output_at = time.perf_counter()
                self.got_output.set()
                if self.target and self.output_bytes >= self.target:
                    self.reached.set()
            elif isinstance(event, ev.Snapshot):
                self.snapshots += 1
                self.live.set()
            elif isinstance(event, ev.StreamBroken):
                self.broken += 1
            elif isinstance(event, ev.Ended | ev.Rejected | ev.Removed | ev.ProtocolFailed):
                self.done.set()

    async def send_input(self, data: bytes) -> None:
        assert self.ws is not None
        self.protocol.send_input(data)
        for frame in self.protocol.frames_to_send():
            await self.ws.send(frame)

    def pause(self) -> None:
        """Stop reading after the next message: the relay's queue for us fills (a stalled viewer)."""
        self._paused = True
        if self.ws is not None:
            _shrink_receive_buffer(self.ws)
            self.ws.transport.pause_reading()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self.ws is not None:
            with contextlib.suppress(Exception):
                self.ws.transport.abort() if self._paused else await asyncio.wait_for(self.ws.close(), 2)


def _shrink_receive_buffer(ws: ClientConnection) -> None:
    """A stalled viewer with a small socket buffer: the stall reaches the relay after ~100 KB, not
    after the several MB a loopback socket may buffer, so both systems are tested on their relay."""
    import socket

    sock = ws.transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)


class TsIdleSharer:
    """A sharer without a PTY: registers, admits viewers, answers them, and stays quiet."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.protocol = ShareProtocol(rng=os.urandom, clock=time.monotonic, screen=lambda: (80, 24, b"\x1b[H\x1b[2J$ "))
        self.ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self.live = asyncio.Event()

    @property
    def read_only_url(self) -> str:
        return self.protocol.read_only_link(self.base)

    async def start(self) -> None:
        self.ws = await connect(websocket_url(self.base, "share", self.protocol.sid), **_WS)
        self.protocol.connect()
        await self._flush()
        self._task = asyncio.create_task(self._read())

    async def _flush(self) -> None:
        assert self.ws is not None
        for frame in self.protocol.frames_to_send():
            await self.ws.send(frame)
        self.protocol.events_received()

    async def _read(self) -> None:
        assert self.ws is not None
        with contextlib.suppress(ConnectionClosed):
            async for message in self.ws:
                if isinstance(message, bytes):
                    self.protocol.receive_frame(message)
                    await self._flush()
                    if self.protocol.state.name == "LIVE":
                        self.live.set()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 2)
