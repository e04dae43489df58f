"""Viewers spread over worker processes, one per core, for the fan-out workload.

With every viewer in the bench's own process, one core decrypted for all of them and was the
busiest process of the run: the aggregate showed the bench, not the relay. Real viewers are
separate machines; here they get as many processes as the machine has cores. Each worker is
`python -m bench.viewer_pool SYSTEM URLS COUNT` (URLS: a JSON list, used in turn: the same session
through several relay nodes), runs COUNT viewers of the system's own headless
client (ts_client.TsViewer, termpair_client.TpViewer) in one event loop, and talks JSON lines:

    worker -> {"ready": COUNT}                    every viewer is live
    main   -> {"arm": SIZE, "timeout": S}         counters reset, target SIZE bytes per viewer
    worker -> {"armed": true}
    main   -> {"gate": true}                      (one worker) its first viewer types the gate key
    worker -> {"result": {...}}                   every viewer reached SIZE or ended, or S passed
    main   -> end of input                        the worker closes its viewers and exits

`last_output_at` is time.perf_counter(), CLOCK_MONOTONIC on Linux: one clock for every process.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from termshare import malloc

from . import procs

LINE = 64 * 1024


def _viewer_class(system: str) -> Any:
    if system == "termshare":
        from .ts_client import TsViewer

        return TsViewer
    from .termpair_client import TpViewer

    return TpViewer


async def _worker(system: str, urls: list[str], count: int) -> None:
    from .workloads import _all_reached, _close, _start_viewers

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=LINE)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def say(message: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    viewers = await _start_viewers(SimpleNamespace(Viewer=_viewer_class(system)), urls, count, 60)
    say({"ready": count})
    try:
        while line := await reader.readline():
            command = json.loads(line)
            if "arm" in command:
                for v in viewers:
                    v.reset_counters(command["arm"])
                say({"armed": True})
                waiting = asyncio.ensure_future(_all_reached(viewers, command["timeout"]))
                waiting.add_done_callback(lambda _: say({"result": {
                    "bytes": [v.output_bytes for v in viewers],
                    "broken": [v.broken for v in viewers],
                    "resyncs": [v.resyncs for v in viewers],
                    "snapshots": [v.snapshots for v in viewers],
                    "wire_bytes": sum(v.wire_bytes for v in viewers),
                    "frames": sum(v.frames for v in viewers),
                    "last_output_at": max(v.last_output_at for v in viewers),
                }}))
            elif "gate" in command:
                await viewers[0].send_input(b"g")
    finally:
        await _close(viewers)


@dataclass
class Worker:
    proc: asyncio.subprocess.Process

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(message) + "\n").encode())
        await self.proc.stdin.drain()

    async def expect(self, key: str, timeout: float) -> Any:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise procs.BenchError(f"a viewer worker ended (exit {await self.proc.wait()}) before '{key}'")
        message = json.loads(line)
        if key not in message:
            raise procs.BenchError(f"a viewer worker said {message!r}, not '{key}'")
        return message[key]


def tally(got: list[tuple[int, int, int]], size: int) -> tuple[int, int, int]:
    """Of viewers' (output bytes, broken, resyncs): how many got every byte, how many fell behind
    and resynced (the relay skipped output for them: by design), and how many are short or broken
    without a resync (lost or extra bytes, or closed early: should be none)."""
    complete = sum(1 for b, broken, _ in got if b == size and not broken)
    resynced = sum(1 for _, _, resyncs in got if resyncs)
    unexplained = sum(1 for b, broken, resyncs in got if (b != size or broken) and not resyncs)
    return complete, resynced, unexplained


@dataclass
class PoolRun:
    seconds: float  # the gate key to the last output byte any viewer got
    waited: float  # the gate key to the last worker's result (past `seconds` when a viewer froze)
    total_bytes: int  # output bytes, all viewers
    slowest_bytes: int  # output bytes of the viewer that got the fewest
    complete: int  # viewers that got every byte, with no broken stream
    resynced: int  # viewers that fell behind and resynced (the relay skipped output for them: by design)
    unexplained: int  # viewers without every byte and without a resync: lost or extra bytes, or closed early
    snapshots: int  # SNAPSHOTs received, all viewers
    frame_kb: float  # mean websocket message size
    cpu_seconds: float  # all worker processes, during the run


class ViewerPool:
    """`count` viewers of `url` (or of each of `url` in turn) in up to `workers` processes (default:
    one per core)."""

    def __init__(self, system: str, url: str | list[str], count: int, workers: int | None = None) -> None:
        n = max(1, min(count, workers or procs.cpus()))
        self.counts = [count // n + (1 if i < count % n else 0) for i in range(n)]
        self.system, self.urls = system, [url] if isinstance(url, str) else url
        self.workers: list[Worker] = []

    @property
    def pids(self) -> list[int]:
        return [w.pid for w in self.workers]

    async def start(self, timeout: float = 90) -> None:
        for count in self.counts:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.viewer_pool", self.system, json.dumps(self.urls), str(count),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=str(procs.REPO),
                start_new_session=True, limit=LINE)
            self.workers.append(Worker(proc))
        for worker in self.workers:
            await worker.expect("ready", timeout)

    async def run(self, size: int, timeout: float) -> PoolRun:
        """Arm every worker, type the gate key, and wait until every viewer has `size` bytes or ended."""
        for worker in self.workers:
            await worker.send({"arm": size, "timeout": timeout})
        for worker in self.workers:
            await worker.expect("armed", 10)
        cpu0 = sum(procs.cpu_seconds(pid) for pid in self.pids)
        t0 = time.perf_counter()
        await self.workers[0].send({"gate": True})
        results = [await worker.expect("result", timeout + 10) for worker in self.workers]
        waited = time.perf_counter() - t0
        got = [(b, broken, resyncs) for r in results
               for b, broken, resyncs in zip(r["bytes"], r["broken"], r["resyncs"], strict=True)]
        complete, resynced, unexplained = tally(got, size)
        return PoolRun(
            seconds=max(max(r["last_output_at"] for r in results) - t0, 1e-9),
            waited=waited,
            total_bytes=sum(b for b, _, _ in got),
            slowest_bytes=min(b for b, _, _ in got),
            complete=complete,
            resynced=resynced,
            unexplained=unexplained,
            snapshots=sum(sum(r["snapshots"]) for r in results),
            frame_kb=sum(r["wire_bytes"] for r in results) / max(sum(r["frames"] for r in results), 1) / 1000,
            cpu_seconds=sum(procs.cpu_seconds(pid) for pid in self.pids) - cpu0,
        )

    async def close(self) -> None:
        for worker in self.workers:
            if worker.proc.stdin is not None:
                worker.proc.stdin.close()
        for worker in self.workers:
            try:
                await asyncio.wait_for(worker.proc.wait(), 10)
            except TimeoutError:
                worker.proc.kill()
                await worker.proc.wait()


if __name__ == "__main__":
    malloc.tune()  # as `termshare join` does
    asyncio.run(_worker(sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])))
