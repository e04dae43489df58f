"""Edge branches of ShareProtocol (docs/PROTOCOL.md §3.1, §7.2, §8)."""

from __future__ import annotations

import os
import struct

import pytest

from termshare.protocol import events as ev
from termshare.protocol.envelope import encode_frame, make_header, parse_frame
from termshare.protocol.errors import InvalidState
from termshare.protocol.keys import SessionKeys, hello_tag
from termshare.protocol.link import parse_link
from termshare.protocol.share import LATE_ANSWERS, MAX_SNAPSHOT_DATA, ShareProtocol, ShareState
from termshare.protocol.viewer import ViewerProtocol, ViewerState
from termshare.protocol.wire import KEY_SIZE, TAG_SIZE, FrameKind, Role

from .harness import BASE, GROUP_KINDS, SHARER, Net


def new_share(screen: tuple[int, int, bytes] = (80, 24, b"$ ")) -> ShareProtocol:
    share = ShareProtocol(rng=os.urandom, clock=lambda: 0.0, screen=lambda: screen)
    share.connect()
    share.frames_to_send()
    share.receive_frame(ready([]))
    assert share.state is ShareState.LIVE
    share.events_received()
    return share


def ready(ids: list[int]) -> bytes:
    return encode_frame(FrameKind.READY, struct.pack(f">I{len(ids)}I", len(ids), *ids))


def hello_from(share: ShareProtocol, vid: int, rw: bool = True) -> tuple[ViewerProtocol, bytes]:
    url = share.read_write_link(BASE) if rw else share.read_only_link(BASE)
    assert url is not None
    viewer = ViewerProtocol(parse_link(url), os.urandom)
    viewer.receive_frame(encode_frame(FrameKind.READY, b"\x01", vid))
    (frame,) = viewer.frames_to_send()
    return viewer, frame


def kinds(frames: list[bytes]) -> list[tuple[FrameKind, int]]:
    return [(parse_frame(f).kind, parse_frame(f).header.viewer_id) for f in frames]


def reject_reasons(frames: list[bytes]) -> list[tuple[int, int]]:
    return [(parse_frame(f).header.viewer_id, parse_frame(f).body[0]) for f in frames if f[1] == FrameKind.REJECT]


def test_viewer_count_follows_joins_and_leaves() -> None:
    net = Net()
    assert net.share.viewer_count == 0
    a, _ = net.join()
    net.join()
    assert net.share.viewer_count == 2
    assert len(net.share.viewers) == 2
    net.leave(a)
    assert net.share.viewer_count == 1


def test_a_viewer_is_removed_only_while_the_relay_is_reachable() -> None:
    net = Net()
    net.join()
    (vid,) = net.share.viewers
    net.share.connection_lost()
    with pytest.raises(InvalidState, match="reconnecting"):
        net.share.remove_viewer(vid)
    assert list(net.share.viewers) == [vid]  # still there


def test_end_with_viewers_lingers_until_finish_then_refuses_connect_and_output() -> None:
    net = Net()
    net.join()
    net.share.end(3)
    assert [k for k, _ in kinds(net.share.frames_to_send())] == [FrameKind.GROUP]  # BYE; END waits
    assert net.share.state is ShareState.ENDING
    net.share.end(4)  # a second end is a no-op
    with pytest.raises(InvalidState):
        net.share.connect()
    net.share.send_output(b"x")  # nobody could use it now
    assert net.share.frames_to_send() == []
    net.share.finish()
    assert [k for k, _ in kinds(net.share.frames_to_send())] == [FrameKind.END]
    with pytest.raises(InvalidState):
        net.share.connect()
    with pytest.raises(InvalidState):
        net.share.send_output(b"x")
    with pytest.raises(InvalidState):
        net.share.send_resize(80, 24)
    net.share.end(5)
    net.share.finish()
    net.share.connection_lost()
    assert net.share.state is ShareState.ENDED
    assert net.share.frames_to_send() == []
    net.share.receive_frame(ready([]))
    assert net.share.events_received() == [] and net.share.state is ShareState.ENDED


