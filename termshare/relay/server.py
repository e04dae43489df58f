"""Running the relay app on uvicorn: standalone (`termshare serve`) or embedded in `share`."""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any, Final

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from ..protocol.wire import MAX_FRAME
from .app import RelayConfig, create_app
from .websocket import RelayWebSocketProtocol


def bind(host: str, port: int) -> socket.socket:
    """Bind the listening socket ourselves, so that port 0 works and errors are clear."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(1024)
    return sock  # not inheritable: the shell that `share` forks must not hold the relay's socket


HEADER_TIMEOUT: Final = 10.0  # seconds for a new connection to send its request (slowloris guard)


def guarded_protocol(max_per_ip: int | None) -> type[H11Protocol]:
    """uvicorn's HTTP protocol with two guards it lacks: a deadline for the request headers
    (a slowloris connection that never finishes them is closed), and a cap on open TCP
    connections per client address before any HTTP is parsed (None behind a proxy, where every
    connection comes from the proxy and nginx's own limits apply)."""
    per_ip: dict[str, int] = {}

    class GuardedH11Protocol(H11Protocol):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._ip: str | None = self.client[0] if self.client else "?"
            count = per_ip[self._ip] = per_ip.get(self._ip, 0) + 1
            if max_per_ip is not None and count > max_per_ip:
                transport.close()
                return
            self._deadline: asyncio.TimerHandle | None = self.loop.call_later(HEADER_TIMEOUT, self._too_slow)

        def _too_slow(self) -> None:
            # `cycle` is set once a request's headers are complete; an upgrade swaps the protocol.
            if self.cycle is None and self.transport.get_protocol() is self and not self.transport.is_closing():
                self.transport.close()

        def handle_websocket_upgrade(self, event: Any) -> None:
            # The websocket protocol takes the transport over and this object never hears of it
            # again: stop counting here (the Router counts websockets per address itself).
            self._release()
            super().handle_websocket_upgrade(event)

        def _release(self) -> None:
            deadline = getattr(self, "_deadline", None)
            if deadline is not None:
                deadline.cancel()
            if self._ip is not None:
                per_ip[self._ip] -= 1
                if not per_ip[self._ip]:
                    del per_ip[self._ip]
                self._ip = None

        def connection_lost(self, exc: Exception | None) -> None:
            self._release()
            super().connection_lost(exc)

    return GuardedH11Protocol


def uvicorn_config(config: RelayConfig, certfile: str | None = None, keyfile: str | None = None,
                   own_logging: bool = False) -> uvicorn.Config:
    """`own_logging`: leave logging alone (the caller set it up, see relay.logs.setup) instead of
    letting uvicorn install its default handlers."""
    extra: dict[str, Any] = {"log_config": None} if own_logging else {}
    return uvicorn.Config(
        create_app(config),
        http=guarded_protocol(None if config.trust_proxy else config.limits.max_per_ip),
        ws=RelayWebSocketProtocol,
        log_level="warning",
        ws_max_size=MAX_FRAME,
        ws_per_message_deflate=False,  # ciphertext does not compress; each deflate connection holds zlib state
        ws_ping_interval=20,
        ws_ping_timeout=20,
        lifespan="on",
        ssl_certfile=certfile,
        ssl_keyfile=keyfile,
        ssl_version=ssl.PROTOCOL_TLS_SERVER,
        timeout_keep_alive=5,
        proxy_headers=False,
        **extra,
    )


class RelayServer(uvicorn.Server):
    """uvicorn's server that marks the relay as draining (/readyz answers 503) as soon as it is
    asked to stop, so a load balancer stops sending new sessions while connections wind down."""

    def handle_exit(self, sig: int, frame: Any) -> None:
        relay = getattr(getattr(self.config.app, "state", None), "relay", None)
        if relay is not None:
            relay.draining = True
        super().handle_exit(sig, frame)


class EmbeddedRelay:
    """A relay inside the current event loop, without uvicorn's signal handling."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, config: RelayConfig | None = None) -> None:
        self.sock = bind(host, port)
        self.host, self.port = self.sock.getsockname()[:2]
        self._config = uvicorn_config(config or RelayConfig())
        self._server = uvicorn.Server(self._config)

    async def start(self) -> None:
        self._config.load()
        self._server.lifespan = self._config.lifespan_class(self._config)
        await self._server.startup(sockets=[self.sock])

    async def stop(self) -> None:
        await self._server.shutdown(sockets=[self.sock])
