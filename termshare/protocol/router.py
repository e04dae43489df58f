"""The relay's routing core, sans I/O (docs/PROTOCOL.md §4.3, §8).

Theory of operation
-------------------
The relay is blind by construction: this module sees envelopes only and imports nothing that
holds a key (tests/test_layers.py checks it). The I/O shell (termshare.relay) gives every
websocket an opaque connection id, reports connects, frames and disconnects, calls `tick(now)`
about once a second, and carries out the actions queued in `actions` in order: Send (with a
`droppable` flag for GROUP and GROUP_DIRECT frames, which a slow viewer may skip because it
resyncs from the gap) and Close.

    sharer: connected --REGISTER--> owns session --disconnect--> away (RESUME_GRACE) --REGISTER--> owns
            --END--> session forgotten, viewers closed 4410
            --no frame either way for Limits.idle_timeout (if set)--> forgotten, viewers 4410, sharer 4408
    viewer: connected (READY with its id) --WELCOME forwarded--> admitted (receives GROUP, GROUP_DIRECT)

For operations the Router also keeps plain counters (`stats`, a RouterStats) and a queue of log
records (`logs`: LogRecord, metadata only: session ids, viewer ids, close codes, counts and sizes,
never a frame body) that the shell turns into metrics and log lines.
"""

from __future__ import annotations

import hmac
import struct
from dataclasses import dataclass, field
from typing import Final

from .envelope import Header, encode_frame, parse_header
from .errors import FrameError
from .link import is_session_id
from .wire import HANDSHAKE_TIMEOUT, RESUME_GRACE, CloseCode, FrameKind

_REJECT_TEXT: Final = {
    0: "wrong key: the sharer did not accept this link",
    1: "this share is read-only: use the read-only link",
    2: "replayed handshake",
    3: "removed by the sharer",
    4: "protocol error",
}


@dataclass(frozen=True, slots=True)
class Limits:
    max_sessions: int = 10_000
    max_viewers: int = 500  # per session
    max_per_ip: int = 200  # open websockets per client address
    resume_grace: float = RESUME_GRACE  # seconds
    handshake_timeout: float = HANDSHAKE_TIMEOUT  # seconds
    idle_timeout: float = 0.0  # seconds without a frame in either direction before a session ends; 0 = never


@dataclass(frozen=True, slots=True)
class Send:
    conn: int
    data: bytes
    droppable: bool = False


@dataclass(frozen=True, slots=True)
class Close:
    conn: int
    code: int
    reason: str


Action = Send | Close


@dataclass(frozen=True, slots=True)
class LogRecord:
    """Something an operator may want in the relay's log: metadata only, never frame contents."""

    event: str
    fields: dict[str, str | int | float | None]


@dataclass(slots=True)
class RouterStats:
    """Monotonic counters since the Router was made (the shell exports them as metrics)."""

    sessions_registered: int = 0
    sessions_resumed: int = 0
    sessions_ended: dict[str, int] = field(default_factory=dict)  # cause -> count
    viewers_joined: int = 0
    frames_from_sharers: int = 0  # frames a sharer sent that the relay routed
    bytes_from_sharers: int = 0
    frames_to_viewers: int = 0  # copies queued to viewers (GROUP fans out to every admitted viewer)
    bytes_to_viewers: int = 0
    frames_from_viewers: int = 0  # HELLO/UPSTREAM forwarded to the sharer
    bytes_from_viewers: int = 0
    closes: dict[int, int] = field(default_factory=dict)  # close code -> connections the relay closed with it


@dataclass(slots=True)
class _Session:
    sid: str
    owner_token: bytes
    sharer: int | None
    created: float
    away_since: float | None = None
    next_viewer_id: int = 1
    viewers: dict[int, int] = field(default_factory=dict)  # viewer id -> conn
    admitted: dict[int, int] = field(default_factory=dict)  # subset of viewers that got WELCOME
    joined_at: dict[int, float] = field(default_factory=dict)  # viewer id -> time of READY
    frames: int = 0
    bytes: int = 0
    last_activity: float = 0.0
    viewer_frames: int = 0
    viewer_bytes: int = 0


@dataclass(slots=True)
class _Conn:
    sid: str
    ip: str
    is_sharer: bool
    viewer_id: int = 0
    registered: bool = False
    hellos: int = 1  # handshakes this viewer may still start: one, and one more per SHARER_BACK


