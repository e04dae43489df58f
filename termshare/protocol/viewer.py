"""ViewerProtocol: the viewer's side of a session, sans I/O (docs/PROTOCOL.md §7.1).

Theory of operation
-------------------
The driver opens a websocket to `<base>/ws/view/<sid>`, feeds every binary message to
`receive_frame()`, sends what `frames_to_send()` returns, and acts on `events_received()`.

    CONNECTING --READY--> HANDSHAKE --WELCOME--> SYNCING --SNAPSHOT--> LIVE
                                                   ^                     |
                                                   +--- gap / bad GROUP -+   (sends RESYNC)
    BYE -> ENDED;   REJECT, REMOVED, bad channel frame -> CLOSED

Peer input never raises: a bad channel frame or a malformed relay frame moves to CLOSED with
`close_code` set and a ProtocolFailed event; the driver closes and may reconnect with a new
ViewerProtocol (a fresh handshake, so no key or nonce is reused). A bad GROUP frame only breaks
the stream: it is never applied, and the next SNAPSHOT resynchronises (§6.2).
"""

from __future__ import annotations

from enum import Enum

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from . import events as ev
from .envelope import Frame, Header, frame_with, make_header, parse_header
from .errors import FrameError, HandshakeError, InvalidState, MessageError, ProtocolError
from .keys import (
    GroupKey,
    RecvChain,
    Rng,
    SendChain,
    SessionKeys,
    channel_chain_keys,
    group_direct_key,
    group_signed_data,
    hello_tag,
    load_sign_key,
    new_x25519,
    open_group,
    sign_key_fp,
    verify_signature,
    welcome_signed_data,
    x25519,
)
from .link import Link
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
    decode_message,
    decode_welcome,
    encode_message,
)
from .wire import HEADER_SIZE, KEY_SIZE, MAX_INPUT, SIG_SIZE, TAG_SIZE, CloseCode, FrameKind, Role


class ViewerState(Enum):
    CONNECTING = "CONNECTING"
    HANDSHAKE = "HANDSHAKE"
    SYNCING = "SYNCING"
    LIVE = "LIVE"
    ENDED = "ENDED"
    CLOSED = "CLOSED"


_JOINED = (ViewerState.SYNCING, ViewerState.LIVE)


