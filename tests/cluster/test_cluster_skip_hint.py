"""A GROUP frame the home skips for remote viewers because Redis is behind (cluster.QUEUE_HIGH) must be
marked with one SKIPPED frame, as relay/outbox.py does for a local viewer over its soft cap: otherwise a
remote viewer only notices the hole at the next output, and when the sharer goes quiet after the
dropped frame its screen stays stale with no resync (docs/PROTOCOL.md §6.2). No Redis needed: the
node is never started, and what it would publish is read from its queue."""

from __future__ import annotations

import struct
from types import SimpleNamespace

from termshare.protocol.router import Send
from termshare.relay.cluster import QUEUE_HIGH, T_SEND, ClusterNode
from termshare.relay.outbox import SKIPPED_FRAME


def _node() -> ClusterNode:
    relay = SimpleNamespace(router=SimpleNamespace(limits=SimpleNamespace(resume_grace=120)),
                            config=SimpleNamespace(node="home"), outboxes={})
    node = ClusterNode("redis://127.0.0.1:1/0", relay)  # type: ignore[arg-type]  # never connects
    for vconn, remote in ((7, ("proxy", 42)), (8, ("proxy", 43))):
        node.remote[vconn] = remote
        node._virtual[remote] = vconn
    return node


def _published(node: ClusterNode) -> list[tuple[bool, tuple[int, ...], bytes]]:
    out = []
    while not node._queue.empty():
        _, _, message = node._queue.get_nowait()
        assert message[:1] == T_SEND
        droppable, n = struct.unpack_from(">BI", message, 1)
        out.append((bool(droppable), struct.unpack_from(f">{n}Q", message, 6), message[6 + 8 * n:]))
    node._queued = 0
    return out


def _group(node: ClusterNode, data: bytes) -> None:
    node.act(Send(7, data, droppable=True))
    node.act(Send(8, data, droppable=True))
    node.flush_remote()


def test_a_frame_dropped_for_remote_viewers_is_marked_skipped_once_per_hole() -> None:
    node = _node()
    node._queued = QUEUE_HIGH  # Redis is behind
    _group(node, b"frame-1")
    _group(node, b"frame-2")
    sent = _published(node)
    assert node.stats.dropped == 4
    assert sent == [(False, (42, 43), SKIPPED_FRAME)]  # one hint per viewer for the whole hole, not droppable

    _group(node, b"frame-3")  # Redis caught up: delivered, the hole is closed
    assert _published(node) == [(True, (42, 43), b"frame-3")]

    node._queued = QUEUE_HIGH  # a later drop is a new hole: marked again
    _group(node, b"frame-4")
    assert _published(node) == [(False, (42, 43), SKIPPED_FRAME)]


def test_a_hole_right_after_a_frame_that_is_not_output_is_marked_again() -> None:
    """After the SKIPPED, the viewer's snapshot (a DIRECT frame) gets through; output dropped right
    after it is a new hole, which needs its own SKIPPED (the review of 988e61d found it unmarked)."""
    node = _node()
    node._queued = QUEUE_HIGH
    _group(node, b"frame-1")
    assert _published(node) == [(False, (42, 43), SKIPPED_FRAME)]
    node.act(Send(7, b"snapshot", droppable=False))
    node.flush_remote()
    node._queued = QUEUE_HIGH  # _published() emptied the queue: Redis is behind again
    _group(node, b"frame-2")
    assert _published(node) == [(False, (42,), b"snapshot"), (False, (42,), SKIPPED_FRAME)]
