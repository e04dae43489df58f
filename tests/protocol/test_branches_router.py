"""Edge branches of the relay's routing core (docs/PROTOCOL.md §4.3, §8), driven without I/O."""

from __future__ import annotations

import struct

from termshare.protocol.envelope import encode_frame, parse_frame
from termshare.protocol.router import Action, Close, Limits, Router, Send
from termshare.protocol.wire import FrameKind

SID = "abcdefghijklmnop"
TOKEN = bytes(range(32))
IP = "10.0.0.1"


def register(router: Router, conn: int, token: bytes = TOKEN, now: float = 0.0, ip: str = IP) -> list[Action]:
    router.connected(conn, SID, ip, True, now)
    router.received(conn, encode_frame(FrameKind.REGISTER, token), now)
    return list(router.take_actions())


def join(router: Router, conn: int, now: float = 0.0, ip: str = IP) -> int:
    router.connected(conn, SID, ip, False, now)
    actions = router.take_actions()
    assert len(actions) == 1 and isinstance(actions[0], Send) and actions[0].conn == conn
    return parse_frame(actions[0].data).header.viewer_id


def admit(router: Router, sharer: int, vid: int) -> None:
    router.received(sharer, encode_frame(FrameKind.WELCOME, bytes(32 + 133 + 16), vid), 0.0)
    router.take_actions()


def hello(vid: int) -> bytes:
    return encode_frame(FrameKind.HELLO, bytes(49), vid)


def upstream(vid: int) -> bytes:
    return encode_frame(FrameKind.UPSTREAM, bytes(17), vid)


def closes(actions: list[Action]) -> dict[int, int]:
    return {a.conn: a.code for a in actions if isinstance(a, Close)}


def sends(actions: list[Action]) -> list[tuple[int, FrameKind]]:
    return [(a.conn, parse_frame(a.data).kind) for a in actions if isinstance(a, Send)]


def ready_ids(actions: list[Action], conn: int) -> list[int]:
    (frame,) = [parse_frame(a.data) for a in actions if isinstance(a, Send) and a.conn == conn]
    assert frame.kind is FrameKind.READY
    (count,) = struct.unpack_from(">I", frame.body)
    return list(struct.unpack_from(f">{count}I", frame.body, 4))


def test_connections_per_address_are_capped_and_freed_on_disconnect() -> None:
    router = Router(Limits(max_per_ip=2))
    register(router, 1)
    join(router, 2)
    router.connected(3, SID, IP, False, 0.0)
    assert router.take_actions() == [Close(3, 4429, "too many connections from this address")]
    assert join(router, 4, ip="10.0.0.2") == 2  # another address is not affected
    router.disconnected(2, 0.0)
    router.take_actions()
    assert join(router, 5) == 3  # the slot came back


def test_frames_and_disconnects_of_unknown_connections_are_ignored() -> None:
    router = Router()
    register(router, 1)
    router.received(42, hello(1), 0.0)
    router.disconnected(42, 0.0)
    assert router.take_actions() == []
    router.connected(3, SID, IP, False, 0.0)
    router.take_actions()
    router.disconnected(3, 0.0)
    router.take_actions()
    router.received(3, hello(1), 0.0)  # a frame that raced with the disconnect
    assert router.take_actions() == []


def test_newer_sharer_connection_replaces_the_old_one() -> None:
    router = Router()
    register(router, 1)
    vid = join(router, 2)
    admit(router, 1, vid)
    actions = register(router, 3)
    assert closes(actions) == {1: 4409}
    assert (2, FrameKind.SHARER_BACK) in sends(actions)
    assert ready_ids(actions, 3) == [vid]
    # The old connection is superseded: its frames go nowhere, and its disconnect is not an absence.
    router.received(1, encode_frame(FrameKind.DIRECT, bytes(17), vid), 0.0)
    router.disconnected(1, 0.0)
    assert router.take_actions() == []
    assert router.sessions[SID].sharer == 3 and router.sessions[SID].away_since is None
    router.received(3, encode_frame(FrameKind.DIRECT, bytes(17), vid), 0.0)
    assert sends(router.take_actions()) == [(2, FrameKind.DIRECT)]


def test_group_frame_naming_a_viewer_closes_the_sharer() -> None:
    router = Router()
    register(router, 1)
    vid = join(router, 2)
    admit(router, 1, vid)
    router.received(1, encode_frame(FrameKind.GROUP, bytes(81), vid), 0.0)
    assert router.take_actions() == [Close(1, 4400, "GROUP frames carry viewer id 0")]


def test_direct_frame_for_a_departed_viewer_is_dropped_silently() -> None:
    router = Router()
    register(router, 1)
    vid = join(router, 2)
    router.disconnected(2, 0.0)
    assert sends(router.take_actions()) == [(1, FrameKind.VIEWER_LEFT)]
    for kind, body in ((FrameKind.DIRECT, bytes(17)), (FrameKind.WELCOME, bytes(181)), (FrameKind.REJECT, b"\x00")):
        router.received(1, encode_frame(kind, body, vid), 0.0)
    assert router.take_actions() == []
    assert router.sessions[SID].admitted == {}


