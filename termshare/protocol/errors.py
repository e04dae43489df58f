"""The exception tree of termshare.

    TermshareError
    ├── ProtocolError        the peer (or the relay) sent something invalid; carries a close code
    │   ├── FrameError       malformed envelope (docs/PROTOCOL.md §4)
    │   ├── MessageError     malformed inner message (§5)
    │   ├── DecryptionError  AEAD or signature check failed (§3.4)
    │   ├── SequenceError    gap, duplicate, replay or reorder (§6)
    │   └── HandshakeError   HELLO/WELCOME could not be completed (§3.1)
    ├── LinkError            a URL given by the user is not a termshare link (§2.3)
    └── InvalidState         the caller used an API in the wrong state (our bug, not the peer's)

Peer faults never escape the protocol objects as exceptions: they are recorded and turned into
the right close or resync. Only InvalidState and LinkError reach callers.
"""

from __future__ import annotations


class TermshareError(Exception):
    """Base class of every error termshare raises on purpose."""


class ProtocolError(TermshareError):
    close_code = 4400


class FrameError(ProtocolError):
    pass


class MessageError(ProtocolError):
    pass


class DecryptionError(ProtocolError):
    pass


class SequenceError(ProtocolError):
    pass


class HandshakeError(ProtocolError):
    pass


class LinkError(TermshareError):
    pass


class InvalidState(TermshareError):
    pass
