"""ShareProtocol: the sharer's side of a session, sans I/O (docs/PROTOCOL.md §7.2).

Theory of operation
-------------------
The sharer owns the session: it picks the session id, the secrets, the owner token, the Ed25519
signing key and every group key. The driver calls `connect()` on each (re)connection to
`<base>/ws/share/<sid>`, feeds relay frames to `receive_frame()`, hands terminal output to
`send_output()`, and sends `frames_to_send()` in order over one websocket, so the relay sees
WELCOME, SNAPSHOT and GROUP frames in the order the snapshot's `next_seq` assumes.

    NEW --connect()--> REGISTERING --READY--> LIVE --connection_lost()--> AWAY --connect()--> ...
    LIVE --end()--> ENDING --last viewer left, finish()--> ENDED    (no viewer, or not LIVE: end() -> ENDED)

Per viewer: a valid HELLO creates a channel (WELCOME + SNAPSHOT); a bad channel frame REJECTs that
viewer and nothing else; VIEWER_LEFT erases its channel. Keys and counters survive reconnects, so
a resumed session never reuses a nonce (§8). Group keys rotate lazily, right before the next group
frame, when the frame or time bound is reached or a viewer has left or been removed (§3.3).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from . import events as ev
from .envelope import Frame, make_header, parse_frame
from .errors import FrameError, InvalidState, ProtocolError
from .keys import (
    RecvChain,
    Rng,
    SendChain,
    SessionKeys,
    channel_chain_keys,
    check_hello_tag,
    derive_ro_secret,
    group_direct_key,
    group_signed_data,
    new_ed25519,
    new_x25519,
    nonce,
    sign_key_fp,
    welcome_signed_data,
    x25519,
)
from .link import b64u_encode, format_link
from .messages import (
    ByeMessage,
    InputMessage,
    Message,
    OutputMessage,
    PingMessage,
    PongMessage,
    RekeyMessage,
    RemovedMessage,
    ResizeMessage,
    ResyncMessage,
    SnapshotMessage,
    ViewersMessage,
    WelcomeMessage,
    decode_message,
    encode_message,
    encode_welcome,
)
from .wire import (
    HEADER_SIZE,
    KEY_SIZE,
    MAX_FRAME,
    MAX_OUTPUT,
    OWNER_TOKEN_SIZE,
    REKEY_FRAMES,
    REKEY_SECONDS,
    SECRET_SIZE,
    SIG_SIZE,
    TAG_SIZE,
    FrameKind,
    RejectReason,
    Role,
)

Clock = Callable[[], float]
# Returns (cols, rows, data): bytes that repaint the current screen on a freshly reset terminal.
ScreenSource = Callable[[], tuple[int, int, bytes]]

_U32 = struct.Struct(">I")
# Replayed HELLOs are refused while their EV is remembered; the relay binds each HELLO to one
# connection (one handshake each), so older ones cannot be replayed to a live viewer id anyway.
SEEN_HELLOS = 65536
# Output this small, with this few viewers, goes as GROUP_DIRECT frames (§3.3.1): a keystroke's echo
# then costs no signature and no check of one, the largest parts of its path; a copy per viewer
# costs little at this size, and big output is signed once for everyone.
GROUP_DIRECT_OUTPUT = 1024  # bytes
GROUP_DIRECT_VIEWERS = 4
LATE_ANSWERS = 3  # RESYNCs answered per viewer after BYE: enough for a BYE skipped twice more, no flood
MAX_SNAPSHOT_DATA = MAX_FRAME - HEADER_SIZE - 1 - 12 - TAG_SIZE


class ShareState(Enum):
    NEW = "NEW"
    REGISTERING = "REGISTERING"
    LIVE = "LIVE"
    AWAY = "AWAY"
    ENDING = "ENDING"  # BYE sent; answering viewers that missed it until they have left (§7.2)
    ENDED = "ENDED"


@dataclass(slots=True)
class _Channel:
    can_write: bool
    send: SendChain
    recv: RecvChain
    group_direct: AESGCM  # the channel's key for GROUP_DIRECT frames
    snapshot_at: tuple[int, int] = (-1, -1)  # group (epoch, seq) of the last snapshot sent
    late_answers: int = 0  # RESYNCs answered after BYE


def new_session_id(rng: Rng) -> str:
    return b64u_encode(rng(12))


class ShareProtocol:
    def __init__(
        self, *, rng: Rng, clock: Clock, screen: ScreenSource, read_only: bool = False,
        sid: str | None = None, rw_secret: bytes | None = None,
    ) -> None:
        self._rng = rng
        self._clock = clock
        self._screen = screen
        self.read_only = read_only
        self.sid = sid if sid is not None else new_session_id(rng)
        self._rw_secret = rw_secret if rw_secret is not None else rng(SECRET_SIZE)
        self._ro_secret = derive_ro_secret(self._rw_secret, self.sid)
        self._keys = SessionKeys.from_secret(self.sid, Role.READ_WRITE, self._rw_secret)
        self._owner_token = rng(OWNER_TOKEN_SIZE)
        self._sign_private, self._sign_public = new_ed25519(rng)
        self.key_fp = sign_key_fp(self.sid, self._sign_public)
        self._group_epoch = 0
        self._group_seq = 0
        self._group_key = rng(KEY_SIZE)
        self._group_aead = AESGCM(self._group_key)
        self._group_started = clock()
        self._rotate_pending = False
        self._channels: dict[int, _Channel] = {}
        self.group_direct_viewers = GROUP_DIRECT_VIEWERS  # 0: sign all output (tests, vectors)
        self._seen_hellos: dict[bytes, None] = {}  # insertion-ordered, bounded by SEEN_HELLOS
        self._resync_wanted: set[int] = set()  # RESYNC came while nothing had changed: answer at the next output
        self._bye, self._bye_at = b"", (0, 0)  # after end(): the BYE frame and its (epoch, seq)
        self._frames: list[bytes] = []
        self._events: list[ev.ShareEvent] = []
        self._was_live = False
        self.state = ShareState.NEW
        self.close_code: int | None = None

    # -- links --------------------------------------------------------------------------------
    def read_write_link(self, base: str) -> str | None:
        if self.read_only:
            return None
        return format_link(base, self.sid, Role.READ_WRITE, self._rw_secret, self.key_fp)

    def read_only_link(self, base: str) -> str:
        return format_link(base, self.sid, Role.READ_ONLY, self._ro_secret, self.key_fp)

    @property
    def viewer_count(self) -> int:
        return len(self._channels)

    @property
    def viewers(self) -> dict[int, bool]:
        """The welcomed viewers: id -> whether its link may type."""
        return {vid: channel.can_write for vid, channel in self._channels.items()}

    # -- driver interface -----------------------------------------------------------------------
    def frames_to_send(self) -> list[bytes]:
        frames, self._frames = self._frames, []
        return frames

    def events_received(self) -> list[ev.ShareEvent]:
        events, self._events = self._events, []
        return events

    def connect(self) -> None:
        """Call on every new connection to the relay: queues REGISTER (§8)."""
        if self.state in (ShareState.ENDING, ShareState.ENDED):
            raise InvalidState("the session has ended")
        self._frames = []
        self.close_code = None
        self.state = ShareState.REGISTERING
        self._frames.append(_frame(FrameKind.REGISTER, self._owner_token))

    def connection_lost(self) -> None:
        if self.state is ShareState.ENDING:
            self.finish()  # nobody left to answer, and no relay to tell
        elif self.state is not ShareState.ENDED:
            self.state = ShareState.AWAY
        self._frames = []

    def receive_frame(self, data: bytes) -> None:
        if self.state not in (ShareState.REGISTERING, ShareState.LIVE, ShareState.ENDING):
            return
        try:
            frame = parse_frame(data)
            self._dispatch(frame)
        except ProtocolError as exc:
            # Only the relay's own frames can get here: viewer faults are handled per channel.
            self.close_code = exc.close_code
            self._events.append(ev.ProtocolFailed(exc.close_code, type(exc).__name__))
        if self.state is ShareState.ENDING and not self._channels:
            self.finish()

    def send_output(self, data: bytes) -> None:
        for start in range(0, len(data), MAX_OUTPUT):
            self._broadcast(OutputMessage(bytes(data[start : start + MAX_OUTPUT])))

    def send_resize(self, cols: int, rows: int) -> None:
        self._broadcast(ResizeMessage(cols, rows))

    def resync_all(self) -> None:
        """Send every viewer a SNAPSHOT: after the driver skipped output it could not send (§6.2)."""
        if self.state is ShareState.LIVE:
            for vid, channel in self._channels.items():
                self._send_snapshot(vid, channel)

    def remove_viewer(self, viewer_id: int) -> None:
        channel = self._channels.get(viewer_id)
        if channel is None:
            raise InvalidState(f"no viewer {viewer_id}")
        if self.state is not ShareState.LIVE:  # REMOVED and the key rotation must reach the relay now
            raise InvalidState("the share is reconnecting to the relay: try again in a moment")
        self._send_direct(viewer_id, channel, RemovedMessage())
        self._reject(viewer_id, RejectReason.REMOVED)

    def end(self, exit_status: int) -> None:
        """BYE to every viewer, then ENDING while viewers are connected: one that fell behind
        missed the BYE (the relay skipped it) and sends RESYNC when it catches up; it gets the
        final screen and the same BYE frame again (§7.2). END goes once the last viewer has left,
        or when the driver calls finish() (it waits no longer); with no viewer, at once."""
        if self.state in (ShareState.ENDING, ShareState.ENDED):
            return
        if self.state is not ShareState.LIVE or not self._channels:
            return self.finish()
        waiting, self._resync_wanted = self._resync_wanted, set()  # answered after the BYE, below
        self._broadcast(ByeMessage(exit_status))
        self._bye = self._frames[-1]
        self._bye_at = (self._group_epoch, self._group_seq - 1)
        final = self._screen()  # the terminal is gone: this is the screen every late viewer gets
        self._screen = lambda: final
        self.state = ShareState.ENDING
        for vid, channel in self._channels.items():
            if vid in waiting:
                self._answer_after_end(vid, channel)

    def finish(self) -> None:
        """END: the relay closes the viewers still connected (4410) and forgets the session."""
        if self.state is ShareState.ENDED:
            return
        self._frames.append(_frame(FrameKind.END))
        self.state = ShareState.ENDED
        self._channels.clear()

    def _answer_after_end(self, vid: int, channel: _Channel) -> None:
        # The snapshot continues at the BYE, which follows it again byte for byte: a replay that
        # every viewer which already applied it ignores (§6.2), the first one this viewer can use.
        channel.late_answers += 1
        self._send_snapshot(vid, channel, self._bye_at)
        self._frames.append(self._bye)

    # -- relay frames -------------------------------------------------------------------------
    def _dispatch(self, frame: Frame) -> None:
        kind = frame.kind
        if kind is FrameKind.UPSTREAM:
            self._on_upstream(frame)
        elif kind is FrameKind.HELLO:
            self._on_hello(frame)
        elif kind is FrameKind.VIEWER_LEFT:
            if self._channels.pop(frame.header.viewer_id, None) is not None:
                self._rotate_pending = True
                self._events.append(ev.ViewerLeft(frame.header.viewer_id))
                self._broadcast(ViewersMessage(len(self._channels)))
        elif kind is FrameKind.READY:
            self._on_ready(frame)
        else:
            raise FrameError(f"a sharer does not accept {kind.name} frames")

    def _on_ready(self, frame: Frame) -> None:
        if self.state is not ShareState.REGISTERING:
            raise FrameError("READY outside registration")
        body = frame.body
        (count,) = _U32.unpack_from(body) if len(body) >= 4 else (-1,)
        if count < 0 or len(body) != 4 + 4 * count:
            raise FrameError("malformed READY for a sharer")
        present = set(struct.unpack_from(f">{count}I", body, 4))
        self.state = ShareState.LIVE
        resumed, self._was_live = self._was_live, True
        self._events.append(ev.Registered(resumed))
        gone = [vid for vid in self._channels if vid not in present]
        for vid in gone:
            del self._channels[vid]
            self._rotate_pending = True
            self._events.append(ev.ViewerLeft(vid))
        # Survivors missed whatever was sent while we were away: the snapshot skips it (§8).
        for vid, channel in self._channels.items():
            self._send_snapshot(vid, channel)
        if gone:
            self._broadcast(ViewersMessage(len(self._channels)))

    def _on_hello(self, frame: Frame) -> None:
        vid = frame.header.viewer_id
        body = frame.body
        if vid == 0:
            raise FrameError("HELLO without a viewer id")
        if body[0] > 1:
            return self._reject(vid, RejectReason.PROTOCOL_ERROR)
        role = Role(body[0])
        ev_public, tag = body[1 : 1 + KEY_SIZE], body[1 + KEY_SIZE :]
        psk = self._keys.psk(role)
        assert psk is not None
        if not check_hello_tag(psk, self.sid, frame.header.pack(), role, ev_public, tag):
            return self._reject(vid, RejectReason.WRONG_KEY)
        if role is Role.READ_WRITE and self.read_only:
            return self._reject(vid, RejectReason.READ_ONLY_SHARE)
        if ev_public in self._seen_hellos:
            return self._reject(vid, RejectReason.REPLAYED_HELLO)
        es_private, es_public = new_x25519(self._rng)
        try:
            dh = x25519(es_private, ev_public)
        except ProtocolError:
            return self._reject(vid, RejectReason.PROTOCOL_ERROR)
        self._seen_hellos[ev_public] = None
        if len(self._seen_hellos) > SEEN_HELLOS:
            del self._seen_hellos[next(iter(self._seen_hellos))]
        ck_s2v, ck_v2s = channel_chain_keys(dh, psk, self.sid, vid, role, ev_public, es_public)
        channel = _Channel(role is Role.READ_WRITE, SendChain(ck_s2v, self.sid), RecvChain(ck_v2s, self.sid),
                           AESGCM(group_direct_key(ck_s2v, self.sid)))
        replaced = vid in self._channels
        self._channels[vid] = channel
        signature = self._sign_private.sign(welcome_signed_data(self.sid, vid, role, ev_public, es_public))
        welcome = encode_welcome(WelcomeMessage(channel.can_write, self._sign_public, self._group_epoch, self._group_key,
                                                signature))
        epoch, seq = channel.send.next_position()
        header = make_header(FrameKind.WELCOME, KEY_SIZE + len(welcome) + TAG_SIZE, vid, epoch, seq)
        self._frames.append(header.pack() + es_public + channel.send.seal(header, welcome))
        if self.state is ShareState.ENDING:  # joined (or re-joined after a resume) just as it ended
            self._answer_after_end(vid, channel)
        else:
            self._send_snapshot(vid, channel)
        self._events.append(ev.ViewerJoined(vid, channel.can_write))
        if not replaced:
            self._broadcast(ViewersMessage(len(self._channels)))

    def _on_upstream(self, frame: Frame) -> None:
        vid = frame.header.viewer_id
        channel = self._channels.get(vid)
        if channel is None:
            return  # late frame from a viewer we already dropped
        try:
            message = decode_message(FrameKind.UPSTREAM, channel.recv.open(frame.header, frame.body))
        except ProtocolError:
            return self._reject(vid, RejectReason.PROTOCOL_ERROR)
        if isinstance(message, InputMessage):
            if not channel.can_write:
                return self._reject(vid, RejectReason.PROTOCOL_ERROR)
            if self.state is ShareState.LIVE:  # after end() there is no terminal to type into
                self._events.append(ev.Input(vid, message.data))
        elif self.state is ShareState.ENDING and isinstance(message, ResyncMessage):
            if channel.late_answers < LATE_ANSWERS:  # again if its BYE was skipped again, but bounded
                self._answer_after_end(vid, channel)
        elif isinstance(message, ResyncMessage):
            # A snapshot costs a screen render and up to 1 MiB: answer a RESYNC only if the screen
            # may have changed since this viewer's last one (an honest viewer sends one RESYNC
            # per snapshot it needs; a flood gets nothing more).
            if channel.snapshot_at != (self._group_epoch, self._group_seq):
                self._send_snapshot(vid, channel)
            else:
                self._resync_wanted.add(vid)  # the viewer waits in SYNCING: answer once there is news
        else:
            assert isinstance(message, PingMessage)
            self._send_direct(vid, channel, PongMessage(message.token))

    # -- sending --------------------------------------------------------------------------------
    def _reject(self, vid: int, reason: RejectReason) -> None:
        if self._channels.pop(vid, None) is not None:
            self._rotate_pending = True
            self._broadcast(ViewersMessage(len(self._channels)))
        self._frames.append(_frame(FrameKind.REJECT, bytes((reason,)), vid))
        self._events.append(ev.ViewerRejected(vid, int(reason)))

    def _send_snapshot(self, vid: int, channel: _Channel, at: tuple[int, int] | None = None) -> None:
        """`at`: the (epoch, seq) the viewer continues from; the next GROUP frame by default."""
        cols, rows, data = self._screen()
        if len(data) > MAX_SNAPSHOT_DATA:
            raise ValueError(f"screen snapshot of {len(data)} bytes exceeds {MAX_SNAPSHOT_DATA}")
        epoch, seq = channel.snapshot_at = at or (self._group_epoch, self._group_seq)
        self._resync_wanted.discard(vid)
        self._send_direct(vid, channel, SnapshotMessage(epoch, seq, cols, rows, data))

    def _send_direct(self, vid: int, channel: _Channel, message: Message) -> None:
        plaintext = encode_message(message)
        epoch, seq = channel.send.next_position()
        header = make_header(FrameKind.DIRECT, len(plaintext) + TAG_SIZE, vid, epoch, seq)
        self._frames.append(header.pack() + channel.send.seal(header, plaintext))

    def _rotate_group(self) -> None:
        closing_count = self._group_seq  # lets viewers notice a tail dropped before the switch
        self._group_epoch += 1
        self._group_seq = 0
        self._group_key = self._rng(KEY_SIZE)
        self._group_aead = AESGCM(self._group_key)  # the previous key object is dropped here
        self._group_started = self._clock()
        self._rotate_pending = False
        for vid, channel in self._channels.items():
            self._send_direct(vid, channel, RekeyMessage(self._group_epoch, self._group_key, closing_count))

    def _broadcast(self, message: Message) -> None:
        if self.state is ShareState.ENDED:
            raise InvalidState("the session has ended")
        if not self._channels or self.state is not ShareState.LIVE:
            # Nobody could read it now; a joining or resuming viewer gets a snapshot instead, and
            # nothing piles up while the relay is away (§8).
            return
        if (
            self._rotate_pending
            or self._group_seq >= REKEY_FRAMES
            or self._clock() - self._group_started >= REKEY_SECONDS
        ):
            self._rotate_group()
        plaintext = encode_message(message)
        epoch, seq = self._group_epoch, self._group_seq
        aad = self.sid.encode()
        if (isinstance(message, OutputMessage) and len(message.data) <= GROUP_DIRECT_OUTPUT
                and len(self._channels) <= self.group_direct_viewers):
            for vid, channel in self._channels.items():
                packed = make_header(FrameKind.GROUP_DIRECT, len(plaintext) + TAG_SIZE, vid, epoch, seq).pack()
                self._frames.append(packed + channel.group_direct.encrypt(nonce(epoch, seq), plaintext, aad + packed))
        else:
            packed = make_header(FrameKind.GROUP, len(plaintext) + TAG_SIZE + SIG_SIZE, 0, epoch, seq).pack()
            ciphertext = self._group_aead.encrypt(nonce(epoch, seq), plaintext, aad + packed)
            signature = self._sign_private.sign(group_signed_data(self.sid, packed, ciphertext))
            self._frames.append(packed + ciphertext + signature)
        self._group_seq += 1
        if self._resync_wanted:  # usually empty: nothing per viewer on the output path
            for vid in list(self._resync_wanted):
                waiting = self._channels.get(vid)
                if waiting is None:
                    self._resync_wanted.discard(vid)  # left or removed meanwhile
                else:
                    self._send_snapshot(vid, waiting)


def _frame(kind: FrameKind, body: bytes = b"", viewer_id: int = 0) -> bytes:
    return make_header(kind, len(body), viewer_id).pack() + body