def test_registered_sharer_may_not_send_viewer_or_relay_kinds() -> None:
    for frame in (hello(1), upstream(1), encode_frame(FrameKind.REGISTER, TOKEN), encode_frame(FrameKind.READY, b"\x00")):
        router = Router()
        register(router, 1)
        router.received(1, frame, 0.0)
        (action,) = router.take_actions()
        assert isinstance(action, Close) and action.conn == 1 and action.code == 4400
        assert action.reason == f"a sharer may not send {parse_frame(frame).kind.name}"


def test_session_limit_refuses_a_new_session_but_not_a_resume() -> None:
    router = Router(Limits(max_sessions=1))
    register(router, 1)
    router.connected(2, "ponmlkjihgfedcba", IP, True, 0.0)
    router.received(2, encode_frame(FrameKind.REGISTER, TOKEN), 0.0)
    assert router.take_actions() == [Close(2, 4429, "the relay is full: too many sessions")]
    assert list(router.sessions) == [SID]
    router.disconnected(1, 0.0)
    assert closes(register(router, 3)) == {}  # the owner of the existing session may come back


def test_end_closes_viewers_4410_and_the_sharer_1000_then_ignores_late_frames() -> None:
    router = Router()
    register(router, 1)
    a = join(router, 2)
    admit(router, 1, a)
    join(router, 3)
    router.received(1, encode_frame(FrameKind.END), 0.0)
    assert closes(router.take_actions()) == {2: 4410, 3: 4410, 1: 1000}
    assert SID not in router.sessions
    # Frames still in flight on connections the shell has not closed yet go nowhere.
    router.received(2, upstream(a), 0.0)
    router.received(3, hello(2), 0.0)
    router.received(1, encode_frame(FrameKind.GROUP, bytes(81)), 0.0)
    assert router.take_actions() == []


def test_upstream_before_welcome_closes_the_viewer() -> None:
    router = Router()
    register(router, 1)
    vid = join(router, 2)
    router.received(2, upstream(vid), 0.0)
    assert router.take_actions() == [Close(2, 4400, "UPSTREAM before the handshake finished")]


def test_viewer_frames_are_dropped_while_the_sharer_is_away() -> None:
    router = Router()
    register(router, 1)
    vid = join(router, 2)
    admit(router, 1, vid)
    other = join(router, 3)
    router.take_actions()
    router.disconnected(1, 5.0)
    assert sends(router.take_actions()) == [(2, FrameKind.SHARER_AWAY), (3, FrameKind.SHARER_AWAY)]
    router.received(2, upstream(vid), 5.0)
    router.received(3, hello(other), 5.0)
    assert router.take_actions() == []  # dropped, and neither viewer is closed


def test_viewer_leaving_while_the_sharer_is_away_is_reported_through_ready() -> None:
    router = Router()
    register(router, 1)
    a = join(router, 2)
    b = join(router, 3)
    router.disconnected(1, 0.0)
    router.take_actions()
    router.disconnected(3, 1.0)
    assert router.take_actions() == []  # nobody to tell VIEWER_LEFT
    actions = register(router, 4, now=2.0)
    assert ready_ids(actions, 4) == [a]
    assert b not in router.sessions[SID].viewers
    assert sends(actions) == [(2, FrameKind.SHARER_BACK), (4, FrameKind.READY)]


def test_session_expires_when_the_sharer_stays_away_for_the_grace_period() -> None:
    router = Router(Limits(resume_grace=120.0))
    register(router, 1)
    vid = join(router, 2)
    admit(router, 1, vid)
    router.disconnected(1, 10.0)
    router.take_actions()
    router.tick(129.9)
    assert router.take_actions() == []
    router.tick(130.0)
    assert router.take_actions() == [Close(2, 4410, "the sharer did not come back")]  # no sharer to close
    assert SID not in router.sessions
    router.connected(5, SID, IP, False, 131.0)
    assert closes(router.take_actions()) == {5: 4404}


def test_handshake_timeout_spares_admitted_and_recent_viewers_and_fires_once() -> None:
    router = Router(Limits(handshake_timeout=10.0))
    register(router, 1)
    a = join(router, 2, now=0.0)
    admit(router, 1, a)
    join(router, 3, now=5.0)
    router.tick(14.9)
    assert router.take_actions() == []  # a is admitted, the other viewer has 0.1 s left
    router.tick(15.0)
    assert router.take_actions() == [Close(3, 4408, "the sharer did not answer the handshake")]
    router.tick(100.0)
    assert router.take_actions() == []  # a is never timed out, the other is not closed twice


def test_stale_viewer_of_an_ended_session_does_not_disturb_a_new_session_with_the_same_id() -> None:
    router = Router()
    register(router, 1)
    old = join(router, 2)
    router.received(1, encode_frame(FrameKind.END), 0.0)
    router.take_actions()  # the shell has not closed connection 2 yet
    register(router, 3, token=bytes(32))  # the forgotten id is registered again
    new = join(router, 4)
    admit(router, 3, new)
    assert new == old == 1  # ids restart in the new session
    router.disconnected(2, 1.0)
    assert router.take_actions() == []  # no VIEWER_LEFT for the new session's viewer 1
    assert router.sessions[SID].viewers == {1: 4}
    router.received(3, encode_frame(FrameKind.DIRECT, bytes(17), new), 1.0)
    assert sends(router.take_actions()) == [(4, FrameKind.DIRECT)]


