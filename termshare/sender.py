"""One websocket's outgoing queue, written by one task so frames keep their order (share and join).

For the sharer it is bounded: a slow relay costs memory up to a cap, never more.

When the queue passes HIGH_WATER the session stops sending output (the local terminal keeps
going); once it drains below LOW_WATER, every viewer gets a snapshot (ShareProtocol.resync_all).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Final, Protocol

from websockets.exceptions import ConnectionClosed

HIGH_WATER: Final = 8 * 1024 * 1024  # 8 MiB queued: stop sending output
LOW_WATER: Final = 1024 * 1024  # 1 MiB: resume with a snapshot


class _Socket(Protocol):
    async def send(self, message: bytes) -> None: ...


class Sender:
    def __init__(self, on_drained: Callable[[], None]) -> None:
        self._queue: deque[bytes] = deque()
        self.queued = 0
        self.backlogged = False
        self._on_drained = on_drained
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def push(self, frames: list[bytes]) -> None:
        for frame in frames:
            self._queue.append(frame)
            self.queued += len(frame)
        if frames:
            self._idle.clear()
            self._wake.set()
        if self.queued > HIGH_WATER:
            self.backlogged = True

    def reset(self) -> None:
        self._queue.clear()
        self.queued = 0
        self._idle.set()

    async def drained(self) -> None:
        await self._idle.wait()

    async def run(self, ws: _Socket) -> None:
        try:
            await self._run(ws)
        except ConnectionClosed:
            return  # the connection loop notices too, and reconnects or ends

    async def _run(self, ws: _Socket) -> None:
        while True:
            while self._queue:
                frame = self._queue.popleft()
                self.queued -= len(frame)
                await ws.send(frame)
                if self.backlogged and self.queued < LOW_WATER:
                    self.backlogged = False
                    self._on_drained()
            self._idle.set()
            self._wake.clear()
            await self._wake.wait()
