"""What the bench's headless viewers of both systems share (ts_client.TsViewer, termpair_client.TpViewer).

Counters measured at the receiving end, after decryption (`output_bytes`, from the last
`reset_counters()`), websocket payload bytes (`wire_bytes`), and the events the workloads wait on.
Each system's viewer uses the websocket client its own product uses: termshare's viewer is the
client `termshare join` runs (termshare.connection), TermPair's has websockets' asyncio client
standing in for a browser (`WebsocketsViewer`). A viewer supplies start, pause (stop reading the
socket: a stalled viewer), close, send_input and its transport; `throttle` makes it read at a set
rate (a viewer on a slow link).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed


class BenchViewer:
    system = ""

    def __init__(self) -> None:
        self.output_bytes = 0
        self.wire_bytes = 0
        self.frames = 0  # websocket messages received
        self.snapshots = 0
        self.broken = 0  # the stream was not whole: a resync (below), an undecryptable frame, an error
        self.resyncs = 0  # of which: the stream broke (the relay skipped output for us, a gap) and we asked for a snapshot
        self.last_output_at = 0.0
        self.target = 0
        self.live = asyncio.Event()
        self.done = asyncio.Event()  # ended, closed or failed
        self.got_output = asyncio.Event()
        self.reached = asyncio.Event()  # output_bytes >= target
        self.ended = False  # the share's end reached this viewer (termshare: BYE, with the exit status)
        self._rate = 0.0  # bytes/s read at most (throttle), 0: as fast as they come
        self._free_at = 0.0

    async def start(self) -> None:
        raise NotImplementedError

    def _transport(self) -> asyncio.Transport | None:
        raise NotImplementedError

    def throttle(self, rate: float) -> None:
        """From now on read at most `rate` websocket payload bytes per second, through a small socket
        buffer (as a stalled viewer's): a viewer on a slow link, whose lag the relay decides."""
        self._rate = rate
        transport = self._transport()
        if transport is not None:
            shrink_receive_buffer(transport)

    def _delay(self, size: int) -> float:
        """After a message of `size` bytes: how long to stop reading, so that a `rate` link would have
        carried it (0 below a timer's resolution)."""
        if not self._rate:
            return 0.0
        now = time.perf_counter()
        self._free_at = max(self._free_at, now) + size / self._rate
        return self._free_at - now if self._free_at - now > 0.002 else 0.0

    def pause(self) -> None:
        """Stop reading the socket for good: the relay's queue for this viewer fills (a stalled viewer).
        close() then drops the connection."""
        transport = self._transport()
        if transport is not None:
            shrink_receive_buffer(transport)
            transport.pause_reading()

    async def close(self) -> None:
        raise NotImplementedError

    async def send_input(self, data: bytes) -> None:
        raise NotImplementedError

    async def ready(self, timeout: float) -> None:
        await asyncio.wait_for(self.live.wait(), timeout)

    def reset_counters(self, target: int = 0) -> None:
        self.output_bytes = self.wire_bytes = self.frames = self.snapshots = self.broken = self.resyncs = 0
        self.target = target
        self.reached.clear()

    def _output(self, size: int) -> None:
        self.output_bytes += size
        self.last_output_at = time.perf_counter()
        self.got_output.set()
        if self.target and self.output_bytes >= self.target:
            self.reached.set()


class WebsocketsViewer(BenchViewer):
    """A viewer on websockets' asyncio client: supplies `_connect` and `_handle`."""

    def __init__(self) -> None:
        super().__init__()
        self.ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._paused = False

    async def _connect(self) -> ClientConnection:
        raise NotImplementedError

    async def _handle(self, message: str | bytes) -> bool:
        """Take one websocket message; True when the viewer is finished."""
        raise NotImplementedError

    async def start(self) -> None:
        self.ws = await self._connect()
        self._task = asyncio.create_task(self._read())

    def _transport(self) -> asyncio.Transport | None:
        return self.ws.transport if self.ws is not None else None

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for message in self.ws:
                self.wire_bytes += len(message)  # text is JSON (ASCII): characters are bytes
                self.frames += 1
                if await self._handle(message):
                    break
                if delay := self._delay(len(message)):
                    await asyncio.sleep(delay)  # websockets' own flow control then stops reading the socket
                if self._paused:
                    self.ws.transport.pause_reading()  # stop reading the socket for good
                    return
        except ConnectionClosed:
            pass
        finally:
            self.done.set()

    def pause(self) -> None:
        self._paused = True  # websockets resumes reading as its queue empties: _read() pauses it again
        super().pause()

    async def close(self) -> None:
        await close_websocket(self._task, self.ws, abort=self._paused)


async def close_websocket(reader: asyncio.Task[None] | None, ws: ClientConnection | None, abort: bool = False) -> None:
    """Stop the task reading `ws`, then close it (abort: drop it, for a viewer that stopped reading)."""
    if reader is not None:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
    if ws is not None:
        with contextlib.suppress(Exception):
            ws.transport.abort() if abort else await asyncio.wait_for(ws.close(), 2)


def shrink_receive_buffer(transport: asyncio.BaseTransport) -> None:
    """A stalled viewer with a small socket buffer: the stall reaches the relay after ~100 KB, not
    after the several MB a loopback socket may buffer, so both systems are tested on their relay."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
