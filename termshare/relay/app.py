"""The relay's Starlette application: websockets for sharers and viewers, the web app, health.

Each websocket gets an Outbox (its own writer task), so fan-out never waits on a slow viewer; the
Router decides where frames go and never sees a key.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..protocol.router import Close, Limits, Router, Send
from ..protocol.wire import CloseCode
from .outbox import HARD_CAP, SOFT_CAP, Outbox
from .web import WEB_DIR, make_handlers


@dataclass
class RelayConfig:
    limits: Limits = field(default_factory=Limits)
    web_dir: Path = WEB_DIR
    soft_cap: int = SOFT_CAP  # bytes queued per viewer before GROUP frames are skipped
    hard_cap: int = HARD_CAP  # bytes queued per connection before it is closed 4508
    trust_proxy: bool = False  # take the client address from X-Forwarded-For (behind nginx)
    # Browser origins allowed to open websockets; empty = any. The relay holds no credentials
    # (no cookies, no keys), so a foreign page gains nothing by connecting; operators who want
    # their relay used only through their own web app list its origin here.
    allowed_origins: frozenset[str] = frozenset()


class Relay:
    def __init__(self, config: RelayConfig) -> None:
        self.config = config
        self.router = Router(config.limits)
        self.outboxes: dict[int, Outbox] = {}
        self._ids = itertools.count(1)

    def flush(self) -> None:
        for action in self.router.take_actions():
            outbox = self.outboxes.get(action.conn)
            if outbox is None:
                continue
            if isinstance(action, Send):
                outbox.send(action.data, action.droppable)
            else:
                assert isinstance(action, Close)
                outbox.close(action.code, action.reason)

    def client_ip(self, ws: WebSocket) -> str:
        if self.config.trust_proxy:
            forwarded = ws.headers.get("x-forwarded-for", "")
            if forwarded:
                return forwarded.split(",")[-1].strip()
        return ws.client.host if ws.client else "?"

    async def serve(self, ws: WebSocket, is_sharer: bool) -> None:
        origin = ws.headers.get("origin")
        if self.config.allowed_origins and origin is not None and origin not in self.config.allowed_origins:
            await ws.close(CloseCode.REJECTED, "origin not allowed")  # before accept: HTTP 403
            return
        await ws.accept()
        conn = next(self._ids)
        outbox = Outbox(ws, self.config.soft_cap, self.config.hard_cap)
        outbox.task = asyncio.create_task(outbox.run())
        self.outboxes[conn] = outbox
        router = self.router
        router.connected(conn, ws.path_params["sid"], self.client_ip(ws), is_sharer, time.monotonic())
        self.flush()
        try:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                data = message.get("bytes")
                if data is None:
                    outbox.close(CloseCode.BAD_FRAME, "frames are binary websocket messages")
                    break
                router.received(conn, data, time.monotonic())
                self.flush()
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            router.disconnected(conn, time.monotonic())
            self.flush()
            del self.outboxes[conn]
            outbox.close(CloseCode.NORMAL, "")
            with contextlib.suppress(asyncio.TimeoutError, Exception):
                await asyncio.wait_for(outbox.task, 5)

    async def ticker(self) -> None:
        while True:
            await asyncio.sleep(1)
            self.router.tick(time.monotonic())
            self.flush()

    def stats(self) -> dict[str, int]:
        sessions = self.router.sessions.values()
        return {"sessions": len(self.router.sessions), "viewers": sum(len(s.viewers) for s in sessions)}


def create_app(config: RelayConfig | None = None) -> Starlette:
    relay = Relay(config or RelayConfig())

    async def share_ws(ws: WebSocket) -> None:
        await relay.serve(ws, is_sharer=True)

    async def view_ws(ws: WebSocket) -> None:
        await relay.serve(ws, is_sharer=False)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True, **relay.stats()})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(relay.ticker())
        try:
            yield
        finally:
            task.cancel()

    index, session_page, asset, manifest = make_handlers(relay.config.web_dir)
    app = Starlette(
        routes=[
            WebSocketRoute("/ws/share/{sid}", share_ws),
            WebSocketRoute("/ws/view/{sid}", view_ws),
            Route("/healthz", healthz),
            Route("/", index),
            Route("/s/{sid}", session_page),
            Route("/assets/{name:path}", asset),
            Route("/manifest.json", manifest),
        ],
        lifespan=lifespan,
    )
    app.state.relay = relay
    return app
