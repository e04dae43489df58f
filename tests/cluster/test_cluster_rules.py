"""Every rule of the one-node relay holds in cluster mode: a session lives in the Router of its home
node, and connections landing on other nodes are proxied to it (termshare/relay/cluster.py)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
import urllib.request

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from termshare.protocol.envelope import encode_frame, parse_header
from termshare.protocol.link import parse_link
from termshare.protocol.viewer import ViewerProtocol
from termshare.protocol.wire import FrameKind

from ..procs import HeadlessShare, read_until, timeout
from ..reliability.client import Recorder
from .conftest import Cluster
from .harness import RedisServer
from .test_cluster import Typist, at, wait_for


def get(port: int, path: str, token: str | None = None) -> str:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=timeout(5)) as r:
        text: str = r.read().decode()
    return text


def sample(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        m = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if m:
            have = dict(re.findall(r'(\w+)="([^"]*)"', m[1]))
            have.pop("node")
            if have == labels:
                return float(m[2])
    raise AssertionError(f"no sample {name}{labels}")


async def recv_until_closed(ws) -> int | None:  # type: ignore[no-untyped-def]
    try:
        while True:
            await asyncio.wait_for(ws.recv(), timeout(10))
    except ConnectionClosed:
        pass
    return ws.close_code  # type: ignore[no-any-return]


def test_proxied_viewers_obey_the_home_router_and_show_in_its_metrics(cluster: Cluster) -> None:
    a, b = cluster("--admin-token", "adm-secret"), cluster()
    share = HeadlessShare("--host", "127.0.0.1", "--port", str(a.port), "--cmd",
                          "sh -c 'read x; echo got-$x; sleep 30'")
    sid = share.links["session"]
    try:
        typist = Typist(at(share.links["read_write"], b.port))
        typist.text = b"typed-through-b\r"

        async def scenario() -> int | None:
            task = asyncio.create_task(typist.run())
            await wait_for(lambda: b"got-typed-through-b" in typist.output(), 15)
            # A second viewer on b that starts two handshakes on one connection: the home's rule closes it.
            link = parse_link(at(share.links["read_only"], b.port))
            viewer = ViewerProtocol(link, os.urandom)
            async with connect(f"ws://127.0.0.1:{b.port}/ws/view/{sid}") as ws:
                viewer.receive_frame(await asyncio.wait_for(ws.recv(), timeout(10)))  # READY
                (hello,) = viewer.frames_to_send()
                assert parse_header(hello).kind is FrameKind.HELLO
                await ws.send(hello)
                await ws.send(hello)
                code = await recv_until_closed(ws)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return code

        assert asyncio.run(scenario()) == 4400
        home, proxy = get(a.port, "/metrics"), get(b.port, "/metrics")
        assert sample(home, "termshare_sessions") == 1 and sample(proxy, "termshare_sessions") == 0
        assert sample(home, "termshare_viewers_joined_total") == 2
        assert sample(home, "termshare_frames_received_total", role="viewer") >= 2  # HELLO + keystrokes
        assert sample(home, "termshare_refusals_total", code="4400", reason="bad_frame") == 1
        assert sample(proxy, "termshare_connections_total", role="viewer") == 2
        assert sample(proxy, "termshare_cluster_messages_total", direction="published") >= 4
        assert sample(home, "termshare_cluster_redis_connected") == 1
        (session,) = json.loads(get(a.port, "/admin/sessions", "adm-secret"))["sessions"]
        assert session["id"] == sid and session["frames_from_viewers"] >= 2 and session["sharer"] == "connected"
    finally:
        share.close()


def test_idle_timeout_ends_a_session_whose_viewers_are_on_other_nodes(cluster: Cluster) -> None:
    a, b = cluster("--idle-timeout", "2"), cluster("--idle-timeout", "2")
    share = HeadlessShare("--host", "127.0.0.1", "--port", str(a.port), "--cmd", "sleep 60")
    viewer = Recorder(at(share.links["read_only"], b.port))
    try:
        started = time.monotonic()
        asyncio.run(asyncio.wait_for(viewer.run_once(), timeout(20)))
        assert viewer.closes == [4410]
        # The sharer is told why (its shell keeps running locally, by design).
        read_until(share.proc.stdout, rb'"message": "the relay ended the session because it was idle"', timeout(10))
        assert time.monotonic() - started < 15
    finally:
        share.close()


def test_a_sharer_reconnecting_to_another_node_is_proxied_to_the_home(cluster: Cluster) -> None:
    a, b, c = cluster(), cluster(), cluster()
    sid, token = "QmFzZTY0U2Vzc2lv", os.urandom(32)
    register = encode_frame(FrameKind.REGISTER, token)

    async def scenario() -> tuple[int | None, bytes, int | None]:
        first = await connect(f"ws://127.0.0.1:{a.port}/ws/share/{sid}")
        await first.send(register)
        assert parse_header(await asyncio.wait_for(first.recv(), timeout(10))).kind is FrameKind.READY
        async with connect(f"ws://127.0.0.1:{b.port}/ws/share/{sid}") as second:
            await second.send(register)  # same owner token, through another node
            ready = await asyncio.wait_for(second.recv(), timeout(10))
            replaced = await recv_until_closed(first)
            async with connect(f"ws://127.0.0.1:{c.port}/ws/share/{sid}") as thief:
                await thief.send(encode_frame(FrameKind.REGISTER, os.urandom(32)))
                stolen = await recv_until_closed(thief)
        return replaced, ready, stolen

    replaced, ready, stolen = asyncio.run(scenario())
    assert parse_header(ready).kind is FrameKind.READY
    assert replaced == 4409 and stolen == 4409
    assert json.loads(get(a.port, "/healthz"))["sessions"] == 1  # still homed on a
    assert json.loads(get(b.port, "/healthz"))["sessions"] == 0


def test_malformed_inbox_messages_are_skipped_and_routing_goes_on(redis_server: RedisServer, cluster: Cluster) -> None:
    import redis

    a, b = cluster(), cluster()
    share = HeadlessShare("--host", "127.0.0.1", "--port", str(a.port), "--cmd",
                          "sh -c 'read x; echo still-$x; sleep 30'")
    try:
        client = redis.Redis.from_url(redis_server.url)
        inboxes = client.pubsub_channels("ts:inbox:*")
        assert len(inboxes) == 2
        for inbox in inboxes:
            for junk in (b"", b"S\x01", b"S\x00\xff\xff\xff\xff", b"C\x00", b"O\xff", b"F\x05ab", b"Zzz", os.urandom(64)):
                assert client.publish(inbox, junk) == 1
        client.close()
        typist = Typist(at(share.links["read_write"], b.port))
        typist.text = b"routing\r"

        async def scenario() -> None:
            task = asyncio.create_task(typist.run())
            await wait_for(lambda: b"still-routing" in typist.output(), 15)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        asyncio.run(scenario())
    finally:
        share.close()
