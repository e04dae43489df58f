"""The routing core's operations side, without I/O: counters, log records, idle expiry."""

from __future__ import annotations

import json

from termshare.protocol.envelope import encode_frame, parse_frame
from termshare.protocol.router import Action, Close, Limits, Router, Send
from termshare.protocol.wire import CloseCode, FrameKind

SID = "abcdefghijklmnop"
TOKEN = bytes(range(32))
IP = "10.0.0.1"


def register(router: Router, conn: int, now: float = 0.0, token: bytes = TOKEN) -> None:
    router.connected(conn, SID, IP, True, now)
    router.received(conn, encode_frame(FrameKind.REGISTER, token), now)
    router.take_actions()


def join(router: Router, conn: int, now: float = 0.0) -> int:
    router.connected(conn, SID, IP, False, now)
    (ready,) = router.take_actions()
    assert isinstance(ready, Send)
    return parse_frame(ready.data).header.viewer_id


def admit(router: Router, sharer: int, vid: int, now: float = 0.0) -> None:
    router.received(sharer, encode_frame(FrameKind.WELCOME, bytes(32 + 133 + 16), vid), now)
    router.take_actions()


def closes(actions: list[Action]) -> dict[int, tuple[int, str]]:
    return {a.conn: (a.code, a.reason) for a in actions if isinstance(a, Close)}


def test_idle_sessions_end_viewers_4410_and_the_sharer_4408() -> None:
    router = Router(Limits(idle_timeout=60))
    register(router, 1, now=0)
    vid = join(router, 2, now=0)
    admit(router, 1, vid, now=10)  # a frame from the sharer: activity at 10
    router.received(2, encode_frame(FrameKind.UPSTREAM, bytes(17), vid), 40)  # from the viewer: activity at 40
    router.take_actions()
    router.tick(99.9)
    assert router.take_actions() == [] and SID in router.sessions
    router.tick(100.0)
    assert closes(router.take_actions()) == {2: (CloseCode.SESSION_ENDED, "idle timeout"), 1: (CloseCode.TIMEOUT, "idle timeout")}
    assert SID not in router.sessions
    assert router.stats.sessions_ended == {"idle": 1}
    (ended,) = [r for r in router.take_logs() if r.event == "session_ended"]
    assert ended.fields["cause"] == "idle" and ended.fields["age_seconds"] == 100.0
    assert ended.fields["viewer_frames"] == 1 and ended.fields["frames"] == 1


def test_idle_expiry_is_off_by_default_and_a_resume_counts_as_activity() -> None:
    router = Router()
    register(router, 1)
    router.tick(10_000)
    assert SID in router.sessions
    router = Router(Limits(idle_timeout=30, resume_grace=1000))
    register(router, 1, now=0)
    router.disconnected(1, 20)
    register(router, 3, now=25)  # resumed: activity at 25
    router.tick(54.9)
    assert SID in router.sessions
    router.tick(55)
    assert SID not in router.sessions and closes(router.take_actions()) == {3: (CloseCode.TIMEOUT, "idle timeout")}


def test_an_idle_session_whose_sharer_is_away_ends_without_closing_a_sharer() -> None:
    router = Router(Limits(idle_timeout=5, resume_grace=1000))
    register(router, 1)
    vid = join(router, 2)
    assert vid == 1
    router.disconnected(1, 1)
    router.take_actions()
    router.tick(5)
    assert closes(router.take_actions()) == {2: (CloseCode.SESSION_ENDED, "idle timeout")}


