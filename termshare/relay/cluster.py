"""Scale-out: several relay nodes acting as one relay through Redis (docs/SCALING.md).

Only used with `termshare serve --redis URL`; without it the relay runs its in-memory Router alone.

Every session lives in the Router of exactly one node, its *home*: the node where the sharer first
registered. A websocket that lands on another node is *proxied*: that node forwards the client's
frames to the home over Redis pub/sub, and carries out the home Router's actions (send, close) for
it. So every rule of the pure Router (limits, idle timeout, handshake budget, resume grace,
counters, logs) holds in cluster mode exactly as on one relay, and Redis only ever carries envelopes
(ciphertext and the cleartext header the relay already reads), ids and node names.

Each node subscribes to one channel, its inbox. Messages on it (first byte = tag):

    to the home of a session, from a proxying node (n = node name of the sender, c = its conn id):
      O n c role sid ip   a client connected       F n c frame   a frame from it      G n c   it left
    to a proxying node, from a home:
      S flags count conn... frame   send the frame to these local connections (one message per node
                                    for a GROUP frame fanned out to many viewers)
      C conn code reason           close that connection

A node publishes through one connection in one ordered queue, and Redis delivers one publisher's
messages to a subscriber in order, so a client's frames reach the home in order and the home's
actions reach each proxy in order. A node is alive while its heartbeat key exists and its inbox has a
subscriber; when either fails, or a publish to it reaches nobody, its peers treat it as lost: they
close the connections they proxied to it with 1013 (clients reconnect, the sharer re-homes the
session with its owner token) and forget the connections it proxied to them, telling it so (G, C) in
case it is alive. A node whose own publish fails does the same for all its peers, then re-announces
itself and its sessions, as after a lost subscription.
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
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Final, cast

from ..protocol.envelope import parse_header
from ..protocol.errors import FrameError
from ..protocol.link import is_session_id
from ..protocol.router import Action, Close, Send
from ..protocol.wire import CloseCode, FrameKind
from .logs import log
from .outbox import SKIPPED_FRAME

if TYPE_CHECKING:
    from .app import Relay

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

NODE_TTL: Final = 6  # seconds a node's heartbeat outlives its last refresh
HOUSEKEEPING: Final = 1.0  # seconds between liveness checks of the nodes this one depends on
RECORD_REFRESH: Final = 10  # housekeeping rounds between refreshes of session records
QUEUE_HIGH: Final = 8 << 20  # bytes waiting for Redis before droppable frames are skipped and readers wait
MOVED: Final = "the relay node holding this session went away: reconnecting"
NO_REGISTRY: Final = "the relay cannot reach its registry, try again"

T_OPEN, T_FRAME, T_GONE, T_SEND, T_CLOSE = b"O", b"F", b"G", b"S", b"C"

# Create the session record if there is none; answer (created, stored owner-token hash, home).
_CLAIM: Final = """
local r = redis.call('HMGET', KEYS[1], 'tok', 'home')
if not r[1] then
  redis.call('HSET', KEYS[1], 'tok', ARGV[1], 'home', ARGV[2], 'created', ARGV[3])
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  return {1, ARGV[1], ARGV[2]}
end
return {0, r[1], r[2]}
"""

# Move a session's home from a lost node to this one, unless someone else already did.
_TAKEOVER: Final = """
if redis.call('HGET', KEYS[1], 'home') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'home', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""

# After a Redis restart: write the record back unless another node has become the home meanwhile.
_REWRITE: Final = """
local h = redis.call('HGET', KEYS[1], 'home')
if h and h ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'tok', ARGV[1], 'home', ARGV[2], 'created', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""

_FORGET: Final = """
if redis.call('HGET', KEYS[1], 'home') == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""


def k_sess(sid: str) -> str:
    return f"ts:sess:{{{sid}}}"  # hash tag: ready for a Redis Cluster slot per session


def k_node(node: str) -> str:
    return f"ts:node:{node}"


def ch_inbox(node: str) -> str:
    return f"ts:inbox:{node}"


def token_hash(token: bytes) -> bytes:
    return hashlib.sha256(token).hexdigest().encode()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _close_message(conn: int, code: int, reason: str) -> bytes:
    """C: close `conn`, a connection of the node this is published to, with `code` and `reason`."""
    return T_CLOSE + struct.pack(">QH", conn, code) + reason.encode()


