"""The echo floor of termshare's topology: three Python asyncio processes that do nothing else.

A keystroke through termshare crosses three processes: viewer -> relay -> sharer -> PTY running
`cat` -> sharer -> relay -> viewer. The brief's limit for echo is a local PTY round trip, with no
process in between. This module measures what the three processes cost by themselves on this
machine: the same hops, the same PTY and the same pause between keystrokes, in plain asyncio
Protocols that forward raw bytes (no websocket framing, no crypto, no routing). What termshare
adds on top of this figure is its own cost; below it nothing written in Python asyncio can go.

`python -m bench.floor sharer PORT` serves one TCP connection bridged to a PTY running `cat`;
`python -m bench.floor relay PORT UPSTREAM` forwards each connection to 127.0.0.1:UPSTREAM.
`echo_floor()` starts both and measures from the bench's event loop, as the echo workload does.
"""

from __future__ import annotations

import asyncio
import os
import pty
import sys
import time
from typing import Any

from . import procs
from .workloads import _ms, _pct


def _serve_sharer(port: int) -> None:
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp("sh", ["sh", "-c", "stty raw -echo; exec cat"])

    class Bridge(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport: asyncio.Transport = transport  # type: ignore[assignment]
            asyncio.get_running_loop().add_reader(fd, lambda: self.transport.write(os.read(fd, 65536)))

        def data_received(self, data: bytes) -> None:
            os.write(fd, data)

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Bridge, "127.0.0.1", port)
        await server.serve_forever()

    asyncio.run(main())


def _serve_relay(port: int, upstream: int) -> None:
    class Back(asyncio.Protocol):
        def __init__(self, client: asyncio.Transport) -> None:
            self.client = client

        def data_received(self, data: bytes) -> None:
            self.client.write(data)

    class Forward(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport: asyncio.Transport = transport  # type: ignore[assignment]
            self.up: asyncio.Transport | None = None
            self.early: list[bytes] = []
            asyncio.get_running_loop().create_task(self._connect())

        async def _connect(self) -> None:
            loop = asyncio.get_running_loop()
            self.up, _ = await loop.create_connection(lambda: Back(self.transport), "127.0.0.1", upstream)
            for data in self.early:
                self.up.write(data)

        def data_received(self, data: bytes) -> None:
            if self.up is None:
                self.early.append(data)
            else:
                self.up.write(data)

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Forward, "127.0.0.1", port)
        await server.serve_forever()

    asyncio.run(main())


async def echo_floor(count: int, interval: float) -> dict[str, Any]:
    """p50/p99 of `count` one-byte round trips through a relay process and a sharer process."""
    sharer_port, relay_port = procs.free_port(), procs.free_port()
    sharer = procs.start([sys.executable, "-m", "bench.floor", "sharer", str(sharer_port)])
    relay = procs.start([sys.executable, "-m", "bench.floor", "relay", str(relay_port), str(sharer_port)])
    loop = asyncio.get_running_loop()
    waiting: list[asyncio.Future[float]] = []

    class Client(asyncio.Protocol):
        def data_received(self, data: bytes) -> None:
            if waiting and not waiting[0].done():
                waiting[0].set_result(time.perf_counter())

    transport: asyncio.BaseTransport | None = None
    try:
        procs.wait_port(sharer_port, 20)
        procs.wait_port(relay_port, 20)
        transport, _ = await loop.create_connection(Client, "127.0.0.1", relay_port)
        await asyncio.sleep(0.3)  # `stty raw` in the sharer's PTY
        samples: list[float] = []
        for _ in range(count):
            waiting[:] = [loop.create_future()]
            guard = loop.call_later(2.0, waiting[0].cancel)  # armed before typing, as in the echo workload
            t0 = time.perf_counter()
            transport.write(b"x")
            try:
                samples.append(await waiting[0] - t0)
            except asyncio.CancelledError:
                if not waiting[0].cancelled():
                    raise
            finally:
                guard.cancel()
            await asyncio.sleep(max(0.0, t0 + interval - time.perf_counter()))
    finally:
        if transport is not None:
            transport.close()
        procs.stop(relay)
        procs.stop(sharer)
    if not samples:
        raise procs.BenchError("no byte came back through the floor's processes")
    samples.sort()
    return {"p50_ms": _pct(samples, 50) * 1000, "p99_ms": _pct(samples, 99) * 1000, "max_ms": samples[-1] * 1000,
            "keystrokes": len(samples), "lost": count - len(samples), "samples_ms": _ms(samples)}


if __name__ == "__main__":
    if sys.argv[1:2] == ["sharer"] and len(sys.argv) == 3:
        _serve_sharer(int(sys.argv[2]))
    elif sys.argv[1:2] == ["relay"] and len(sys.argv) == 4:
        _serve_relay(int(sys.argv[2]), int(sys.argv[3]))
    else:
        sys.exit("usage: python -m bench.floor sharer PORT | relay PORT UPSTREAM")
