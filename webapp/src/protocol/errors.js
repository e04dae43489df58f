// The exception tree of termshare (mirrors termshare/protocol/errors.py).
//
//   TermshareError
//   ├── ProtocolError        the peer (or the relay) sent something invalid; carries a close code
//   │   ├── FrameError       malformed envelope (docs/PROTOCOL.md §4)
//   │   ├── MessageError     malformed inner message (§5)
//   │   ├── DecryptionError  AEAD or signature check failed (§3.4)
//   │   ├── SequenceError    gap, duplicate, replay or reorder (§6)
//   │   └── HandshakeError   HELLO/WELCOME could not be completed (§3.1)
//   ├── LinkError            a URL given by the user is not a termshare link (§2.3)
//   └── InvalidState         the caller used an API in the wrong state (our bug, not the peer's)
//
// Peer faults never escape ViewerProtocol as exceptions: they become events and a close code.
// Only InvalidState and LinkError reach callers.

/** Base class of every error termshare raises on purpose. */
export class TermshareError extends Error {
  /** @param {string} [message] */
  constructor(message) {
    super(message);
  }
}

/** The peer or the relay sent something invalid. */
export class ProtocolError extends TermshareError {
  /** @param {string} [message] */
  constructor(message) {
    super(message);
    /** @type {number} websocket close code the connection must be closed with */
    this.closeCode = 4400;
  }
}

export class FrameError extends ProtocolError {}
export class MessageError extends ProtocolError {}
export class DecryptionError extends ProtocolError {}
export class SequenceError extends ProtocolError {}
export class HandshakeError extends ProtocolError {}
export class LinkError extends TermshareError {}
export class InvalidState extends TermshareError {}

// Class names survive minification this way (new.target.name would not).
for (const [cls, name] of /** @type {[Function, string][]} */ ([
  [TermshareError, 'TermshareError'], [ProtocolError, 'ProtocolError'], [FrameError, 'FrameError'],
  [MessageError, 'MessageError'], [DecryptionError, 'DecryptionError'],
  [SequenceError, 'SequenceError'], [HandshakeError, 'HandshakeError'], [LinkError, 'LinkError'],
  [InvalidState, 'InvalidState'],
])) {
  Object.defineProperty(cls.prototype, 'name', { value: name, writable: true, configurable: true });
}
