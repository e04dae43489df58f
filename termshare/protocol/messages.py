"""Inner messages: the plaintext inside GROUP, DIRECT, UPSTREAM and WELCOME (docs/PROTOCOL.md §5)."""

from __future__ import annotations

import struct
from typing import Final

from .errors import MessageError
from .value import Value
from .wire import KEY_SIZE, MAX_INPUT, MAX_OUTPUT, MAX_TERM_SIZE, FrameKind, MessageType


class OutputMessage(Value):
    data: bytes


class ResizeMessage(Value):
    cols: int
    rows: int


class ViewersMessage(Value):
    count: int


class ByeMessage(Value):
    exit_status: int


class SnapshotMessage(Value):
    group_epoch: int
    next_seq: int
    cols: int
    rows: int
    data: bytes


class RekeyMessage(Value):
    group_epoch: int
    group_key: bytes
    closing_count: int  # frames sent in the epoch this one replaces (§5.4)


class RemovedMessage(Value):
    pass


class PongMessage(Value):
    token: int


class InputMessage(Value):
    data: bytes


class ResyncMessage(Value):
    pass


class PingMessage(Value):
    token: int


class WelcomeMessage(Value):
    can_write: bool
    sign_key: bytes
    group_epoch: int
    group_key: bytes
    signature: bytes  # over the handshake's ephemeral keys (§3.1 step 4)


Message = (
    OutputMessage | ResizeMessage | ViewersMessage | ByeMessage | SnapshotMessage | RekeyMessage
    | RemovedMessage | PongMessage | InputMessage | ResyncMessage | PingMessage
)

_CARRIER: Final = {
    MessageType.OUTPUT: FrameKind.GROUP,
    MessageType.RESIZE: FrameKind.GROUP,
    MessageType.VIEWERS: FrameKind.GROUP,
    MessageType.BYE: FrameKind.GROUP,
    MessageType.SNAPSHOT: FrameKind.DIRECT,
    MessageType.REKEY: FrameKind.DIRECT,
    MessageType.REMOVED: FrameKind.DIRECT,
    MessageType.PONG: FrameKind.DIRECT,
    MessageType.INPUT: FrameKind.UPSTREAM,
    MessageType.RESYNC: FrameKind.UPSTREAM,
    MessageType.PING: FrameKind.UPSTREAM,
}
_TYPES: Final = {int(t): t for t in MessageType}
_SIZE: Final = struct.Struct(">HH")
_U32: Final = struct.Struct(">I")
_I32: Final = struct.Struct(">i")
_U64: Final = struct.Struct(">Q")
_SNAPSHOT: Final = struct.Struct(">IIHH")
_WELCOME: Final = struct.Struct(">B32sI32s64s")


def carrier_of(message: Message) -> FrameKind:
    return _CARRIER[_type_of(message)]


def _type_of(message: Message) -> MessageType:
    return _MESSAGE_TYPE[type(message)]


def _check_size(cols: int, rows: int) -> None:
    if not (1 <= cols <= MAX_TERM_SIZE and 1 <= rows <= MAX_TERM_SIZE):
        raise MessageError(f"terminal size {cols}x{rows} is outside 1..{MAX_TERM_SIZE}")


def encode_message(message: Message) -> bytes:
    kind = bytes((_type_of(message),))
    match message:
        case OutputMessage(data) | InputMessage(data):
            limit = MAX_OUTPUT if isinstance(message, OutputMessage) else MAX_INPUT
            if not 1 <= len(data) <= limit:
                raise ValueError(f"data of {len(data)} bytes is outside 1..{limit}")
            return kind + data
        case ResizeMessage(cols, rows):
            return kind + _SIZE.pack(cols, rows)
        case ViewersMessage(count):
            return kind + _U32.pack(count)
        case ByeMessage(status):
            return kind + _I32.pack(status)
        case SnapshotMessage(epoch, next_seq, cols, rows, data):
            return kind + _SNAPSHOT.pack(epoch, next_seq, cols, rows) + data
        case RekeyMessage(epoch, key, count):
            return kind + _U32.pack(epoch) + key + _U32.pack(count)
        case PongMessage(token) | PingMessage(token):
            return kind + _U64.pack(token)
        case RemovedMessage() | ResyncMessage():
            return kind
    raise TypeError(f"not a message: {message!r}")  # pragma: no cover