def test_end_without_viewers_or_relay_sends_end_at_once() -> None:
    share = new_share()
    share.end(0)
    assert [k for k, _ in kinds(share.frames_to_send())] == [FrameKind.END]
    assert share.state is ShareState.ENDED
    net = Net()
    net.join()
    net.share.connection_lost()
    net.share.end(1)  # AWAY: no viewer could get a BYE now
    assert net.share.state is ShareState.ENDED
    assert [k for k, _ in kinds(net.share.frames_to_send())] == [FrameKind.END]


def test_ending_share_sends_end_when_the_last_viewer_has_left() -> None:
    net = Net()
    a, viewer_a = net.join()
    b, viewer_b = net.join()
    net.share.end(7)
    net.run()
    assert [e.exit_status for e in viewer_a.events_received() if isinstance(e, ev.Ended)] == [7]
    net.leave(a)
    assert net.share.state is ShareState.ENDING
    net.leave(b)
    assert net.share.state is ShareState.ENDED
    assert net.share.sid not in net.router.sessions  # END reached the relay


def test_ending_share_ends_when_its_relay_connection_drops() -> None:
    net = Net()
    net.join()
    net.share.end(0)
    net.share.connection_lost()
    assert net.share.state is ShareState.ENDED
    assert net.share.frames_to_send() == []


def test_viewer_that_missed_the_bye_gets_the_final_screen_and_the_bye_on_resync() -> None:
    net = Net()
    a, viewer_a = net.join()
    b, viewer_b = net.join()
    net.run()
    for v in (viewer_a, viewer_b):
        v.events_received()
    skipping = {b}
    net.tamper = lambda frame, conn: [] if conn in skipping and frame[1] in GROUP_KINDS else [frame]
    net.screen = (80, 24, b"final screen")
    net.output(b"last words")
    net.share.end(3)
    net.run()  # the relay skips the output and the BYE for b, which does not know it yet
    assert [type(e) for e in viewer_a.events_received()] == [ev.Output, ev.Ended]
    assert viewer_b.events_received() == []
    skipping.clear()
    net.deliver(b, encode_frame(FrameKind.SKIPPED))  # the relay's mark where the skipping began
    net.run()
    events = viewer_b.events_received()
    assert [type(e) for e in events] == [ev.StreamBroken, ev.Snapshot, ev.Ended]
    assert events[1].data == b"final screen" and events[2].exit_status == 3
    assert viewer_a.events_received() == []  # the BYE again is a replay to a: ignored
    assert net.share.state is ShareState.ENDING  # until both have left or the driver gives up


def test_ending_share_answers_a_few_resyncs_per_viewer_and_delivers_no_input() -> None:
    net = Net()
    conn, viewer = net.join()
    net.run()
    viewer.events_received()
    net.tamper = lambda frame, to: [] if frame[1] in GROUP_KINDS else [frame]  # every BYE is skipped
    net.share.end(0)
    net.run()
    for _ in range(LATE_ANSWERS):  # its BYE was skipped again: another RESYNC gets another answer
        net.deliver(conn, encode_frame(FrameKind.SKIPPED))
        net.run()
        assert [type(e) for e in viewer.events_received()] == [ev.StreamBroken, ev.Snapshot]
    net.deliver(conn, encode_frame(FrameKind.SKIPPED))  # a flood of RESYNCs gets no more
    net.run()
    assert [type(e) for e in viewer.events_received()] == [ev.StreamBroken]
    viewer.send_input(b"ls\r")
    net.run()
    assert not [e for e in net.share_events if isinstance(e, ev.Input)]
    assert net.share.state is ShareState.ENDING


def test_viewer_joining_an_ending_share_gets_the_final_screen_and_the_bye() -> None:
    net = Net()
    a, _ = net.join()
    net.share.end(6)
    net.run()  # a got the BYE but stays connected for now
    net.screen = (80, 24, b"changed after the end")  # not what a late joiner sees
    b, viewer_b = net.join()
    events = viewer_b.events_received()
    assert [type(e) for e in events] == [ev.Ready, ev.Welcomed, ev.Snapshot, ev.Ended]
    assert events[2].data == b"$ " and events[3].exit_status == 6
    net.leave(a)
    net.leave(b)
    assert net.share.state is ShareState.ENDED


