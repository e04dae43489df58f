"""relay/outbox.py: what a viewer that falls behind is sent, and what dropping it costs the relay.

The Outbox runs against a stand-in for the websocket that the test stalls and releases (as
tests/relay/test_websocket.py does); the real-process side is in tests/reliability/test_faults.py
(a viewer that fell behind gets no stale output before its snapshot)."""

from __future__ import annotations

import asyncio
import random
import struct
import time
import tracemalloc

from termshare.protocol.wire import FrameKind
from termshare.relay.outbox import SKIPPED_FRAME, Outbox

SOFT_CAP = 10_000


def frame(kind: FrameKind, ident: int, size: int = 100) -> bytes:
    """A frame the outbox can tell apart on the wire: its viewer_id field carries `ident`."""
    return struct.pack(">BBIIII", 1, kind, ident, 0, 0, size) + bytes(size)


def ident(data: bytes) -> int:
    return int(struct.unpack_from(">I", data, 2)[0])


class Link:
    """The websocket as the Outbox sees it. Stalled: send_now refuses and send_bytes waits."""

    def __init__(self) -> None:
        self.wire: list[bytes] = []
        self.open = asyncio.Event()
        self.writing = b""  # the frame send_bytes is waiting to put on the wire

    def send_now(self, data: bytes) -> bool:
        if self.open.is_set():
            self.wire.append(data)
        return self.open.is_set()

    async def send_bytes(self, data: bytes) -> None:
        self.writing = data
        await self.open.wait()
        self.wire.append(data)
        self.writing = b""

    async def close(self, code: int, reason: str) -> None:
        pass


def viewer_outbox(link: Link) -> Outbox:
    outbox = Outbox(link, soft_cap=SOFT_CAP, hard_cap=10**9, skip_hint=True, send_now=link.send_now)  # type: ignore[arg-type]
    outbox.task = asyncio.create_task(outbox.run())
    return outbox


async def drain(link: Link, outbox: Outbox) -> list[bytes]:
    link.open.set()
    outbox.close(1000, "")
    assert outbox.task is not None
    await asyncio.wait_for(outbox.task, 5)
    return link.wire


def test_a_viewer_past_its_soft_cap_gets_no_group_frame_until_its_next_other_frame() -> None:
    async def scenario() -> list[bytes]:
        link = Link()
        outbox = viewer_outbox(link)
        outbox.send(frame(FrameKind.GROUP, 1), droppable=True)  # the head: being written
        await asyncio.sleep(0)
        outbox.send(frame(FrameKind.GROUP, 2), droppable=True)
        outbox.send(frame(FrameKind.DIRECT, 3), droppable=False)  # e.g. a REKEY: kept, in place
        for i in range(4, 200):
            outbox.send(frame(FrameKind.GROUP, i), droppable=True)  # past the cap from about 100 on
        outbox.send(frame(FrameKind.DIRECT, 500), droppable=False)  # the snapshot: the run ends
        outbox.send(frame(FrameKind.GROUP, 501), droppable=True)
        assert outbox.dropped == 197  # every GROUP frame but the head and the one after the snapshot
        return await drain(link, outbox)

    wire = asyncio.run(scenario())
    assert [w if w == SKIPPED_FRAME else ident(w) for w in wire] == [1, 3, SKIPPED_FRAME, 500, 501]