def test_oversized_frame_closes_4413_and_other_malformed_frames_4400() -> None:
    router = Router()
    register(router, 1)
    vid = join(router, 2)
    router.received(2, hello(vid) + bytes(1024 * 1024), 0.0)
    (action,) = router.take_actions()
    assert isinstance(action, Close) and (action.conn, action.code) == (2, 4413)
    router.received(1, encode_frame(FrameKind.GROUP, bytes(81))[:-1], 0.0)  # length field disagrees
    (action,) = router.take_actions()
    assert isinstance(action, Close) and (action.conn, action.code) == (1, 4400)


def test_malformed_session_id_and_full_session_are_refused() -> None:
    router = Router(Limits(max_viewers=1))
    router.connected(1, "too-short", IP, True, 0.0)
    router.connected(2, "abcdefghijklmno!", IP, False, 0.0)
    assert closes(router.take_actions()) == {1: 4400, 2: 4400}
    router.connected(3, SID, IP, False, 0.0)
    assert closes(router.take_actions()) == {3: 4404}
    register(router, 4)
    join(router, 5)
    router.connected(6, SID, IP, False, 0.0)
    assert router.take_actions() == [Close(6, 4429, "this session has as many viewers as the relay allows")]


def test_sharer_must_register_first() -> None:
    router = Router()
    router.connected(1, SID, IP, True, 0.0)
    router.received(1, encode_frame(FrameKind.END), 0.0)
    assert router.take_actions() == [Close(1, 4400, "a sharer must REGISTER first")]
    assert router.sessions == {}


def test_viewer_may_send_only_hello_and_upstream_with_its_own_id() -> None:
    router = Router()
    register(router, 1)
    vid = join(router, 2)
    router.received(2, encode_frame(FrameKind.END), 0.0)
    assert router.take_actions() == [Close(2, 4400, "a viewer may not send END")]
    router.received(2, hello(vid + 1), 0.0)
    assert router.take_actions() == [Close(2, 4400, "frame carries another viewer's id")]
    router.received(2, hello(vid), 0.0)
    assert sends(router.take_actions()) == [(1, FrameKind.HELLO)]


def test_disconnects_after_the_session_is_gone_free_their_address_slots() -> None:
    router = Router(Limits(max_per_ip=3))
    register(router, 1)
    join(router, 2)
    join(router, 3)
    router.disconnected(3, 0.0)  # the address still has two connections
    assert sends(router.take_actions()) == [(1, FrameKind.VIEWER_LEFT)]
    router.received(1, encode_frame(FrameKind.END), 0.0)
    router.take_actions()
    router.disconnected(2, 0.0)  # its session is gone: nobody to tell
    router.disconnected(1, 0.0)
    assert router.take_actions() == []
    register(router, 4)  # all three slots of the address are free again
    join(router, 5)
    join(router, 6)
    router.connected(7, SID, IP, False, 0.0)
    assert closes(router.take_actions()) == {7: 4429}


def test_stale_viewer_of_an_ended_session_cannot_speak_for_a_new_viewer_with_the_same_id() -> None:
    """After END the Close of a viewer is only queued; until the shell reports the disconnect, its
    frames still arrive. If the forgotten id was registered again meanwhile, the stale connection's
    UPSTREAM (viewer 1 of the old session) must not reach the new sharer as viewer 1's: the sharer
    would fail to open it and REJECT the innocent new viewer 1. `disconnected` already guards with
    `session.viewers.get(viewer_id) == conn`; `_from_viewer` does not."""
    router = Router()
    register(router, 1)
    old = join(router, 2)
    admit(router, 1, old)
    router.received(1, encode_frame(FrameKind.END), 0.0)
    router.take_actions()
    register(router, 3, token=bytes(32))
    new = join(router, 4)
    admit(router, 3, new)
    assert new == old
    router.received(2, upstream(old), 1.0)
    router.received(2, hello(old), 1.0)
    assert router.take_actions() == []


def test_idle_session_ends_when_no_frame_moves_for_the_idle_timeout() -> None:
    router = Router(Limits(idle_timeout=60.0))
    register(router, 1, now=0.0)
    vid = join(router, 2)
    admit(router, 1, vid)
    router.received(1, encode_frame(FrameKind.GROUP, bytes(81)), 30.0)  # the sharer spoke at t=30
    router.take_actions()
    router.received(2, upstream(vid), 50.0)  # and the viewer at t=50
    router.take_actions()
    router.tick(109.9)
    assert router.take_actions() == []
    router.tick(110.0)
    assert closes(router.take_actions()) == {2: 4410, 1: 4408}
    assert SID not in router.sessions


def test_sessions_never_go_idle_by_default() -> None:
    router = Router()
    register(router, 1)
    vid = join(router, 2)
    admit(router, 1, vid)
    router.tick(1e9)
    assert router.take_actions() == [] and SID in router.sessions
