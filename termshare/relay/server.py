"""Running the relay app on uvicorn: standalone (`termshare serve`) or embedded in `share`."""

from __future__ import annotations

import socket
import ssl

import uvicorn

from ..protocol.wire import MAX_FRAME
from .app import RelayConfig, create_app


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
    sock.set_inheritable(True)
    return sock


def uvicorn_config(config: RelayConfig, certfile: str | None = None, keyfile: str | None = None) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(config),
        log_level="warning",
        ws_max_size=MAX_FRAME,
        ws_ping_interval=20,
        ws_ping_timeout=20,
        lifespan="on",
        ssl_certfile=certfile,
        ssl_keyfile=keyfile,
        ssl_version=ssl.PROTOCOL_TLS_SERVER,
        timeout_keep_alive=5,
        proxy_headers=False,
    )


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
