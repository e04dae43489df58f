// Wire constants of protocol version 1 (docs/PROTOCOL.md §4, §5, §9).

export const VERSION = 1;
export const HEADER_SIZE = 18; // bytes
export const MAX_FRAME = 1024 * 1024; // 1 MiB, header included
export const MAX_OUTPUT = 256 * 1024; // bytes of terminal output per OUTPUT message
export const MAX_INPUT = 64 * 1024; // bytes of keystrokes/paste per INPUT message
export const MAX_TERM_SIZE = 1000; // columns or rows
export const REKEY_FRAMES = 1 << 20; // frames per key
export const REKEY_SECONDS = 900; // seconds per group key
export const RESUME_GRACE = 120; // seconds
export const HANDSHAKE_TIMEOUT = 10; // seconds from READY to WELCOME
export const SECRET_SIZE = 16;
export const KEY_FP_SIZE = 16; // bytes of SHA-256 over the sharer's signing key carried in links
export const SID_SIZE = 16;
export const TAG_SIZE = 16;
export const SIG_SIZE = 64;
export const KEY_SIZE = 32;
export const OWNER_TOKEN_SIZE = 32;
export const WELCOME_SIZE = 133; // plaintext of WELCOME (§5.2)

/** Frame kinds (§4.1). */
export const FrameKind = Object.freeze({
  HELLO: 0x01,
  WELCOME: 0x02,
  REJECT: 0x03,
  GROUP: 0x04,
  DIRECT: 0x05,
  UPSTREAM: 0x06,
  GROUP_DIRECT: 0x07,
  REGISTER: 0x08,
  END: 0x09,
  READY: 0x10,
  VIEWER_LEFT: 0x11,
  SHARER_AWAY: 0x12,
  SHARER_BACK: 0x13,
  SKIPPED: 0x14,
});

/** Inner message types (§5.3). */
export const MessageType = Object.freeze({
  OUTPUT: 0x01,
  RESIZE: 0x02,
  VIEWERS: 0x03,
  BYE: 0x04,
  SNAPSHOT: 0x10,
  REKEY: 0x11,
  REMOVED: 0x12,
  PONG: 0x13,
  INPUT: 0x20,
  RESYNC: 0x21,
  PING: 0x22,
});

/** Link roles (§2.3, §3). */
export const Role = Object.freeze({ READ_ONLY: 0, READ_WRITE: 1 });

/** REJECT reasons (§5.6). */
export const RejectReason = Object.freeze({
  WRONG_KEY: 0,
  READ_ONLY_SHARE: 1,
  REPLAYED_HELLO: 2,
  REMOVED: 3,
  PROTOCOL_ERROR: 4,
});

/** Websocket close codes (§5.5). */
export const CloseCode = Object.freeze({
  NORMAL: 1000,
  TRY_AGAIN: 1013,
  BAD_FRAME: 4400,
  TOKEN_REQUIRED: 4401,
  REJECTED: 4403,
  UNKNOWN_SESSION: 4404,
  TIMEOUT: 4408,
  SESSION_TAKEN: 4409,
  SESSION_ENDED: 4410,
  TOO_LARGE: 4413,
  LIMIT: 4429,
  TOO_SLOW: 4508,
});

/** @param {Record<string, number>} table @returns {Map<number, string>} */
function names(table) {
  return new Map(Object.entries(table).map(([k, v]) => [v, k]));
}
/** code -> name, e.g. FRAME_KIND_NAMES.get(4) === 'GROUP' */
export const FRAME_KIND_NAMES = names(FrameKind);
export const MESSAGE_TYPE_NAMES = names(MessageType);
