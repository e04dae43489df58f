"""No (key, nonce) pair is ever used twice: many viewers, reconnects, resumes and rotations."""

from __future__ import annotations

import random

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from termshare.protocol import keys, share

from .harness import SHARER, Net


class RecordingAESGCM:
    """Wraps the real AESGCM (which cannot be subclassed) and records every (key, nonce) used."""

    used: set[tuple[bytes, bytes]] = set()
    repeats: list[tuple[bytes, bytes]] = []

    def __init__(self, key: bytes) -> None:
        self._inner = AESGCM(key)
        self._key_bytes = bytes(key)

    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes:
        pair = (self._key_bytes, bytes(nonce))
        if pair in RecordingAESGCM.used:
            RecordingAESGCM.repeats.append(pair)
        RecordingAESGCM.used.add(pair)
        return self._inner.encrypt(nonce, data, associated_data)

    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes:
        return self._inner.decrypt(nonce, data, associated_data)


ACTIONS = st.lists(st.sampled_from(["join", "leave", "output", "type", "resume", "tick", "remove"]), min_size=3, max_size=80)


@settings(max_examples=40, deadline=None)
@given(ACTIONS, st.integers(0, 2**32))
def test_no_key_nonce_pair_repeats(monkeypatch_actions: list[str], seed: int) -> None:
    rnd = random.Random(seed)
    saved = (keys.AESGCM, share.AESGCM, keys.REKEY_FRAMES)
    keys.AESGCM = share.AESGCM = RecordingAESGCM  # type: ignore[misc]
    keys.REKEY_FRAMES = 3  # force channel ratchets
    RecordingAESGCM.used, RecordingAESGCM.repeats = set(), []
    try:
        net = Net()
        net.join()
        share_rekey = share.REKEY_FRAMES
        share.REKEY_FRAMES = 5  # type: ignore[misc]
        try:
            for action in monkeypatch_actions:
                live = list(net.viewers.items())
                if action == "join" or not live:
                    net.join(net.link(rw=rnd.random() < 0.5))
                elif action == "leave":
                    net.leave(rnd.choice(live)[0])
                elif action == "output":
                    net.output(rnd.randbytes(rnd.randrange(1, 300)))
                elif action == "type":
                    conn, viewer = rnd.choice(live)
                    if viewer.can_write and viewer.state.name in ("SYNCING", "LIVE"):
                        viewer.send_input(b"x")
                        net.run()
                elif action == "resume":
                    net.router.disconnected(SHARER, net.now)
                    net.share.connection_lost()
                    net.run()
                    net.router.connected(SHARER, net.share.sid, "127.0.0.1", True, net.now)
                    net.share.connect()
                    net.run()
                elif action == "tick":
                    net.now += 1000  # past REKEY_SECONDS
                    net.output(b"t")
                else:
                    conn, viewer = rnd.choice(live)
                    if viewer.viewer_id in net.share._channels:
                        net.share.remove_viewer(viewer.viewer_id)
                        net.run()
        finally:
            share.REKEY_FRAMES = share_rekey  # type: ignore[misc]
    finally:
        keys.AESGCM, share.AESGCM, keys.REKEY_FRAMES = saved  # type: ignore[misc]
    assert RecordingAESGCM.repeats == []
    assert RecordingAESGCM.used
