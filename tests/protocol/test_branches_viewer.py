"""Edge branches of ViewerProtocol (docs/PROTOCOL.md §5.4, §6, §7.1)."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from termshare.protocol import events as ev
from termshare.protocol.envelope import encode_frame, make_header, parse_frame
from termshare.protocol.errors import InvalidState
from termshare.protocol.keys import group_signed_data, nonce
from termshare.protocol.link import parse_link
from termshare.protocol.messages import OutputMessage, RekeyMessage, SnapshotMessage, encode_message
from termshare.protocol.viewer import ViewerProtocol, ViewerState
from termshare.protocol.wire import SIG_SIZE, TAG_SIZE, FrameKind

from .harness import GROUP_KINDS, Net


def fresh_viewer(net: Net) -> ViewerProtocol:
    return ViewerProtocol(parse_link(net.link()), os.urandom)


def ready(vid: int = 3, present: bytes = b"\x01") -> bytes:
    return encode_frame(FrameKind.READY, present, vid)


def failed(viewer: ViewerProtocol, error: str) -> None:
    events = viewer.events_received()
    assert events[-1] == ev.ProtocolFailed(4400, error), events
    assert viewer.state is ViewerState.CLOSED and viewer.close_code == 4400
    assert viewer.failure is not None and type(viewer.failure).__name__ == error


def upstream_types(frames: list[bytes]) -> list[int]:
    assert all(parse_frame(f).kind is FrameKind.UPSTREAM for f in frames)
    return [len(f) - 18 - TAG_SIZE for f in frames]  # plaintext length identifies RESYNC (1) / PING (9)


def test_resync_and_ping_need_a_joined_viewer() -> None:
    net = Net()
    viewer = fresh_viewer(net)
    for call in (viewer.send_resync, lambda: viewer.send_ping(1), lambda: viewer.send_input(b"x")):
        with pytest.raises(InvalidState):
            call()
    viewer.receive_frame(ready())
    assert viewer.state is ViewerState.HANDSHAKE
    with pytest.raises(InvalidState):
        viewer.send_resync()
    with pytest.raises(InvalidState):
        viewer.send_ping(1)


def test_ping_is_answered_with_pong_and_resync_with_snapshot() -> None:
    net = Net()
    _, viewer = net.join()
    viewer.events_received()
    viewer.send_ping(0xDEADBEEF_00000001)
    net.run()
    assert viewer.events_received() == [ev.Pong(0xDEADBEEF_00000001)]
    net.screen = (40, 10, b"now")
    viewer.send_resync()
    net.run()
    assert viewer.events_received() == [ev.Snapshot(40, 10, b"now")]
    assert viewer.state is ViewerState.LIVE


def test_reject_addressed_to_another_viewer_is_a_frame_error_not_a_rejection() -> None:
    net = Net()
    viewer = fresh_viewer(net)
    viewer.receive_frame(encode_frame(FrameKind.REJECT, b"\x00", 3))  # before READY: no id yet
    failed(viewer, "FrameError")
    viewer = fresh_viewer(net)
    viewer.receive_frame(ready(3))
    viewer.receive_frame(encode_frame(FrameKind.REJECT, b"\x00", 4))
    failed(viewer, "FrameError")
    viewer.receive_frame(encode_frame(FrameKind.REJECT, b"\x00", 3))  # closed: ignored
    assert viewer.events_received() == [] and viewer.close_code == 4400


def test_second_ready_is_a_frame_error() -> None:
    net = Net()
    viewer = fresh_viewer(net)
    viewer.receive_frame(ready(3))
    assert viewer.events_received() == [ev.Ready(3, True)]
    viewer.receive_frame(ready(4))
    failed(viewer, "FrameError")
    assert viewer.viewer_id == 3


@pytest.mark.parametrize(("body", "vid"), [(b"\x01\x00", 3), (b"\x02", 3), (b"\x01", 0)], ids=["long", "flag", "id0"])
def test_malformed_ready_is_a_frame_error(body: bytes, vid: int) -> None:
    net = Net()
    viewer = fresh_viewer(net)
    viewer.receive_frame(encode_frame(FrameKind.READY, body, vid))
    failed(viewer, "FrameError")
    assert viewer.viewer_id is None and viewer.frames_to_send() == []


def test_welcome_outside_the_handshake_is_a_handshake_error() -> None:
    net = Net()
    viewer = fresh_viewer(net)
    viewer.receive_frame(encode_frame(FrameKind.WELCOME, bytes(181), 3))
    failed(viewer, "HandshakeError")
    _, joined = net.join()
    joined.receive_frame(encode_frame(FrameKind.WELCOME, bytes(181), joined.viewer_id or 0))
    failed(joined, "HandshakeError")


@pytest.mark.parametrize("where", ["ciphertext", "es-small-order"])
def test_welcome_that_cannot_be_opened_is_a_handshake_error(where: str) -> None:
    net = Net()

    def tamper(frame: bytes, to: int) -> list[bytes]:
        if frame[1] != FrameKind.WELCOME:
            return [frame]
        if where == "ciphertext":
            return [frame[:-1] + bytes([frame[-1] ^ 1])]
        return [frame[:18] + bytes(32) + frame[50:]]

    net.tamper = tamper
    conn, viewer = net.join()
    failed(viewer, "HandshakeError")
    assert viewer.can_write is False and viewer._send is None


def test_direct_before_ready_is_a_frame_error() -> None:
    net = Net()
    viewer = fresh_viewer(net)
    viewer.receive_frame(encode_frame(FrameKind.DIRECT, bytes(17), 3))
    failed(viewer, "FrameError")


def test_direct_and_group_during_the_handshake_are_ignored() -> None:
    """§7.1: they may belong to a channel whose WELCOME was lost in a sharer resume."""
    net = Net()
    viewer = fresh_viewer(net)
    viewer.receive_frame(ready(3))
    viewer.events_received()
    (hello,) = viewer.frames_to_send()
    viewer.receive_frame(encode_frame(FrameKind.DIRECT, bytes(17), 3))
    viewer.receive_frame(encode_frame(FrameKind.GROUP, bytes(81)))
    assert viewer.events_received() == [] and viewer.frames_to_send() == []
    assert viewer.state is ViewerState.HANDSHAKE and viewer.close_code is None
    net.share.receive_frame(hello)  # the handshake still completes afterwards
    for frame in net.share.frames_to_send():
        viewer.receive_frame(frame)
    assert viewer.state.name == "LIVE"


def test_tampered_direct_frame_is_a_decryption_error() -> None:
    net = Net()
    _, viewer = net.join()
    viewer.events_received()
    net.tamper = lambda f, to: [f[:-1] + bytes([f[-1] ^ 1])] if f[1] == FrameKind.DIRECT else [f]
    viewer.send_ping(7)
    net.run()
    failed(viewer, "DecryptionError")


def test_snapshot_may_name_the_pending_group_epoch() -> None:
    """The relay drops the first frame of a new group epoch: the viewer resyncs and the snapshot
    names the pending epoch, which it adopts."""
    net = Net()
    conn_a, a = net.join()
    conn_b, _ = net.join()
    a.events_received()
    dropped: list[bytes] = []

    def drop_first_of_epoch_1(frame: bytes, to: int) -> list[bytes]:
        h = parse_frame(frame).header
        if to == conn_a and h.kind in GROUP_KINDS and (h.epoch, h.seq) == (1, 0):
            dropped.append(frame)
            return []
        return [frame]

    net.tamper = drop_first_of_epoch_1
    net.leave(conn_b)  # rotation: REKEY to a, then VIEWERS(1) in (1, 0), which is dropped
    assert dropped and a._pending is not None and a._pending.epoch == 1
    net.output(b"lost")  # (1, 1): a gap in the new epoch
    assert a.events_received() == [ev.StreamBroken("epoch"), ev.Snapshot(80, 24, b"$ ")]
    assert a._group is not None and a._group.epoch == 1 and a._pending is None
    net.output(b"seen")
    assert a.events_received() == [ev.Output(b"seen")]


def test_frames_of_an_older_group_epoch_are_ignored() -> None:
    net = Net()
    conn_a, a = net.join()
    conn_b, _ = net.join()
    old: list[bytes] = []

    def record(frame: bytes, to: int) -> list[bytes]:
        if to == conn_a and frame[1] in GROUP_KINDS:
            old.append(frame)
        return [frame]

    net.tamper = record
    net.output(b"epoch 0")
    net.leave(conn_b)
    net.output(b"epoch 1")
    assert [parse_frame(f).header.epoch for f in old] == [0, 1, 1]
    a.events_received()
    a.frames_to_send()
    a.receive_frame(old[0])  # a relay replays the epoch-0 frame
    assert a.events_received() == [] and a.frames_to_send() == []
    assert a.state is ViewerState.LIVE


def misbehaving_sharer_direct(net: Net, vid: int, message: object) -> None:
    """A sharer bug: a validly encrypted DIRECT whose content breaks §5.4."""
    net.share._send_direct(vid, net.share._channels[vid], message)  # type: ignore[arg-type]
    net.run()


def test_snapshot_for_an_unknown_group_epoch_is_a_message_error() -> None:
    net = Net()
    _, viewer = net.join()
    viewer.events_received()
    misbehaving_sharer_direct(net, viewer.viewer_id or 0, SnapshotMessage(7, 0, 80, 24, b""))
    failed(viewer, "MessageError")


@pytest.mark.parametrize("epoch", [0, 2])
def test_rekey_that_skips_or_repeats_an_epoch_is_a_message_error(epoch: int) -> None:
    net = Net()
    _, viewer = net.join()
    viewer.events_received()
    misbehaving_sharer_direct(net, viewer.viewer_id or 0, RekeyMessage(epoch, bytes(32), 0))
    failed(viewer, "MessageError")


def test_signed_group_frame_under_a_key_the_viewer_lacks_breaks_the_stream() -> None:
    """Only the sharer can sign; if it signs a frame under a group key it never delivered, the
    viewer must not apply it: the stream breaks ("auth") and it resyncs."""
    net = Net()
    conn, viewer = net.join()
    viewer.events_received()
    share = net.share
    plaintext = encode_message(OutputMessage(b"unreadable"))
    header = make_header(FrameKind.GROUP, len(plaintext) + TAG_SIZE + SIG_SIZE, 0, share._group_epoch, share._group_seq)
    packed = header.pack()
    ciphertext = AESGCM(b"\x42" * 32).encrypt(nonce(header.epoch, header.seq), plaintext, share.sid.encode() + packed)
    signature = share._sign_private.sign(group_signed_data(share.sid, packed, ciphertext))
    viewer.receive_frame(packed + ciphertext + signature)
    assert viewer.events_received() == [ev.StreamBroken("auth")]
    assert viewer.state is ViewerState.SYNCING
    resync = viewer.frames_to_send()
    assert upstream_types(resync) == [1]  # a RESYNC
    net.output(b"ignored while syncing")
    assert viewer.events_received() == []
    for frame in resync:
        net.router.received(conn, frame, net.now)
    net.run()
    assert viewer.events_received() == [ev.Snapshot(80, 24, b"$ ")]
    net.output(b"after")
    assert viewer.events_received() == [ev.Output(b"after")]


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        (FrameKind.HELLO, bytes(49)),
        (FrameKind.UPSTREAM, bytes(17)),
        (FrameKind.REGISTER, bytes(32)),
        (FrameKind.END, b""),
        (FrameKind.VIEWER_LEFT, b""),
    ],
)
def test_kinds_meant_for_the_sharer_or_relay_are_frame_errors(kind: FrameKind, body: bytes) -> None:
    net = Net()
    _, viewer = net.join()
    viewer.events_received()
    viewer.receive_frame(encode_frame(kind, body, viewer.viewer_id or 0))
    failed(viewer, "FrameError")


def test_a_skipped_epoch_with_frames_forces_a_resync() -> None:
    """Two rotations while the relay drops every frame of the middle epoch: the viewer cannot
    switch to the newest key silently (the REKEY that replaced its pending key says the middle
    epoch had frames), so it resyncs instead of hiding the loss."""
    from termshare.protocol.envelope import parse_frame as parse

    from .harness import Net

    net = Net()
    conn, viewer = net.join()
    net.output(b"first")
    viewer.events_received()
    net.tamper = lambda f, to: [] if to == conn and f[1] in GROUP_KINDS and parse(f).header.epoch == 1 else [f]
    net.now += 1000  # past REKEY_SECONDS: rotate to epoch 1
    net.output(b"lost in epoch 1")
    net.now += 1000  # and again, to epoch 2
    net.output(b"epoch 2")
    events = viewer.events_received()
    assert ev.StreamBroken("gap") in events
    assert not any(isinstance(e, ev.Output) and b"lost" in e.data for e in events)
    assert viewer.state is ViewerState.LIVE  # resynced from the snapshot


def test_replacing_an_unused_empty_epoch_keeps_the_switch_point() -> None:
    """A second REKEY saying the replaced epoch carried no frames keeps the first REKEY's switch
    point: the viewer still switches exactly where the current epoch ended."""
    net = Net()
    _, viewer = net.join()
    viewer.events_received()
    misbehaving_sharer_direct(net, viewer.viewer_id or 0, RekeyMessage(1, bytes(32), 5))
    misbehaving_sharer_direct(net, viewer.viewer_id or 0, RekeyMessage(2, bytes(range(32)), 0))
    assert viewer.state is ViewerState.LIVE and viewer.events_received() == []
    assert viewer._pending is not None and viewer._pending.epoch == 2
    assert viewer._pending_from == 5



def test_skipped_from_the_relay_resyncs_a_live_viewer_at_once_and_is_ignored_otherwise() -> None:
    net = Net()
    _, viewer = net.join()
    viewer.events_received()
    viewer.receive_frame(encode_frame(FrameKind.SKIPPED))
    assert viewer.events_received() == [ev.StreamBroken("skipped")] and viewer.state is ViewerState.SYNCING
    assert upstream_types(viewer.frames_to_send()) == [1]  # RESYNC
    viewer.receive_frame(encode_frame(FrameKind.SKIPPED))  # while resyncing: nothing more
    assert viewer.events_received() == [] and viewer.frames_to_send() == []
    fresh = fresh_viewer(net)
    fresh.receive_frame(ready())
    fresh.frames_to_send()
    fresh.receive_frame(encode_frame(FrameKind.SKIPPED))  # during the handshake: nothing to resync
    assert fresh.state is ViewerState.HANDSHAKE and fresh.frames_to_send() == []


def test_a_resync_when_nothing_changed_is_answered_with_the_next_output() -> None:
    """Without this a viewer whose RESYNC found no news would wait in SYNCING for ever."""
    net = Net()
    _, viewer = net.join()
    viewer.events_received()
    viewer.receive_frame(encode_frame(FrameKind.SKIPPED))  # answered: the viewer count came after the join
    net.run()
    assert viewer.state is ViewerState.LIVE
    viewer.receive_frame(encode_frame(FrameKind.SKIPPED))  # a relay's hint (or a lie): nothing was sent since
    net.run()
    assert viewer.state is ViewerState.SYNCING  # the sharer had no news: no snapshot yet
    net.share.send_output(b"news")
    net.run()
    events = viewer.events_received()
    assert viewer.state is ViewerState.LIVE and any(isinstance(e, ev.Snapshot) for e in events), events
    net.share.send_output(b"more")
    net.run()
    assert viewer.events_received() == [ev.Output(b"more")]
    net.share.send_output(b"again")  # answered once: later output costs no snapshot
    assert [parse_frame(f).kind for f in net.share.frames_to_send()] == [FrameKind.GROUP_DIRECT]


def test_a_deferred_resync_of_a_viewer_that_left_is_dropped() -> None:
    net = Net()
    net.join()  # another viewer stays, so output is still sealed and sent
    conn, viewer = net.join()
    for _ in range(2):  # the first is answered (the viewer count came after the join), the second waits
        viewer.receive_frame(encode_frame(FrameKind.SKIPPED))
        net.run()
    assert viewer.state is ViewerState.SYNCING
    net.leave(conn)
    net.share.send_output(b"after")
    assert FrameKind.DIRECT not in [parse_frame(f).kind for f in net.share.frames_to_send()]
