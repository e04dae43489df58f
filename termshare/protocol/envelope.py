"""The relay-visible envelope: an 18-byte header and a body (docs/PROTOCOL.md §4).

No cryptography here: the relay's routing core imports this module and nothing that holds keys.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from .errors import FrameError
from .wire import HEADER_SIZE, KEY_SIZE, MAX_FRAME, OWNER_TOKEN_SIZE, SIG_SIZE, TAG_SIZE, VERSION, FrameKind

_HEADER: Final = struct.Struct(">BBIIII")
_UINT32_MAX: Final = 0xFFFFFFFF

# Exact body sizes of fixed-size kinds, and minimum sizes of the rest (§4.1, §5.2).
_FIXED_BODY: Final = {
    FrameKind.HELLO: 1 + KEY_SIZE + TAG_SIZE,
    FrameKind.WELCOME: KEY_SIZE + 133 + TAG_SIZE,
    FrameKind.REJECT: 1,
    FrameKind.REGISTER: OWNER_TOKEN_SIZE,
    FrameKind.END: 0,
    FrameKind.VIEWER_LEFT: 0,
    FrameKind.SHARER_AWAY: 0,
    FrameKind.SHARER_BACK: 0,
    FrameKind.SKIPPED: 0,
}
_MIN_BODY: Final = {
    FrameKind.GROUP: 1 + TAG_SIZE + SIG_SIZE,
    FrameKind.DIRECT: 1 + TAG_SIZE,
    FrameKind.GROUP_DIRECT: 1 + TAG_SIZE,
    FrameKind.UPSTREAM: 1 + TAG_SIZE,
    FrameKind.READY: 1,
}
_KINDS: Final = {int(k): k for k in FrameKind}


@dataclass(frozen=True, slots=True)
class Header:
    kind: FrameKind
    viewer_id: int
    epoch: int
    seq: int
    length: int
    version: int = VERSION

    def pack(self) -> bytes:
        return _HEADER.pack(self.version, self.kind, self.viewer_id, self.epoch, self.seq, self.length)


@dataclass(frozen=True, slots=True)
class Frame:
    header: Header
    body: bytes

    @property
    def kind(self) -> FrameKind:
        return self.header.kind


def make_header(kind: FrameKind, body_length: int, viewer_id: int = 0, epoch: int = 0, seq: int = 0) -> Header:
    for name, value in (("viewer_id", viewer_id), ("epoch", epoch), ("seq", seq)):
        if not 0 <= value <= _UINT32_MAX:
            raise ValueError(f"{name} {value} does not fit in 32 bits")
    if HEADER_SIZE + body_length > MAX_FRAME:
        raise ValueError(f"frame body of {body_length} bytes exceeds MAX_FRAME")
    return Header(kind, viewer_id, epoch, seq, body_length)


def encode_frame(kind: FrameKind, body: bytes = b"", viewer_id: int = 0, epoch: int = 0, seq: int = 0) -> bytes:
    return make_header(kind, len(body), viewer_id, epoch, seq).pack() + body


def parse_header(data: bytes) -> Header:
    """Check everything the relay may check (§4.3) without copying the body."""
    if len(data) < HEADER_SIZE:
        raise FrameError(f"frame of {len(data)} bytes is shorter than the {HEADER_SIZE}-byte header")
    if len(data) > MAX_FRAME:
        raise FrameError(f"frame of {len(data)} bytes exceeds MAX_FRAME")
    version, kind_code, viewer_id, epoch, seq, length = _HEADER.unpack_from(data)
    if version != VERSION:
        raise FrameError(f"unsupported protocol version {version}")
    kind = _KINDS.get(kind_code)
    if kind is None:
        raise FrameError(f"unknown frame kind 0x{kind_code:02x}")
    if HEADER_SIZE + length != len(data):
        raise FrameError(f"length field says {length} body bytes, frame has {len(data) - HEADER_SIZE}")
    fixed = _FIXED_BODY.get(kind)
    if fixed is not None and length != fixed:
        raise FrameError(f"{kind.name} body must be {fixed} bytes, got {length}")
    minimum = _MIN_BODY.get(kind, 0)
    if length < minimum:
        raise FrameError(f"{kind.name} body must be at least {minimum} bytes, got {length}")
    return Header(kind, viewer_id, epoch, seq, length, version)


def parse_frame(data: bytes) -> Frame:
    return frame_with(parse_header(data), data)


def frame_with(header: Header, data: bytes) -> Frame:
    """The Frame of `data`, whose header `parse_header` has already checked."""
    return Frame(header, bytes(data[HEADER_SIZE:]))
