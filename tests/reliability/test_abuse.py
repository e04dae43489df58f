"""Malicious and malformed input against a live relay (issue #5). Each case gets a clear close
code; the session running beside them is never disturbed; resources stay bounded."""

from __future__ import annotations

import asyncio
import socket
import time

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from termshare.protocol import events as ev
from termshare.protocol.envelope import encode_frame
from termshare.protocol.wire import FrameKind

from ..procs import HeadlessShare, Relay, timeout
from .client import Recorder
from .test_faults import TICKER, ticks, wait_for

GOOD_ORIGIN = "http://good.example"


async def close_code(url: str, frames: list[bytes | str], origin: str | None = None) -> int | str:
    """Open a websocket, send frames, return the close code the relay answers with."""
    try:
        async with connect(url, compression=None, max_size=None, open_timeout=timeout(5),
                           additional_headers={"Origin": origin} if origin else None) as ws:
            for frame in frames:
                await ws.send(frame)
            try:
                async with asyncio.timeout(timeout(5)):
                    async for _ in ws:
                        pass
            except TimeoutError:
                return "no close"
            return ws.close_code or "no code"
    except InvalidStatus as exc:
        return f"HTTP {exc.response.status_code}"
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd else "closed"


def test_bad_input_is_refused_and_the_session_goes_on() -> None:
    relay = Relay("--max-per-ip", "40", "--allowed-origin", GOOD_ORIGIN)
    share = HeadlessShare("--host", "127.0.0.1", "--port", str(relay.port), "--cmd", TICKER.format(n=300, pause=0.1))
    sid = share.links["read_only"].split("/s/")[1].split("#")[0]
    ws_base = f"ws://127.0.0.1:{relay.port}/ws"
    rec = Recorder(share.links["read_only"])
    results: dict[str, object] = {}

    async def scenario() -> None:
        viewer = asyncio.create_task(rec.run())
        await wait_for(lambda: "Snapshot" in rec.kinds(), 10)
        view, share_url = f"{ws_base}/view/{sid}", f"{ws_base}/share/{sid}"
        cases: dict[str, tuple[str, list[bytes | str]]] = {
            "text message": (view, ["hello"]),
            "garbage bytes": (view, [b"\x00" * 7]),
            "truncated header": (view, [encode_frame(FrameKind.HELLO, bytes(49), 1)[:10]]),
            "length field lies": (view, [encode_frame(FrameKind.HELLO, bytes(49), 1)[:-5]]),
            "wrong protocol version": (view, [b"\x09" + encode_frame(FrameKind.HELLO, bytes(49), 1)[1:]]),
            "unknown frame kind": (view, [b"\x01\x7f" + encode_frame(FrameKind.END)[2:]]),
            "oversized frame (2 MiB)": (view, [b"\x01" * (2 * 1024 * 1024)]),
            "viewer sends END": (view, [encode_frame(FrameKind.END)]),
            "viewer sends GROUP (forged output)": (view, [encode_frame(FrameKind.GROUP, bytes(200))]),
            "viewer uses another viewer's id": (view, [encode_frame(FrameKind.HELLO, bytes(49), 1)]),
            "UPSTREAM before the handshake": (view, [encode_frame(FrameKind.UPSTREAM, bytes(40), 2)]),
            "unknown session": (f"{ws_base}/view/AAAAAAAAAAAAAAAA", []),
            "malformed session id": (f"{ws_base}/view/not-an-id", []),
            "keyless sharer claims the session": (share_url, [encode_frame(FrameKind.REGISTER, bytes(32))]),
            "sharer frame before REGISTER": (share_url, [encode_frame(FrameKind.GROUP, bytes(81))]),
        }
        for name, (url, frames) in cases.items():
            results[name] = await close_code(url, frames, GOOD_ORIGIN)
        # A keyless viewer that knows the session id completes READY, then sends a forged HELLO.
        results["forged HELLO (wrong key)"] = await forged_hello(view)
        results["bad Origin"] = await close_code(view, [], "http://evil.example")
        results["connect flood from one address (60)"] = await flood(view, 60)
        await asyncio.sleep(1)  # let the flood's connections finish closing
        results["slowloris (20 half-sent requests)"] = await slowloris(relay.port, 20)
        viewer_alive = len(ticks(rec.output()))
        await asyncio.sleep(1)
        results["session still flowing"] = len(ticks(rec.output())) > viewer_alive
        viewer.cancel()

    try:
        asyncio.run(scenario())
        print("\nbad inputs tried and the relay's answers:")
        for name, answer in results.items():
            print(f"  {name:40s} -> {answer}")
        expected_4400 = ["text message", "garbage bytes", "truncated header", "length field lies",
                         "wrong protocol version", "unknown frame kind", "viewer sends END",
                         "viewer sends GROUP (forged output)", "viewer uses another viewer's id",
                         "UPSTREAM before the handshake", "malformed session id", "sharer frame before REGISTER"]
        for name in expected_4400:
            assert results[name] == 4400, (name, results[name])
        assert results["oversized frame (2 MiB)"] in (1009, 4413)
        assert results["unknown session"] == 4404
        assert results["keyless sharer claims the session"] == 4409
        assert results["forged HELLO (wrong key)"] == 4403
        assert results["bad Origin"] == "HTTP 403"
        assert results["connect flood from one address (60)"] == "limit enforced"
        assert results["slowloris (20 half-sent requests)"] == "closed by the relay"
        assert results["session still flowing"] is True
        assert not any(isinstance(e, (ev.StreamBroken, ev.ProtocolFailed)) for _, e in rec.events)
        assert relay.rss() < 120 * 2**20
    finally:
        share.close()
        relay.close()


async def forged_hello(url: str) -> int | str:
    async with connect(url, compression=None, additional_headers={"Origin": GOOD_ORIGIN}) as ws:
        ready = await ws.recv()
        assert isinstance(ready, bytes)
        viewer_id = int.from_bytes(ready[2:6], "big")
        await ws.send(encode_frame(FrameKind.HELLO, b"\x01" + bytes(48), viewer_id))
        try:
            async for _ in ws:
                pass
        except ConnectionClosed:
            pass
        return ws.close_code or "no code"


async def flood(url: str, count: int) -> str:
    opened, refused = [], 0
    for _ in range(count):
        try:
            ws = await connect(url, compression=None, open_timeout=timeout(5))
            opened.append(ws)
        except (OSError, InvalidHandshake, ConnectionClosed, TimeoutError):
            refused += 1
    # Connections past the cap are closed right away (TCP guard) or with 4429 (websocket limit).
    await asyncio.sleep(0.3)
    closed = sum(1 for ws in opened if ws.close_code is not None)
    for ws in opened:
        await ws.close()
    return "limit enforced" if refused + closed >= count - 40 else f"only {refused + closed} refused"


async def slowloris(port: int, count: int) -> str:
    socks = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /ws/view/AAAAAAAAAAAAAAAA HTTP/1.1\r\nHost: x\r\n")  # never finished
        s.setblocking(False)
        socks.append(s)
    start = time.monotonic()
    loop = asyncio.get_running_loop()
    try:
        for s in socks:
            left = timeout(20) - (time.monotonic() - start)
            try:
                data = await asyncio.wait_for(loop.sock_recv(s, 100), max(left, 0.1))
            except ConnectionResetError:
                data = b""
            if data:
                return "answered instead of closing"
    except TimeoutError:
        return "left open"
    finally:
        for s in socks:
            s.close()
    print(f"\nslowloris connections closed after {time.monotonic() - start:.1f} s")
    return "closed by the relay"