@dataclass(slots=True)
class ClusterStats:
    published: int = 0
    received: int = 0
    dropped: int = 0  # droppable frames skipped because Redis could not keep up
    redis_reconnects: int = 0
    nodes_lost: int = 0
    sessions_rehomed: int = 0


class _Batch:
    """Consecutive sends of one frame to connections on one node: published as one message."""

    __slots__ = ("data", "droppable", "conns")

    def __init__(self, data: bytes, droppable: bool, conns: list[int]) -> None:
        self.data, self.droppable, self.conns = data, droppable, conns

    def encode(self) -> bytes:
        n = len(self.conns)
        return T_SEND + struct.pack(f">BI{n}Q", self.droppable, n, *self.conns) + self.data


class ClusterNode:
    """One relay node's part of the distributed relay: placement, proxying and the Redis link."""

    def __init__(self, url: str, relay: Relay) -> None:
        self.relay = relay
        self.limits = relay.router.limits
        self.node = f"{relay.config.node[:120]}-{os.getpid()}-{os.urandom(3).hex()}"
        self._me = self.node.encode()
        self.redis: aioredis.Redis = aioredis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
        self.record_ttl = int(self.limits.resume_grace) + 10  # a lost home's sessions wait this long for their sharer
        self.stats = ClusterStats()
        self.connected_to_redis = False
        # Local websockets whose session lives on another node: conn -> home, and home -> conns.
        self.proxied: dict[int, str] = {}
        self._by_home: dict[str, set[int]] = {}
        # Connections other nodes proxy to this one: (node, their conn) <-> our Router's conn id.
        self._virtual: dict[tuple[str, int], int] = {}
        self.remote: dict[int, tuple[str, int]] = {}
        self._by_node: dict[str, set[int]] = {}
        # Remote connections sent a SKIPPED since the last frame published to them.
        self._skipping: set[tuple[str, int]] = set()
        self._pending: dict[str, list[_Batch | bytes]] = {}  # per node, this flush's outgoing messages
        self._queue: asyncio.Queue[tuple[str, str, bytes]] = asyncio.Queue()  # (node, channel, message)
        self._queued = 0  # bytes in _queue
        self._drained = asyncio.Event()
        self._drained.set()
        self._tasks: list[asyncio.Task[None]] = []
        self._claim = self.redis.register_script(_CLAIM)
        self._takeover = self.redis.register_script(_TAKEOVER)
        self._rewrite = self.redis.register_script(_REWRITE)
        self._forget = self.redis.register_script(_FORGET)

    # -- lifecycle ------------------------------------------------------------------------------------
    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._publisher()), asyncio.create_task(self._listener()),
                       asyncio.create_task(self._housekeeping())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await self.redis.delete(k_node(self.node))
        with contextlib.suppress(Exception):
            await self.redis.aclose()

    # -- placing a websocket ----------------------------------------------------------------------------
    async def serve(self, conn: int, sid: str, ip: str, is_sharer: bool, frames: AsyncIterator[bytes]) -> None:
        first = None
        if is_sharer:  # a sharer is placed by its REGISTER: the owner token decides where it may go
            first = await anext(frames, None)
            if first is None:
                return
        home = await self._place(conn, sid, is_sharer, first)
        if home == self.node:
            await self.relay.serve_local(conn, sid, ip, is_sharer, frames, first)
        elif home is not None:
            await self._proxy(conn, home, sid, ip, is_sharer, frames, first)

    async def _place(self, conn: int, sid: str, is_sharer: bool, first: bytes | None) -> str | None:
        """The node whose Router takes this connection, or None once it has been closed here."""
        if not is_session_id(sid):
            return self.node  # the Router refuses it, with its reason and its log line
        if not self.connected_to_redis:
            self._refuse(conn, CloseCode.TRY_AGAIN, NO_REGISTRY, sid)
            return None
        try:
            if first is None:
                # cast: redis-py < 8 types hget as sync-or-async
                home = await cast("Awaitable[bytes | None]", self.redis.hget(k_sess(sid), "home"))
                return self.node if home is None else _text(home)
            return await self._place_sharer(conn, sid, first)
        except (RedisError, OSError):
            self._refuse(conn, CloseCode.TRY_AGAIN, NO_REGISTRY, sid)
            return None

    async def _place_sharer(self, conn: int, sid: str, first: bytes) -> str | None:
        try:
            kind = parse_header(first).kind
        except FrameError:
            kind = None
        if kind is not FrameKind.REGISTER:
            return self.node  # the Router refuses it
        tok = token_hash(first[-32:])
        for _ in range(3):
            created, stored, home = await self._claim(keys=[k_sess(sid)],
                                                      args=[tok, self.node, str(time.time()), self.record_ttl])
            if not hmac.compare_digest(bytes(stored), tok):
                self._refuse(conn, CloseCode.SESSION_TAKEN, "this session id belongs to another sharer", sid)
                return None
            home = _text(home)
            if created or home == self.node or await self._alive(home):
                return home
            if await self._takeover(keys=[k_sess(sid)], args=[home, self.node, self.record_ttl]):
                self.stats.sessions_rehomed += 1
                log("session_rehomed", sid=sid, node=self.node, lost=home)
                return self.node
        self._refuse(conn, CloseCode.TRY_AGAIN, "the session is moving between relay nodes, try again", sid)
        return None

    async def _alive(self, node: str) -> bool:
        pipe = self.redis.pipeline(transaction=False)
        pipe.pubsub_numsub(ch_inbox(node))
        pipe.exists(k_node(node))
        numsub, beating = await pipe.execute()
        return bool(numsub[0][1]) and bool(beating)

    def _refuse(self, conn: int, code: int, reason: str, sid: str) -> None:
        outbox = self.relay.outboxes.get(conn)
        if outbox is not None:
            outbox.close(code, reason)
        self.relay.count_close(code)
        log("refused", sid=sid, code=int(code), reason=reason, node=self.node)

    async def _proxy(self, conn: int, home: str, sid: str, ip: str, is_sharer: bool,
                     frames: AsyncIterator[bytes], first: bytes | None) -> None:
        self.proxied[conn] = home
        self._by_home.setdefault(home, set()).add(conn)
        head = self._head(conn)
        self._publish(home, T_OPEN + head + struct.pack(">B", is_sharer) + sid.encode() + b"\0" + ip.encode())
        try:
            if first is not None:
                self._publish(home, T_FRAME + head + first)
            async for data in frames:
                if conn not in self.proxied:
                    return  # the home was lost; the connection is being closed 1013
                self._publish(home, T_FRAME + head + data)
                if not self._drained.is_set():
                    await self._drained.wait()
        finally:
            if self.proxied.pop(conn, None) is not None:
                self._by_home[home].discard(conn)
                if not self._by_home[home]:
                    del self._by_home[home]
                self._publish(home, T_GONE + head)

    def _head(self, conn: int) -> bytes:
        return struct.pack(">B", len(self._me)) + self._me + struct.pack(">Q", conn)

    async def backpressure(self) -> None:
        """Wait while Redis is behind (called by local sharers' read loops: the sharer slows down)."""
        if not self._drained.is_set():
            await self._drained.wait()

    # -- the home side: actions of our Router for connections proxied here ----------------------------
    def act(self, action: Action) -> None:
        """Queue one Router action for a connection on another node (flush_remote publishes them)."""
        target = self.remote.get(action.conn)
        if target is None:
            return
        node, conn = target
        pending = self._pending.setdefault(node, [])
        if isinstance(action, Send):
            last = pending[-1] if pending else None
            if isinstance(last, _Batch) and last.data is action.data and last.droppable == action.droppable:
                last.conns.append(conn)
            else:
                pending.append(_Batch(action.data, action.droppable, [conn]))
        else:
            assert isinstance(action, Close)
            pending.append(_close_message(conn, action.code, action.reason))

    def flush_remote(self) -> None:
        for node, messages in self._pending.items():
            for message in messages:
                if isinstance(message, _Batch):
                    if message.droppable and self._queued >= QUEUE_HIGH:
                        self.stats.dropped += len(message.conns)  # those viewers see the gap and resync
                        # As Outbox does for a local viewer: one SKIPPED where each hole begins, so a
                        # viewer resyncs even if no later frame comes to show the gap.
                        fresh = [conn for conn in message.conns if (node, conn) not in self._skipping]
                        if fresh:
                            self._skipping.update((node, conn) for conn in fresh)
                            self._publish(node, _Batch(SKIPPED_FRAME, False, fresh).encode())
                        continue
                    if self._skipping:  # any frame delivered (a snapshot, say) closes the hole: mark the next one again
                        self._skipping.difference_update((node, conn) for conn in message.conns)
                    message = message.encode()
                self._publish(node, message)
        self._pending.clear()

    # -- Redis: out -----------------------------------------------------------------------------------
    def _publish(self, node: str, message: bytes) -> None:
        self._queue.put_nowait((node, ch_inbox(node), message))
        self._queued += len(message)
        if self._queued >= QUEUE_HIGH:
            self._drained.clear()

    async def _publisher(self) -> None:
        """Drain the queue in pipelined batches over one connection, so that publish order holds."""
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < 1024:
                batch.append(self._queue.get_nowait())
            size = sum(len(m) for _, _, m in batch)
            try:
                pipe = self.redis.pipeline(transaction=False)
                for _, channel, message in batch:
                    pipe.publish(channel, message)
                receivers = await pipe.execute()
                self.stats.published += len(batch)
            except (RedisError, OSError) as exc:
                self._redis_lost(exc)
                receivers = [1] * len(batch)
            finally:
                self._queued -= size
                if self._queued < QUEUE_HIGH // 2:
                    self._drained.set()
            for (node, _, _), count in zip(batch, receivers, strict=True):
                if not count:
                    self._node_lost(node, "its inbox has no subscriber")

    # -- Redis: in ------------------------------------------------------------------------------------
    async def _listener(self) -> None:
        delay = 0.1
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(ch_inbox(self.node))
                while True:
                    if not self.connected_to_redis:  # also when a failed publish cleared it and this subscription held
                        await self._announce()
                        delay = 0.1
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self.stats.received += 1
                        try:
                            self._dispatch(message["data"])
                        except (struct.error, IndexError, UnicodeDecodeError, KeyError) as exc:
                            # Only relay nodes publish here; a malformed message is a bug or another
                            # version: skip it rather than stop routing for every session.
                            log("cluster_message_refused", node=self.node, error=type(exc).__name__)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self._redis_lost(exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                # typed through a variable: redis < 8 leaves aclose() unannotated, later ones do not
                close: Callable[[], Awaitable[object]] = pubsub.aclose
                with contextlib.suppress(Exception):
                    await close()

    def _dispatch(self, data: bytes) -> None:
        tag = data[:1]
        if tag == T_SEND:
            droppable, n = struct.unpack_from(">BI", data, 1)
            conns = struct.unpack_from(f">{n}Q", data, 6)
            frame = data[6 + 8 * n:]
            outboxes = self.relay.outboxes
            for conn in conns:
                outbox = outboxes.get(conn)
                if outbox is not None and conn in self.proxied:
                    outbox.send(frame, bool(droppable))
            return
        if tag == T_CLOSE:
            conn, code = struct.unpack_from(">QH", data, 1)
            outbox = self.relay.outboxes.get(conn)
            if outbox is not None and conn in self.proxied:
                outbox.close(code, data[11:].decode(errors="replace"))
            return
        size = data[1]
        node = data[2:2 + size].decode()
        (conn,) = struct.unpack_from(">Q", data, 2 + size)
        body = data[10 + size:]
        router, now = self.relay.router, time.monotonic()
        key = (node, conn)
        if tag == T_OPEN:
            vconn = self.relay.new_conn_id()
            self._virtual[key] = vconn
            self.remote[vconn] = key
            self._by_node.setdefault(node, set()).add(vconn)
            sid, _, ip = body[1:].partition(b"\0")
            router.connected(vconn, sid.decode(errors="replace"), ip.decode(errors="replace"), bool(body[0]), now)
        elif tag == T_FRAME:
            vconn = self._virtual.get(key, 0)
            if vconn:
                router.received(vconn, body, now)
        elif tag == T_GONE:
            vconn = self._virtual.pop(key, 0)
            if vconn:
                self._forget_remote(vconn)
        self.relay.flush()

    def _forget_remote(self, vconn: int) -> None:
        node, conn = self.remote.pop(vconn)
        self._skipping.discard((node, conn))
        self._by_node[node].discard(vconn)
        if not self._by_node[node]:
            del self._by_node[node]
        self.relay.router.disconnected(vconn, time.monotonic())

    # -- failures ---------------------------------------------------------------------------------------
    def _node_lost(self, node: str, why: str) -> None:
        """Close what we proxied to `node` (clients reconnect) and forget what it proxied to us."""
        proxied = self._by_home.pop(node, set())
        virtual = self._by_node.pop(node, set())
        if not proxied and not virtual:
            return
        self.stats.nodes_lost += 1
        log("node_lost", node=self.node, lost=node, why=why, proxied=len(proxied), remote=len(virtual))
        # Tell `node` too (best effort): when only this node saw a loss (one failed publish), `node`
        # would otherwise keep a ghost viewer, or a client on it would wait for frames that never come.
        for conn in proxied:
            del self.proxied[conn]
            outbox = self.relay.outboxes.get(conn)
            if outbox is not None:
                outbox.close(CloseCode.TRY_AGAIN, MOVED)
            self._publish(node, T_GONE + self._head(conn))
        for vconn in virtual:
            node_conn = self.remote.pop(vconn)
            self._virtual.pop(node_conn, None)
            self._skipping.discard(node_conn)
            self.relay.router.disconnected(vconn, time.monotonic())
            self._publish(node, _close_message(node_conn[1], CloseCode.TRY_AGAIN, MOVED))
        self.relay.flush()

    def _redis_lost(self, exc: BaseException) -> None:
        """Messages may have been lost either way: no proxied connection can trust its stream now."""
        if self.connected_to_redis:
            log("redis_lost", node=self.node, error=type(exc).__name__)
            self.stats.redis_reconnects += 1
        self.connected_to_redis = False
        for node in {*self._by_home, *self._by_node}:
            self._node_lost(node, "this node lost Redis")

    async def _announce(self) -> None:
        if self.stats.redis_reconnects:
            # Pooled connections left idle through an outage are stale, and redis-py retries single
            # commands on one but not pipelines: the publisher would lose a batch and drop every link again.
            await self.redis.connection_pool.disconnect(inuse_connections=False)
        await self._write_registry()
        if self.stats.redis_reconnects:
            log("redis_connected", node=self.node, sessions=len(self.relay.router.sessions))
        self.connected_to_redis = True

    async def _write_registry(self) -> None:
        """(Re)announce this node and its sessions; forget sessions another node has taken meanwhile."""
        await self.redis.set(k_node(self.node), b"1", ex=NODE_TTL)
        router = self.relay.router
        for sid, session in list(router.sessions.items()):
            kept = await self._rewrite(keys=[k_sess(sid)], args=[token_hash(session.owner_token), self.node,
                                                                 str(time.time()), self.record_ttl])
            if not kept:
                router.evict(sid, "the session moved to another relay node: reconnecting")
        self.relay.flush()

    def session_ended(self, sid: str) -> None:
        asyncio.get_running_loop().create_task(self._drop_record(sid))

    async def _drop_record(self, sid: str) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self._forget(keys=[k_sess(sid)], args=[self.node])

    async def _housekeeping(self) -> None:
        rounds = 0
        while True:
            await asyncio.sleep(HOUSEKEEPING)
            rounds += 1
            if not self.connected_to_redis:
                continue
            try:
                await self._check_peers()
                if rounds % 2 == 0:
                    await self.redis.set(k_node(self.node), b"1", ex=NODE_TTL)
                if rounds % RECORD_REFRESH == 0:
                    pipe = self.redis.pipeline(transaction=False)
                    for sid in self.relay.router.sessions:
                        pipe.expire(k_sess(sid), self.record_ttl)
                    await pipe.execute()
            except (RedisError, OSError):
                continue  # the listener notices a lost Redis and handles it

    async def _check_peers(self) -> None:
        peers = sorted({*self._by_home, *self._by_node})
        if not peers:
            return
        pipe = self.redis.pipeline(transaction=False)
        for node in peers:
            pipe.pubsub_numsub(ch_inbox(node))
            pipe.exists(k_node(node))
        answers = await pipe.execute()
        for i, node in enumerate(peers):
            numsub, beating = answers[2 * i], answers[2 * i + 1]
            if not numsub[0][1] or not beating:
                self._node_lost(node, "no heartbeat" if not beating else "its inbox has no subscriber")

    def metrics(self) -> dict[str, Any]:
        return {
            "redis_connected": int(self.connected_to_redis),
            "proxied": len(self.proxied),
            "remote": len(self.remote),
            **asdict(self.stats),
        }