def decode_message(carrier: FrameKind, plaintext: bytes) -> Message:
    """Parse the plaintext of a GROUP, DIRECT or UPSTREAM frame; MessageError on anything invalid."""
    if not plaintext:
        raise MessageError("empty message")
    mtype = _TYPES.get(plaintext[0])
    if mtype is None:
        raise MessageError(f"unknown message type 0x{plaintext[0]:02x}")
    if _CARRIER[mtype] is not carrier:
        raise MessageError(f"{mtype.name} may not travel in a {carrier.name} frame")
    body = plaintext[1:]
    fixed = _FIXED.get(mtype)
    if fixed is not None and len(body) != fixed:
        raise MessageError(f"{mtype.name} body must be {fixed} bytes, got {len(body)}")
    if mtype is MessageType.OUTPUT or mtype is MessageType.INPUT:
        limit = MAX_OUTPUT if mtype is MessageType.OUTPUT else MAX_INPUT
        if not 1 <= len(body) <= limit:
            raise MessageError(f"{mtype.name} data of {len(body)} bytes is outside 1..{limit}")
        return OutputMessage(body) if mtype is MessageType.OUTPUT else InputMessage(body)
    if mtype is MessageType.RESIZE:
        cols, rows = _SIZE.unpack(body)
        _check_size(cols, rows)
        return ResizeMessage(cols, rows)
    if mtype is MessageType.VIEWERS:
        return ViewersMessage(_U32.unpack(body)[0])
    if mtype is MessageType.BYE:
        return ByeMessage(_I32.unpack(body)[0])
    if mtype is MessageType.SNAPSHOT:
        if len(body) < _SNAPSHOT.size:
            raise MessageError(f"SNAPSHOT body must be at least {_SNAPSHOT.size} bytes, got {len(body)}")
        epoch, next_seq, cols, rows = _SNAPSHOT.unpack_from(body)
        _check_size(cols, rows)
        return SnapshotMessage(epoch, next_seq, cols, rows, body[_SNAPSHOT.size:])
    if mtype is MessageType.REKEY:
        return RekeyMessage(_U32.unpack_from(body)[0], body[4 : 4 + KEY_SIZE], _U32.unpack_from(body, 4 + KEY_SIZE)[0])
    if mtype is MessageType.PONG:
        return PongMessage(_U64.unpack(body)[0])
    if mtype is MessageType.PING:
        return PingMessage(_U64.unpack(body)[0])
    if mtype is MessageType.REMOVED:
        return RemovedMessage()
    return ResyncMessage()


def encode_welcome(welcome: WelcomeMessage) -> bytes:
    return _WELCOME.pack(1 if welcome.can_write else 0, welcome.sign_key, welcome.group_epoch, welcome.group_key,
                         welcome.signature)


def decode_welcome(plaintext: bytes) -> WelcomeMessage:
    if len(plaintext) != _WELCOME.size:
        raise MessageError(f"WELCOME must be {_WELCOME.size} bytes, got {len(plaintext)}")
    flags, sign_key, epoch, key, signature = _WELCOME.unpack(plaintext)
    if flags & ~1:
        raise MessageError(f"WELCOME has unknown flags 0x{flags:02x}")
    return WelcomeMessage(bool(flags & 1), sign_key, epoch, key, signature)


_FIXED: Final = {
    MessageType.RESIZE: 4,
    MessageType.VIEWERS: 4,
    MessageType.BYE: 4,
    MessageType.REKEY: 4 + KEY_SIZE + 4,
    MessageType.REMOVED: 0,
    MessageType.PONG: 8,
    MessageType.RESYNC: 0,
    MessageType.PING: 8,
}
_MESSAGE_TYPE: Final[dict[type, MessageType]] = {
    OutputMessage: MessageType.OUTPUT,
    ResizeMessage: MessageType.RESIZE,
    ViewersMessage: MessageType.VIEWERS,
    ByeMessage: MessageType.BYE,
    SnapshotMessage: MessageType.SNAPSHOT,
    RekeyMessage: MessageType.REKEY,
    RemovedMessage: MessageType.REMOVED,
    PongMessage: MessageType.PONG,
    InputMessage: MessageType.INPUT,
    ResyncMessage: MessageType.RESYNC,
    PingMessage: MessageType.PING,
}
