"""Scale-out figures (issue 7): 1, 2 and 3 `termshare serve --redis` nodes on one real redis-server.

The same three measurements run on each cluster size and on one in-memory relay (no --redis), the
reference of every ratio (TermPair has no cluster mode):

* fan-out: the sharer on node 1, viewers round-robin over the nodes, in one worker process per
  core (bench/viewer_pool.py, as the fan-out workload); aggregate MB/s, viewers that got every byte, and the CPU it took: every
  node's and Redis's, per MB delivered and per output frame (frames counted by the home node's
  /metrics);
* echo: keystrokes from a viewer on the last node (a remote node once there are two) to `cat` shared
  through node 1;
* sessions: idle sessions, the sharer of session i on node i mod n and its one viewer on node
  i+1 mod n (on another node once there are two); how many the cluster holds, RSS and CPU per node
  and Redis's.

On a 2-core machine the nodes, Redis, the sharer and the bench's viewers share two cores: the CPU
figures say where the time goes, the MB/s say what two cores give.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from . import procs
from .systems import Relay, Termshare
from .ts_client import TsIdleSharer, TsViewer
from .viewer_pool import ViewerPool
from .workloads import _close, _gate, echo_latency, open_idle_sessions

MB = 1_000_000


def unavailable() -> str | None:
    if shutil.which("redis-server") is None:
        return "no `redis-server` on PATH (Debian: apt-get install redis-server)"
    return None


@contextlib.contextmanager
def redis_server(timeout: float = 10) -> Iterator[tuple[str, int]]:
    """A throwaway redis-server on a free loopback port, no persistence: (url, pid)."""
    workdir = tempfile.mkdtemp(prefix="bench-redis-")
    port = procs.free_port()
    proc = procs.start([shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind", "127.0.0.1",
                        "--save", "", "--appendonly", "no", "--dir", workdir, "--protected-mode", "yes"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise procs.BenchError(f"redis-server did not start on port {port}")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0", proc.pid
    finally:
        procs.stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def relays(redis_url: str | None, n: int) -> Iterator[list[Relay]]:
    """`n` relay nodes on `redis_url`, or one in-memory relay when it is None."""
    started: list[Relay] = []
    try:
        for i in range(n):
            extra = ["--redis", redis_url, "--node-name", f"bench-{i + 1}"] if redis_url else []
            started.append(Termshare().start_relay(*extra))
        yield started
    finally:
        for relay in started:
            procs.stop(relay.proc)


def at(url: str, port: int) -> str:
    """The same link, pointed at another node."""
    return re.sub(r"^(https?://[^/:]+):\d+", rf"\g<1>:{port}", url, count=1)


def _metrics(relay: Relay) -> dict[str, float]:
    """A node's /metrics as {'name{labels}': value}."""
    with urllib.request.urlopen(f"{relay.base}/metrics", timeout=5) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                out[key] = float(value)
    return out


def _metric(values: dict[str, float], name: str, **labels: str) -> float:
    """The sum of `name` over the series that carry `labels` (and any others, such as node)."""
    want = set(f'{k}="{v}"' for k, v in labels.items())
    total = 0.0
    for key, value in values.items():
        base, _, rest = key.partition("{")
        if base == name and want <= set(filter(None, rest.rstrip("}").split(","))):
            total += value
    return total


def _cpu(pids: Sequence[int]) -> list[float]:
    return [procs.cpu_seconds(pid) for pid in pids]


