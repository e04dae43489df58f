"""One websocket's outgoing queue, for share and join: frames keep their order, and a slow relay
costs memory up to a cap, never more.

Frames go straight to the connection while it is writable, in the callback that made them (an
echo waits for no task switch); when the transport's buffer is full they wait here, in order, and
go when the connection reports it drained (RelayConnection.on_writable).

When the queue passes HIGH_WATER the session stops sending output (the local terminal keeps
going); once it drains below LOW_WATER, every viewer gets a snapshot (ShareProtocol.resync_all).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Final, Protocol

HIGH_WATER: Final = 8 * 1024 * 1024  # 8 MiB queued: stop sending output
LOW_WATER: Final = 1024 * 1024  # 1 MiB: resume with a snapshot


class _Connection(Protocol):
    on_writable: Callable[[], None] | None

    @property
    def writable(self) -> bool: ...

    def send(self, message: bytes) -> None: ...


class Sender:
    def __init__(self, on_drained: Callable[[], None]) -> None:
        self._queue: deque[bytes] = deque()
        self.queued = 0
        self.backlogged = False
        self._on_drained = on_drained
        self._conn: _Connection | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    def attach(self, conn: _Connection) -> None:
        """Send through `conn` from now on (a new connection: call reset() first)."""
        self._conn = conn
        conn.on_writable = self._flush
        self._flush()

    def detach(self) -> None:
        if self._conn is not None:
            self._conn.on_writable = None
            self._conn = None

    def push(self, frames: list[bytes]) -> None:
        if not frames:
            return
        for frame in frames:
            self._queue.append(frame)
            self.queued += len(frame)
        self._flush()
        if self.queued > HIGH_WATER:
            self.backlogged = True

    def reset(self) -> None:
        self._queue.clear()
        self.queued = 0
        self._idle.set()

    async def drained(self) -> None:
        """Until every frame pushed so far was handed to the connection."""
        await self._idle.wait()

    def _flush(self) -> None:
        queue, conn = self._queue, self._conn
        while queue and conn is not None and conn.writable:
            frame = queue.popleft()
            self.queued -= len(frame)
            conn.send(frame)
            if self.backlogged and self.queued < LOW_WATER:
                self.backlogged = False
                self._on_drained()  # may push (snapshots): they queue behind what is left, in order
        if queue:
            self._idle.clear()
        else:
            self._idle.set()
