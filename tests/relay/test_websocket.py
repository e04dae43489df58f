"""The relay's websocket path (relay/websocket.py, relay/outbox.py) with real processes: frames sent
at once and frames held back by a paused transport reach a viewer complete and in order."""

from __future__ import annotations

import asyncio
import os
import socket

import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from websockets.asyncio.client import connect

from termshare.connection import RelayConnection
from termshare.net import websocket_url
from termshare.protocol import events as ev
from termshare.protocol.link import parse_link
from termshare.protocol.viewer import ViewerProtocol
from termshare.relay.outbox import RECEIVE_EXTENSION, Outbox
from termshare.relay.server import EmbeddedRelay, bind
from termshare.relay.websocket import RelayWebSocketProtocol
from tests.procs import HeadlessShare, Relay, timeout

LINES = 400_000  # ~2.7 MB: more than the sockets hold, less than the relay's 4 MiB skip threshold
EXPECTED = b"".join(b"%d\n" % i for i in range(1, LINES + 1))


async def watch(url: str, stall: float) -> tuple[bytes, int]:
    """Join, stop reading for `stall` seconds while the output starts, then read it all."""
    link = parse_link(url)
    viewer = ViewerProtocol(link, os.urandom)
    loop = asyncio.get_running_loop()
    live, done = loop.create_future(), loop.create_future()
    out = bytearray()
    broken = 0
    conn: RelayConnection | None = None

    def on_message(message: bytes) -> None:
        nonlocal broken
        assert conn is not None
        viewer.receive_frame(message)
        for frame in viewer.frames_to_send():
            conn.send(frame)
        for event in viewer.events_received():
            if isinstance(event, ev.Snapshot) and not live.done():
                live.set_result(None)
            elif isinstance(event, ev.Output):
                out.extend(event.data)
                if len(out) >= len(EXPECTED) and not done.done():
                    done.set_result(None)
            elif isinstance(event, ev.StreamBroken):
                broken += 1

    conn = await RelayConnection.open(websocket_url(link.base, "view", link.sid), on_message)
    try:
        await asyncio.wait_for(live, timeout(10))
        assert conn.transport is not None
        conn.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        conn.transport.pause_reading()
        viewer.send_input(b"g")  # opens the gate: the output starts while we do not read
        for frame in viewer.frames_to_send():
            conn.send(frame)
        await asyncio.sleep(stall)
        conn.transport.resume_reading()
        await asyncio.wait_for(done, timeout(30))
    finally:
        await conn.close()
    return bytes(out), broken


def test_frames_held_back_by_a_paused_transport_arrive_complete_and_in_order() -> None:
    relay = Relay()
    share = HeadlessShare("--host", "127.0.0.1", "--port", str(relay.port), "--cmd",
                          f"sh -c 'stty raw -echo; head -c1 >/dev/null; seq 1 {LINES}; exec cat'")
    try:
        out, broken = asyncio.run(watch(share.links["read_write"], stall=1.5))
        assert broken == 0
        assert out[: len(EXPECTED)] == EXPECTED
    finally:
        share.close()
        relay.close()


def test_a_frame_sent_at_once_never_overtakes_one_the_outbox_is_still_sending() -> None:
    """The race the real-process test above can only hit by chance: the transport resumes while the
    outbox's task is about to send a held-back frame, and a new frame comes in first."""

    class Connection:  # the websocket as the Outbox sees it: send_bytes awaits, send_now may refuse
        def __init__(self) -> None:
            self.wire: list[bytes] = []
            self.writable = False
            self.released = asyncio.Event()

        def send_now(self, data: bytes) -> bool:
            if self.writable:
                self.wire.append(data)
            return self.writable

        async def send_bytes(self, data: bytes) -> None:
            await self.released.wait()
            self.wire.append(data)

        async def close(self, code: int, reason: str) -> None:
            pass

    async def scenario() -> list[bytes]:
        ws = Connection()
        outbox = Outbox(ws, send_now=ws.send_now)  # type: ignore[arg-type]
        outbox.task = asyncio.create_task(outbox.run())
        outbox.send(b"held back", droppable=True)  # paused: queued, and the task starts sending it
        await asyncio.sleep(0.01)
        ws.writable = True  # resumed, before the task got to write
        outbox.send(b"next", droppable=True)
        ws.released.set()
        await asyncio.sleep(0.01)
        outbox.close(1000, "")
        await asyncio.wait_for(outbox.task, 1)
        return ws.wire

    assert asyncio.run(scenario()) == [b"held back", b"next"]


def test_the_synchronous_receive_keeps_the_order_of_queued_direct_and_text_messages() -> None:
    """relay/websocket.py on a real socket: messages that arrived before the app asked for them
    directly come first, then the direct ones; a text message goes back to ASGI's receive(), and the
    binary messages after it queue behind it."""
    got: list[tuple[str, object]] = []
    finished = asyncio.Event()

    async def endpoint(ws: WebSocket) -> None:
        await ws.accept()
        await asyncio.sleep(0.3)  # the client's first messages queue meanwhile
        ws.scope["extensions"][RECEIVE_EXTENSION](lambda data: got.append(("direct", data)))
        while (message := await ws.receive())["type"] != "websocket.disconnect":
            got.append(("queued", message.get("bytes") or message.get("text")))
        finished.set()

    async def scenario() -> None:
        app = Starlette(routes=[WebSocketRoute("/ws", endpoint)])
        sock = bind("127.0.0.1", 0)
        config = uvicorn.Config(app, ws=RelayWebSocketProtocol, lifespan="off", log_level="warning")
        config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        await server.startup(sockets=[sock])
        try:
            async with connect(f"ws://127.0.0.1:{sock.getsockname()[1]}/ws") as client:
                await client.send(b"1")
                await client.send(b"2")
                await asyncio.sleep(0.6)
                for message in (b"3", "text", b"4"):
                    await client.send(message)
                await asyncio.sleep(0.2)
            await asyncio.wait_for(finished.wait(), timeout(5))
        finally:
            await server.shutdown(sockets=[sock])

    asyncio.run(scenario())
    assert got == [("direct", b"1"), ("direct", b"2"), ("direct", b"3"), ("queued", "text"), ("queued", b"4")]


def test_the_relay_declines_permessage_deflate_which_browsers_offer() -> None:
    """Ciphertext does not compress, and a negotiated deflate costs the relay zlib state per
    connection (200 connections offering it: +11.8 MB with it, +5.0 MB without)."""

    async def scenario() -> list[str]:
        relay = EmbeddedRelay("127.0.0.1", 0)
        await relay.start()
        try:
            url = f"ws://127.0.0.1:{relay.port}/ws/view/{'a' * 22}"
            async with connect(url, compression="deflate") as ws:  # offers permessage-deflate
                return [type(e).__name__ for e in ws.protocol.extensions]
        finally:
            await relay.stop()

    assert asyncio.run(scenario()) == []
