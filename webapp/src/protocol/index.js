// Public API of the termshare viewer protocol (docs/PROTOCOL.md). No DOM, no sockets: WebCrypto only.

export {
  TermshareError, ProtocolError, FrameError, MessageError, DecryptionError, SequenceError, HandshakeError,
  LinkError, InvalidState,
} from './errors.js';
export {
  VERSION, HEADER_SIZE, MAX_FRAME, MAX_OUTPUT, MAX_INPUT, MAX_TERM_SIZE, REKEY_FRAMES, REKEY_SECONDS,
  RESUME_GRACE, HANDSHAKE_TIMEOUT, SECRET_SIZE, SID_SIZE, TAG_SIZE, SIG_SIZE, KEY_SIZE, OWNER_TOKEN_SIZE,
  FrameKind, MessageType, Role, RejectReason, CloseCode,
} from './wire.js';
export { parseFrame, encodeFrame, makeHeader } from './envelope.js';
export { encodeMessage, decodeMessage, encodeWelcome, decodeWelcome } from './messages.js';
export { parseLink, formatLink, b64uEncode, b64uDecode, isSessionId } from './link.js';
export { ViewerProtocol } from './viewer.js';
export { checkCryptoSupport } from './keys.js';
export { deriveRoSecret, signKeyFp } from './keys.js';
