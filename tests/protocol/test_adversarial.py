"""A malicious relay, a read-only viewer trying to type, a removed viewer trying to read."""

from __future__ import annotations

import random

import pytest

from termshare.protocol import events as ev
from termshare.protocol.envelope import encode_frame, parse_frame
from termshare.protocol.link import format_link, parse_link
from termshare.protocol.viewer import ViewerState
from termshare.protocol.wire import FrameKind, Role

from .harness import GROUP_KINDS, SHARER, Net, outputs, signed_output_only


def inputs(net: Net) -> list[bytes]:
    return [e.data for e in net.share_events if isinstance(e, ev.Input)]


def test_every_viewer_sees_every_byte_in_order() -> None:
    net = Net()
    viewers = [net.join()[1] for _ in range(5)]
    for v in viewers:
        v.events_received()
    chunks = [bytes([i]) * (i * 97 % 5000 + 1) for i in range(200)]
    for chunk in chunks:
        net.output(chunk)
    for v in viewers:
        assert outputs(v.events_received()) == b"".join(chunks)


@pytest.mark.parametrize("signed", [False, True], ids=["group-direct", "signed"])
def test_relay_that_drops_duplicates_and_reorders_never_shows_wrong_output(
        signed: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the relay does to output frames (GROUP and GROUP_DIRECT, interleaved: small chunks
    go direct, big ones signed), what a viewer shows is a subsequence of the real stream, in order,
    each chunk at most once, and every break is followed by a snapshot."""
    if signed:
        signed_output_only(monkeypatch)
    rnd = random.Random(7)
    net = Net()
    conn, viewer = net.join()
    held: list[bytes] = []

    def evil(frame: bytes, to: int) -> list[bytes]:
        if to != conn or parse_frame(frame).kind not in GROUP_KINDS:
            return [frame]
        roll = rnd.random()
        if roll < 0.1:
            return []  # drop
        if roll < 0.2:
            return [frame, frame]  # duplicate
        if roll < 0.3:
            held.append(frame)  # reorder: deliver later
            return []
        if roll < 0.35 and held:
            return [frame, held.pop(0)]
        if roll < 0.4:
            flipped = bytearray(frame)
            flipped[rnd.randrange(18, len(frame))] ^= 1 << rnd.randrange(8)
            return [bytes(flipped)]
        return [frame]

    net.tamper = evil
    sent = [f"<{i}>".encode() * (1 if i % 3 else 400) for i in range(400)]
    kinds: set[FrameKind] = set()
    for chunk in sent:
        net.share.send_output(chunk)
        frames = net.share.frames_to_send()
        kinds |= {parse_frame(f).kind for f in frames}
        for frame in frames:
            net.router.received(SHARER, frame, net.now)
        net.run()
    assert kinds >= ({FrameKind.GROUP} if signed else {FrameKind.GROUP, FrameKind.GROUP_DIRECT})
    events = viewer.events_received()
    shown = [e.data for e in events if isinstance(e, ev.Output)]
    indices = [sent.index(chunk) for chunk in shown]
    assert indices == sorted(set(indices)), "output shown twice or out of order"
    breaks = [e for e in events if isinstance(e, ev.StreamBroken)]
    assert breaks, "the tampering must have been noticed"
    assert viewer.state is not ViewerState.CLOSED and len(shown) > 50


def test_replayed_keystroke_is_never_typed_twice() -> None:
    net = Net()
    conn, viewer = net.join()
    captured: list[bytes] = []
    viewer.send_input(b"rm -rf build\r")
    for frame in viewer.frames_to_send():
        captured.append(frame)
        net.router.received(conn, frame, net.now)
    net.run()
    assert inputs(net) == [b"rm -rf build\r"]
    net.share.receive_frame(captured[0])  # the relay replays it
    net.run()
    assert inputs(net) == [b"rm -rf build\r"]
    assert net.closed.get(conn) == 4403  # the viewer was rejected, not the session


def test_read_only_viewer_cannot_type_even_with_relay_help() -> None:
    net = Net()
    conn, viewer = net.join(net.link(rw=False))
    assert not viewer.can_write
    # The modified client sends INPUT anyway on its (read-only) channel.
    viewer.can_write = True
    viewer.send_input(b"whoami\r")
    net.run()
    assert inputs(net) == []
    assert net.closed.get(conn) == 4403
    # The relay flips the HELLO role byte of a read-only viewer to read-write: the tag breaks.
    net.tamper = lambda f, to: [f[:18] + b"\x01" + f[19:]] if to == SHARER and f[1] == FrameKind.HELLO else [f]
    conn2, viewer2 = net.join(net.link(rw=False))
    assert any(isinstance(e, ev.Rejected) for e in viewer2.events_received())
    assert inputs(net) == []


def test_read_only_share_refuses_read_write_handshake() -> None:
    net = Net(read_only=True)
    assert net.share.read_write_link("http://x") is None
    secret_url = format_link("http://relay.test", net.share.sid, Role.READ_WRITE, net.share._rw_secret, net.share.key_fp)
    conn, viewer = net.join(secret_url)
    assert [type(e) for e in viewer.events_received()][-1] is ev.Rejected
    assert net.closed[conn] == 4403


def test_wrong_key_is_rejected_and_learns_nothing() -> None:
    net = Net()
    good = parse_link(net.link())
    bad_url = format_link("http://relay.test", good.sid, good.role, bytes(16), good.key_fp)
    conn, viewer = net.join(bad_url)
    assert parse_link(bad_url).secret != good.secret
    events = viewer.events_received()
    assert isinstance(events[-1], ev.Rejected) and events[-1].reason == 0
    net.output(b"secret output")
    assert viewer.state is ViewerState.CLOSED


def test_removed_viewer_cannot_read_after_rekey() -> None:
    net = Net()
    conn_a, a = net.join()
    conn_b, b = net.join()
    group_key_before = a._group
    net.share.remove_viewer(a.viewer_id or 0)
    net.run()
    assert any(isinstance(e, ev.Removed) for e in a.events_received())
    # The removed viewer kept its state; the relay (colluding) still feeds it new frames.
    frames: list[bytes] = []
    net.tamper = lambda f, to: (frames.append(f), [f])[1]
    net.output(b"after removal")
    assert outputs(b.events_received()) == b"after removal"
    group = [f for f in frames if f[1] in GROUP_KINDS]
    assert group and all(parse_frame(f).header.epoch > group_key_before.epoch for f in group)
    a.state = ViewerState.LIVE  # even a modified client that ignores REMOVED
    a.events_received()
    for f in group:
        a.receive_frame(f)
    assert outputs(a.events_received()) == b""


def test_injected_and_cross_session_frames_are_refused() -> None:
    net1, net2 = Net(), Net()
    _, v1 = net1.join()
    _, v2 = net2.join()
    v1.events_received()
    frames: list[bytes] = []
    net2.tamper = lambda f, to: (frames.append(f), [f])[1]
    net2.output(b"other session")
    for f in frames:
        v1.receive_frame(f)  # splice into session 1
    v1.receive_frame(encode_frame(FrameKind.GROUP, bytes(100), 0, 0, 1))  # pure injection
    assert outputs(v1.events_received()) == b""


def test_sharer_resume_keeps_channels_and_never_repeats_output() -> None:
    net = Net()
    conn, viewer = net.join()
    net.output(b"before ")
    net.router.disconnected(SHARER, net.now)
    net.share.connection_lost()
    net.run()
    net.output(b"while away ")  # not sent: nobody can get it
    net.router.connected(SHARER, net.share.sid, "127.0.0.1", True, net.now)
    net.share.connect()
    net.run()
    net.output(b"after")
    events = viewer.events_received()
    kinds = [type(e) for e in events]
    assert ev.SharerAway in kinds and ev.SharerBack in kinds
    assert outputs(events) == b"before after"
    assert kinds.count(ev.Snapshot) == 2  # join, and resume


def test_someone_else_cannot_claim_a_session() -> None:
    net = Net()
    net.router.connected(99, net.share.sid, "10.0.0.9", True, net.now)
    net.router.received(99, encode_frame(FrameKind.REGISTER, bytes(32)), net.now)
    assert any(getattr(a, "code", None) == 4409 for a in net.router.take_actions())
