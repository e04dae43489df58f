"""An in-test viewer that records protocol events (the project's own ViewerProtocol over websockets)."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from termshare.net import websocket_url
from termshare.protocol import events as ev
from termshare.protocol.envelope import Header, parse_header
from termshare.protocol.link import parse_link
from termshare.protocol.viewer import ViewerProtocol


@dataclass
class Recorder:
    url: str
    events: list[tuple[float, object]] = field(default_factory=list)
    closes: list[int | None] = field(default_factory=list)
    received_bytes: int = 0
    stop_reading: bool = False
    headers: list[Header] = field(default_factory=list)  # of every frame received, in order

    def output(self) -> bytes:
        return b"".join(e.data for _, e in self.events if isinstance(e, ev.Output))

    def snapshots(self) -> list[bytes]:
        return [e.data for _, e in self.events if isinstance(e, ev.Snapshot)]

    def exit_statuses(self) -> list[int]:
        return [e.exit_status for _, e in self.events if isinstance(e, ev.Ended)]

    def kinds(self) -> list[str]:
        return [type(e).__name__ for _, e in self.events]

    async def run_once(self) -> ClientConnection:
        link = parse_link(self.url)
        viewer = ViewerProtocol(link, os.urandom)
        ws = await connect(websocket_url(link.base, "view", link.sid), max_size=2**20, compression=None, max_queue=4)
        try:
            await self._read(ws, viewer)
        finally:
            self.closes.append(ws.close_code)
            ws.transport.abort() if ws.close_code is None else await ws.close()
        return ws

    async def _read(self, ws: ClientConnection, viewer: ViewerProtocol) -> None:
        try:
            async for message in ws:
                assert isinstance(message, bytes)
                self.received_bytes += len(message)
                self.headers.append(parse_header(message))
                viewer.receive_frame(message)
                for frame in viewer.frames_to_send():
                    await ws.send(frame)
                now = time.monotonic()
                self.events.extend((now, e) for e in viewer.events_received())
                if viewer.close_code is not None:
                    break
                while self.stop_reading:
                    await asyncio.sleep(0.05)
        except ConnectionClosed:
            pass

    async def run(self, reconnect_for: float = 0.0) -> None:
        """Run, reconnecting after each drop (as `join` does) until `reconnect_for` seconds after the
        start: one budget for the whole run, which a test sizes to cover every outage it causes."""
        deadline = time.monotonic() + reconnect_for
        while True:
            try:
                await self.run_once()
            except OSError:
                pass
            if any(isinstance(e, ev.Ended) for _, e in self.events) or time.monotonic() > deadline:
                return
            await asyncio.sleep(0.2)
