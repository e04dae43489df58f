"""termshare.connection.RelayConnection: the websocket client of `share` and `join`, against the real
relay (uvicorn + websockets parse what it sends) and against a scripted server for the cases a
well-behaved relay never produces."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import struct
import time
from collections.abc import Awaitable, Callable

import pytest

from termshare import connection
from termshare.connection import RelayConnection, WebSocketError
from termshare.net import websocket_url
from termshare.protocol import events as ev
from termshare.protocol.link import parse_link
from termshare.protocol.share import ShareProtocol, ShareState
from termshare.protocol.viewer import ViewerProtocol, ViewerState
from termshare.relay.server import EmbeddedRelay

from .procs import timeout

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


async def until(predicate: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + timeout(seconds)
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


def test_share_and_view_through_the_real_relay() -> None:
    """Small and large messages (7-, 16- and 64-bit lengths; both masking paths) both ways."""

    async def scenario() -> None:
        relay = EmbeddedRelay("127.0.0.1", 0)
        await relay.start()
        try:
            base = f"http://127.0.0.1:{relay.port}"
            share = ShareProtocol(rng=os.urandom, clock=time.monotonic, screen=lambda: (80, 24, b"$ "))
            share_conn: RelayConnection | None = None
            typed: list[bytes] = []

            def on_share(message: bytes) -> None:
                share.receive_frame(message)
                for frame in share.frames_to_send():
                    assert share_conn is not None
                    share_conn.send(frame)
                typed.extend(e.data for e in share.events_received() if isinstance(e, ev.Input))

            share_conn = await RelayConnection.open(websocket_url(base, "share", share.sid), on_share)
            share.connect()
            for frame in share.frames_to_send():
                share_conn.send(frame)
            await until(lambda: share.state is ShareState.LIVE)

            link = share.read_write_link(base)
            assert link is not None
            viewer = ViewerProtocol(parse_link(link), os.urandom)
            output: list[bytes] = []

            def on_view(message: bytes) -> None:
                viewer.receive_frame(message)
                for frame in viewer.frames_to_send():
                    view_conn.send(frame)
                output.extend(e.data for e in viewer.events_received() if isinstance(e, ev.Output))

            view_conn = await RelayConnection.open(websocket_url(base, "view", share.sid), on_view)
            await until(lambda: viewer.state is ViewerState.LIVE)

            payload = os.urandom(300_000)  # two GROUP frames: 64-bit and 16-bit lengths
            share.send_output(payload)
            share.send_output(b"x")
            for frame in share.frames_to_send():
                share_conn.send(frame)
            await until(lambda: sum(map(len, output)) == len(payload) + 1)
            assert b"".join(output) == payload + b"x"

            viewer.send_input(b"ls\r")
            for frame in viewer.frames_to_send():
                view_conn.send(frame)
            await until(lambda: typed == [b"ls\r"])

            await view_conn.close()
            assert view_conn.close_code == 1000
            await share_conn.close()
        finally:
            await relay.stop()

    asyncio.run(scenario())


# -- a scripted server ------------------------------------------------------------------------------
Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def server_frame(opcode: int, payload: bytes, fin: bool = True, masked: bool = False) -> bytes:
    head = bytes((0x80 * fin | opcode,))
    n = len(payload)
    mask_bit = 0x80 if masked else 0
    if n < 126:
        head += bytes((mask_bit | n,))
    elif n < 65536:
        head += bytes((mask_bit | 126,)) + struct.pack("!H", n)
    else:
        head += bytes((mask_bit | 127,)) + struct.pack("!Q", n)
    if masked:
        head += b"\0\0\0\0"
    return head + payload


async def client_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    b0, b1 = await reader.readexactly(2)
    assert b1 & 0x80, "client frames must be masked"
    n = b1 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", await reader.readexactly(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", await reader.readexactly(8))
    mask = await reader.readexactly(4)
    data = await reader.readexactly(n)
    return b0 & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(data))


async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, status: str = "101 Switching Protocols",
                 accept_key: str | None = None) -> dict[str, str]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode()
    fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head.split("\r\n")[1:]) if k}
    key = fields["sec-websocket-key"].encode()
    answer = accept_key or base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
    writer.write(f"HTTP/1.1 {status}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 f"Sec-WebSocket-Accept: {answer}\r\n\r\n".encode())
    return fields


def run_scripted(script: Script, client: Callable[[str], Awaitable[None]]) -> None:
    async def scenario() -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await script(reader, writer)
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            await asyncio.wait_for(client(f"ws://127.0.0.1:{port}/ws/share/x"), timeout(10))
        finally:
            server.close()

    asyncio.run(scenario())


def test_upgrade_refused_or_wrong_is_an_error() -> None:
    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")

    async def wrong_key(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accept(reader, writer, accept_key="bm90IHRoZSBhbnN3ZXI=")

    for script, message in ((refuse, "server rejected WebSocket connection: HTTP 403"), (wrong_key, "upgrade is invalid")):
        async def client(url: str, message: str = message) -> None:
            with pytest.raises(WebSocketError, match=message):
                await RelayConnection.open(url, lambda m: None)

        run_scripted(script, client)


def test_headers_fragments_pings_and_the_close_code() -> None:
    seen: dict[str, object] = {}

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen["fields"] = await accept(reader, writer)
        writer.write(server_frame(0x2, b"frag", fin=False) + server_frame(0x9, b"pi")  # a ping between fragments
                     + server_frame(0x0, b"ment", fin=False) + server_frame(0x0, b"ed"))
        writer.write(server_frame(0x1, b"text is ignored") + server_frame(0x2, b"x" * 70_000))
        seen["pong"] = await client_frame(reader)
        seen["upstream"] = await client_frame(reader)
        writer.write(server_frame(0x8, struct.pack("!H", 4404) + b"no such session"))
        seen["close"] = await client_frame(reader)

    async def client(url: str) -> None:
        got: list[bytes] = []
        conn = await RelayConnection.open(url, got.append, headers={"Authorization": "Bearer t"})
        await until(lambda: len(got) == 2)
        conn.send(b"up")
        await conn.wait_closed()
        assert got == [b"fragmented", b"x" * 70_000]
        assert (conn.close_code, conn.close_reason) == (4404, "no such session")

    run_scripted(script, client)
    fields = seen["fields"]
    assert isinstance(fields, dict) and fields["authorization"] == "Bearer t" and fields["sec-websocket-version"] == "13"
    assert seen["pong"] == (0xA, b"pi")
    assert seen["upstream"] == (0x2, b"up")
    assert seen["close"] == (0x8, struct.pack("!H", 4404))  # the close code, echoed


@pytest.mark.parametrize(("frame", "code"), [
    (server_frame(0x2, b"masked", masked=True), 1002),
    (server_frame(0x2, b"y" * 2000), 1009),  # over max_size
    (server_frame(0x9, b"p" * 126), 1002),  # a control frame over 125 bytes
])
def test_bad_frames_fail_the_connection(frame: bytes, code: int) -> None:
    seen: list[tuple[int, bytes]] = []

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accept(reader, writer)
        writer.write(frame)
        seen.append(await client_frame(reader))

    async def client(url: str) -> None:
        got: list[bytes] = []
        conn = await RelayConnection.open(url, got.append, max_size=1000)
        await conn.wait_closed()
        assert got == []

    run_scripted(script, client)
    assert seen[0][0] == 0x8 and struct.unpack("!H", seen[0][1][:2])[0] == code


@pytest.mark.parametrize("sends", [True, False])
def test_a_relay_that_stops_answering_pings_is_dropped(monkeypatch: pytest.MonkeyPatch, sends: bool) -> None:
    """A client sending on its own pings after PING_INTERVAL of silence; one that sent nothing
    waits IDLE_PING_INTERVAL (longer than the relay's own ping clock): both drop a silent relay."""
    monkeypatch.setattr(connection, "PING_INTERVAL", 0.1)
    monkeypatch.setattr(connection, "IDLE_PING_INTERVAL", 0.8)
    monkeypatch.setattr(connection, "REPLY_WINDOW", 0.02)
    monkeypatch.setattr(connection, "PING_TIMEOUT", 0.05)
    monkeypatch.setattr(connection, "CLOSE_TIMEOUT", 0.2)

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accept(reader, writer)
        await asyncio.sleep(timeout(5))  # reads nothing, answers nothing

    async def client(url: str) -> None:
        conn = await RelayConnection.open(url, lambda m: None)
        started = time.monotonic()
        if sends:
            await asyncio.sleep(0.03)  # past REPLY_WINDOW: typed, not answering the relay
            conn.send(b"keys")
        await conn.wait_closed()
        took = time.monotonic() - started
        assert conn.close_code == 1006  # no close frame came back
        if sends:
            assert took < 0.8  # did not wait for the idle interval
        else:
            assert 0.8 <= took < timeout(2)

    run_scripted(script, client)


def test_replies_to_the_relay_do_not_make_a_client_ping_early(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a client sends at once in answer to the relay (a WELCOME, a snapshot) is not a session
    in use: it waits IDLE_PING_INTERVAL like an idle client, so it adds no pings to the relay's."""
    monkeypatch.setattr(connection, "PING_INTERVAL", 0.1)
    monkeypatch.setattr(connection, "IDLE_PING_INTERVAL", 0.8)
    monkeypatch.setattr(connection, "REPLY_WINDOW", 0.05)
    monkeypatch.setattr(connection, "PING_TIMEOUT", 0.05)
    monkeypatch.setattr(connection, "CLOSE_TIMEOUT", 0.2)
    seen: list[tuple[int, float]] = []

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accept(reader, writer)
        writer.write(server_frame(0x2, b"hello"))
        assert await client_frame(reader) == (0x2, b"reply")
        t0 = time.monotonic()
        opcode, _ = await asyncio.wait_for(client_frame(reader), timeout(5))  # then silence: the next frame
        seen.append((opcode, time.monotonic() - t0))
        await asyncio.sleep(timeout(1))

    async def client(url: str) -> None:
        holder: list[RelayConnection] = []
        conn = await RelayConnection.open(url, lambda m: holder[0].send(b"reply"))
        holder.append(conn)
        await conn.wait_closed()

    run_scripted(script, client)
    assert seen and seen[0][0] == 0x9  # a ping,
    assert seen[0][1] >= 0.7  # after the idle interval, not PING_INTERVAL


def test_a_relay_that_keeps_talking_is_not_pinged(monkeypatch: pytest.MonkeyPatch) -> None:
    """Anything received is a sign of life: an idle client does not add its own pings to the
    relay's (the idle cost of thousands of connections)."""
    monkeypatch.setattr(connection, "PING_INTERVAL", 0.05)
    monkeypatch.setattr(connection, "IDLE_PING_INTERVAL", 0.05)
    monkeypatch.setattr(connection, "PING_TIMEOUT", 0.05)
    pinged = []

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accept(reader, writer)
        for _ in range(25):  # 0.5 s of a frame every 20 ms, never answering a ping
            writer.write(server_frame(0x2, b"tick"))
            with contextlib.suppress(TimeoutError):
                pinged.append(await asyncio.wait_for(client_frame(reader), 0.02))
        writer.write(server_frame(0x8, struct.pack("!H", 1000)))
        await client_frame(reader)

    async def client(url: str) -> None:
        conn = await RelayConnection.open(url, lambda m: None)
        await conn.wait_closed()
        assert conn.close_code == 1000  # closed by the relay, not by a keepalive timeout

    run_scripted(script, client)
    assert pinged == []


def test_an_error_in_the_message_callback_surfaces_from_wait_closed() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accept(reader, writer)
        writer.write(server_frame(0x2, b"boom"))
        await client_frame(reader)  # the 1011 close

    async def client(url: str) -> None:
        def on_message(message: bytes) -> None:
            raise ValueError(message.decode())

        conn = await RelayConnection.open(url, on_message)
        with pytest.raises(ValueError, match="boom"):
            await conn.wait_closed()

    run_scripted(script, client)


def test_through_an_http_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTP(S)_PROXY in the environment is honoured, as websockets' client did."""
    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)
    connects: list[str] = []

    async def scenario() -> None:
        async def websocket(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await accept(reader, writer)
            writer.write(server_frame(0x2, b"hello"))
            await client_frame(reader)
            writer.close()

        async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = (await reader.readuntil(b"\r\n\r\n")).decode()
            connects.append(head.split("\r\n")[0])
            host, port = head.split()[1].rsplit(":", 1)
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")

            async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
                while data := await src.read(65536):
                    dst.write(data)
                dst.close()

            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer), return_exceptions=True)

        ws_server = await asyncio.start_server(websocket, "127.0.0.1", 0)
        proxy_server = await asyncio.start_server(proxy, "127.0.0.1", 0)
        ws_port, proxy_port = (s.sockets[0].getsockname()[1] for s in (ws_server, proxy_server))
        monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{proxy_port}")
        try:
            got: list[bytes] = []
            conn = await RelayConnection.open(f"ws://127.0.0.1:{ws_port}/ws/view/x", got.append)
            await until(lambda: got == [b"hello"])
            await conn.close()
        finally:
            ws_server.close()
            proxy_server.close()

    asyncio.run(scenario())
    assert connects and connects[0].startswith("CONNECT 127.0.0.1:")