class ViewerProtocol:
    def __init__(self, link: Link, rng: Rng) -> None:
        self.sid = link.sid
        self.role = link.role
        self._key_fp = link.key_fp
        self._keys = SessionKeys.from_secret(link.sid, link.role, link.secret)
        self._rng = rng
        self.state = ViewerState.CONNECTING
        self.viewer_id: int | None = None
        self.can_write = False
        self.close_code: int | None = None
        self.failure: ProtocolError | None = None
        self._frames: list[bytes] = []
        self._events: list[ev.ViewerEvent] = []
        self._ev_private: X25519PrivateKey | None = None
        self._ev_public = b""
        self._send: SendChain | None = None
        self._recv: RecvChain | None = None
        self._sign_key: Ed25519PublicKey | None = None
        self._group: GroupKey | None = None
        self._group_direct: AESGCM | None = None  # this channel's key for GROUP_DIRECT frames (§3.3.1)
        self._pending: GroupKey | None = None
        self._pending_from = -1  # next_seq at which the current epoch must end to switch to _pending
        self._next_seq = 0

    # -- driver interface -------------------------------------------------------------------
    def frames_to_send(self) -> list[bytes]:
        frames, self._frames = self._frames, []
        return frames

    def events_received(self) -> list[ev.ViewerEvent]:
        events, self._events = self._events, []
        return events

    def receive_frame(self, data: bytes) -> None:
        if self.state in (ViewerState.ENDED, ViewerState.CLOSED):
            return
        try:
            header = parse_header(data)
            if header.kind is FrameKind.GROUP:
                # Terminal output, the bulk of the traffic: read in place, where a Frame would
                # copy the body out of the message and the ciphertext out of the body.
                self._on_group(header, memoryview(data))
            elif header.kind is FrameKind.GROUP_DIRECT:
                self._on_group_direct(header, memoryview(data))
            else:
                self._dispatch(frame_with(header, data))
        except ProtocolError as exc:
            self._fail(exc)

    def send_input(self, data: bytes) -> None:
        if self.state not in _JOINED or not self.can_write:
            raise InvalidState("this link cannot type (read-only, or not joined yet)")
        for start in range(0, len(data), MAX_INPUT):
            self._send_upstream(InputMessage(bytes(data[start : start + MAX_INPUT])))

    def send_resync(self) -> None:
        if self.state not in _JOINED:
            raise InvalidState("not joined yet")
        self._send_upstream(ResyncMessage())

    def send_ping(self, token: int) -> None:
        if self.state not in _JOINED:
            raise InvalidState("not joined yet")
        self._send_upstream(PingMessage(token))

    # -- frames -----------------------------------------------------------------------------
    def _dispatch(self, frame: Frame) -> None:
        kind = frame.kind
        if kind is FrameKind.DIRECT:
            self._on_direct(frame)
        elif kind is FrameKind.READY:
            self._on_ready(frame)
        elif kind is FrameKind.WELCOME:
            self._on_welcome(frame)
        elif kind is FrameKind.REJECT:
            self._check_recipient(frame.header)
            self._finish(ViewerState.CLOSED, CloseCode.REJECTED)
            self._events.append(ev.Rejected(frame.body[0]))
        elif kind is FrameKind.SHARER_AWAY:
            self._events.append(ev.SharerAway())
        elif kind is FrameKind.SHARER_BACK:
            self._events.append(ev.SharerBack())
            if self.state is ViewerState.HANDSHAKE:
                self._send_hello()  # the first HELLO may have been lost while the sharer was away
        elif kind is FrameKind.SKIPPED:
            if self.state is ViewerState.LIVE:
                self._broken("skipped")  # the relay dropped output for us: do not wait for the next frame
        else:
            raise FrameError(f"a viewer does not accept {kind.name} frames")

    def _check_recipient(self, header: Header) -> None:
        if self.viewer_id is None or header.viewer_id != self.viewer_id:
            raise FrameError(f"{header.kind.name} addressed to viewer {header.viewer_id}, not to us")

    def _on_ready(self, frame: Frame) -> None:
        if self.state is not ViewerState.CONNECTING:
            raise FrameError("READY after the session was joined")
        if len(frame.body) != 1 or frame.body[0] > 1 or frame.header.viewer_id == 0:
            raise FrameError("malformed READY for a viewer")
        self.viewer_id = frame.header.viewer_id
        self.state = ViewerState.HANDSHAKE
        self._events.append(ev.Ready(self.viewer_id, bool(frame.body[0])))
        self._send_hello()

    def _send_hello(self) -> None:
        assert self.viewer_id is not None
        self._ev_private, self._ev_public = new_x25519(self._rng)
        psk = self._keys.psk(self.role)
        assert psk is not None
        header = make_header(FrameKind.HELLO, 1 + KEY_SIZE + TAG_SIZE, self.viewer_id)
        tag = hello_tag(psk, self.sid, header.pack(), self.role, self._ev_public)
        self._frames.append(header.pack() + bytes((self.role,)) + self._ev_public + tag)

    def _on_welcome(self, frame: Frame) -> None:
        if self.state is not ViewerState.HANDSHAKE:
            raise HandshakeError("WELCOME outside the handshake")
        self._check_recipient(frame.header)
        assert self._ev_private is not None and self.viewer_id is not None
        es_public, ciphertext = frame.body[:KEY_SIZE], frame.body[KEY_SIZE:]
        psk = self._keys.psk(self.role)
        assert psk is not None
        dh = x25519(self._ev_private, es_public)
        ck_s2v, ck_v2s = channel_chain_keys(dh, psk, self.sid, self.viewer_id, self.role, self._ev_public, es_public)
        recv = RecvChain(ck_s2v, self.sid)
        try:
            welcome = decode_welcome(recv.open(frame.header, ciphertext))
        except ProtocolError as exc:
            raise HandshakeError(f"WELCOME could not be opened: {exc}") from None
        if sign_key_fp(self.sid, welcome.sign_key) != self._key_fp:
            # Anyone holding this link's secret can complete the handshake; only the sharer holds
            # the signing key whose fingerprint the link carries (§2.3, §3.3).
            raise HandshakeError("the sharer's signing key does not match the link")
        sign_key = load_sign_key(welcome.sign_key)
        if not verify_signature(sign_key, welcome.signature,
                                welcome_signed_data(self.sid, self.viewer_id, self.role, self._ev_public, es_public)):
            # Its public key is no secret: whoever holds the link's secret could answer our HELLO
            # with it and an ES of their own, and hold our channel's keys (§3.1 step 4).
            raise HandshakeError("the sharer's WELCOME is not signed by its key")
        self._ev_private = None  # ephemeral secret: erase as soon as the channel exists
        self._recv, self._send = recv, SendChain(ck_v2s, self.sid)
        self._group_direct = AESGCM(group_direct_key(ck_s2v, self.sid))
        self._sign_key = sign_key
        self._group = GroupKey(welcome.group_epoch, welcome.group_key)
        self.can_write = welcome.can_write and self.role is Role.READ_WRITE
        self.state = ViewerState.SYNCING
        self._events.append(ev.Welcomed(self.can_write))

    def _on_direct(self, frame: Frame) -> None:
        if self.state is ViewerState.HANDSHAKE:
            # After a sharer resume, a snapshot may be addressed to a channel whose WELCOME was
            # lost; our fresh HELLO replaces that channel, so the frame is for keys we never had.
            return
        if self.state not in _JOINED or self._recv is None:
            raise FrameError("DIRECT frame before WELCOME")
        self._check_recipient(frame.header)
        message = decode_message(FrameKind.DIRECT, self._recv.open(frame.header, frame.body))
        if isinstance(message, SnapshotMessage):
            self._on_snapshot(message)
        elif isinstance(message, RekeyMessage):
            self._on_rekey(message)
        elif isinstance(message, RemovedMessage):
            self._finish(ViewerState.CLOSED, CloseCode.REJECTED)
            self._events.append(ev.Removed())
        else:
            assert isinstance(message, PongMessage)
            self._events.append(ev.Pong(message.token))

    def _on_snapshot(self, snap: SnapshotMessage) -> None:
        assert self._group is not None
        if self._pending is not None and snap.group_epoch == self._pending.epoch:
            self._group, self._pending = self._pending, None
        elif snap.group_epoch != self._group.epoch:
            raise MessageError(f"SNAPSHOT for group epoch {snap.group_epoch}, we hold {self._group.epoch}")
        self._next_seq = snap.next_seq
        self.state = ViewerState.LIVE
        self._events.append(ev.Snapshot(snap.cols, snap.rows, snap.data))

    def _on_rekey(self, rekey: RekeyMessage) -> None:
        assert self._group is not None
        latest = self._pending.epoch if self._pending is not None else self._group.epoch
        if rekey.group_epoch != latest + 1:
            raise MessageError(f"REKEY to group epoch {rekey.group_epoch}, expected {latest + 1}")
        if self._pending is None:
            self._pending_from = rekey.closing_count
        elif rekey.closing_count:
            self._pending_from = -1  # frames of the skipped epoch exist that we cannot get: resync
        # A newer REKEY replaces an unused pending key (§5.4).
        self._pending = GroupKey(rekey.group_epoch, rekey.group_key)

    def _on_group(self, header: Header, data: memoryview) -> None:
        key = self._group_position(header)
        if key is None:
            return
        assert self._sign_key is not None
        ciphertext, signature = data[HEADER_SIZE:-SIG_SIZE], data[-SIG_SIZE:]
        if not verify_signature(self._sign_key, signature, group_signed_data(self.sid, data[:HEADER_SIZE], ciphertext)):
            return self._broken("auth")
        self._open_group(header, key, key.aead, ciphertext)

    def _on_group_direct(self, header: Header, data: memoryview) -> None:
        if self.state is not ViewerState.LIVE:
            return  # as for GROUP frames (§6.2)
        self._check_recipient(header)
        key = self._group_position(header)
        if key is not None:
            assert self._group_direct is not None
            self._open_group(header, key, self._group_direct, data[HEADER_SIZE:])

    def _group_position(self, header: Header) -> GroupKey | None:
        """The group key of a GROUP or GROUP_DIRECT frame's position if it is the exact next one;
        None if the frame is to be ignored, or broke the stream (§6.2)."""
        if self.state is not ViewerState.LIVE:
            return None  # not yet synced, or resyncing: the SNAPSHOT will say where to continue
        assert self._group is not None
        if header.epoch == self._group.epoch:
            if header.seq < self._next_seq:
                return None  # already applied or older than our snapshot
            if header.seq == self._next_seq:
                return self._group
        elif self._pending is not None and header.epoch == self._pending.epoch and header.seq == 0:
            if self._next_seq == self._pending_from:
                return self._pending
            # otherwise the end of the old epoch was dropped (§5.4): a gap
        elif header.epoch < self._group.epoch:
            return None
        else:
            self._broken("epoch")
            return None
        self._broken("gap")
        return None

    def _open_group(self, header: Header, key: GroupKey, aead: AESGCM, ciphertext: memoryview) -> None:
        """Open and apply the frame at `key`'s position: sealed under `aead`, the group key itself
        for GROUP frames, the channel's group direct key for GROUP_DIRECT frames."""
        try:
            plaintext = open_group(aead, self.sid, header, ciphertext)
        except ProtocolError:
            return self._broken("auth")
        # Authentic from here on: a malformed message is the sharer's bug, fatal for the channel.
        message = decode_message(FrameKind.GROUP, plaintext)
        if key is self._pending:
            self._group, self._pending = key, None  # the old group key is dropped here (§3.3)
        self._next_seq = header.seq + 1
        self._apply_group(message)

    def _apply_group(self, message: Message) -> None:
        if isinstance(message, OutputMessage):
            self._events.append(ev.Output(message.data))
        elif isinstance(message, ResizeMessage):
            self._events.append(ev.Resize(message.cols, message.rows))
        elif isinstance(message, ViewersMessage):
            self._events.append(ev.Viewers(message.count))
        else:
            assert isinstance(message, ByeMessage)
            self._finish(ViewerState.ENDED, CloseCode.NORMAL)
            self._events.append(ev.Ended(message.exit_status))

    def _finish(self, state: ViewerState, close_code: int) -> None:
        """The end of this connection: no frame is read after it, so its keys are let go at once
        rather than with the object."""
        self.state, self.close_code = state, close_code
        self._send = self._recv = None
        self._group = self._pending = None
        self._group_direct = None
        self._ev_private = None

    def _broken(self, reason: str) -> None:
        self.state = ViewerState.SYNCING
        self._events.append(ev.StreamBroken(reason))
        self._send_upstream(ResyncMessage())

    def _send_upstream(self, message: Message) -> None:
        assert self._send is not None and self.viewer_id is not None
        plaintext = encode_message(message)
        epoch, seq = self._send.next_position()
        header = make_header(FrameKind.UPSTREAM, len(plaintext) + TAG_SIZE, self.viewer_id, epoch, seq)
        self._frames.append(header.pack() + self._send.seal(header, plaintext))

    def _fail(self, exc: ProtocolError) -> None:
        self._finish(ViewerState.CLOSED, exc.close_code)
        self.failure = exc
        self._events.append(ev.ProtocolFailed(exc.close_code, type(exc).__name__))