def test_resync_waiting_at_the_end_is_answered_after_the_bye() -> None:
    net = Net()
    a, viewer_a = net.join()
    b, viewer_b = net.join()
    net.run()
    viewer_a.events_received()
    viewer_b.events_received()
    for _ in range(2):  # the second time nothing changed since its snapshot: remembered for later
        net.deliver(a, encode_frame(FrameKind.SKIPPED))
        net.run()
    assert [type(e) for e in viewer_a.events_received()] == [ev.StreamBroken, ev.Snapshot, ev.StreamBroken]
    net.share.end(9)
    net.run()
    events = viewer_a.events_received()
    assert [type(e) for e in events] == [ev.Snapshot, ev.Ended] and events[1].exit_status == 9
    assert [type(e) for e in viewer_b.events_received()] == [ev.Ended]


def test_frames_are_ignored_before_connect_and_while_away() -> None:
    share = ShareProtocol(rng=os.urandom, clock=lambda: 0.0, screen=lambda: (80, 24, b""))
    share.receive_frame(ready([]))
    assert share.state.name == "NEW"
    assert share.events_received() == [] and share.frames_to_send() == []
    share.connect()
    share.receive_frame(ready([]))
    share.connection_lost()
    assert share.state is ShareState.AWAY
    _, frame = hello_from(share, 1)
    share.receive_frame(frame)
    share.receive_frame(ready([]))
    assert share.state is ShareState.AWAY
    assert share.events_received() == [ev.Registered(False)] and share.frames_to_send() == []
    assert share.viewer_count == 0


def test_resync_all_snapshots_every_viewer_only_when_live() -> None:
    net = Net()
    _, a = net.join()
    _, b = net.join()
    for v in (a, b):
        v.events_received()
    net.screen = (100, 30, b"fresh")
    net.share.resync_all()
    net.run()
    for v in (a, b):
        assert v.events_received() == [ev.Snapshot(100, 30, b"fresh")]
    net.share.connection_lost()
    net.share.resync_all()
    assert net.share.frames_to_send() == []


def test_remove_unknown_viewer_is_invalid_state() -> None:
    share = new_share()
    with pytest.raises(InvalidState, match="no viewer 7"):
        share.remove_viewer(7)
    assert share.frames_to_send() == []


@pytest.mark.parametrize("body", [b"\x00", b"\x00\x00\x00", struct.pack(">I", 1), struct.pack(">II", 2, 1), struct.pack(">II", 0, 1)])
def test_malformed_ready_from_the_relay_fails_the_connection(body: bytes) -> None:
    share = ShareProtocol(rng=os.urandom, clock=lambda: 0.0, screen=lambda: (80, 24, b""))
    share.connect()
    share.receive_frame(encode_frame(FrameKind.READY, body))
    assert share.events_received() == [ev.ProtocolFailed(4400, "FrameError")]
    assert share.close_code == 4400 and share.state is ShareState.REGISTERING


def test_resume_erases_viewers_missing_from_ready_and_rotates_the_group_key() -> None:
    net = Net()
    conn_a, a = net.join()
    conn_b, b = net.join()
    vid_a, vid_b = a.viewer_id, b.viewer_id
    a.events_received()
    net.router.disconnected(SHARER, net.now)
    net.share.connection_lost()
    net.run()
    net.leave(conn_b)  # while the sharer is away: no VIEWER_LEFT reaches it
    net.share_events.clear()
    net.router.connected(SHARER, net.share.sid, "127.0.0.1", True, net.now)
    net.share.connect()
    net.run()
    assert net.share_events == [ev.Registered(True), ev.ViewerLeft(vid_b or 0)]
    assert net.share.viewer_count == 1
    events = a.events_received()
    assert ev.Snapshot(80, 24, b"$ ") in events and events[-1] == ev.Viewers(1)
    assert a._group is not None and a._group.epoch == 1  # B's key is no longer used
    net.output(b"only for a")
    assert a.events_received() == [ev.Output(b"only for a")]
    assert vid_a is not None


