"""A bounded per-connection send queue: sending to one client never waits on another.

GROUP and GROUP_DIRECT frames (the group stream, "GROUP frames" below) are droppable: a viewer
that falls behind by more than `soft_cap` bytes skips them, sees the sequence gap, and resyncs from
a snapshot (docs/PROTOCOL.md §6.2). Its queue then gets one SKIPPED frame, so that the viewer
resyncs even if no later frame comes to show the gap. From there on every GROUP frame is useless to
that viewer until its snapshot, which comes in a DIRECT frame: so the GROUP frames still queued are
dropped too (all but one being written), and later ones until a frame that is not droppable is
queued. A slow viewer then reaches its snapshot, and the present, without first reading through
megabytes of output it would throw away. (A sharer's queue drops viewers' frames over its soft
cap in the same way, without the SKIPPED and the run.) Droppable frames wait in a deque of their
own (run() merges the two by entry number), so dropping them is a clear() and never a walk of the
other frames: a viewer can end runs at will (each PING it sends comes back as a DIRECT PONG), and a
walk of its queue per run would let it spend the relay's CPU. Frames that must not be dropped
(handshake, snapshots, keys) may use up to `hard_cap`; past that the viewer is closed 4508.

With `send_now` (the server's synchronous send, relay/websocket.py) a frame goes out in the call
that queued it whenever nothing waits ahead of it; the task only drains what a paused transport
held back. While the task is writing a frame, nothing is sent at once, so a frame queued meanwhile
never overtakes it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from starlette.websockets import WebSocket, WebSocketDisconnect

from ..protocol.envelope import encode_frame
from ..protocol.wire import CloseCode, FrameKind

SOFT_CAP: Final = 4 * 1024 * 1024  # 4 MiB of queued frames per connection before skipping GROUP
HARD_CAP: Final = 16 * 1024 * 1024  # 16 MiB including frames that must not be skipped
SKIPPED_FRAME: Final = encode_frame(FrameKind.SKIPPED)
SEND_EXTENSION: Final = "termshare.send"  # ASGI scope extensions of relay/websocket.py: synchronous send,
RECEIVE_EXTENSION: Final = "termshare.receive"  # and synchronous receive


@dataclass(slots=True)
class OutboxStats:
    """Shared by every Outbox of one relay, for its metrics."""

    dropped: int = 0  # GROUP frames never sent to a viewer that fell behind (over soft_cap, until its next other frame)
    upstream_dropped: int = 0  # viewers' frames not sent to a sharer over its soft cap
    too_slow: int = 0  # connections closed 4508 over hard_cap


class Outbox:
    __slots__ = ("_ws", "_droppable", "_other", "_writing", "_queued", "_wake", "_close", "dropped", "task", "soft_cap",
                 "hard_cap", "stats", "on_too_slow", "skip_hint", "_skipping", "_send_now", "_pushed", "_droppable_bytes")

    def __init__(self, ws: WebSocket, soft_cap: int = SOFT_CAP, hard_cap: int = HARD_CAP,
                 stats: OutboxStats | None = None, on_too_slow: Callable[[], None] | None = None,
                 skip_hint: bool = False, send_now: Callable[[bytes], bool] | None = None) -> None:
        self._ws = ws
        self._send_now = send_now
        self._droppable: deque[tuple[int, bytes]] = deque()  # (entry number, frame): frames sent as droppable
        self._other: deque[tuple[int, bytes]] = deque()  # and the rest; run() sends the lower number first
        self._writing = False  # run() is writing a frame (taken off its deque)
        self._queued = 0  # bytes queued or being written
        self._pushed = 0  # entries ever queued: the next entry's number
        self._droppable_bytes = 0  # bytes in _droppable
        self._wake = asyncio.Event()
        self._close: tuple[int, str] | None = None
        self.dropped = 0
        self.soft_cap = soft_cap
        self.hard_cap = hard_cap
        self.task: asyncio.Task[None] | None = None
        self.stats = stats or OutboxStats()
        self.on_too_slow = on_too_slow
        self.skip_hint = skip_hint  # viewers' queues: mark skipped runs with SKIPPED
        self._skipping = False

    def send(self, data: bytes, droppable: bool) -> None:
        if self._close is not None:
            return
        if droppable and (self._skipping or self._queued + len(data) > self.soft_cap):
            self._count_drop(1)
            if self.skip_hint and not self._skipping:
                self._skipping = True
                self._drop_queued_droppable()
                self._push(SKIPPED_FRAME)
                self._wake.set()
            return
        if self._queued + len(data) > self.hard_cap:
            self.close(CloseCode.TOO_SLOW, "too slow: the relay's queue for this viewer overflowed")
            self.stats.too_slow += 1
            if self.on_too_slow is not None:
                self.on_too_slow()
            return
        if not droppable:
            self._skipping = False  # maybe the snapshot: what follows it is of use again
        if (not self._droppable and not self._other and not self._writing and self._send_now is not None
                and self._send_now(data)):
            return
        self._push(data, droppable)
        self._wake.set()

    def _push(self, data: bytes, droppable: bool = False) -> None:
        if droppable:
            self._droppable.append((self._pushed, data))
            self._droppable_bytes += len(data)
        else:
            self._other.append((self._pushed, data))
        self._pushed += 1
        self._queued += len(data)

    def _count_drop(self, frames: int) -> None:
        self.dropped += frames
        if self.skip_hint:
            self.stats.dropped += frames
        else:
            self.stats.upstream_dropped += frames

    def _drop_queued_droppable(self) -> None:
        # The frame run() is writing is off the deques: it goes out whole.
        self._count_drop(len(self._droppable))
        self._queued -= self._droppable_bytes
        self._droppable.clear()
        self._droppable_bytes = 0

    def close(self, code: int, reason: str) -> None:
        if self._close is None:
            self._close = (code, reason)
            self._wake.set()

    async def run(self) -> None:
        ws = self._ws
        try:
            while True:
                while self._droppable or self._other:
                    droppable, other = self._droppable, self._other
                    if other and (not droppable or other[0][0] < droppable[0][0]):
                        data = other.popleft()[1]
                    else:
                        data = droppable.popleft()[1]
                        self._droppable_bytes -= len(data)
                    self._writing = True
                    await ws.send_bytes(data)
                    self._writing = False
                    self._queued -= len(data)
                if self._close is not None:
                    await ws.close(self._close[0], self._close[1][:120])
                    return
                self._wake.clear()
                await self._wake.wait()
        except (WebSocketDisconnect, RuntimeError, OSError):
            return
