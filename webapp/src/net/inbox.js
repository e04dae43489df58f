// A bounded queue of received websocket messages, read one at a time by the frame loop.
//
// The browser's WebSocket cannot be paused: it delivers every message as it arrives. While the
// terminal is behind (flow control) messages wait here. Past SOFT_LIMIT bytes, output frames (GROUP
// and GROUP_DIRECT, PROTOCOL.md §4.1) are dropped on arrival, exactly as a relay may drop them for
// a slow viewer (§4.3), and marked the same way: one SKIPPED frame per run of drops, queued in
// their place, so the protocol core resyncs when it gets there even if no later output shows the
// gap (the dropped frame may have been the last before a quiet spell, or the BYE). A run lasts
// until a frame of another kind arrives (normally the SNAPSHOT that answers the RESYNC). Past
// HARD_LIMIT (only reachable with a flood of other frames) the inbox reports overflow and the
// connection is closed and made anew.

import { encodeFrame } from '../protocol/envelope.js';
import { FrameKind } from '../protocol/wire.js';

const GROUP_KINDS = new Set([FrameKind.GROUP, FrameKind.GROUP_DIRECT]);
const SKIPPED = encodeFrame(FrameKind.SKIPPED);
export const SOFT_LIMIT = 8 * 1024 * 1024;
export const HARD_LIMIT = 24 * 1024 * 1024;

export class Inbox {
  constructor() {
    /** @type {Uint8Array[]} */
    this._items = [];
    this._head = 0;
    this.bytes = 0;
    this.dropped = 0;
    this.overflowed = false;
    this._skipping = false; // in a run of dropped output, already marked with a SKIPPED
    this.closed = false;
    /** @type {(() => void)|null} */
    this._waiter = null;
    /** time of the last message received (for liveness checks) */
    this.lastArrival = Date.now();
  }

  /** @param {Uint8Array} frame @returns {boolean} false if the inbox overflowed */
  push(frame) {
    if (this.closed) return true;
    this.lastArrival = Date.now();
    const output = frame.length >= 2 && GROUP_KINDS.has(frame[1]);
    if (output && (this._skipping || this.bytes + frame.length > SOFT_LIMIT)) {
      this.dropped++;
      if (this._skipping) return true;
      this._skipping = true;
      frame = SKIPPED;
    } else if (!output) {
      this._skipping = false;
    }
    if (this.bytes + frame.length > HARD_LIMIT) {
      this.overflowed = true;
      this.close();
      return false;
    }
    this._items.push(frame);
    this.bytes += frame.length;
    this._wake();
    return true;
  }

  close() {
    this.closed = true;
    this._wake();
  }

  _wake() {
    const w = this._waiter;
    this._waiter = null;
    if (w) w();
  }

  /** The next frame, or null once the inbox is closed and empty (or overflowed). */
  async take() {
    for (;;) {
      if (this.overflowed) return null;
      if (this._head < this._items.length) {
        const frame = this._items[this._head];
        this._items[this._head++] = /** @type {any} */ (undefined);
        if (this._head > 1024 && this._head * 2 > this._items.length) {
          this._items = this._items.slice(this._head);
          this._head = 0;
        }
        this.bytes -= frame.length;
        return frame;
      }
      if (this.closed) return null;
      await new Promise((resolve) => { this._waiter = resolve; });
    }
  }
}
