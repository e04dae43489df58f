"""Scale-out: several relay nodes acting as one relay through Redis (docs/SCALING.md).

Only used with `termshare serve --redis URL`; without it the relay runs the in-memory Router alone.
The node that holds a session's sharer owns the session record in Redis; frames the sharer sends
are published (in order, through one publisher connection per node) on `ts:down:{sid}`, and every
node with viewers of that session subscribes to it and fans out to its local viewers. Viewers'
HELLO/UPSTREAM frames and VIEWER_LEFT notices go up on `ts:up:{sid}` to the owner node. Redis sees
envelopes and ids only, never a key or plaintext, exactly like the Router.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import struct
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Final

from ..protocol.envelope import encode_frame, parse_header
from ..protocol.errors import FrameError
from ..protocol.link import is_session_id
from ..protocol.router import Limits
from ..protocol.wire import CloseCode, FrameKind
from .logs import log
from .outbox import Outbox

# redis-py probes for `cryptography` at import (only for OCSP stapling, which the relay never uses).
# The relay must never load crypto (tests/test_layers.py): hide it during that probe.
_hidden = "cryptography" not in sys.modules
if _hidden:
    sys.modules["cryptography"] = None  # type: ignore[assignment]
try:
    import redis.asyncio as aioredis  # noqa: E402
    from redis.exceptions import RedisError  # noqa: E402
finally:
    if _hidden:
        del sys.modules["cryptography"]

KEY_TTL: Final = 30  # seconds: what a dead node's records outlive it by
REFRESH: Final = 10.0  # seconds between TTL refreshes by the owning node
PUBLISH_QUEUE_MAX: Final = 100_000  # messages waiting for Redis before the node drops new ones

# Message tags on the channels (one byte, then the body).
T_FRAME: Final = b"F"  # a raw envelope
T_AWAY: Final = b"A"  # the sharer's connection dropped
T_BACK: Final = b"B"  # the sharer is back
T_END: Final = b"E"  # the session ended; body: reason (utf-8)
T_TAKEOVER: Final = b"T"  # a sharer registered on node <body>: other nodes drop their sharer connection
T_LEFT: Final = b"L"  # up channel: viewer u32 left

_CLAIM = """
local t = redis.call('HGET', KEYS[1], 'tok')
if not t then
  redis.call('HSET', KEYS[1], 'tok', ARGV[1], 'node', ARGV[2], 'created', ARGV[3], 'present', '1')
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  return {1, ARGV[1]}
end
return {0, t}
"""

_JOIN = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, 0} end
if redis.call('HLEN', KEYS[2]) >= tonumber(ARGV[2]) then return {-2, 0} end
local vid = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[2], vid, ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('EXPIRE', KEYS[3], ARGV[3])
local p = redis.call('HGET', KEYS[1], 'present')
if p == '1' then return {vid, 1} end
return {vid, 0}
"""

_AT_LEAST = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if cur < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""


def k_sess(sid: str) -> str:
    return f"ts:sess:{{{sid}}}"  # hash tag: a session's keys share one Redis Cluster slot


def k_nextvid(sid: str) -> str:
    return f"ts:sess:{{{sid}}}:nextvid"


def k_viewers(sid: str) -> str:
    return f"ts:sess:{{{sid}}}:viewers"


def ch_down(sid: str) -> str:
    return f"ts:down:{{{sid}}}"


def ch_up(sid: str) -> str:
    return f"ts:up:{{{sid}}}"


def k_node(node: str) -> str:
    return f"ts:node:{node}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def token_hash(token: bytes) -> bytes:
    return hashlib.sha256(token).hexdigest().encode()


@dataclass(slots=True)
class _Conn:
    sid: str
    ip: str
    is_sharer: bool
    viewer_id: int = 0
    registered: bool = False
    admitted: bool = False
    joined: float = 0.0


@dataclass(slots=True)
class _Owned:
    """A session whose sharer is (or was last) connected to this node."""

    sid: str
    tok: bytes  # SHA-256 of the owner token (hex)
    created: float  # wall clock, for the record
    sharer: int | None
    away_since: float | None = None
    max_vid: int = 0


@dataclass(slots=True)
class ClusterStats:
    published: int = 0
    publish_dropped: int = 0
    received: int = 0
    redis_reconnects: int = 0


@dataclass(slots=True)
class _Local:
    viewers: dict[int, int] = field(default_factory=dict)  # viewer id -> conn, for one session on this node


