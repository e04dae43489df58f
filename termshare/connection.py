"""The websocket to the relay, for `share` and `join` (RFC 6455, client side).

Theory of operation
-------------------
`RelayConnection.open()` connects (through an HTTP proxy when the environment names one, as
browsers and websockets do), wraps TLS for https relays, sends the upgrade request and checks the
answer (RFC 6455 §4). From then on it is an asyncio Protocol, client side, binary messages only,
no extensions:

- `data_received` parses frames as they arrive, answers pings, and hands each binary message to
  the driver's `on_message` callback in the same loop iteration: no queue, no task switch;
- `send()` masks a message and gives it to the transport at once, from whatever callback made it,
  so a keystroke's echo leaves in the iteration that read it from the PTY;
- the transport's flow control (WRITE_LIMIT) sets `writable`; `on_writable` is called when it
  drains, so the caller (termshare.sender.Sender) knows when to resume from its own bounded queue;
- a connection that is sending on its own (a sharer's output, a viewer's keys: something sent more
  than REPLY_WINDOW after the relay last spoke) and has heard nothing from the relay for
  PING_INTERVAL sends a ping, and no pong within PING_TIMEOUT fails it (1011), so a relay that
  vanished without a FIN is noticed while the session is in use within PING_INTERVAL + PING_TIMEOUT
  (15 s; up to 27 s when the sending began just after a check), and the driver reconnects. Anything
  received counts as a sign of life, and the relay itself pings every 20 s, so any other connection
  waits IDLE_PING_INTERVAL, longer than that (a dead relay is noticed within ~32 s): while the relay
  is there an idle client never pings, and each idle connection costs the relay one ping exchange
  per 20 s instead of two.

Why not websockets' asyncio client (the relay still speaks websockets, via uvicorn): importing it
costs about 60 ms and 4 MB (importlib.metadata, urllib.request, email, uuid), most of the
start-up and memory budget of `share`, and each send is a coroutine behind a lock.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import ssl
import struct
from collections.abc import Callable
from typing import Final
from urllib.parse import unquote, urlsplit

from .net import proxy_for
from .protocol.errors import TermshareError
from .protocol.wire import MAX_FRAME

OPEN_TIMEOUT: Final = 10.0  # seconds to connect, set up TLS and upgrade
CLOSE_TIMEOUT: Final = 2.0  # seconds for the relay to end the connection after a close frame
PING_INTERVAL: Final = 10.0  # seconds without hearing from the relay, while sending, before a keepalive ping
IDLE_PING_INTERVAL: Final = 25.0  # the same for a connection that sent nothing: more than the relay's 20
REPLY_WINDOW: Final = 1.0  # seconds after hearing from the relay within which what we send is a reply
PING_TIMEOUT: Final = 5.0  # seconds for the pong before the relay counts as gone
WRITE_LIMIT: Final = 256 * 1024  # bytes buffered by the transport before `writable` turns False
MAX_HEAD: Final = 16 * 1024  # bytes of an HTTP response head
SMALL: Final = 16 * 1024  # bytes: below this a frame's header and payload are joined into one write
USER_AGENT: Final = "termshare"
_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3
_OP_CONT, _OP_TEXT, _OP_BINARY, _OP_CLOSE, _OP_PING, _OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_U16, _U64 = struct.Struct("!H"), struct.Struct("!Q")


class WebSocketError(TermshareError):
    """The relay could not be reached through a websocket: refused upgrade, bad answer, proxy."""


def _mask_small(data: bytes, mask: bytes) -> bytes:
    n = len(data)
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "little")
    return (int.from_bytes(data, "little") ^ key).to_bytes(n, "little")


def _load_apply_mask() -> Callable[[bytes, bytes], bytes]:
    """websockets' C masking helper (~100x faster than Python ints), loaded from its file: a plain
    `import websockets.speedups` first runs the websockets package's __init__, which costs ~25 ms
    and 1 MB (importlib.metadata) that `share` has no other use for."""
    import importlib.machinery
    import importlib.util

    spec = importlib.util.find_spec("websockets")  # finds the package without importing it
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = os.path.join(folder, "speedups" + suffix)
            found = importlib.util.spec_from_file_location("websockets.speedups", path) if os.path.isfile(path) else None
            if found is not None and found.loader is not None:
                with contextlib.suppress(ImportError):
                    module = importlib.util.module_from_spec(found)
                    found.loader.exec_module(module)
                    return module.apply_mask  # type: ignore[no-any-return]
    with contextlib.suppress(ImportError):
        from websockets.speedups import apply_mask

        return apply_mask
    return _mask_small  # pragma: no cover - websockets built without its C extension


_apply_mask: Callable[[bytes, bytes], bytes] | None = None


def _mask(data: bytes, mask: bytes) -> bytes:
    """RFC 6455 §5.3."""
    global _apply_mask
    if len(data) < 512:
        return _mask_small(data, mask)
    if _apply_mask is None:
        _apply_mask = _load_apply_mask()
    return _apply_mask(data, mask)


def frame_header(opcode: int, length: int, mask_bit: int = 0x80) -> bytes:
    """A final frame's header up to the masking key (RFC 6455 §5.2); the relay's frames are unmasked."""
    if length < 126:
        return bytes((0x80 | opcode, mask_bit | length))
    if length < 65536:
        return bytes((0x80 | opcode, mask_bit | 126)) + _U16.pack(length)
    return bytes((0x80 | opcode, mask_bit | 127)) + _U64.pack(length)


class RelayConnection(asyncio.Protocol):
    """One websocket to the relay. `close_code` is None while open, then the relay's close code
    (1005 if it gave none, 1006 if the connection ended without a close frame)."""

    def __init__(self, on_message: Callable[[bytes], None], max_size: int = MAX_FRAME) -> None:
        self.on_message = on_message
        self.on_writable: Callable[[], None] | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self._max_size = max_size
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._open = False  # upgraded, and no close frame sent: messages may be sent
        self._receiving = False  # upgraded, and no close frame received: frames are parsed
        self._head: asyncio.Future[bytes] | None = None
        self._fragments: list[bytes] = []
        self._fragmented_text = False
        self._paused = False
        self._error: BaseException | None = None
        self._closed: asyncio.Future[None] = self._loop.create_future()
        self._ping: bytes | None = None
        self._heard_at = 0.0  # loop time when something last arrived
        self._sent_at = 0.0  # loop time of the last message sent
        self._timer: asyncio.TimerHandle | None = None
        self._abort_timer: asyncio.TimerHandle | None = None

    # -- opening ----------------------------------------------------------------------------------
    @classmethod
    async def open(cls, url: str, on_message: Callable[[bytes], None], *, ssl_context: ssl.SSLContext | None = None,
                   headers: dict[str, str] | None = None, max_size: int = MAX_FRAME,
                   open_timeout: float = OPEN_TIMEOUT) -> RelayConnection:
        """Connect and upgrade; raises OSError, TimeoutError or WebSocketError."""
        conn = cls(on_message, max_size)
        try:
            async with asyncio.timeout(open_timeout):
                await conn._open_connection(url, ssl_context, headers or {})
        except BaseException:
            conn.abort()
            raise
        return conn

    async def _open_connection(self, url: str, context: ssl.SSLContext | None, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        secure = parts.scheme == "wss"
        host = parts.hostname or ""
        port = parts.port or (443 if secure else 80)
        if secure and context is None:
            context = ssl.create_default_context()
        authority = f"[{host}]" if ":" in host else host
        if parts.port is not None and parts.port != (443 if secure else 80):
            authority += f":{port}"
        proxy = proxy_for(host, port, secure)
        if proxy is None:
            await self._loop.create_connection(lambda: self, host, port, ssl=context,
                                               server_hostname=host if context else None)
        else:
            await self._tunnel(proxy, host, port, authority)
            if context is not None:
                assert self._transport is not None
                tls = await self._loop.start_tls(self._transport, self, context, server_hostname=host)
                if tls is None:  # pragma: no cover - the loop closed the transport
                    raise WebSocketError("TLS through the proxy failed")
                self._transport = tls
                tls.set_write_buffer_limits(high=WRITE_LIMIT)
        key = base64.b64encode(os.urandom(16))
        request = [f"GET {parts.path or '/'}{'?' + parts.query if parts.query else ''} HTTP/1.1",
                   f"Host: {authority}", "Upgrade: websocket", "Connection: Upgrade",
                   f"Sec-WebSocket-Key: {key.decode()}", "Sec-WebSocket-Version: 13", f"User-Agent: {USER_AGENT}"]
        request += [f"{name}: {value}" for name, value in headers.items()]
        status, fields = await self._exchange(request)
        if status != 101:
            raise WebSocketError(f"server rejected WebSocket connection: HTTP {status}")
        accept = base64.b64encode(hashlib.sha1(key + _GUID).digest()).decode()
        if (fields.get("upgrade", "").lower() != "websocket"
                or "upgrade" not in [t.strip().lower() for t in fields.get("connection", "").split(",")]
                or fields.get("sec-websocket-accept") != accept):
            raise WebSocketError("the relay's websocket upgrade is invalid")
        if "sec-websocket-extensions" in fields or "sec-websocket-protocol" in fields:
            raise WebSocketError("the relay chose a websocket extension or subprotocol it was not offered")
        self._open = self._receiving = True
        self._keepalive_in(PING_INTERVAL)
        if self._buf:  # frames that came with the upgrade: after the caller has set up, not during open()
            self._loop.call_soon(self._parse)

    async def _tunnel(self, proxy: str, host: str, port: int, authority: str) -> None:
        """HTTP CONNECT through `proxy` (http:// or https://), as websockets' client does."""
        p = urlsplit(proxy)
        if p.scheme not in ("http", "https") or not p.hostname:
            raise WebSocketError(f"unsupported proxy {p.scheme}://{p.hostname or ''} (only HTTP proxies; set NO_PROXY to bypass)")
        proxy_tls = ssl.create_default_context() if p.scheme == "https" else None
        await self._loop.create_connection(lambda: self, p.hostname, p.port or (443 if proxy_tls else 80), ssl=proxy_tls,
                                           server_hostname=p.hostname if proxy_tls else None)
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        request = [f"CONNECT {target} HTTP/1.1", f"Host: {authority}", f"User-Agent: {USER_AGENT}"]
        if p.username is not None:
            credentials = f"{unquote(p.username)}:{unquote(p.password or '')}".encode()
            request.append(f"Proxy-Authorization: Basic {base64.b64encode(credentials).decode()}")
        status, _ = await self._exchange(request)
        if not 200 <= status < 300:
            raise WebSocketError(f"proxy rejected connection: HTTP {status}")

    async def _exchange(self, request: list[str]) -> tuple[int, dict[str, str]]:
        """Send an HTTP request head, return the response's status and (lower-cased) fields."""
        assert self._transport is not None
        self._head = self._loop.create_future()
        self._transport.write(("\r\n".join(request) + "\r\n\r\n").encode())
        if self._buf:
            self._take_head()
        head = await self._head
        status_line, *lines = head.decode("latin-1").split("\r\n")
        words = status_line.split(" ", 2)
        if len(words) < 2 or not words[0].startswith("HTTP/1.") or not words[1].isdigit():
            raise WebSocketError(f"the relay's answer is not HTTP: {status_line[:60]!r}")
        fields: dict[str, str] = {}
        for line in lines:
            name, sep, value = line.partition(":")
            if sep:
                name = name.strip().lower()
                fields[name] = f"{fields[name]}, {value.strip()}" if name in fields else value.strip()
        return int(words[1]), fields

    def _take_head(self) -> None:
        end = self._buf.find(b"\r\n\r\n")
        assert self._head is not None
        if end >= 0:
            head = bytes(self._buf[:end])
            del self._buf[: end + 4]
            self._head.set_result(head)
        elif len(self._buf) > MAX_HEAD:
            self._head.set_exception(WebSocketError("the relay's HTTP answer is too long"))

    # -- asyncio.Protocol ---------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._transport.set_write_buffer_limits(high=WRITE_LIMIT)  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        self._heard_at = self._loop.time()
        self._buf += data
        if self._receiving:
            self._parse()
        elif self._head is not None and not self._head.done():
            self._take_head()

    def eof_received(self) -> bool | None:
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._open = self._receiving = False
        if self.close_code is None:
            self.close_code = 1006
        for timer in (self._timer, self._abort_timer):
            if timer is not None:
                timer.cancel()
        if self._head is not None and not self._head.done():
            self._head.set_exception(exc or ConnectionResetError("the relay closed the connection"))
        if not self._closed.done():
            self._closed.set_result(None)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self.on_writable is not None:
            self.on_writable()

    # -- driver interface ---------------------------------------------------------------------------
    @property
    def transport(self) -> asyncio.Transport | None:
        return self._transport

    @property
    def writable(self) -> bool:
        """Open, and the transport's buffer is under WRITE_LIMIT."""
        return self._open and not self._paused

    def send(self, message: bytes) -> None:
        """Send one binary message now (dropped once the connection is closing)."""
        if self._open:
            self._write_frame(_OP_BINARY, message)
            self._sent_at = self._loop.time()

    async def wait_closed(self) -> None:
        """Until the connection has ended; re-raises an error that `on_message` raised."""
        await asyncio.shield(self._closed)
        if self._error is not None:
            raise self._error

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close handshake (RFC 6455 §7): the relay has CLOSE_TIMEOUT to answer and hang up."""
        self._start_close(code, reason)
        try:
            await asyncio.wait_for(asyncio.shield(self._closed), CLOSE_TIMEOUT)
        except TimeoutError:
            self.abort()

    def close_soon(self, code: int = 1000) -> None:
        """Start the close handshake without waiting for it (from a callback)."""
        self._start_close(code, "")

    def abort(self) -> None:
        self._open = self._receiving = False
        if self._transport is not None:
            self._transport.abort()

    # -- frames -------------------------------------------------------------------------------------
    def _write_frame(self, opcode: int, payload: bytes) -> None:
        assert self._transport is not None
        mask = os.urandom(4)
        head = frame_header(opcode, len(payload)) + mask
        if len(payload) < SMALL:
            self._transport.write(head + _mask(payload, mask))
        else:  # two writes rather than one more copy of a large payload
            self._transport.write(head)
            self._transport.write(_mask(payload, mask))

    def _start_close(self, code: int, reason: str) -> None:
        if self._open:
            self._open = False
            self._write_frame(_OP_CLOSE, _U16.pack(code) + reason.encode()[:120])
        if self._transport is not None and self._abort_timer is None and not self._closed.done():
            self._abort_timer = self._loop.call_later(CLOSE_TIMEOUT, self.abort)

    def _fail(self, code: int, reason: str) -> None:
        self._receiving = False
        self._buf.clear()
        self._start_close(code, reason)

    def _parse(self) -> None:
        buf = self._buf
        pos, end = 0, len(buf)
        while end - pos >= 2 and self._receiving:
            b0, b1 = buf[pos], buf[pos + 1]
            length, start = b1 & 0x7F, pos + 2
            if length == 126:
                if end - start < 2:
                    break
                length, start = _U16.unpack_from(buf, start)[0], start + 2
            elif length == 127:
                if end - start < 8:
                    break
                length, start = _U64.unpack_from(buf, start)[0], start + 8
            opcode, fin = b0 & 0x0F, b0 & 0x80
            if b1 & 0x80 or b0 & 0x70:
                return self._fail(1002, "masked frame or reserved bits from the server")
            if opcode >= 8 and (length > 125 or not fin):
                return self._fail(1002, "bad control frame")
            if length + sum(map(len, self._fragments)) > self._max_size:
                return self._fail(1009, "message too big")
            if end - start < length:
                break
            payload = bytes(memoryview(buf)[start : start + length])  # one copy, not two
            pos = start + length
            self._frame(opcode, bool(fin), payload)
        del buf[:pos]

    def _frame(self, opcode: int, fin: bool, payload: bytes) -> None:
        if opcode in (_OP_TEXT, _OP_BINARY):
            if self._fragments:
                return self._fail(1002, "new message inside a fragmented one")
            if not fin:
                self._fragments, self._fragmented_text = [payload], opcode == _OP_TEXT
            elif opcode == _OP_BINARY and self._open:
                self._deliver(payload)
        elif opcode == _OP_CONT:
            if not self._fragments:
                return self._fail(1002, "continuation without a message")
            self._fragments.append(payload)
            if fin:
                message, self._fragments = b"".join(self._fragments), []
                if not self._fragmented_text and self._open:
                    self._deliver(message)
        elif opcode == _OP_CLOSE:
            if len(payload) == 1:
                return self._fail(1002, "bad close frame")
            self._receiving = False
            self.close_code = _U16.unpack_from(payload)[0] if payload else 1005
            self.close_reason = payload[2:].decode("utf-8", "replace")
            self._start_close(self.close_code if payload else 1000, "")  # echoed, unless we closed first
        elif opcode == _OP_PING:
            if self._open:
                self._write_frame(_OP_PONG, payload)
        elif opcode == _OP_PONG:
            if self._ping is not None and payload == self._ping:
                self._ping = None
                self._keepalive_in(PING_INTERVAL)
        else:
            self._fail(1002, "unknown opcode")

    def _deliver(self, message: bytes) -> None:
        try:
            self.on_message(message)
        except Exception as exc:  # noqa: BLE001 - surfaces from wait_closed(), like an error in a read loop
            self._error = exc
            self._fail(1011, "")

    # -- keepalive ------------------------------------------------------------------------------------
    def _keepalive_in(self, delay: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_later(delay, self._keepalive)

    def _keepalive(self) -> None:
        if not self._open:
            return
        if self._ping is not None:  # PING_TIMEOUT passed without its pong
            return self._fail(1011, "keepalive ping timeout")
        quiet = self._loop.time() - self._heard_at
        # Sending on our own since the relay last spoke (output, keys; not the replies that go out
        # as soon as something arrives): a dead relay would leave a session in use hanging.
        active = self._sent_at - self._heard_at > REPLY_WINDOW
        if quiet < (PING_INTERVAL if active else IDLE_PING_INTERVAL):  # the relay is alive: look again
            # when an active connection would ping, or at most PING_INTERVAL later (it may turn active)
            return self._keepalive_in(PING_INTERVAL - quiet if quiet < PING_INTERVAL
                                      else min(IDLE_PING_INTERVAL - quiet, PING_INTERVAL))
        self._ping = os.urandom(4)
        self._write_frame(_OP_PING, self._ping)
        self._keepalive_in(PING_TIMEOUT)