def test_hello_without_viewer_id_is_a_relay_fault() -> None:
    share = new_share()
    _, frame = hello_from(share, 1)
    forged = make_header(FrameKind.HELLO, 49, 0).pack() + frame[18:]
    share.receive_frame(forged)
    assert share.events_received() == [ev.ProtocolFailed(4400, "FrameError")]
    assert share.frames_to_send() == [] and share.viewer_count == 0


@pytest.mark.parametrize("role", [2, 0xFF])
def test_hello_with_unknown_role_is_rejected(role: int) -> None:
    net = Net()
    net.tamper = lambda f, to: [f[:18] + bytes([role]) + f[19:]] if to == SHARER and f[1] == FrameKind.HELLO else [f]
    conn, viewer = net.join()
    assert net.share_events == [ev.Registered(False), ev.ViewerRejected(1, 4)]
    assert viewer.events_received()[-1] == ev.Rejected(4)
    assert net.closed[conn] == 4403 and net.share.viewer_count == 0


def test_replayed_hello_is_rejected_and_erases_the_channel() -> None:
    net = Net()
    captured: list[bytes] = []

    def record(frame: bytes, to: int) -> list[bytes]:
        if frame[1] == FrameKind.HELLO:
            captured.append(frame)
        return [frame]

    net.tamper = record
    conn, viewer = net.join()
    assert viewer.state is ViewerState.LIVE and len(captured) == 1
    net.deliver(SHARER, captured[0])  # the relay replays the HELLO
    net.run()
    assert net.share_events[-1] == ev.ViewerRejected(1, 2)
    assert viewer.events_received()[-1] == ev.Rejected(2)
    assert net.closed[conn] == 4403 and net.share.viewer_count == 0


@pytest.mark.parametrize("point", [bytes(32), b"\x01" + bytes(31)], ids=["zero", "one"])
def test_hello_with_a_small_order_key_and_a_valid_tag_is_rejected(point: bytes) -> None:
    share = new_share()
    keys = SessionKeys.from_secret(share.sid, Role.READ_WRITE, share._rw_secret)
    psk = keys.psk(Role.READ_WRITE)
    assert psk is not None
    header = make_header(FrameKind.HELLO, 1 + KEY_SIZE + TAG_SIZE, 5)
    frame = header.pack() + b"\x01" + point + hello_tag(psk, share.sid, header.pack(), Role.READ_WRITE, point)
    share.receive_frame(frame)
    assert share.events_received() == [ev.ViewerRejected(5, 4)]
    assert reject_reasons(share.frames_to_send()) == [(5, 4)]
    assert share.viewer_count == 0


def test_second_hello_of_the_same_viewer_replaces_its_channel_without_a_viewers_broadcast() -> None:
    share = new_share()
    first, hello1 = hello_from(share, 4)
    share.receive_frame(hello1)
    assert [k for k, _ in kinds(share.frames_to_send())] == [FrameKind.WELCOME, FrameKind.DIRECT, FrameKind.GROUP]
    second, hello2 = hello_from(share, 4)  # the same connection handshakes again (§7.1 SHARER_BACK)
    share.receive_frame(hello2)
    frames = share.frames_to_send()
    assert kinds(frames) == [(FrameKind.WELCOME, 4), (FrameKind.DIRECT, 4)]  # no GROUP VIEWERS
    assert share.events_received() == [ev.ViewerJoined(4, True), ev.ViewerJoined(4, True)]
    assert share.viewer_count == 1
    for f in frames:
        second.receive_frame(f)
    assert second.state is ViewerState.LIVE  # the new channel is keyed to the new HELLO


def test_upstream_from_an_unknown_viewer_is_ignored() -> None:
    share = new_share()
    share.receive_frame(encode_frame(FrameKind.UPSTREAM, bytes(17), 9))
    assert share.frames_to_send() == [] and share.events_received() == []
    assert share.close_code is None