class ClusterNode:
    """One relay node's share of the distributed relay: local connections + Redis."""

    def __init__(self, url: str, limits: Limits, outboxes: dict[int, Outbox], node: str) -> None:
        self.url = url
        self.limits = limits
        self.outboxes = outboxes
        self.node = f"{node}-{os.getpid()}-{os.urandom(3).hex()}"
        self.redis: aioredis.Redis = aioredis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
        self.conns: dict[int, _Conn] = {}
        self.per_ip: dict[str, int] = {}
        self.owned: dict[str, _Owned] = {}
        self.local: dict[str, _Local] = {}  # sid -> viewers on this node
        self.channels: set[str] = set()
        self.stats = ClusterStats()
        self.connected_to_redis = False
        self._queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self._pubsub: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._claim = self.redis.register_script(_CLAIM)
        self._join = self.redis.register_script(_JOIN)
        self._at_least = self.redis.register_script(_AT_LEAST)

    # -- lifecycle ----------------------------------------------------------------------------------
    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._publisher()), asyncio.create_task(self._listener()),
                       asyncio.create_task(self._refresher())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        with contextlib.suppress(Exception):
            await self.redis.aclose()

    # -- outgoing -----------------------------------------------------------------------------------
    def publish(self, channel: str, message: bytes) -> None:
        if self._queue.qsize() >= PUBLISH_QUEUE_MAX:
            self.stats.publish_dropped += 1
            return
        self._queue.put_nowait((channel, message))

    async def _publisher(self) -> None:
        """Drain the queue in batches through one pipeline: one connection, so publish order holds."""
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < 1024:
                batch.append(self._queue.get_nowait())
            try:
                pipe = self.redis.pipeline(transaction=False)
                for channel, message in batch:
                    pipe.publish(channel, message)
                await pipe.execute()
                self.stats.published += len(batch)
            except (RedisError, OSError):
                self.stats.publish_dropped += len(batch)  # lost frames: viewers resync from the gap

    def _send(self, conn: int, data: bytes, droppable: bool = False) -> None:
        outbox = self.outboxes.get(conn)
        if outbox is not None:
            outbox.send(data, droppable)

    def _close(self, conn: int, code: int, reason: str) -> None:
        outbox = self.outboxes.get(conn)
        if outbox is not None:
            outbox.close(code, reason)

    # -- subscriptions ------------------------------------------------------------------------------
    async def _want(self, channel: str) -> None:
        if channel in self.channels:
            return
        self.channels.add(channel)
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.subscribe(channel)

    async def _unwant(self, channel: str) -> None:
        if channel not in self.channels:
            return
        self.channels.discard(channel)
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.unsubscribe(channel)

    async def _tidy(self, sid: str) -> None:
        """Drop the subscriptions this node no longer needs for `sid`."""
        local = self.local.get(sid)
        if local is not None and not local.viewers:
            del self.local[sid]
            local = None
        if local is None and sid not in self.owned:
            await self._unwant(ch_down(sid))
        if sid not in self.owned:
            await self._unwant(ch_up(sid))

    async def _listener(self) -> None:
        delay = 0.1
        while True:
            try:
                pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
                self._pubsub = pubsub
                await pubsub.subscribe(f"ts:nodech:{self.node}", *self.channels)
                await self._resync()
                if self.stats.redis_reconnects or delay > 0.1:
                    log("redis_connected", node=self.node, sessions=len(self.owned))
                self.connected_to_redis = True
                delay = 0.1
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None or message.get("type") != "message":
                        continue
                    self.stats.received += 1
                    self._dispatch(message["channel"].decode(), message["data"])
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                if self.connected_to_redis:
                    log("redis_lost", node=self.node, error=type(exc).__name__)
                self.connected_to_redis = False
                self.stats.redis_reconnects += 1
                pub, self._pubsub = self._pubsub, None
                if pub is not None:
                    with contextlib.suppress(Exception):
                        await pub.aclose()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _resync(self) -> None:
        """Write this node's part of the registry (after a start or a Redis restart)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(k_node(self.node), b"1", ex=KEY_TTL)
        for s in self.owned.values():
            pipe.hset(k_sess(s.sid), mapping={"tok": s.tok, "node": self.node, "created": str(s.created),
                                              "present": "1" if s.sharer is not None else "0"})
            pipe.expire(k_sess(s.sid), KEY_TTL)
        await pipe.execute()
        for sid, local in self.local.items():
            if local.viewers:
                await self.redis.hset(k_viewers(sid), mapping={str(v): self.node for v in local.viewers})
                await self.redis.expire(k_viewers(sid), KEY_TTL)
                await self._at_least(keys=[k_nextvid(sid)], args=[max(local.viewers), KEY_TTL])
        for s in self.owned.values():
            if s.max_vid:
                await self._at_least(keys=[k_nextvid(s.sid)], args=[s.max_vid, KEY_TTL])

    async def _refresher(self) -> None:
        while True:
            await asyncio.sleep(REFRESH)
            with contextlib.suppress(RedisError, OSError):
                await self._refresh()

    async def _refresh(self) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(k_node(self.node), b"1", ex=KEY_TTL)
        for sid in self.owned:
            pipe.expire(k_sess(sid), KEY_TTL)
            pipe.expire(k_nextvid(sid), KEY_TTL)
            pipe.expire(k_viewers(sid), KEY_TTL)
        for sid in self.local:
            pipe.expire(k_viewers(sid), KEY_TTL)
        await pipe.execute()
        # Viewers held by a node that died: forget them and tell the sharer.
        for sid, s in list(self.owned.items()):
            viewers = await self.redis.hgetall(k_viewers(sid))
            nodes = {_text(n) for n in viewers.values()}
            alive = {n: bool(await self.redis.exists(k_node(n))) for n in nodes}
            for vid, n in viewers.items():
                if not alive[_text(n)]:
                    await self.redis.hdel(k_viewers(sid), vid)
                    if s.sharer is not None:
                        self._send(s.sharer, encode_frame(FrameKind.VIEWER_LEFT, viewer_id=int(vid)))
        # Sessions whose record vanished (the owner node died and nobody took over in time).
        for sid in list(self.local):
            if sid not in self.owned and not await self.redis.exists(k_sess(sid)):
                self._end_local(sid, "the sharer did not come back")
                await self._tidy(sid)

    # -- incoming from Redis ------------------------------------------------------------------------
    def _dispatch(self, channel: str, data: bytes) -> None:
        tag, body = data[:1], data[1:]
        if channel.startswith("ts:down:"):
            sid = channel[len("ts:down:{"):-1]
            local = self.local.get(sid)
            if tag == T_TAKEOVER:
                owned = self.owned.get(sid)
                if owned is not None and body.decode() != self.node:
                    del self.owned[sid]
                    if owned.sharer is not None:
                        self._close(owned.sharer, CloseCode.SESSION_TAKEN, "replaced by a newer connection of the sharer")
                    asyncio.get_running_loop().create_task(self._tidy(sid))
                return
            if local is None:
                return
            if tag == T_FRAME:
                self._down_frame(local, body)
            elif tag == T_AWAY:
                for vconn in local.viewers.values():
                    self._send(vconn, encode_frame(FrameKind.SHARER_AWAY))
            elif tag == T_BACK:
                for vconn in local.viewers.values():
                    self._send(vconn, encode_frame(FrameKind.SHARER_BACK))
            elif tag == T_END:
                self._end_local(sid, body.decode(errors="replace"))
                asyncio.get_running_loop().create_task(self._tidy(sid))
        elif channel.startswith("ts:up:"):
            sid = channel[len("ts:up:{"):-1]
            owned = self.owned.get(sid)
            if owned is None:
                return
            if tag == T_FRAME:
                with contextlib.suppress(FrameError):
                    owned.max_vid = max(owned.max_vid, parse_header(body).viewer_id)
                if owned.sharer is not None:
                    self._send(owned.sharer, body)
            elif tag == T_LEFT and owned.sharer is not None:
                (vid,) = struct.unpack(">I", body)
                self._send(owned.sharer, encode_frame(FrameKind.VIEWER_LEFT, viewer_id=vid))

    def _down_frame(self, local: _Local, frame: bytes) -> None:
        try:
            header = parse_header(frame)
        except FrameError:
            return
        kind = header.kind
        if kind is FrameKind.GROUP:
            for vconn in local.viewers.values():
                state = self.conns.get(vconn)
                if state is not None and state.admitted:
                    self._send(vconn, frame, droppable=True)
            return
        vconn = local.viewers.get(header.viewer_id)  # type: ignore[assignment]
        if vconn is None:
            return
        self._send(vconn, frame)
        if kind is FrameKind.WELCOME:
            state = self.conns.get(vconn)
            if state is not None:
                state.admitted = True
        elif kind is FrameKind.REJECT:
            self._close(vconn, CloseCode.REJECTED, "rejected by the sharer")

    def _end_local(self, sid: str, reason: str) -> None:
        local = self.local.get(sid)
        if local is None:
            return
        for vconn in local.viewers.values():
            self._close(vconn, CloseCode.SESSION_ENDED, reason)
        local.viewers.clear()

    # -- websockets -----------------------------------------------------------------------------------
    async def connected(self, conn: int, sid: str, ip: str, is_sharer: bool, now: float) -> None:
        role = "sharer" if is_sharer else "viewer"
        if not is_session_id(sid):
            return self._refuse(conn, CloseCode.BAD_FRAME, "malformed session id", role, None, ip)
        if self.per_ip.get(ip, 0) >= self.limits.max_per_ip:
            return self._refuse(conn, CloseCode.LIMIT, "too many connections from this address", role, sid, ip)
        state = _Conn(sid, ip, is_sharer, joined=now)
        if not is_sharer:
            try:
                await self._want(ch_down(sid))  # before READY, so that no WELCOME can be missed
                vid, present = await self._join(keys=[k_sess(sid), k_viewers(sid), k_nextvid(sid)],
                                                args=[self.node, self.limits.max_viewers, KEY_TTL])
            except (RedisError, OSError):
                await self._tidy(sid)
                return self._refuse(conn, CloseCode.LIMIT, "the relay cannot reach its registry, try again", role,
                                    sid, ip)
            if vid == -1:
                await self._tidy(sid)
                return self._refuse(conn, CloseCode.UNKNOWN_SESSION, "no such session (ended, or a mistyped link)",
                                    role, sid, ip)
            if vid == -2:
                await self._tidy(sid)
                return self._refuse(conn, CloseCode.LIMIT, "this session has as many viewers as the relay allows",
                                    role, sid, ip)
            state.viewer_id = int(vid)
            self.local.setdefault(sid, _Local()).viewers[state.viewer_id] = conn
            self._send(conn, encode_frame(FrameKind.READY, b"\x01" if present else b"\x00", state.viewer_id))
            log("viewer_joined", sid=sid, viewer=state.viewer_id, node=self.node)
        self.conns[conn] = state
        self.per_ip[ip] = self.per_ip.get(ip, 0) + 1

    async def disconnected(self, conn: int, now: float) -> None:
        state = self.conns.pop(conn, None)
        if state is None:
            return
        self.per_ip[state.ip] -= 1
        if not self.per_ip[state.ip]:
            del self.per_ip[state.ip]
        sid = state.sid
        if state.is_sharer:
            owned = self.owned.get(sid)
            if owned is not None and owned.sharer == conn:
                owned.sharer = None
                owned.away_since = now
                log("sharer_away", sid=sid, node=self.node)
                self.publish(ch_down(sid), T_AWAY)
                with contextlib.suppress(RedisError, OSError):
                    await self.redis.hset(k_sess(sid), "present", "0")
            return
        local = self.local.get(sid)
        if local is not None and local.viewers.get(state.viewer_id) == conn:
            del local.viewers[state.viewer_id]
            log("viewer_left", sid=sid, viewer=state.viewer_id, node=self.node)
            self.publish(ch_up(sid), T_LEFT + struct.pack(">I", state.viewer_id))
            with contextlib.suppress(RedisError, OSError):
                await self.redis.hdel(k_viewers(sid), str(state.viewer_id))
            await self._tidy(sid)

    async def received(self, conn: int, data: bytes, now: float) -> None:
        state = self.conns.get(conn)
        if state is None:
            return
        try:
            header = parse_header(data)
        except FrameError as exc:
            code = CloseCode.TOO_LARGE if "MAX_FRAME" in str(exc) else CloseCode.BAD_FRAME
            return self._drop(conn, state, code, str(exc))
        kind = header.kind
        sid = state.sid
        if state.is_sharer:
            if not state.registered:
                if kind is not FrameKind.REGISTER:
                    return self._drop(conn, state, CloseCode.BAD_FRAME, "a sharer must REGISTER first")
                return await self._register(conn, state, data[-32:], now)
            owned = self.owned.get(sid)
            if owned is None or owned.sharer != conn:
                return
            if kind is FrameKind.GROUP and header.viewer_id != 0:
                return self._drop(conn, state, CloseCode.BAD_FRAME, "GROUP frames carry viewer id 0")
            if kind in (FrameKind.GROUP, FrameKind.DIRECT, FrameKind.WELCOME, FrameKind.REJECT):
                self.publish(ch_down(sid), T_FRAME + data)
            elif kind is FrameKind.END:
                await self._end(owned, "the sharer ended the session", CloseCode.NORMAL)
            else:
                self._drop(conn, state, CloseCode.BAD_FRAME, f"a sharer may not send {kind.name}")
            return
        if kind is not FrameKind.HELLO and kind is not FrameKind.UPSTREAM:
            return self._drop(conn, state, CloseCode.BAD_FRAME, f"a viewer may not send {kind.name}")
        if header.viewer_id != state.viewer_id:
            return self._drop(conn, state, CloseCode.BAD_FRAME, "frame carries another viewer's id")
        if kind is FrameKind.UPSTREAM and not state.admitted:
            return self._drop(conn, state, CloseCode.BAD_FRAME, "UPSTREAM before the handshake finished")
        self.publish(ch_up(sid), T_FRAME + data)

    async def _register(self, conn: int, state: _Conn, token: bytes, now: float) -> None:
        sid = state.sid
        tok = token_hash(token)
        owned = self.owned.get(sid)
        if owned is None and len(self.owned) >= self.limits.max_sessions:
            return self._drop(conn, state, CloseCode.LIMIT, "the relay is full: too many sessions")
        await self._want(ch_up(sid))
        await self._want(ch_down(sid))  # to hear of a takeover by another node
        try:
            created, stored = await self._claim(keys=[k_sess(sid)], args=[tok, self.node, str(time.time()), KEY_TTL])
            if not hmac.compare_digest(bytes(stored), tok):
                await self._tidy(sid)
                return self._drop(conn, state, CloseCode.SESSION_TAKEN, "this session id belongs to another sharer")
            if not created:
                await self.redis.hset(k_sess(sid), mapping={"node": self.node, "present": "1"})
                await self.redis.expire(k_sess(sid), KEY_TTL)
            ids = sorted(int(v) for v in await self.redis.hkeys(k_viewers(sid)))
        except (RedisError, OSError):
            await self._tidy(sid)
            return self._drop(conn, state, CloseCode.LIMIT, "the relay cannot reach its registry, try again")
        if owned is None:
            owned = self.owned[sid] = _Owned(sid, tok, time.time(), conn)
        elif owned.sharer is not None and owned.sharer != conn:
            self._close(owned.sharer, CloseCode.SESSION_TAKEN, "replaced by a newer connection of the sharer")
        owned.sharer = conn
        owned.away_since = None
        owned.max_vid = max([owned.max_vid, *ids])
        state.registered = True
        self.publish(ch_down(sid), T_TAKEOVER + self.node.encode())
        if created:
            log("session_registered", sid=sid, node=self.node)
        else:
            log("session_resumed", sid=sid, node=self.node, viewers=len(ids))
            self.publish(ch_down(sid), T_BACK)
        self._send(conn, encode_frame(FrameKind.READY, struct.pack(f">I{len(ids)}I", len(ids), *ids)))

    async def _end(self, owned: _Owned, reason: str, sharer_code: int) -> None:
        sid = owned.sid
        self.owned.pop(sid, None)
        self.publish(ch_down(sid), T_END + reason.encode())
        if owned.sharer is not None:
            self._close(owned.sharer, sharer_code, reason)
        with contextlib.suppress(RedisError, OSError):
            await self.redis.delete(k_sess(sid), k_viewers(sid), k_nextvid(sid))
        log("session_ended", sid=sid, node=self.node, reason=reason)
        await self._tidy(sid)

    async def tick(self, now: float) -> None:
        for owned in list(self.owned.values()):
            if owned.away_since is not None and now - owned.away_since >= self.limits.resume_grace:
                await self._end(owned, "the sharer did not come back", CloseCode.NORMAL)
        for conn, state in list(self.conns.items()):
            if not state.is_sharer and not state.admitted and state.joined and \
                    now - state.joined >= self.limits.handshake_timeout:
                state.joined = 0.0
                self._close(conn, CloseCode.TIMEOUT, "the sharer did not answer the handshake")

    def _refuse(self, conn: int, code: int, reason: str, role: str, sid: str | None, ip: str) -> None:
        self._close(conn, code, reason)
        log("refused", role=role, sid=sid, ip=ip, code=int(code), reason=reason, node=self.node)

    def _drop(self, conn: int, state: _Conn, code: int, reason: str) -> None:
        self._close(conn, code, reason)
        log("closed", role="sharer" if state.is_sharer else "viewer", sid=state.sid, viewer=state.viewer_id or None,
            code=int(code), reason=reason, node=self.node)

    def counts(self) -> dict[str, int]:
        return {"sessions": len(self.owned), "viewers": sum(len(v.viewers) for v in self.local.values())}
