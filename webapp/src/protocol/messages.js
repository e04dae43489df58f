// Inner messages: the plaintext inside GROUP, DIRECT, UPSTREAM and WELCOME (docs/PROTOCOL.md §5).
//
// A message is a plain object { type, ...fields } where `type` is a MessageType code and fields are
// camelCase: OUTPUT/INPUT {data}, RESIZE {cols, rows}, VIEWERS {count}, BYE {exitStatus},
// SNAPSHOT {groupEpoch, nextSeq, cols, rows, data}, REKEY {groupEpoch, groupKey, closingCount}, REMOVED {},
// PONG/PING {token: bigint}, RESYNC {}. Decoded byte fields are views into the plaintext (no copy).

import { MessageError } from './errors.js';
import {
  FRAME_KIND_NAMES, FrameKind, KEY_SIZE, MAX_INPUT, MAX_OUTPUT, MAX_TERM_SIZE, MESSAGE_TYPE_NAMES,
  MessageType, WELCOME_SIZE,
} from './wire.js';

/** @typedef {{type: number, [field: string]: any}} Message */
/** @typedef {{canWrite: boolean, signKey: Uint8Array, groupEpoch: number, groupKey: Uint8Array, welcomeSig: Uint8Array}} WelcomeMessage */

/** Which frame kind carries each message type. @type {Map<number, number>} */
const CARRIER = new Map([
  [MessageType.OUTPUT, FrameKind.GROUP],
  [MessageType.RESIZE, FrameKind.GROUP],
  [MessageType.VIEWERS, FrameKind.GROUP],
  [MessageType.BYE, FrameKind.GROUP],
  [MessageType.SNAPSHOT, FrameKind.DIRECT],
  [MessageType.REKEY, FrameKind.DIRECT],
  [MessageType.REMOVED, FrameKind.DIRECT],
  [MessageType.PONG, FrameKind.DIRECT],
  [MessageType.INPUT, FrameKind.UPSTREAM],
  [MessageType.RESYNC, FrameKind.UPSTREAM],
  [MessageType.PING, FrameKind.UPSTREAM],
]);

/** Exact body sizes (after the type byte). @type {Map<number, number>} */
const FIXED = new Map([
  [MessageType.RESIZE, 4],
  [MessageType.VIEWERS, 4],
  [MessageType.BYE, 4],
  [MessageType.REKEY, 4 + KEY_SIZE + 4],
  [MessageType.REMOVED, 0],
  [MessageType.PONG, 8],
  [MessageType.RESYNC, 0],
  [MessageType.PING, 8],
]);
const SNAPSHOT_HEAD = 12; // u32 group_epoch, u32 next_seq, u16 cols, u16 rows

/** @param {number} type @returns {number} the frame kind that carries it */
export function carrierOf(type) {
  const carrier = CARRIER.get(type);
  if (carrier === undefined) throw new TypeError(`not a message type: ${type}`);
  return carrier;
}

/** @param {number} cols @param {number} rows */
function checkSize(cols, rows) {
  if (!(cols >= 1 && cols <= MAX_TERM_SIZE && rows >= 1 && rows <= MAX_TERM_SIZE)) {
    throw new MessageError(`terminal size ${cols}x${rows} is outside 1..${MAX_TERM_SIZE}`);
  }
}

/** @param {bigint|number} token @returns {bigint} */
function u64(token) {
  const value = BigInt(token);
  if (value < 0n || value > 0xffffffffffffffffn) throw new RangeError(`token ${token} does not fit in 64 bits`);
  return value;
}

/**
 * Encode a message to its plaintext (type byte || fields).
 * @param {Message} message
 * @returns {Uint8Array}
 */
export function encodeMessage(message) {
  const type = message.type;
  /** @param {number} n */
  const make = (n) => {
    const out = new Uint8Array(1 + n);
    out[0] = type;
    return { out, view: new DataView(out.buffer) };
  };
  switch (type) {
    case MessageType.OUTPUT:
    case MessageType.INPUT: {
      const limit = type === MessageType.OUTPUT ? MAX_OUTPUT : MAX_INPUT;
      const data = /** @type {Uint8Array} */ (message.data);
      if (data.length < 1 || data.length > limit) throw new RangeError(`data of ${data.length} bytes is outside 1..${limit}`);
      const { out } = make(data.length);
      out.set(data, 1);
      return out;
    }
    case MessageType.RESIZE: {
      const { out, view } = make(4);
      view.setUint16(1, message.cols);
      view.setUint16(3, message.rows);
      return out;
    }
    case MessageType.VIEWERS: {
      const { out, view } = make(4);
      view.setUint32(1, message.count);
      return out;
    }
    case MessageType.BYE: {
      const { out, view } = make(4);
      view.setInt32(1, message.exitStatus);
      return out;
    }
    case MessageType.SNAPSHOT: {
      const { out, view } = make(SNAPSHOT_HEAD + message.data.length);
      view.setUint32(1, message.groupEpoch);
      view.setUint32(5, message.nextSeq);
      view.setUint16(9, message.cols);
      view.setUint16(11, message.rows);
      out.set(message.data, 1 + SNAPSHOT_HEAD);
      return out;
    }
    case MessageType.REKEY: {
      const { out, view } = make(4 + KEY_SIZE + 4);
      view.setUint32(1, message.groupEpoch);
      out.set(message.groupKey, 5);
      view.setUint32(5 + KEY_SIZE, message.closingCount);
      return out;
    }
    case MessageType.PONG:
    case MessageType.PING: {
      const { out, view } = make(8);
      view.setBigUint64(1, u64(message.token));
      return out;
    }
    case MessageType.REMOVED:
    case MessageType.RESYNC:
      return make(0).out;
    default:
      throw new TypeError(`not a message: ${JSON.stringify(message)}`);
  }
}