# -- fan-out across nodes --------------------------------------------------------------------------
async def fanout(nodes: Sequence[Relay], redis_pid: int | None, file: Path, viewers_n: int, size: int,
                 timeout: float) -> dict[str, Any]:
    system = Termshare()
    share = system.start_share(nodes[0], _gate(size, file))
    pool = ViewerPool(system.name, [at(share.url, node.port) for node in nodes], viewers_n)
    try:
        await pool.start()
        await asyncio.sleep(0.3)  # let the join notices settle
        m0 = await asyncio.to_thread(_metric_all, nodes)
        pids = [n.pid for n in nodes]
        cpu0 = _cpu(pids)
        redis0 = procs.cpu_seconds(redis_pid) if redis_pid else 0.0
        got = await pool.run(size, timeout)
        elapsed = got.seconds
        node_cpu = [b - a for a, b in zip(cpu0, _cpu(pids), strict=True)]
        redis_cpu = (procs.cpu_seconds(redis_pid) - redis0) if redis_pid else 0.0
        m1 = await asyncio.to_thread(_metric_all, nodes)

        def delta(name: str, **labels: str) -> float:
            return sum(_metric(b, name, **labels) - _metric(a, name, **labels) for a, b in zip(m0, m1, strict=True))

        frames = delta("termshare_frames_received_total", role="sharer")
        # skipped per viewer: over a node's soft cap for it (outbox.py), or Redis behind on the home (cluster.py)
        slow, redis_behind = delta("termshare_group_frames_dropped_total"), delta("termshare_cluster_frames_dropped_total")
        total = got.total_bytes
        cpu = sum(node_cpu) + redis_cpu
        return {
            "nodes": len(nodes),
            "viewers": viewers_n,
            "aggregate_mb_per_s": total / elapsed / MB,
            "complete_viewers": got.complete,
            "resynced_viewers": got.resynced,  # fell behind, skipped output and resynced: by design
            "incomplete_unexplained": got.unexplained,  # short without a resync: should be 0
            "snapshots": got.snapshots,
            "cpu_s": cpu,
            "redis_cpu_s": redis_cpu,
            "cpu_s_per_mb": cpu / max(total / MB, 1e-9),  # every node + Redis
            "redis_cpu_s_per_mb": redis_cpu / max(total / MB, 1e-9),
            "cpu_us_per_frame": cpu / max(frames, 1) * 1e6,  # per output frame, fanned out to every viewer
            "output_frames": frames,
            "nodes_cpu_share": sum(node_cpu) / elapsed,  # cores
            "redis_cpu_share": redis_cpu / elapsed,
            "viewers_cpu_share": got.cpu_seconds / elapsed,  # all viewer processes
            "per_node_cpu_share": [c / elapsed for c in node_cpu],
            "redis_messages": delta("termshare_cluster_messages_total", direction="published"),
            "frames_dropped": slow + redis_behind,
            "frames_skipped_slow_viewer": slow,
            "frames_skipped_redis_behind": redis_behind,
            "seconds": elapsed,
        }
    finally:
        await pool.close()
        share.stop()


def _metric_all(nodes: Sequence[Relay]) -> list[dict[str, float]]:
    return [_metrics(n) for n in nodes]


# -- keystroke echo through a remote node ----------------------------------------------------------
async def echo(nodes: Sequence[Relay], count: int, interval: float) -> dict[str, Any]:
    last = nodes[-1]
    bound = count * (interval + 0.01) + 30
    return await echo_latency(Termshare(), nodes[0], count, interval, None, bound,
                              viewer_url=lambda url: at(url, last.port))


# -- idle sessions spread over the nodes -----------------------------------------------------------
async def sessions(nodes: Sequence[Relay], redis_pid: int | None, count: int, idle_seconds: float,
                   setup_timeout: float) -> dict[str, Any]:
    n = len(nodes)
    pids = [node.pid for node in nodes]
    rss0 = [procs.rss_bytes(p) for p in pids]
    sharers: list[TsIdleSharer] = []
    viewers: list[TsViewer] = []
    t_setup = time.perf_counter()
    deadline = time.monotonic() + setup_timeout
    try:
        # Sharer i on node i, its viewer on node i+1: every session crosses nodes.
        await open_idle_sessions(count, deadline, lambda i: TsIdleSharer(nodes[i % n].base),
                                 lambda i, s: [TsViewer(s.protocol.read_only_link(nodes[(i + 1) % n].base))],
                                 sharers, viewers)
        setup_s = time.perf_counter() - t_setup
        await asyncio.sleep(min(1.0, idle_seconds))  # let the joins settle
        cpu0 = _cpu(pids)
        redis0 = procs.cpu_seconds(redis_pid) if redis_pid else 0.0
        await asyncio.sleep(idle_seconds)
        cpu = [b - a for a, b in zip(cpu0, _cpu(pids), strict=True)]
        redis_cpu = (procs.cpu_seconds(redis_pid) - redis0) if redis_pid else 0.0
        rss = [procs.rss_bytes(p) for p in pids]
        held = sum(1 for v in viewers if not v.done.is_set())
        return {
            "nodes": n,
            "sessions": len(sharers),
            "sessions_held": held,  # sessions whose viewer is still connected
            "node_rss_mb": max(rss) / MB,
            "node_rss_growth_mb": max(b - a for a, b in zip(rss0, rss, strict=True)) / MB,
            "nodes_rss_mb_total": sum(rss) / MB,
            "node_cpu_s": max(cpu),
            "redis_cpu_s": redis_cpu,
            "node_cpu_s_per_min": max(cpu) / idle_seconds * 60,
            "redis_rss_mb": procs.rss_bytes(redis_pid) / MB if redis_pid else 0.0,
            "redis_cpu_s_per_min": redis_cpu / idle_seconds * 60,
            "per_node_rss_mb": [r / MB for r in rss],
            "setup_seconds": setup_s,
        }
    finally:
        await _close(viewers)
        await _close(sharers)