def test_snapshot_larger_than_a_frame_is_the_drivers_error() -> None:
    screen = (80, 24, b"")
    share = ShareProtocol(rng=os.urandom, clock=lambda: 0.0, screen=lambda: screen)
    share.connect()
    share.receive_frame(ready([]))
    _, frame = hello_from(share, 1)
    share.receive_frame(frame)
    share.frames_to_send()
    screen = (80, 24, bytes(MAX_SNAPSHOT_DATA))
    share.resync_all()  # the largest snapshot still fits in one frame
    (direct,) = share.frames_to_send()
    assert len(direct) <= 1024 * 1024
    screen = (80, 24, bytes(MAX_SNAPSHOT_DATA + 1))
    with pytest.raises(ValueError, match="exceeds"):
        share.resync_all()


def test_viewer_whose_welcome_was_lost_in_a_sharer_drop_rejoins_after_resume() -> None:
    """§8: "Viewers still in HANDSHAKE restart it." Here the sharer answered the HELLO, but its
    connection dropped before the WELCOME left (connection_lost() discards queued frames), so the
    sharer holds a channel the viewer never heard of. On resume the sharer sends that channel a
    SNAPSHOT (it counts as a surviving welcomed viewer); the viewer, still in HANDSHAKE, has just
    sent a fresh HELLO on SHARER_BACK and must end up joined, not closed."""
    net = Net()
    conn = 99
    viewer = ViewerProtocol(parse_link(net.link()), os.urandom)
    net.viewers[conn] = viewer
    net.router.connected(conn, net.share.sid, "127.0.0.1", False, net.now)
    for action in net.router.take_actions():  # READY to the viewer
        net.deliver(action.conn, action.data)  # type: ignore[union-attr]
    for frame in viewer.frames_to_send():  # its HELLO reaches the sharer ...
        net.router.received(conn, frame, net.now)
    for action in net.router.take_actions():
        net.deliver(action.conn, action.data)  # type: ignore[union-attr]
    assert net.share.viewer_count == 1
    net.share.connection_lost()  # ... whose connection drops before WELCOME is sent
    net.router.disconnected(SHARER, net.now)
    net.run()
    net.router.connected(SHARER, net.share.sid, "127.0.0.1", True, net.now)
    net.share.connect()
    net.run()
    events = viewer.events_received()
    assert not any(isinstance(e, ev.ProtocolFailed) for e in events), events
    assert viewer.state is ViewerState.LIVE
    net.output(b"hello")
    assert viewer.events_received()[-1] == ev.Output(b"hello")


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        (FrameKind.WELCOME, bytes(181)),
        (FrameKind.REJECT, b"\x00"),
        (FrameKind.GROUP, bytes(81)),
        (FrameKind.DIRECT, bytes(17)),
        (FrameKind.REGISTER, bytes(32)),
        (FrameKind.END, b""),
        (FrameKind.SHARER_AWAY, b""),
        (FrameKind.SHARER_BACK, b""),
    ],
)
def test_kinds_a_sharer_never_receives_are_relay_faults(kind: FrameKind, body: bytes) -> None:
    share = new_share()
    share.receive_frame(encode_frame(kind, body))
    assert share.events_received() == [ev.ProtocolFailed(4400, "FrameError")]
    assert share.close_code == 4400 and share.frames_to_send() == []
    assert share.state is ShareState.LIVE  # the driver closes; the session survives for a resume


def test_ready_once_live_is_a_relay_fault_and_a_new_connection_clears_it() -> None:
    share = new_share()
    share.receive_frame(ready([]))
    assert share.events_received() == [ev.ProtocolFailed(4400, "FrameError")]
    assert share.close_code == 4400
    share.connection_lost()
    share.connect()
    assert share.close_code is None
    share.receive_frame(ready([]))
    assert share.events_received() == [ev.Registered(True)] and share.state is ShareState.LIVE


def test_remembered_hellos_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from termshare.protocol import share as share_module

    from .harness import Net

    monkeypatch.setattr(share_module, "SEEN_HELLOS", 2)
    net = Net()
    for _ in range(3):
        net.join()
    assert len(net.share._seen_hellos) == 2
    assert net.share.viewer_count == 3
