"""uvicorn's sans-I/O websocket protocol, with a shorter path for the relay's binary messages.

Why: the relay forwards every frame of every session, so its per-message cost bounds its capacity
(docs/SCALING.md). uvicorn's protocol pauses reading after each message until the app has taken
it (two epoll updates and an extra loop iteration per frame), and frames what it sends through
websockets' serializer, which copies each payload, once per viewer for a multicast. Here:

- reading pauses only when more than RECEIVE_BUFFER bytes of messages wait for the app, so memory
  per connection stays bounded without touching epoll on every frame;
- binary messages are framed here: the header is joined to a small payload, and a large payload is
  handed to the transport as it is;
- the app gets a synchronous send, the ASGI extension "termshare.send" (in scope["extensions"]):
  `send(data) -> bool` writes a binary message now, or returns False when the transport is paused
  or the connection is closing, so the relay's Outbox (relay/outbox.py) sends in the callback that
  routed the frame and wakes its task only to wait for a paused transport;
- and a synchronous receive, "termshare.receive": `receive(on_message)` hands every binary message
  to `on_message` in the callback that parsed it (the ones already queued first), so a frame is
  routed and forwarded in one loop iteration. Text messages and the disconnect still come through
  ASGI's receive(); after a text message, binary ones queue behind it again, in order.

Handshake, close handshake, pings, text messages and size limits stay uvicorn's own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from ..connection import frame_header
from .outbox import RECEIVE_EXTENSION, SEND_EXTENSION

RECEIVE_BUFFER: Final = 256 * 1024  # bytes of received messages the app has not taken yet, before reading pauses
SMALL: Final = 16 * 1024  # bytes: below this, header and payload go to the transport as one write
_BINARY: Final = 0x2


class RelayWebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.unread = 0  # bytes of binary messages queued for the app
        self.on_message: Callable[[bytes], None] | None = None

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)  # absent when the upgrade was refused
        if scope is not None:
            scope["extensions"][SEND_EXTENSION] = self.send_now
            scope["extensions"][RECEIVE_EXTENSION] = self.receive_with

    # -- receiving ------------------------------------------------------------------------------------
    def receive_with(self, on_message: Callable[[bytes], None]) -> None:
        held = []
        while not self.queue.empty():
            held.append(self.queue.get_nowait())
        blocked = False  # what follows a text message or the end stays queued behind it
        for message in held:
            data = message.get("bytes")
            if not blocked and message["type"] == "websocket.receive" and isinstance(data, bytes):
                self.unread -= len(data)
                on_message(data)
            else:
                blocked = True
                self.queue.put_nowait(message)
        self.on_message = None if blocked else on_message
        if self.read_paused and not self.unread:
            self.read_paused = False
            self.transport.resume_reading()

    def send_receive_event_to_app(self) -> None:
        if self.curr_msg_data_type != "bytes" or self.close_sent or len(self.frames) != 1:
            self.on_message = None  # text, fragments, closing: uvicorn's way, and binary queues behind it
            super().send_receive_event_to_app()
            return
        data = self.frames[0]
        self.frames = []
        if self.on_message is not None:
            self.on_message(data)
            return
        self.queue.put_nowait({"type": "websocket.receive", "bytes": data})
        self.unread += len(data)
        if self.unread > RECEIVE_BUFFER and not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    async def receive(self) -> Any:
        message = await super().receive()  # resumes reading once the queue is empty
        data = message.get("bytes")
        if isinstance(data, bytes | bytearray):
            self.unread -= len(data)
        return message

    # -- sending --------------------------------------------------------------------------------------
    def _open_for_data(self) -> bool:
        return (self.handshake_complete and not self.close_sent and not self.disconnected
                and self.initial_response is None)

    def send_now(self, data: bytes) -> bool:
        if not self._open_for_data() or not self.writable.is_set():
            return False
        self._write_binary(data)
        return True

    async def send(self, message: Any) -> None:
        data = message.get("bytes") if message["type"] == "websocket.send" else None
        if data is not None and self._open_for_data():
            await self.writable.wait()
            if self._open_for_data():
                self._write_binary(data)
                return
        await super().send(message)

    def _write_binary(self, data: bytes) -> None:
        head = frame_header(_BINARY, len(data), mask_bit=0)
        if len(data) < SMALL:
            self.transport.write(head + data)
        else:  # two writes rather than a copy of the payload
            self.transport.write(head)
            self.transport.write(data)