/**
 * Parse the plaintext of a GROUP, DIRECT or UPSTREAM frame. Throws MessageError on anything invalid.
 * @param {number} carrier FrameKind of the frame that carried it
 * @param {Uint8Array} plaintext
 * @returns {Message}
 */
export function decodeMessage(carrier, plaintext) {
  if (plaintext.length === 0) throw new MessageError('empty message');
  const type = plaintext[0];
  const name = MESSAGE_TYPE_NAMES.get(type);
  if (name === undefined) throw new MessageError(`unknown message type 0x${type.toString(16).padStart(2, '0')}`);
  if (CARRIER.get(type) !== carrier) {
    throw new MessageError(`${name} may not travel in a ${FRAME_KIND_NAMES.get(carrier) ?? carrier} frame`);
  }
  const body = plaintext.subarray(1);
  const fixed = FIXED.get(type);
  if (fixed !== undefined && body.length !== fixed) throw new MessageError(`${name} body must be ${fixed} bytes, got ${body.length}`);
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  switch (type) {
    case MessageType.OUTPUT:
    case MessageType.INPUT: {
      const limit = type === MessageType.OUTPUT ? MAX_OUTPUT : MAX_INPUT;
      if (body.length < 1 || body.length > limit) throw new MessageError(`${name} data of ${body.length} bytes is outside 1..${limit}`);
      return { type, data: body };
    }
    case MessageType.RESIZE: {
      const cols = view.getUint16(0);
      const rows = view.getUint16(2);
      checkSize(cols, rows);
      return { type, cols, rows };
    }
    case MessageType.VIEWERS:
      return { type, count: view.getUint32(0) };
    case MessageType.BYE:
      return { type, exitStatus: view.getInt32(0) };
    case MessageType.SNAPSHOT: {
      if (body.length < SNAPSHOT_HEAD) throw new MessageError(`SNAPSHOT body must be at least ${SNAPSHOT_HEAD} bytes, got ${body.length}`);
      const cols = view.getUint16(8);
      const rows = view.getUint16(10);
      checkSize(cols, rows);
      return { type, groupEpoch: view.getUint32(0), nextSeq: view.getUint32(4), cols, rows, data: body.subarray(SNAPSHOT_HEAD) };
    }
    case MessageType.REKEY:
      return { type, groupEpoch: view.getUint32(0), groupKey: body.subarray(4, 4 + KEY_SIZE), closingCount: view.getUint32(4 + KEY_SIZE) };
    case MessageType.PONG:
    case MessageType.PING:
      return { type, token: view.getBigUint64(0) };
    default: // REMOVED, RESYNC
      return { type };
  }
}

/**
 * Encode the WELCOME plaintext (§5.2).
 * @param {WelcomeMessage} welcome
 * @returns {Uint8Array}
 */
export function encodeWelcome(welcome) {
  const out = new Uint8Array(WELCOME_SIZE);
  const view = new DataView(out.buffer);
  out[0] = welcome.canWrite ? 1 : 0;
  out.set(welcome.signKey, 1);
  view.setUint32(33, welcome.groupEpoch);
  out.set(welcome.groupKey, 37);
  out.set(welcome.welcomeSig, 69);
  return out;
}

/**
 * Parse the WELCOME plaintext (§5.2). Throws MessageError.
 * @param {Uint8Array} plaintext
 * @returns {WelcomeMessage}
 */
export function decodeWelcome(plaintext) {
  if (plaintext.length !== WELCOME_SIZE) throw new MessageError(`WELCOME must be ${WELCOME_SIZE} bytes, got ${plaintext.length}`);
  const flags = plaintext[0];
  if (flags & ~1) throw new MessageError(`WELCOME has unknown flags 0x${flags.toString(16).padStart(2, '0')}`);
  const view = new DataView(plaintext.buffer, plaintext.byteOffset, plaintext.byteLength);
  return {
    canWrite: (flags & 1) === 1,
    signKey: plaintext.subarray(1, 33),
    groupEpoch: view.getUint32(33),
    groupKey: plaintext.subarray(37, 69),
    welcomeSig: plaintext.subarray(69),
  };
}
