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

from .viewer import BenchViewer

# The same websocket settings as `termshare join` / `termshare share` use.
_WS = dict(max_size=MAX_FRAME, compression=None, open_timeout=20, ping_interval=15, ping_timeout=15)


class TsViewer(BenchViewer):
    """One viewer: ViewerProtocol on a websocket."""

    system = "termshare"

    def __init__(self, url: str) -> None:
        super().__init__()
        self.link: Link = parse_link(url)
        self.protocol = ViewerProtocol(self.link, os.urandom)

    async def _connect(self) -> ClientConnection:
        return await connect(websocket_url(self.link.base, "view", self.link.sid), **_WS)

    async def _handle(self, message: str | bytes) -> bool:
        assert self.ws is not None
        if isinstance(message, str):
            return False
        self.protocol.receive_frame(message)
        for frame in self.protocol.frames_to_send():
            await self.ws.send(frame)
        for event in self.protocol.events_received():
            if isinstance(event, ev.Output):
                self._output(len(event.data))
            elif isinstance(event, ev.Snapshot):
                self.snapshots += 1
                self.live.set()
            elif isinstance(event, ev.StreamBroken):
                self.broken += 1
            elif isinstance(event, ev.Ended | ev.Rejected | ev.Removed | ev.ProtocolFailed):
                self.done.set()
        return self.protocol.close_code is not None

    async def send_input(self, data: bytes) -> None:
        assert self.ws is not None
        self.protocol.send_input(data)
        for frame in self.protocol.frames_to_send():
            await self.ws.send(frame)


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
