"""An in-memory relay (the real Router) wiring one ShareProtocol to ViewerProtocols.

`tamper(frame, to_conn)` sees every frame the relay delivers and returns the frames to deliver
instead: the malicious relay of the adversarial tests.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from termshare.protocol import events as ev
from termshare.protocol import share as share_module
from termshare.protocol.link import parse_link
from termshare.protocol.router import Close, Router, Send
from termshare.protocol.share import ShareProtocol
from termshare.protocol.viewer import ViewerProtocol
from termshare.protocol.wire import FrameKind

BASE = "http://relay.test"
Tamper = Callable[[bytes, int], list[bytes]]
SHARER = 1
GROUP_KINDS = (FrameKind.GROUP, FrameKind.GROUP_DIRECT)  # the frames that carry the group stream (§6.2)


def outputs(events: list[object]) -> bytes:
    """The terminal output among a viewer's events, joined."""
    return b"".join(e.data for e in events if isinstance(e, ev.Output))


def signed_output_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the sharer send all output as signed GROUP frames, never GROUP_DIRECT (§3.3.1): tests
    run a path both ways, since small output with few viewers otherwise goes GROUP_DIRECT."""
    monkeypatch.setattr(share_module, "GROUP_DIRECT_VIEWERS", 0)  # read by each new ShareProtocol


class Net:
    def __init__(self, *, read_only: bool = False, rng: Callable[[int], bytes] = os.urandom) -> None:
        self.now = 0.0
        self.screen = (80, 24, b"$ ")
        self.share = ShareProtocol(rng=rng, clock=lambda: self.now, screen=lambda: self.screen, read_only=read_only)
        self.router = Router()
        self.viewers: dict[int, ViewerProtocol] = {}
        self.closed: dict[int, int] = {}
        self.typed: list[tuple[int, bytes]] = []
        self.share_events: list[object] = []
        self.tamper: Tamper = lambda frame, conn: [frame]
        self.rng = rng
        self._next_conn = 2
        self.router.connected(SHARER, self.share.sid, "127.0.0.1", True, self.now)
        self.share.connect()
        self.run()

    def link(self, rw: bool = True) -> str:
        url = self.share.read_write_link(BASE) if rw else self.share.read_only_link(BASE)
        assert url is not None
        return url

    def join(self, url: str | None = None) -> tuple[int, ViewerProtocol]:
        conn = self._next_conn
        self._next_conn += 1
        viewer = ViewerProtocol(parse_link(url or self.link()), self.rng)
        self.viewers[conn] = viewer
        self.router.connected(conn, self.share.sid, "127.0.0.1", False, self.now)
        self.run()
        return conn, viewer

    def leave(self, conn: int) -> None:
        self.viewers.pop(conn, None)
        self.router.disconnected(conn, self.now)
        self.run()

    def run(self) -> None:
        for _ in range(10_000):
            moved = False
            for frame in self.share.frames_to_send():
                self.router.received(SHARER, frame, self.now)
                moved = True
            for conn, viewer in list(self.viewers.items()):
                for frame in viewer.frames_to_send():
                    self.router.received(conn, frame, self.now)
                    moved = True
            for action in self.router.take_actions():
                moved = True
                if isinstance(action, Close):
                    self.closed[action.conn] = action.code
                    if action.conn in self.viewers:
                        self.viewers.pop(action.conn)
                        self.router.disconnected(action.conn, self.now)
                    continue
                assert isinstance(action, Send)
                for frame in self.tamper(action.data, action.conn):
                    self.deliver(action.conn, frame)
            self.share_events.extend(self.share.events_received())
            if not moved:
                return
        raise AssertionError("the in-memory network did not settle")

    def deliver(self, conn: int, frame: bytes) -> None:
        if conn == SHARER:
            self.share.receive_frame(frame)
            return
        viewer = self.viewers.get(conn)
        if viewer is not None:
            viewer.receive_frame(frame)

    def output(self, data: bytes) -> None:
        self.share.send_output(data)
        self.run()
