"""termshare's headless viewer and a PTY-less sharer, built from the project's own code.

`TsViewer` is termshare.protocol.viewer.ViewerProtocol on termshare.connection.RelayConnection,
the websocket client `termshare join` and `termshare share` use, in the bench's own event loop, so
hundreds of viewers run in one process. Each message is handled in the callback that received it,
as `join` does. It counts at the receiving end, after signature check and decryption: terminal
bytes (Output events) and websocket payload bytes.
`TsIdleSharer` is ShareProtocol on the same client with no PTY, for the idle-cost workload.
"""

from __future__ import annotations

import asyncio
import os
import time

from termshare.connection import RelayConnection
from termshare.net import websocket_url
from termshare.protocol import events as ev
from termshare.protocol.link import Link, parse_link
from termshare.protocol.share import ShareProtocol, ShareState
from termshare.protocol.viewer import ViewerProtocol

from .viewer import BenchViewer

OPEN_TIMEOUT = 20.0  # s: hundreds of viewers connect at once


class TsViewer(BenchViewer):
    """One viewer: ViewerProtocol on a RelayConnection."""

    system = "termshare"

    def __init__(self, url: str) -> None:
        super().__init__()
        self.link: Link = parse_link(url)
        self.protocol = ViewerProtocol(self.link, os.urandom)
        self.conn: RelayConnection | None = None
        self._watch: asyncio.Task[None] | None = None

    async def start(self) -> None:
        url = websocket_url(self.link.base, "view", self.link.sid)
        self.conn = await RelayConnection.open(url, self._on_message, open_timeout=OPEN_TIMEOUT)
        self._watch = asyncio.create_task(self._until_closed(self.conn))

    async def _until_closed(self, conn: RelayConnection) -> None:
        try:
            await conn.wait_closed()
        except Exception:  # noqa: BLE001 - an error in _on_message ends this viewer, as in `join`
            self.broken += 1
        finally:
            self.done.set()

    def _on_message(self, message: bytes) -> None:
        assert self.conn is not None
        self.wire_bytes += len(message)
        self.frames += 1
        protocol = self.protocol
        protocol.receive_frame(message)
        for frame in protocol.frames_to_send():
            self.conn.send(frame)
        for event in protocol.events_received():
            if isinstance(event, ev.Output):
                self._output(len(event.data))
            elif isinstance(event, ev.Snapshot):
                self.snapshots += 1
                self.live.set()
            elif isinstance(event, ev.StreamBroken):
                self.broken += 1
                self.resyncs += 1  # the viewer sent RESYNC: a SNAPSHOT replaces what was skipped
            elif isinstance(event, ev.Ended | ev.Rejected | ev.Removed | ev.ProtocolFailed):
                self.ended = self.ended or isinstance(event, ev.Ended)
                self.done.set()
        if protocol.close_code is not None:
            self.conn.close_soon(protocol.close_code)
        if (delay := self._delay(len(message))) and (transport := self._transport()) is not None:
            transport.pause_reading()
            asyncio.get_running_loop().call_later(delay, _resume_reading, transport)

    def _transport(self) -> asyncio.Transport | None:
        return self.conn.transport if self.conn is not None else None

    async def send_input(self, data: bytes) -> None:
        assert self.conn is not None
        self.protocol.send_input(data)
        for frame in self.protocol.frames_to_send():
            self.conn.send(frame)

    async def close(self) -> None:
        if self.conn is not None:
            if self.conn.transport is not None and not self.conn.transport.is_reading():
                self.conn.abort()
            else:
                await self.conn.close()
        if self._watch is not None:
            self._watch.cancel()


def _resume_reading(transport: asyncio.Transport) -> None:
    if not transport.is_closing():
        transport.resume_reading()


class TsIdleSharer:
    """A sharer without a PTY: registers, admits viewers, answers them, and stays quiet."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.protocol = ShareProtocol(rng=os.urandom, clock=time.monotonic, screen=lambda: (80, 24, b"\x1b[H\x1b[2J$ "))
        self.conn: RelayConnection | None = None
        self.live = asyncio.Event()

    @property
    def read_only_url(self) -> str:
        return self.protocol.read_only_link(self.base)

    async def start(self) -> None:
        url = websocket_url(self.base, "share", self.protocol.sid)
        self.conn = await RelayConnection.open(url, self._on_message, open_timeout=OPEN_TIMEOUT)
        self.protocol.connect()
        self._flush()

    def _on_message(self, message: bytes) -> None:
        self.protocol.receive_frame(message)
        self._flush()
        if self.protocol.state is ShareState.LIVE:
            self.live.set()

    def _flush(self) -> None:
        assert self.conn is not None
        for frame in self.protocol.frames_to_send():
            self.conn.send(frame)
        self.protocol.events_received()

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()
