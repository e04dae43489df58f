"""The relay's Starlette application: websockets for sharers and viewers, the web app, health,
readiness, Prometheus metrics and a metadata-only admin view.

Each websocket gets an Outbox (its own writer task), so fan-out never waits on a slow viewer; the
Router decides where frames go and never sees a key. Access control lives here, not in the Router:
an optional list of sharer tokens (checked in constant time before a sharer's frames reach the
Router) and an optional admin token for /admin/sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import platform
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..protocol.link import is_session_id
from ..protocol.router import Close, Limits, Router, Send
from ..protocol.wire import CloseCode
from .logs import log
from .metrics import CONTENT_TYPE, Metric, render
from .outbox import HARD_CAP, RECEIVE_EXTENSION, SEND_EXTENSION, SOFT_CAP, Outbox, OutboxStats
from .web import WEB_DIR, make_handlers

if TYPE_CHECKING:
    from .cluster import ClusterNode

TOKEN_REASON = "this relay requires a sharer token (Authorization: Bearer TOKEN)"


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
    # Sharer tokens: when any is set, a sharer's websocket must carry `Authorization: Bearer <one of
    # them>`, else it is closed 4401 before its REGISTER is looked at. Viewers need only their link.
    share_tokens: tuple[str, ...] = ()
    admin_token: str | None = None  # enables GET /admin/sessions (Bearer); None = 404
    node: str = field(default_factory=platform.node)  # the `node` label of every metric
    redis_url: str | None = None  # scale out through Redis (relay.cluster); None = in-memory Router only


def bearer_matches(header: str | None, tokens: tuple[str, ...]) -> bool:
    """Compare the Authorization header with every token, each in constant time, all of them always."""
    presented = b""
    if header is not None and header[:7].lower() == "bearer ":
        presented = header[7:].strip().encode("latin-1", "replace")
    ok = False
    for token in tokens:
        ok |= hmac.compare_digest(presented, token.encode())
    return ok and bool(presented)


def code_name(code: int) -> str:
    try:
        return CloseCode(code).name.lower()
    except ValueError:
        return str(code)


class Relay:
    def __init__(self, config: RelayConfig) -> None:
        self.config = config
        self.router = Router(config.limits)
        self.outboxes: dict[int, Outbox] = {}
        self._ids = itertools.count(1)
        self.draining = False  # set when the server is asked to stop: /readyz says 503
        self.outbox_stats = OutboxStats()
        self.connections_total = {"sharer": 0, "viewer": 0}
        self.connections_open = {"sharer": 0, "viewer": 0}
        self.app_closes: dict[int, int] = {}  # refusals decided here rather than in the Router
        self.cluster: ClusterNode | None = None
        if config.redis_url:
            from .cluster import ClusterNode  # only with --redis: the default relay never loads redis

            self.cluster = ClusterNode(config.redis_url, self)

    def new_conn_id(self) -> int:
        return next(self._ids)

    def count_close(self, code: int) -> None:
        """Count a refusal decided outside the Router (it counts its own)."""
        self.app_closes[code] = self.app_closes.get(code, 0) + 1

    def flush(self) -> None:
        cluster = self.cluster
        for action in self.router.take_actions():
            outbox = self.outboxes.get(action.conn)
            if outbox is None:
                if cluster is not None:
                    cluster.act(action)  # a connection proxied here by another node
                continue
            if isinstance(action, Send):
                outbox.send(action.data, action.droppable)
            else:
                assert isinstance(action, Close)
                outbox.close(action.code, action.reason)
        for record in self.router.take_logs():
            log(record.event, **record.fields)
            if cluster is not None and record.event == "session_ended":
                cluster.session_ended(str(record.fields["sid"]))
        if cluster is not None:
            cluster.flush_remote()

    def client_ip(self, ws: WebSocket) -> str:
        if self.config.trust_proxy:
            forwarded = ws.headers.get("x-forwarded-for", "")
            if forwarded:
                return forwarded.split(",")[-1].strip()
        return ws.client.host if ws.client else "?"

    async def serve(self, ws: WebSocket, is_sharer: bool) -> None:
        role = "sharer" if is_sharer else "viewer"
        sid = ws.path_params["sid"]
        logged_sid = sid if is_session_id(sid) else None
        origin = ws.headers.get("origin")
        if self.config.allowed_origins and origin is not None and origin not in self.config.allowed_origins:
            self.count_close(CloseCode.REJECTED)
            log("refused", role=role, sid=logged_sid, ip=self.client_ip(ws), code=int(CloseCode.REJECTED),
                reason="origin not allowed")
            await ws.close(CloseCode.REJECTED, "origin not allowed")  # before accept: HTTP 403
            return
        await ws.accept()
        if is_sharer and self.config.share_tokens and not bearer_matches(
                ws.headers.get("authorization"), self.config.share_tokens):
            given = "wrong" if ws.headers.get("authorization") else "missing"
            self.count_close(CloseCode.TOKEN_REQUIRED)
            log("refused", role=role, sid=logged_sid, ip=self.client_ip(ws), code=int(CloseCode.TOKEN_REQUIRED),
                reason=f"sharer token {given}")
            with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
                await ws.close(CloseCode.TOKEN_REQUIRED, TOKEN_REASON)
            return
        conn = next(self._ids)

        def too_slow() -> None:
            log("closed", role=role, sid=logged_sid, code=int(CloseCode.TOO_SLOW), reason="too slow")

        extensions = ws.scope.get("extensions") or {}  # relay/websocket.py's synchronous send and receive
        outbox = Outbox(ws, self.config.soft_cap, self.config.hard_cap, self.outbox_stats, too_slow,
                        skip_hint=not is_sharer, send_now=extensions.get(SEND_EXTENSION))
        outbox.task = asyncio.create_task(outbox.run())
        self.outboxes[conn] = outbox
        self.connections_total[role] += 1
        self.connections_open[role] += 1
        try:
            if self.cluster is not None:
                await self.cluster.serve(conn, sid, self.client_ip(ws), is_sharer, _frames(ws, outbox))
            else:
                await self.serve_local(conn, sid, self.client_ip(ws), is_sharer, _frames(ws, outbox),
                                       receive_with=extensions.get(RECEIVE_EXTENSION))
        finally:
            await self._release(conn, role, outbox)

    async def serve_local(self, conn: int, sid: str, ip: str, is_sharer: bool, frames: AsyncIterator[bytes],
                          first: bytes | None = None,
                          receive_with: Callable[[Callable[[bytes], None]], None] | None = None) -> None:
        """Feed one websocket to this node's Router (`first`: a frame already read, by cluster
        placement). With `receive_with` (relay/websocket.py) frames are routed in the callback that
        parsed them, and `frames` only brings the end (or a text message, which closes 4400)."""
        router, now, cluster = self.router, time.monotonic, self.cluster
        router.connected(conn, sid, ip, is_sharer, now())
        self.flush()
        serving = True

        def route(data: bytes) -> None:
            if serving:
                router.received(conn, data, now())
                self.flush()

        try:
            if first is not None:
                route(first)
            if receive_with is not None:
                receive_with(route)
            async for data in frames:
                route(data)
                if cluster is not None:
                    await cluster.backpressure()
        finally:
            serving = False
            router.disconnected(conn, now())
            self.flush()

    async def _release(self, conn: int, role: str, outbox: Outbox) -> None:
        self.connections_open[role] -= 1
        del self.outboxes[conn]
        outbox.close(CloseCode.NORMAL, "")
        if outbox.task is not None:
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

    def ready(self) -> tuple[bool, str]:
        if self.draining:
            return False, "shutting down"
        if self.cluster is not None and not self.cluster.connected_to_redis:
            return False, "cannot reach Redis"
        if len(self.router.sessions) >= self.router.limits.max_sessions:
            return False, "at max sessions"
        return True, "accepting sessions"

    def metrics(self) -> str:
        router = self.router
        st = router.stats
        sessions = list(router.sessions.values())
        away = sum(1 for s in sessions if s.sharer is None)
        closes: dict[int, int] = dict(st.closes)
        for code, count in self.app_closes.items():
            closes[code] = closes.get(code, 0) + count
        refusals = Metric("termshare_refusals_total", "counter",
                          "Connections the relay closed with an error close code (docs/PROTOCOL.md 5.5), by code.")
        for code in sorted(closes):
            if code not in (CloseCode.NORMAL, CloseCode.SESSION_ENDED):
                refusals.add(closes[code], code=str(code), reason=code_name(code))
        ended = Metric("termshare_sessions_ended_total", "counter", "Sessions that ended, by cause.")
        for cause in ("ended", "grace_expired", "idle"):
            ended.add(st.sessions_ended.get(cause, 0), cause=cause)
        conns = Metric("termshare_connections", "gauge", "Open websockets, by role.")
        conns_total = Metric("termshare_connections_total", "counter", "Websockets accepted, by role.")
        for role in ("sharer", "viewer"):
            conns.add(self.connections_open[role], role=role)
            conns_total.add(self.connections_total[role], role=role)
        ready, _ = self.ready()
        metrics = [
            Metric("termshare_up", "gauge", "1 while this relay node is up.").add(1),
            Metric("termshare_ready", "gauge", "1 while the relay accepts new sessions (/readyz).").add(int(ready)),
            Metric("termshare_sessions", "gauge", "Sessions registered on this node.").add(len(sessions)),
            Metric("termshare_sessions_sharer_away", "gauge", "Sessions whose sharer is reconnecting.").add(away),
            Metric("termshare_viewers", "gauge", "Viewers connected to a session.").add(sum(len(s.viewers) for s in sessions)),
            conns,
            conns_total,
            Metric("termshare_sessions_registered_total", "counter", "New sessions registered.").add(st.sessions_registered),
            Metric("termshare_sessions_resumed_total", "counter", "Sessions resumed by a reconnecting sharer.").add(st.sessions_resumed),
            ended,
            Metric("termshare_viewers_joined_total", "counter", "Viewers that joined a session.").add(st.viewers_joined),
            Metric("termshare_frames_received_total", "counter", "Frames received from clients and routed, by role.")
            .add(st.frames_from_sharers, role="sharer").add(st.frames_from_viewers, role="viewer"),
            Metric("termshare_bytes_received_total", "counter", "Bytes of frames received and routed, by role.")
            .add(st.bytes_from_sharers, role="sharer").add(st.bytes_from_viewers, role="viewer"),
            Metric("termshare_frames_relayed_total", "counter",
                   "Frames queued for delivery, by direction (a GROUP frame counts once per viewer).")
            .add(st.frames_to_viewers, direction="sharer_to_viewers").add(st.frames_from_viewers, direction="viewers_to_sharer"),
            Metric("termshare_bytes_relayed_total", "counter", "Bytes queued for delivery, by direction.")
            .add(st.bytes_to_viewers, direction="sharer_to_viewers").add(st.bytes_from_viewers, direction="viewers_to_sharer"),
            Metric("termshare_group_frames_dropped_total", "counter",
                   "Output frames (GROUP, GROUP_DIRECT) not sent to viewers that fell behind (they resync).").add(self.outbox_stats.dropped),
            Metric("termshare_upstream_frames_dropped_total", "counter",
                   "Viewers' frames not sent to a sharer whose queue was over its soft cap.")
            .add(self.outbox_stats.upstream_dropped),
            Metric("termshare_viewers_too_slow_total", "counter",
                   "Connections closed 4508 because their queue overflowed.").add(self.outbox_stats.too_slow),
            refusals,
        ]
        if self.cluster is not None:
            c = self.cluster.metrics()
            metrics += [
                Metric("termshare_cluster_redis_connected", "gauge", "1 while this node is subscribed to Redis.")
                .add(c["redis_connected"]),
                Metric("termshare_cluster_connections", "gauge",
                       "Websockets proxied across nodes: 'out' = held here for a session homed elsewhere, "
                       "'in' = held elsewhere for a session homed here.")
                .add(c["proxied"], direction="out").add(c["remote"], direction="in"),
                Metric("termshare_cluster_messages_total", "counter", "Redis pub/sub messages, by direction.")
                .add(c["published"], direction="published").add(c["received"], direction="received"),
                Metric("termshare_cluster_frames_dropped_total", "counter",
                       "Output frames (GROUP, GROUP_DIRECT) skipped for remote viewers because Redis fell behind (they resync).")
                .add(c["dropped"]),
                Metric("termshare_cluster_redis_reconnects_total", "counter", "Times this node lost Redis.")
                .add(c["redis_reconnects"]),
                Metric("termshare_cluster_nodes_lost_total", "counter", "Peer nodes this node saw disappear.")
                .add(c["nodes_lost"]),
                Metric("termshare_cluster_sessions_rehomed_total", "counter",
                       "Sessions this node took over from a lost node.").add(c["sessions_rehomed"]),
            ]
        return render(metrics, self.config.node)

    def sessions_view(self, now: float) -> list[dict[str, object]]:
        """Metadata only: what the relay already sees, never content."""
        return [{
            "id": s.sid,
            "age_seconds": round(now - s.created, 1),
            "idle_seconds": round(now - s.last_activity, 1),
            "viewers": len(s.viewers),
            "sharer": "connected" if s.sharer is not None else "away",
            "frames_from_sharer": s.frames,
            "bytes_from_sharer": s.bytes,
            "frames_from_viewers": s.viewer_frames,
            "bytes_from_viewers": s.viewer_bytes,
        } for s in sorted(self.router.sessions.values(), key=lambda s: s.created)]


async def _frames(ws: WebSocket, outbox: Outbox) -> AsyncIterator[bytes]:
    """The binary messages of a websocket until it closes; a text message closes it 4400."""
    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            if data is None:
                outbox.close(CloseCode.BAD_FRAME, "frames are binary websocket messages")
                return
            yield data
    except (WebSocketDisconnect, RuntimeError):
        return


def create_app(config: RelayConfig | None = None) -> Starlette:
    relay = Relay(config or RelayConfig())

    async def share_ws(ws: WebSocket) -> None:
        await relay.serve(ws, is_sharer=True)

    async def view_ws(ws: WebSocket) -> None:
        await relay.serve(ws, is_sharer=False)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True, **relay.stats()})

    async def readyz(request: Request) -> Response:
        ready, why = relay.ready()
        return JSONResponse({"ready": ready, "why": why, **relay.stats()}, 200 if ready else 503)

    async def metrics(request: Request) -> Response:
        return Response(relay.metrics(), media_type=CONTENT_TYPE)

    async def admin_sessions(request: Request) -> Response:
        token = relay.config.admin_token
        if not token:
            return PlainTextResponse("not found", 404)
        if not bearer_matches(request.headers.get("authorization"), (token,)):
            log("admin_refused", ip=request.client.host if request.client else "?")
            return PlainTextResponse("admin token required", 401, headers={"WWW-Authenticate": 'Bearer realm="termshare"'})
        now = time.monotonic()
        return JSONResponse({"node": relay.config.node, "sessions": relay.sessions_view(now)},
                            headers={"Cache-Control": "no-store"})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(relay.ticker())
        if relay.cluster is not None:
            await relay.cluster.start()
        try:
            yield
        finally:
            relay.draining = True
            task.cancel()
            if relay.cluster is not None:
                await relay.cluster.stop()

    index, session_page, asset, manifest = make_handlers(relay.config.web_dir)
    app = Starlette(
        routes=[
            WebSocketRoute("/ws/share/{sid}", share_ws),
            WebSocketRoute("/ws/view/{sid}", view_ws),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
            Route("/admin/sessions", admin_sessions),
            Route("/", index),
            Route("/s/{sid}", session_page),
            Route("/assets/{name:path}", asset),
            Route("/manifest.json", manifest),
        ],
        lifespan=lifespan,
    )
    app.state.relay = relay
    return app
