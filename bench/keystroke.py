"""termshare's own CPU for one keystroke's round trip, with no I/O: warm, and after a pause.

The echo workload's keystrokes are 20 ms apart, and between them every process of the path sleeps.
This module runs the same protocol work in one process, on termshare.protocol's real
ViewerProtocol, Router and ShareProtocol: the viewer seals a key, the router routes it, the sharer
opens it and seals and signs the echo, the router multicasts it, the viewer checks the signature
and opens it. It times each round trip twice: back to back, with everything in the CPU's caches;
and with a sleep of the echo workload's interval before the first step of each of the three
parties, as each process of the echo path wakes for its part.

On a VM, code that has not run for a few milliseconds runs many times slower: the caches and the
TLB went cold while the vCPU idled. Set against the echo rows, the two figures say how much of
the echo is termshare's work and how much that work costs when it starts cold.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from termshare.protocol import events as ev
from termshare.protocol.router import Send
from termshare.protocol.viewer import ViewerState
from tests.protocol.harness import SHARER, Net

from . import procs


class _Path:
    """One sharer and one read-write viewer joined through a Router, in memory (the protocol
    tests' Net, which wires the real ShareProtocol, Router and ViewerProtocol)."""

    def __init__(self) -> None:
        self.net = Net()
        self.conn, self.viewer = self.net.join()
        if self.viewer.state is not ViewerState.LIVE:
            raise procs.BenchError(f"the in-memory viewer did not go live: {self.viewer.state.name}")
        self.share, self.router = self.net.share, self.net.router

    def round_trip(self, pause: float) -> float:
        """Key -> sharer -> echo -> viewer: the seconds its five steps took (not the sleeps), each
        step one party's work. With `pause`, the viewer, the relay and the sharer each start their
        first step after that much sleep, as each process of the echo path wakes for its part; the
        relay's second step and the viewer's second follow at once (in the echo they come within a
        millisecond or two of their first)."""
        got: list[bool] = []
        routed: list[bytes] = []

        def key() -> None:  # viewer
            self.viewer.send_input(b"x")
            routed.extend(self.viewer.frames_to_send())

        def route(conn: int) -> Callable[[], None]:  # relay
            def step() -> None:
                for frame in routed:
                    self.router.received(conn, frame, self.net.now)
                routed[:] = [a.data for a in self.router.take_actions() if isinstance(a, Send)]
            return step

        def echo() -> None:  # sharer
            for frame in routed:
                self.share.receive_frame(frame)
            got.append(any(isinstance(e, ev.Input) for e in self.share.events_received()))
            self.share.send_output(b"x")
            routed[:] = self.share.frames_to_send()

        def shown() -> None:  # viewer
            for frame in routed:
                self.viewer.receive_frame(frame)
            got.append(any(isinstance(e, ev.Output) for e in self.viewer.events_received()))

        took = 0.0
        for i, step in enumerate((key, route(self.conn), echo, route(SHARER), shown)):
            if pause and i < 3:
                time.sleep(pause)
            t0 = time.perf_counter()
            step()
            took += time.perf_counter() - t0
        if got != [True, True]:
            raise procs.BenchError("a keystroke's echo did not come back through the in-memory path")
        return took


def keystroke_cpu(count: int, pause: float) -> dict[str, Any]:
    """Median ms of a round trip's steps: back to back (`warm_ms`), and with `pause` s of sleep
    before the viewer's, the relay's and the sharer's first step (`cold_ms`)."""
    path = _Path()
    out: dict[str, Any] = {}
    for key, gap in (("warm_ms", 0.0), ("cold_ms", pause)):
        samples = sorted(path.round_trip(gap) for _ in range(count))
        out[key] = samples[len(samples) // 2] * 1000
    return out