class Router:
    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.sessions: dict[str, _Session] = {}
        self.actions: list[Action] = []
        self._conns: dict[int, _Conn] = {}
        self._per_ip: dict[str, int] = {}
        self.stats = RouterStats()
        self.logs: list[LogRecord] = []

    def take_actions(self) -> list[Action]:
        actions, self.actions = self.actions, []
        return actions

    def take_logs(self) -> list[LogRecord]:
        logs, self.logs = self.logs, []
        return logs

    def _log(self, event: str, **fields: str | int | float | None) -> None:
        self.logs.append(LogRecord(event, fields))

    def _close(self, conn: int, code: int, reason: str) -> None:
        self.actions.append(Close(conn, code, reason))
        self.stats.closes[code] = self.stats.closes.get(code, 0) + 1

    # -- connections ----------------------------------------------------------------------------
    def connected(self, conn: int, sid: str, ip: str, is_sharer: bool, now: float) -> None:
        role = "sharer" if is_sharer else "viewer"
        if not is_session_id(sid):  # never logged: a malformed id may be anything, even a pasted secret
            return self._refuse(conn, CloseCode.BAD_FRAME, "malformed session id", role, None, ip)
        if self._per_ip.get(ip, 0) >= self.limits.max_per_ip:
            return self._refuse(conn, CloseCode.LIMIT, "too many connections from this address", role, sid, ip)
        state = _Conn(sid, ip, is_sharer)
        if not is_sharer:
            session = self.sessions.get(sid)
            if session is None:
                return self._refuse(conn, CloseCode.UNKNOWN_SESSION, "no such session (ended, or a mistyped link)",
                                    role, sid, ip)
            if len(session.viewers) >= self.limits.max_viewers:
                return self._refuse(conn, CloseCode.LIMIT, "this session has as many viewers as the relay allows",
                                    role, sid, ip)
            state.viewer_id = session.next_viewer_id
            session.next_viewer_id += 1
            session.viewers[state.viewer_id] = conn
            session.joined_at[state.viewer_id] = now
            present = b"\x01" if session.sharer is not None else b"\x00"
            self.actions.append(Send(conn, encode_frame(FrameKind.READY, present, state.viewer_id)))
            self.stats.viewers_joined += 1
            self._log("viewer_joined", sid=sid, viewer=state.viewer_id, viewers=len(session.viewers))
        self._conns[conn] = state
        self._per_ip[ip] = self._per_ip.get(ip, 0) + 1

    def disconnected(self, conn: int, now: float) -> None:
        state = self._conns.pop(conn, None)
        if state is None:
            return
        self._per_ip[state.ip] -= 1
        if not self._per_ip[state.ip]:
            del self._per_ip[state.ip]
        session = self.sessions.get(state.sid)
        if session is None:
            return
        if state.is_sharer:
            if session.sharer == conn:
                session.sharer = None
                session.away_since = now
                self._log("sharer_away", sid=session.sid, viewers=len(session.viewers))
                for vconn in session.viewers.values():
                    self.actions.append(Send(vconn, encode_frame(FrameKind.SHARER_AWAY)))
        elif session.viewers.get(state.viewer_id) == conn:
            del session.viewers[state.viewer_id]
            session.admitted.pop(state.viewer_id, None)
            session.joined_at.pop(state.viewer_id, None)
            self._log("viewer_left", sid=session.sid, viewer=state.viewer_id, viewers=len(session.viewers))
            if session.sharer is not None:
                self.actions.append(Send(session.sharer, encode_frame(FrameKind.VIEWER_LEFT, viewer_id=state.viewer_id)))

    def tick(self, now: float) -> None:
        """Expire sessions whose sharer stayed away or that went idle, and viewers stuck in the handshake."""
        idle = self.limits.idle_timeout
        for session in list(self.sessions.values()):
            if session.away_since is not None and now - session.away_since >= self.limits.resume_grace:
                self._end(session, "the sharer did not come back", now, "grace_expired")
                continue
            if idle > 0 and now - session.last_activity >= idle:
                self._end(session, "idle timeout", now, "idle", sharer_code=CloseCode.TIMEOUT)
                continue
            for vid, joined in list(session.joined_at.items()):
                if vid not in session.admitted and now - joined >= self.limits.handshake_timeout:
                    session.joined_at.pop(vid)
                    self._close(session.viewers[vid], CloseCode.TIMEOUT, "the sharer did not answer the handshake")
                    self._log("closed", role="viewer", sid=session.sid, viewer=vid, code=CloseCode.TIMEOUT,
                              reason="handshake timeout")

    # -- frames -----------------------------------------------------------------------------------
    def received(self, conn: int, data: bytes, now: float) -> None:
        state = self._conns.get(conn)
        if state is None:
            return
        try:
            header = parse_header(data)
        except FrameError as exc:
            code = CloseCode.TOO_LARGE if "MAX_FRAME" in str(exc) else CloseCode.BAD_FRAME
            return self._drop_conn(conn, code, str(exc))
        if state.is_sharer:
            self._from_sharer(conn, state, header, data, now)
        else:
            self._from_viewer(conn, state, header, data, now)

    def _from_sharer(self, conn: int, state: _Conn, header: Header, data: bytes, now: float) -> None:
        kind = header.kind
        if not state.registered:
            if kind is not FrameKind.REGISTER:
                return self._drop_conn(conn, CloseCode.BAD_FRAME, "a sharer must REGISTER first")
            return self._register(conn, state, data[-32:], now)
        session = self.sessions.get(state.sid)
        if session is None or session.sharer != conn:
            return  # superseded by a newer connection of the same owner
        session.frames += 1
        session.bytes += len(data)
        session.last_activity = now
        stats = self.stats
        stats.frames_from_sharers += 1
        stats.bytes_from_sharers += len(data)
        if kind is FrameKind.GROUP:
            if header.viewer_id != 0:
                return self._drop_conn(conn, CloseCode.BAD_FRAME, "GROUP frames carry viewer id 0")
            for admitted in session.admitted.values():
                self.actions.append(Send(admitted, data, droppable=True))
            stats.frames_to_viewers += len(session.admitted)
            stats.bytes_to_viewers += len(session.admitted) * len(data)
        elif kind is FrameKind.GROUP_DIRECT:
            vconn = session.admitted.get(header.viewer_id)
            if vconn is None:
                return  # the viewer just left
            self.actions.append(Send(vconn, data, droppable=True))
            stats.frames_to_viewers += 1
            stats.bytes_to_viewers += len(data)
        elif kind is FrameKind.DIRECT or kind is FrameKind.WELCOME or kind is FrameKind.REJECT:
            vconn = session.viewers.get(header.viewer_id)
            if vconn is None:
                return  # the viewer just left
            self.actions.append(Send(vconn, data))
            stats.frames_to_viewers += 1
            stats.bytes_to_viewers += len(data)
            if kind is FrameKind.WELCOME:
                session.admitted[header.viewer_id] = vconn
            elif kind is FrameKind.REJECT:
                reason = _REJECT_TEXT.get(data[-1], "rejected by the sharer")
                self._close(vconn, CloseCode.REJECTED, reason)
        elif kind is FrameKind.END:
            self._end(session, "the sharer ended the session", now, "ended")
        else:
            self._drop_conn(conn, CloseCode.BAD_FRAME, f"a sharer may not send {kind.name}")

    def _register(self, conn: int, state: _Conn, token: bytes, now: float) -> None:
        session = self.sessions.get(state.sid)
        if session is None:
            if len(self.sessions) >= self.limits.max_sessions:
                return self._drop_conn(conn, CloseCode.LIMIT, "the relay is full: too many sessions")
            session = self.sessions[state.sid] = _Session(state.sid, token, conn, now, last_activity=now)
            self.stats.sessions_registered += 1
            self._log("session_registered", sid=state.sid, sessions=len(self.sessions))
        elif not hmac.compare_digest(session.owner_token, token):
            return self._drop_conn(conn, CloseCode.SESSION_TAKEN, "this session id belongs to another sharer")
        else:
            if session.sharer is not None and session.sharer != conn:
                old = session.sharer
                self._close(old, CloseCode.SESSION_TAKEN, "replaced by a newer connection of the sharer")
            away = 0.0 if session.away_since is None else now - session.away_since
            session.sharer = conn
            session.away_since = None
            session.last_activity = now
            self.stats.sessions_resumed += 1
            self._log("session_resumed", sid=state.sid, away_seconds=round(away, 3), viewers=len(session.viewers))
            for vid, vconn in session.viewers.items():
                self.actions.append(Send(vconn, encode_frame(FrameKind.SHARER_BACK)))
                if vid not in session.admitted and vconn in self._conns:
                    self._conns[vconn].hellos = 1  # its HELLO may have been lost while the sharer was away
        state.registered = True
        ids = list(session.viewers)
        body = struct.pack(f">I{len(ids)}I", len(ids), *ids)
        self.actions.append(Send(conn, encode_frame(FrameKind.READY, body)))

    def _from_viewer(self, conn: int, state: _Conn, header: Header, data: bytes, now: float) -> None:
        kind = header.kind
        if kind is not FrameKind.HELLO and kind is not FrameKind.UPSTREAM:
            return self._drop_conn(conn, CloseCode.BAD_FRAME, f"a viewer may not send {kind.name}")
        if header.viewer_id != state.viewer_id:
            return self._drop_conn(conn, CloseCode.BAD_FRAME, "frame carries another viewer's id")
        session = self.sessions.get(state.sid)
        if session is None or session.viewers.get(state.viewer_id) != conn:
            return  # a closing connection of an ended session must not speak for a newer viewer
        if kind is FrameKind.UPSTREAM and state.viewer_id not in session.admitted:
            return self._drop_conn(conn, CloseCode.BAD_FRAME, "UPSTREAM before the handshake finished")
        if kind is FrameKind.HELLO:
            # Each HELLO costs the sharer a DH and a snapshot: one per connection (§4.3).
            if state.viewer_id in session.admitted or state.hellos <= 0:
                return self._drop_conn(conn, CloseCode.BAD_FRAME, "one handshake per connection")
            state.hellos -= 1
        session.last_activity = now
        session.viewer_frames += 1
        session.viewer_bytes += len(data)
        if session.sharer is not None:
            # Droppable: viewers must never be able to fill the sharer's queue and get it closed.
            # A dropped UPSTREAM frame breaks that viewer's channel (§6.1), and only that one.
            self.actions.append(Send(session.sharer, data, droppable=True))
            self.stats.frames_from_viewers += 1
            self.stats.bytes_from_viewers += len(data)

    def evict(self, sid: str, reason: str) -> None:
        """Forget a session that now lives elsewhere (scale-out): close its clients 1013 so they reconnect there."""
        session = self.sessions.pop(sid, None)
        if session is None:
            return
        for vconn in session.viewers.values():
            self._close(vconn, CloseCode.TRY_AGAIN, reason)
        if session.sharer is not None:
            self._close(session.sharer, CloseCode.TRY_AGAIN, reason)
        self._log("session_moved", sid=sid, viewers=len(session.viewers))

    # -- endings ------------------------------------------------------------------------------------
    def _end(self, session: _Session, reason: str, now: float, cause: str, sharer_code: int = CloseCode.NORMAL) -> None:
        del self.sessions[session.sid]
        for vconn in session.viewers.values():
            self._close(vconn, CloseCode.SESSION_ENDED, reason)
        if session.sharer is not None:
            self._close(session.sharer, sharer_code, reason)
        ended = self.stats.sessions_ended
        ended[cause] = ended.get(cause, 0) + 1
        self._log("session_ended", sid=session.sid, cause=cause, age_seconds=round(now - session.created, 3),
                  viewers=len(session.viewers), frames=session.frames, bytes=session.bytes,
                  viewer_frames=session.viewer_frames, viewer_bytes=session.viewer_bytes)

    def _refuse(self, conn: int, code: int, reason: str, role: str, sid: str | None, ip: str) -> None:
        self._close(conn, code, reason)
        self._log("refused", role=role, sid=sid, ip=ip, code=code, reason=reason)

    def _drop_conn(self, conn: int, code: int, reason: str) -> None:
        self._close(conn, code, reason)
        state = self._conns[conn]  # every caller holds a live connection
        role = "sharer" if state.is_sharer else "viewer"
        self._log("closed", role=role, sid=state.sid, viewer=state.viewer_id or None, code=code, reason=reason)
