"""Wire constants of protocol version 1 (docs/PROTOCOL.md §4, §5, §9)."""

from __future__ import annotations

from enum import IntEnum
from typing import Final

VERSION: Final = 1
HEADER_SIZE: Final = 18  # bytes
MAX_FRAME: Final = 1024 * 1024  # 1 MiB, header included
MAX_OUTPUT: Final = 256 * 1024  # 256 KiB of terminal output per OUTPUT message
MAX_INPUT: Final = 64 * 1024  # 64 KiB of keystrokes/paste per INPUT message
MAX_TERM_SIZE: Final = 1000  # columns or rows
REKEY_FRAMES: Final = 1 << 20  # frames per key
REKEY_SECONDS: Final = 900.0  # seconds per key
RESUME_GRACE: Final = 120.0  # seconds a relay keeps a session whose sharer dropped
HANDSHAKE_TIMEOUT: Final = 10.0  # seconds from READY to WELCOME
SECRET_SIZE: Final = 16  # bytes, 128 bits
KEY_FP_SIZE: Final = 16  # bytes of SHA-256 over the sharer's signing key carried in links
TAG_SIZE: Final = 16
SIG_SIZE: Final = 64
KEY_SIZE: Final = 32
OWNER_TOKEN_SIZE: Final = 32


class FrameKind(IntEnum):
    HELLO = 0x01
    WELCOME = 0x02
    REJECT = 0x03
    GROUP = 0x04
    DIRECT = 0x05
    UPSTREAM = 0x06
    GROUP_DIRECT = 0x07  # a group position sent to one viewer under its own key, unsigned (§3.3.1)
    REGISTER = 0x08
    END = 0x09
    READY = 0x10
    VIEWER_LEFT = 0x11
    SHARER_AWAY = 0x12
    SHARER_BACK = 0x13
    SKIPPED = 0x14


class MessageType(IntEnum):
    OUTPUT = 0x01
    RESIZE = 0x02
    VIEWERS = 0x03
    BYE = 0x04
    SNAPSHOT = 0x10
    REKEY = 0x11
    REMOVED = 0x12
    PONG = 0x13
    INPUT = 0x20
    RESYNC = 0x21
    PING = 0x22


class Role(IntEnum):
    READ_ONLY = 0
    READ_WRITE = 1


class RejectReason(IntEnum):
    WRONG_KEY = 0
    READ_ONLY_SHARE = 1
    REPLAYED_HELLO = 2
    REMOVED = 3
    PROTOCOL_ERROR = 4


class CloseCode(IntEnum):
    NORMAL = 1000
    TRY_AGAIN = 1013  # the relay cannot place the connection right now (scale-out): reconnect
    BAD_FRAME = 4400
    TOKEN_REQUIRED = 4401
    REJECTED = 4403
    UNKNOWN_SESSION = 4404
    TIMEOUT = 4408
    SESSION_TAKEN = 4409
    SESSION_ENDED = 4410
    TOO_LARGE = 4413
    LIMIT = 4429
    TOO_SLOW = 4508