def test_counters_follow_a_session() -> None:
    router = Router()
    register(router, 1)
    v1, v2 = join(router, 2), join(router, 3)
    admit(router, 1, v1)
    admit(router, 1, v2)
    group = encode_frame(FrameKind.GROUP, bytes(100))
    router.received(1, group, 1)
    router.received(2, encode_frame(FrameKind.UPSTREAM, bytes(17), v1), 1)
    router.take_actions()
    st = router.stats
    assert (st.sessions_registered, st.sessions_resumed, st.viewers_joined) == (1, 0, 2)
    assert st.frames_from_sharers == 3  # two WELCOME, one GROUP
    assert st.frames_to_viewers == 4  # two WELCOME, the GROUP twice
    assert st.bytes_to_viewers == 2 * encode_frame(FrameKind.WELCOME, bytes(181), 1).__len__() + 2 * len(group)
    assert (st.frames_from_viewers, st.bytes_from_viewers) == (1, len(encode_frame(FrameKind.UPSTREAM, bytes(17), 1)))
    router.disconnected(1, 2)
    register(router, 4, now=3)
    assert st.sessions_resumed == 1
    router.received(4, encode_frame(FrameKind.END), 4)
    router.take_actions()
    assert st.sessions_ended == {"ended": 1}
    assert st.closes == {CloseCode.SESSION_ENDED: 2, CloseCode.NORMAL: 1}


def test_refusals_are_counted_by_code_and_logged_without_a_malformed_id() -> None:
    router = Router(Limits(max_viewers=1))
    pasted = "w.SECRETSECRETSECRET"  # someone pasted a secret where the id goes: never logged
    router.connected(9, pasted, IP, False, 0)
    router.connected(8, SID, IP, False, 0)  # no such session
    register(router, 1)
    join(router, 2)
    router.connected(3, SID, IP, False, 0)  # full
    router.received(2, encode_frame(FrameKind.GROUP, bytes(81)), 0)  # a viewer may not send GROUP
    router.take_actions()
    assert router.stats.closes == {CloseCode.BAD_FRAME: 2, CloseCode.UNKNOWN_SESSION: 1, CloseCode.LIMIT: 1}
    logs = router.take_logs()
    assert router.take_logs() == []
    text = json.dumps([(r.event, r.fields) for r in logs])
    assert "SECRET" not in text
    events = [(r.event, r.fields.get("code")) for r in logs]
    assert events == [("refused", 4400), ("refused", 4404), ("session_registered", None), ("viewer_joined", None),
                      ("refused", 4429), ("closed", 4400)]
    assert logs[0].fields["sid"] is None and logs[1].fields["sid"] == SID


def test_departures_and_handshake_timeouts_are_logged() -> None:
    router = Router(Limits(handshake_timeout=5))
    register(router, 1)
    join(router, 2)
    vid = join(router, 3)
    admit(router, 1, vid)
    router.tick(5)
    router.disconnected(3, 6)
    router.disconnected(1, 7)
    router.take_actions()
    logs = [(r.event, r.fields) for r in router.take_logs()]
    assert ("closed", {"role": "viewer", "sid": SID, "viewer": 1, "code": 4408, "reason": "handshake timeout"}) in logs
    assert ("viewer_left", {"sid": SID, "viewer": 2, "viewers": 1}) in logs
    assert ("sharer_away", {"sid": SID, "viewers": 1}) in logs


def test_evict_closes_every_client_1013_and_forgets_the_session() -> None:
    router = Router()
    register(router, 1)
    join(router, 2)
    router.evict("no-such-session0", "moved")  # nothing to evict: no action
    assert router.take_actions() == []
    router.evict(SID, "moved")
    assert closes(router.take_actions()) == {2: (CloseCode.TRY_AGAIN, "moved"), 1: (CloseCode.TRY_AGAIN, "moved")}
    assert SID not in router.sessions and router.stats.sessions_ended == {}  # moved, not ended
    assert [r.event for r in router.take_logs()][-1] == "session_moved"
    router.received(1, encode_frame(FrameKind.GROUP, bytes(96)), 1.0)  # the evicted sharer's late frame is ignored
    assert router.take_actions() == []


def test_evict_of_a_session_whose_sharer_is_away_closes_its_viewers() -> None:
    router = Router()
    register(router, 1)
    join(router, 2)
    router.disconnected(1, 0.0)
    router.take_actions()
    router.evict(SID, "moved")
    assert closes(router.take_actions()) == {2: (CloseCode.TRY_AGAIN, "moved")}
