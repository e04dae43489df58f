"""termshare's own CPU for one keystroke's round trip, with no I/O: warm, and after a pause.

The echo workload's keystrokes are 20 ms apart, and between them every process of the path sleeps.
This module runs the same protocol work in one process, on termshare.protocol's real
ViewerProtocol, Router and ShareProtocol: the viewer seals a key, the router routes it, the sharer
opens it and seals and signs the echo, the router multicasts it, the viewer checks the signature
and opens it. It times each round trip twice: back to back, with everything in the CPU's caches;
and after a sleep of the echo workload's interval, as each process of the echo path runs.

On a VM, code that has not run for a few milliseconds runs many times slower: the caches and the
TLB went cold while the vCPU idled. Set against the echo rows, the two figures say how much of
the echo is termshare's work and how much that work costs when it starts cold.
"""

from __future__ import annotations

import os
import time
from typing import Any

from termshare.protocol import events as ev
from termshare.protocol.link import parse_link
from termshare.protocol.router import Router, Send
from termshare.protocol.share import ShareProtocol
from termshare.protocol.viewer import ViewerProtocol, ViewerState

from . import procs

SHARER, VIEWER = 1, 2  # the router's connection ids


class _Path:
    """One sharer and one read-write viewer joined through a Router, in memory."""

    def __init__(self) -> None:
        self.share = ShareProtocol(rng=os.urandom, clock=time.monotonic, screen=lambda: (80, 24, b"$ "))
        self.router = Router()
        self.parties: dict[int, ShareProtocol | ViewerProtocol] = {SHARER: self.share}
        self.router.connected(SHARER, self.share.sid, "127.0.0.1", True, time.monotonic())
        self.share.connect()
        self._settle()  # registered before the viewer comes
        link = self.share.read_write_link("http://127.0.0.1")
        assert link is not None
        self.viewer = self.parties[VIEWER] = ViewerProtocol(parse_link(link), os.urandom)
        self.router.connected(VIEWER, self.share.sid, "127.0.0.1", False, time.monotonic())
        self._settle()  # handshake and snapshot
        if self.viewer.state is not ViewerState.LIVE:
            raise procs.BenchError(f"the in-memory viewer did not go live: {self.viewer.state.name}")

    def _settle(self) -> None:
        for _ in range(100):
            moved = False
            for conn, party in self.parties.items():
                for frame in party.frames_to_send():
                    self.router.received(conn, frame, time.monotonic())
                    moved = True
                party.events_received()
            if not self._deliver() and not moved:
                return

    def _deliver(self) -> bool:
        actions = self.router.take_actions()
        for action in actions:
            if isinstance(action, Send):
                self.parties[action.conn].receive_frame(action.data)
        return bool(actions)

    def round_trip(self, pause: float) -> float:
        """Key -> sharer -> echo -> viewer, with `pause` s of sleep before each party's step: the
        seconds the steps took (not the sleeps)."""
        got: list[bool] = []

        def key() -> None:
            self.viewer.send_input(b"x")
            self._send(VIEWER)

        def echo() -> None:
            got.append(any(isinstance(e, ev.Input) for e in self.share.events_received()))
            self.share.send_output(b"x")
            self._send(SHARER)

        def shown() -> None:
            got.append(any(isinstance(e, ev.Output) for e in self.viewer.events_received()))

        took = 0.0
        for step in (key, self._deliver, echo, self._deliver, shown):  # viewer, relay, sharer, relay, viewer
            if pause:
                time.sleep(pause)
            t0 = time.perf_counter()
            step()
            took += time.perf_counter() - t0
        if got != [True, True]:
            raise procs.BenchError("a keystroke's echo did not come back through the in-memory path")
        return took

    def _send(self, conn: int) -> None:
        for frame in self.parties[conn].frames_to_send():
            self.router.received(conn, frame, time.monotonic())


def keystroke_cpu(count: int, pause: float) -> dict[str, Any]:
    """Median ms of a round trip's steps: back to back (`warm_ms`), and each after `pause` s of
    sleep (`cold_ms`), as each process of the echo path wakes for its part."""
    path = _Path()
    out: dict[str, Any] = {}
    for key, gap in (("warm_ms", 0.0), ("cold_ms", pause)):
        samples = sorted(path.round_trip(gap) for _ in range(count))
        out[key] = samples[len(samples) // 2] * 1000
    return out
