"""Several `termshare serve --redis` nodes with a real redis-server act as one relay (issue 7)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections.abc import Awaitable, Callable

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from termshare.protocol import events as ev
from termshare.protocol.envelope import encode_frame
from termshare.protocol.viewer import ViewerProtocol
from termshare.protocol.wire import FrameKind

from ..procs import HeadlessShare, Relay, timeout
from ..reliability.client import Recorder
from .conftest import Cluster
from .harness import Balancer, RedisServer, healthz, ready

TICKER = "sh -c '{pre}i=0; while [ $i -lt {n} ]; do echo tick-$i; i=$((i+1)); sleep {pause}; done; echo DONE-MARK'"


def at(link: str, port: int) -> str:
    """The same link, pointed at another node."""
    return re.sub(r"^(https?://[^/:]+):\d+", rf"\g<1>:{port}", link, count=1)


def ticks(rec: Recorder) -> list[int]:
    seen = [int(t) for _, e in rec.events if isinstance(e, ev.Output) for t in re.findall(rb"tick-(\d+)", e.data)]
    assert seen == sorted(set(seen)), f"output shown twice or out of order: {seen}"
    return seen


def ended(rec: Recorder) -> bool:
    return any(isinstance(e, ev.Ended) for _, e in rec.events)


async def wait_for(predicate, seconds: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout(seconds)
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


class Typist(Recorder):
    """A read-write viewer that types `text` once it is welcomed."""

    text: bytes = b""
    typed: bool = False

    async def _read(self, ws: ClientConnection, viewer: ViewerProtocol) -> None:
        try:
            async for message in ws:
                assert isinstance(message, bytes)
                viewer.receive_frame(message)
                now = time.monotonic()
                self.events.extend((now, e) for e in viewer.events_received())
                if not self.typed and any(isinstance(e, ev.Welcomed) for _, e in self.events):
                    viewer.send_input(self.text)
                    self.typed = True
                for frame in viewer.frames_to_send():
                    await ws.send(frame)
                if viewer.close_code is not None:
                    break
        except ConnectionClosed:
            pass


def test_three_nodes_one_session(cluster: Cluster) -> None:
    nodes = [cluster() for _ in range(3)]
    a, b, c = nodes
    share = HeadlessShare("--host", "127.0.0.1", "--port", str(a.port), "--cmd",
                          TICKER.format(pre="read x; echo got-$x; ", n=40, pause=0.05))
    try:
        ro = Recorder(at(share.links["read_only"], b.port))
        rw = Typist(at(share.links["read_write"], c.port))
        rw.text = b"hello-cluster\r"

        async def scenario() -> None:
            t1 = asyncio.create_task(ro.run())
            await wait_for(lambda: any(isinstance(e, ev.Welcomed) for _, e in ro.events), 15)
            t2 = asyncio.create_task(rw.run())
            await asyncio.wait_for(asyncio.gather(t1, t2), timeout(40))

        asyncio.run(scenario())
        for rec in (ro, rw):
            assert b"got-hello-cluster" in rec.output(), rec.output()[-500:]
            assert ticks(rec) == list(range(40))
            assert b"DONE-MARK" in rec.output()
            assert ended(rec)
        assert share.proc.wait(timeout(10)) == 0
    finally:
        share.close()


def test_node_killed_session_continues(cluster: Cluster) -> None:
    nodes = [cluster() for _ in range(3)]
    lb = Balancer([n.port for n in nodes])
    share = HeadlessShare("--host", "127.0.0.1", "--port", str(lb.port), "--cmd",
                          TICKER.format(pre="", n=120, pause=0.1))
    recs = [Recorder(share.links["read_only"]) for _ in range(3)]
    try:
        async def scenario() -> float:
            tasks = [asyncio.create_task(r.run(reconnect_for=timeout(40))) for r in recs]
            await wait_for(lambda: all(len(ticks(r)) >= 5 for r in recs), 15)
            owner = next(n for n in nodes if healthz(n.port)["sessions"] == 1)
            owner.proc.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            owner.close()
            mark = [len(ticks(r)) for r in recs]
            await wait_for(lambda: all(len(ticks(r)) > m + 3 for r, m in zip(recs, mark, strict=True)), 20)
            back = time.monotonic() - killed
            await asyncio.wait_for(asyncio.gather(*tasks), timeout(40))
            return back

        back = asyncio.run(scenario())
        print(f"\nnode killed: every viewer had output again within {back:.2f} s")
        for r in recs:
            seen = ticks(r)
            assert seen[-1] == 119
            assert b"DONE-MARK" in r.output()
            assert ended(r)
        assert share.proc.wait(timeout(10)) == 0
    finally:
        share.close()
        lb.close()


def ticks_through_outage(a: Relay, b: Relay, outage: Callable[[], Awaitable[None]],
                         recovered: Callable[[], bool] = lambda: True) -> float:
    """A 100-tick share on node a, watched from node b, through `outage`: the viewer gets every
    tick and the end once output flows again and `recovered()` holds. Returns the seconds from
    the end of the outage to output flowing again."""
    share = HeadlessShare("--host", "127.0.0.1", "--port", str(a.port), "--cmd",
                          TICKER.format(pre="", n=100, pause=0.1))
    rec = Recorder(at(share.links["read_only"], b.port))
    try:
        async def scenario() -> float:
            task = asyncio.create_task(rec.run(reconnect_for=timeout(30)))
            await wait_for(lambda: len(ticks(rec)) >= 5, 15)
            await outage()
            over = time.monotonic()
            mark = len(ticks(rec))
            await wait_for(lambda: len(ticks(rec)) > mark + 3, 15)
            back = time.monotonic() - over
            await wait_for(recovered, 10)
            await asyncio.wait_for(task, timeout(30))
            return back

        back = asyncio.run(scenario())
        assert ticks(rec)[-1] == 99
        assert ended(rec)
        assert share.proc.wait(timeout(10)) == 0
        return back
    finally:
        share.close()


def test_redis_restart_session_recovers(redis_server: RedisServer, cluster: Cluster) -> None:
    async def restart() -> None:
        redis_server.close()
        await asyncio.sleep(1)
        redis_server.start()

    back = ticks_through_outage(cluster(), cluster(), restart)
    print(f"\nredis restart: output flowing again {back:.2f} s after redis came back")


def test_failed_publish_node_rejoins(redis_server: RedisServer, cluster: Cluster) -> None:
    """Redis drops the nodes' command connections but not their subscriptions, as a restart leaves the
    idle ones in a pool stale: the next publish fails, and each node must rejoin (it used to stay out
    for good while still subscribed), telling its peer which of their shared viewers it dropped."""
    a, b = cluster(), cluster()

    async def kill_command_connections() -> None:
        assert redis_server.command("CLIENT", "KILL", "TYPE", "normal").startswith(b":")

    ticks_through_outage(a, b, kill_command_connections, lambda: ready(a.port) and ready(b.port))


def test_limits_and_ownership_hold_across_nodes(cluster: Cluster) -> None:
    nodes: list[Relay] = [cluster("--max-viewers", "2") for _ in range(3)]
    a, b, c = nodes
    share = HeadlessShare("--host", "127.0.0.1", "--port", str(a.port), "--cmd", "sleep 30")
    sid = share.links["session"]
    try:
        v1 = Recorder(at(share.links["read_only"], b.port))
        v2 = Recorder(at(share.links["read_only"], c.port))
        v3 = Recorder(at(share.links["read_only"], a.port))

        async def scenario() -> int | None:
            t1 = asyncio.create_task(v1.run())
            t2 = asyncio.create_task(v2.run())
            await wait_for(lambda: all(any(isinstance(e, ev.Welcomed) for _, e in v.events) for v in (v1, v2)), 15)
            # Both live in the Router of the session's home node, a, though they connected to b and c.
            assert healthz(a.port)["viewers"] == 2 and healthz(b.port)["viewers"] == 0
            await asyncio.wait_for(v3.run_once(), timeout(10))  # a third viewer, on a third node: over the limit
            assert v3.closes == [4429]
            # A second sharer claims the session id with another owner token, on another node.
            async with connect(f"ws://127.0.0.1:{c.port}/ws/share/{sid}") as ws:
                await ws.send(encode_frame(FrameKind.REGISTER, os.urandom(32)))
                try:
                    await asyncio.wait_for(ws.recv(), timeout(10))
                except ConnectionClosed:
                    pass
                code = ws.close_code
            for t in (t1, t2):
                t.cancel()
            await asyncio.gather(t1, t2, return_exceptions=True)
            return code

        assert asyncio.run(scenario()) == 4409
    finally:
        share.close()
