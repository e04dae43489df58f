"""Security review findings on the relay app (each test fails until fixed)."""

from __future__ import annotations

import asyncio
import os

from termshare.protocol.envelope import encode_frame
from termshare.protocol.link import b64u_encode
from termshare.protocol.wire import FrameKind
from termshare.relay import RelayConfig
from termshare.relay.app import Relay


class FakeWS:
    """Just enough of a Starlette WebSocket for Relay.serve."""

    def __init__(self, sid: str, incoming: list[bytes], stall_sends: bool = False) -> None:
        self.path_params = {"sid": sid}
        self.scope: dict[str, object] = {"type": "websocket", "extensions": {}}  # a server without termshare.send
        self.headers: dict[str, str] = {}
        self.client = None
        self.incoming: asyncio.Queue[dict] = asyncio.Queue()
        for data in incoming:
            self.incoming.put_nowait({"type": "websocket.receive", "bytes": data})
        self.sent: list[bytes] = []
        self.closed: tuple[int, str] | None = None
        self.stall_sends = stall_sends
        self.first_send = asyncio.Event()
        self.release = asyncio.Event()

    async def accept(self) -> None:
        pass

    async def receive(self) -> dict:
        return await self.incoming.get()

    async def send_bytes(self, data: bytes) -> None:
        self.sent.append(data)
        self.first_send.set()
        if self.stall_sends and len(self.sent) > 1:
            await self.release.wait()  # a sharer on a slow link: reads nothing until released

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self.closed is None:
            self.closed = (code, reason)
        self.incoming.put_nowait({"type": "websocket.disconnect"})


def test_keyless_viewer_cannot_get_the_sharer_disconnected() -> None:
    """ATTACK (a client with only the session id knocks the sharer off the relay).

    The relay forwards every HELLO (and UPSTREAM) from a viewer into the *sharer's* outbox as a
    non-droppable frame (router.py `_from_viewer`, app.py `Outbox.send`). When that outbox passes
    hard_cap the relay closes the **sharer** with 4508 ("too slow"). A keyless client that knows
    only the session id can pipeline HELLO frames (67 bytes, no key needed: the relay cannot check
    the tag) faster than the sharer's downlink drains them; its REJECT cannot come back in time
    because it is queued behind the flood. The sharer is disconnected, every viewer sees
    SHARER_AWAY, and the attacker repeats after each resume. BRIEF: "unknown sessions, floods ...:
    bounded resources, other sessions unaffected"; §10: a keyless client must not disturb a session.

    (The test uses a 64 KiB hard_cap so that ~1000 frames suffice; with the default 16 MiB it
    takes ~250k HELLOs, i.e. ~17 MB of attacker upload: seconds against a sharer on a home link.)

    Fix idea: never close the sharer for what viewers sent; give viewer->sharer traffic its own
    per-viewer budget (one HELLO in flight per unadmitted viewer; a byte/frame cap of UPSTREAM
    queued per viewer) and close the *offending viewer* (4429/4508) when it is exceeded, or apply
    backpressure by not reading from viewers while the sharer's queue is over a cap.
    """
    sid = b64u_encode(os.urandom(12))

    async def scenario() -> tuple[int, str] | None:
        relay = Relay(RelayConfig(soft_cap=16 * 1024, hard_cap=64 * 1024))
        sharer = FakeWS(sid, [encode_frame(FrameKind.REGISTER, os.urandom(32))], stall_sends=True)
        sharer_task = asyncio.create_task(relay.serve(sharer, is_sharer=True))
        await asyncio.wait_for(sharer.first_send.wait(), 1)  # READY reached the sharer
        junk_hello = bytes(49)
        frames = []
        for _ in range(2000):
            frames.append(encode_frame(FrameKind.HELLO, junk_hello, viewer_id=1))
        attacker = FakeWS(sid, frames)
        attacker_task = asyncio.create_task(relay.serve(attacker, is_sharer=False))
        for _ in range(50):
            await asyncio.sleep(0)
        sharer.stall_sends = False
        sharer.release.set()  # the sharer's link catches up
        for _ in range(50):
            await asyncio.sleep(0)
        attacker.incoming.put_nowait({"type": "websocket.disconnect"})
        await asyncio.wait_for(attacker_task, 2)
        closed = sharer.closed
        sharer.incoming.put_nowait({"type": "websocket.disconnect"})
        sharer_task.cancel()
        return closed

    closed = asyncio.run(scenario())
    assert closed is None, f"a keyless viewer's HELLO flood made the relay close the sharer with {closed}"