def test_frames_arrive_in_order_and_no_viewer_applies_output_across_a_hole() -> None:
    """Random traffic against a link that stalls and resumes. The wire carries the frames sent, in
    order, every DIRECT frame among them, and the outbox's byte count is what it will still send.
    A model viewer reads the wire: SKIPPED makes it resync; a DIRECT frame stands for the snapshot,
    which places it after the last GROUP frame sent before it. While in sync it must never get a
    GROUP frame with a dropped one before it, nor end in sync with dropped output it was not told of."""

    async def scenario(rng: random.Random) -> None:
        link = Link()
        outbox = viewer_outbox(link)
        sent: list[tuple[int, FrameKind]] = []
        for i in range(300):
            roll = rng.random()
            if roll < 0.6:
                kind = FrameKind.GROUP if rng.random() < 0.85 else FrameKind.DIRECT
                outbox.send(frame(kind, i, rng.randint(10, 900)), droppable=kind is FrameKind.GROUP)
                sent.append((i, kind))
            elif roll < 0.75:
                link.open.set() if rng.random() < 0.4 else link.open.clear()
            else:
                for _ in range(rng.randint(1, 3)):
                    await asyncio.sleep(0)
            queued = [d for _, d in (*outbox._droppable, *outbox._other)]  # noqa: SLF001 - the invariant itself
            assert outbox._queued == sum(map(len, queued)) + len(link.writing), "byte count"  # noqa: SLF001
        wire = await drain(link, outbox)
        got = [(ident(w), FrameKind(w[1])) for w in wire if w != SKIPPED_FRAME]
        delivered = {g[0] for g in got}
        assert got == [s for s in sent if s[0] in delivered]  # nothing reordered or repeated
        assert all(s[0] in delivered for s in sent if s[1] is FrameKind.DIRECT)
        assert outbox.dropped == sum(1 for s in sent if s[0] not in delivered)

        position = {s[0]: k for k, s in enumerate(sent)}
        in_sync, next_k = True, 0  # the model viewer, and the first frame of `sent` it has not passed

        def none_dropped(upto: int) -> bool:
            return all(sent[k][0] in delivered for k in range(next_k, upto) if sent[k][1] is FrameKind.GROUP)

        for w in wire:
            if w == SKIPPED_FRAME:
                in_sync = False
            elif FrameKind(w[1]) is FrameKind.DIRECT:
                in_sync, next_k = True, position[ident(w)] + 1
            elif in_sync:
                assert none_dropped(position[ident(w)]), "output applied across a hole"
                next_k = position[ident(w)] + 1
        assert not in_sync or none_dropped(len(sent)), "left in sync while output was dropped"

    for seed in range(200):
        asyncio.run(scenario(random.Random(seed)))


def test_dropping_the_queued_output_costs_the_same_however_long_the_queue() -> None:
    """ATTACK (review of 988e61d): a viewer that stops reading and sends PINGs fills its queue with
    small DIRECT frames (PONGs), and with one PING per output frame it ends and restarts the run of
    dropped output at every frame. Dropping what is queued must not walk the queue each time: with
    a walk, 100,000 queued PONGs cost ~12 ms per output frame, for every session on the relay."""
    pong = frame(FrameKind.DIRECT, 0, 25)
    group = frame(FrameKind.GROUP, 0, 200)

    async def cost(queued: int) -> float:
        link = Link()
        outbox = Outbox(link, soft_cap=queued * len(pong) // 2, hard_cap=10**9, skip_hint=True,  # type: ignore[arg-type]
                        send_now=link.send_now)
        for _ in range(queued):
            outbox.send(pong, droppable=False)
        start = time.process_time()
        for _ in range(2000):
            outbox.send(pong, droppable=False)  # the answer to the attacker's PING: the run ends
            outbox.send(group, droppable=True)  # the next output: a new run, and the queue's output dropped
        return time.process_time() - start

    short, long = asyncio.run(cost(10)), asyncio.run(cost(100_000))
    assert long < 10 * max(short, 0.01), (short, long)


def test_what_a_stalled_viewer_is_not_sent_is_freed() -> None:
    """A viewer that reads nothing while its runs keep ending (a PONG, a REKEY): each run's dropped
    output must leave memory, not wait in the queue behind the frame the relay is stuck writing.
    Only soft_cap's worth of output stays queued, however many runs."""

    async def held_after(runs: int) -> int:
        link = Link()
        outbox = viewer_outbox(link)
        outbox.send(frame(FrameKind.DIRECT, 0), droppable=False)
        await asyncio.sleep(0)  # run() is now stuck writing it: the link is stalled
        tracemalloc.start()
        for i in range(runs):
            outbox.send(frame(FrameKind.DIRECT, i, 25), droppable=False)  # ends the run
            for _ in range(2 * SOFT_CAP // 1000):  # past the cap: a new run drops what was queued
                outbox.send(frame(FrameKind.GROUP, i, 1000), droppable=True)
        held = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        assert outbox.task is not None
        outbox.task.cancel()
        return held

    assert asyncio.run(held_after(200)) < 20 * SOFT_CAP  # 200 runs of ~SOFT_CAP each came and went
