// The relay-visible envelope: an 18-byte header and a body (docs/PROTOCOL.md §4). No cryptography.

import { FrameError } from './errors.js';
import {
  FRAME_KIND_NAMES, FrameKind, HEADER_SIZE, KEY_SIZE, MAX_FRAME, OWNER_TOKEN_SIZE, SIG_SIZE, TAG_SIZE,
  VERSION, WELCOME_SIZE,
} from './wire.js';

const UINT32_MAX = 0xffffffff;

/** Exact body sizes of fixed-size kinds. @type {Map<number, number>} */
const FIXED_BODY = new Map([
  [FrameKind.HELLO, 1 + KEY_SIZE + TAG_SIZE],
  [FrameKind.WELCOME, KEY_SIZE + WELCOME_SIZE + TAG_SIZE],
  [FrameKind.REJECT, 1],
  [FrameKind.REGISTER, OWNER_TOKEN_SIZE],
  [FrameKind.END, 0],
  [FrameKind.VIEWER_LEFT, 0],
  [FrameKind.SHARER_AWAY, 0],
  [FrameKind.SHARER_BACK, 0],
  [FrameKind.SKIPPED, 0],
]);
/** Minimum body sizes of variable-size kinds. @type {Map<number, number>} */
const MIN_BODY = new Map([
  [FrameKind.GROUP, 1 + TAG_SIZE + SIG_SIZE],
  [FrameKind.DIRECT, 1 + TAG_SIZE],
  [FrameKind.UPSTREAM, 1 + TAG_SIZE],
  [FrameKind.GROUP_DIRECT, 1 + TAG_SIZE],
  [FrameKind.READY, 1],
]);

/**
 * A parsed frame. `header` and `body` are views into the caller's buffer (no copy).
 * @typedef {object} Frame
 * @property {number} version
 * @property {number} kind
 * @property {number} viewerId
 * @property {number} epoch
 * @property {number} seq
 * @property {number} length
 * @property {Uint8Array} header the 18 header bytes, as received (used as AEAD data)
 * @property {Uint8Array} body
 */

/**
 * Convert what a websocket or a test hands us to a Uint8Array view, without copying.
 * @param {Uint8Array|ArrayBuffer|ArrayBufferView} data
 * @returns {Uint8Array}
 */
export function asBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new FrameError('a frame must be binary');
}

/**
 * Build an 18-byte header.
 * @param {number} kind
 * @param {number} bodyLength
 * @param {number} [viewerId]
 * @param {number} [epoch]
 * @param {number} [seq]
 * @returns {Uint8Array}
 */
export function makeHeader(kind, bodyLength, viewerId = 0, epoch = 0, seq = 0) {
  for (const [name, value] of /** @type {[string, number][]} */ ([['viewerId', viewerId], ['epoch', epoch], ['seq', seq]])) {
    if (!Number.isInteger(value) || value < 0 || value > UINT32_MAX) {
      throw new RangeError(`${name} ${value} does not fit in 32 bits`);
    }
  }
  if (HEADER_SIZE + bodyLength > MAX_FRAME) throw new RangeError(`frame body of ${bodyLength} bytes exceeds MAX_FRAME`);
  const header = new Uint8Array(HEADER_SIZE);
  const view = new DataView(header.buffer);
  header[0] = VERSION;
  header[1] = kind;
  view.setUint32(2, viewerId);
  view.setUint32(6, epoch);
  view.setUint32(10, seq);
  view.setUint32(14, bodyLength);
  return header;
}

/**
 * Encode a whole frame: header || body.
 * @param {number} kind
 * @param {Uint8Array} [body]
 * @param {number} [viewerId]
 * @param {number} [epoch]
 * @param {number} [seq]
 * @returns {Uint8Array}
 */
export function encodeFrame(kind, body = new Uint8Array(0), viewerId = 0, epoch = 0, seq = 0) {
  const frame = new Uint8Array(HEADER_SIZE + body.length);
  frame.set(makeHeader(kind, body.length, viewerId, epoch, seq), 0);
  frame.set(body, HEADER_SIZE);
  return frame;
}

/**
 * Parse and check a frame (everything the relay may check, §4.3). Throws FrameError.
 * @param {Uint8Array|ArrayBuffer|ArrayBufferView} input
 * @returns {Frame}
 */
export function parseFrame(input) {
  const data = asBytes(input);
  if (data.length < HEADER_SIZE) {
    throw new FrameError(`frame of ${data.length} bytes is shorter than the ${HEADER_SIZE}-byte header`);
  }
  if (data.length > MAX_FRAME) throw new FrameError(`frame of ${data.length} bytes exceeds MAX_FRAME`);
  const view = new DataView(data.buffer, data.byteOffset, HEADER_SIZE);
  const version = data[0];
  const kind = data[1];
  if (version !== VERSION) throw new FrameError(`unsupported protocol version ${version}`);
  const kindName = FRAME_KIND_NAMES.get(kind);
  if (kindName === undefined) throw new FrameError(`unknown frame kind 0x${kind.toString(16).padStart(2, '0')}`);
  const length = view.getUint32(14);
  if (HEADER_SIZE + length !== data.length) {
    throw new FrameError(`length field says ${length} body bytes, frame has ${data.length - HEADER_SIZE}`);
  }
  const fixed = FIXED_BODY.get(kind);
  if (fixed !== undefined && length !== fixed) throw new FrameError(`${kindName} body must be ${fixed} bytes, got ${length}`);
  const minimum = MIN_BODY.get(kind) ?? 0;
  if (length < minimum) throw new FrameError(`${kindName} body must be at least ${minimum} bytes, got ${length}`);
  return {
    version,
    kind,
    viewerId: view.getUint32(2),
    epoch: view.getUint32(6),
    seq: view.getUint32(10),
    length,
    header: data.subarray(0, HEADER_SIZE),
    body: data.subarray(HEADER_SIZE),
  };
}
