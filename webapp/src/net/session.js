// The connection driver: websocket <-> ViewerProtocol <-> terminal, with reconnects.
//
// One attempt = one websocket and one fresh ViewerProtocol (a new handshake, so no key or nonce
// is ever reused). Frames are processed strictly one after another; after every step the frames
// the core wants to send are sent. The secret never leaves the ViewerProtocol: the websocket URL
// is `<base>/ws/view/<sid>` and nothing else is requested.

import { ViewerProtocol, InvalidState, CloseCode, RejectReason } from '../protocol/index.js';
import { Inbox } from './inbox.js';

/** Stop pulling frames while this many output bytes wait to be drawn; resume below LOW_WATER. */
export const HIGH_WATER = 4 * 1024 * 1024;
export const LOW_WATER = 1024 * 1024;
const PING_EVERY_MS = 30_000;
const PING_TIMEOUT_MS = 20_000;
const CONNECT_TIMEOUT_MS = 15_000;

/**
 * @typedef {'connecting'|'live'|'reconnecting'|'ended'|'rejected'|'readonly-share'|'not-found'
 *   |'removed'|'limit'|'error'} Phase
 * @typedef {object} Status
 * @property {Phase} phase
 * @property {string} [reason]   why we are reconnecting: 'unreachable'|'lost'|'protocol'|'timeout'|'slow'
 * @property {boolean} everLive  a screen was shown at least once
 * @property {boolean} sharerPresent
 * @property {boolean} resyncing
 * @property {boolean|null} canWrite
 * @property {number|null} viewers
 * @property {number|null} exitStatus
 * @property {number|null} retryAt  Date.now() value of the next attempt
 * @property {number} attempt   consecutive failed attempts
 * @property {number|null} closeCode last websocket close code
 * @property {string|null} detail    a short technical detail (error name), never key material
 * @property {number} cols
 * @property {number} rows
 */

/** @param {string} base @param {string} sid */
export function viewerSocketUrl(base, sid) {
  const url = new URL(`${base}/ws/view/${sid}`);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  url.hash = '';
  url.search = '';
  return url.href;
}

function backoffMs(attempt, slow) {
  const steps = slow ? [3000, 5000, 10000, 20000, 30000, 60000] : [500, 1000, 2000, 4000, 8000, 15000, 30000];
  const base = steps[Math.min(attempt, steps.length - 1)];
  return Math.round(base * (0.8 + Math.random() * 0.4));
}

export class SessionDriver {
  /**
   * @param {{base: string, sid: string, role: 'rw'|'ro', secret: Uint8Array}} link
   * @param {import('../ui/terminal.js').TerminalView} view
   * @param {(status: Status) => void} onStatus
   */
  constructor(link, view, onStatus) {
    this.link = link;
    this.view = view;
    this.onStatus = onStatus;
    /** @type {Status} */
    this.status = {
      phase: 'connecting', everLive: false, sharerPresent: true, resyncing: false, canWrite: null,
      viewers: null, exitStatus: null, retryAt: null, attempt: 0, closeCode: null, detail: null,
      cols: view.cols, rows: view.rows,
    };
    this._stopped = false;
    /** @type {(() => void)|null} */
    this._retryNow = null;
    this._ws = null;
    this._vp = null;
  }

  /** @param {Partial<Status>} patch */
  _update(patch) {
    Object.assign(this.status, patch);
    this.onStatus({ ...this.status });
  }

  /** Run attempts until a final outcome (ended, rejected, removed). */
  async run() {
    window.addEventListener('online', () => this.retryNow());
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible') this.retryNow();
    });
    for (;;) {
      const outcome = await this._attempt();
      this.view.disableInput();
      if (outcome.final) {
        this._update({ phase: outcome.phase, retryAt: null });
        return;
      }
      const attempt = this.status.attempt;
      const delay = outcome.immediate ? 0 : backoffMs(attempt, outcome.slow);
      this._update({
        phase: outcome.phase ?? 'reconnecting', reason: outcome.reason, attempt: attempt + 1,
        retryAt: Date.now() + delay, resyncing: false,
      });
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, delay);
        this._retryNow = () => { clearTimeout(timer); resolve(); };
      });
      this._retryNow = null;
    }
  }

  /** Skip the wait before the next attempt (button, network back online, tab shown). */
  retryNow() {
    if (this._retryNow) this._retryNow();
  }

  /**
   * One websocket connection, from open to close.
   * @returns {Promise<{final: boolean, phase?: Phase, reason?: string, slow?: boolean, immediate?: boolean}>}
   */
  async _attempt() {
    const vp = new ViewerProtocol({ link: this.link });
    const inbox = new Inbox();
    let opened = false;
    let closeCode = null;
    /** @type {null|{final: boolean, phase?: Phase, reason?: string, slow?: boolean, immediate?: boolean}} */
    let outcome = null;
    if (this.status.retryAt !== null) this._update({ retryAt: null });

    let ws;
    try {
      ws = new WebSocket(viewerSocketUrl(this.link.base, this.link.sid));
    } catch (exc) {
      this._update({ detail: String(/** @type {Error} */ (exc).message ?? exc) });
      return { final: false, reason: 'unreachable' };
    }
    ws.binaryType = 'arraybuffer';
    this._ws = ws;
    this._vp = vp;

    const send = () => {
      for (const frame of vp.framesToSend()) {
        if (ws.readyState === WebSocket.OPEN) ws.send(frame);
      }
    };
    const closeWith = (code, reason) => {
      if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) {
        try { ws.close(code, reason); } catch { ws.close(); }
      }
      inbox.close();
    };

    ws.onopen = () => { opened = true; };
    ws.onmessage = (ev) => {
      if (typeof ev.data === 'string') { // text messages are a protocol error (§2.4)
        outcome ??= { final: false, reason: 'protocol' };
        closeWith(CloseCode.BAD_FRAME, 'text message');
        return;
      }
      if (!inbox.push(new Uint8Array(ev.data))) {
        outcome ??= { final: false, reason: 'slow', immediate: true };
        closeWith(CloseCode.TOO_SLOW, 'viewer too slow');
      }
    };
    ws.onclose = (ev) => {
      closeCode = ev.code;
      inbox.close();
    };

    const connectTimer = setTimeout(() => {
      if (!opened) { outcome ??= { final: false, reason: 'unreachable' }; closeWith(1000, 'timeout'); }
    }, CONNECT_TIMEOUT_MS);

    // Liveness: when nothing has arrived for a while, ping the sharer; if still nothing arrives
    // soon after, the connection is dead (e.g. a laptop woke up on another network).
    let pingSentAt = 0;
    let token = 0;
    const pingTimer = setInterval(() => {
      const now = Date.now();
      if (pingSentAt && inbox.lastArrival >= pingSentAt) pingSentAt = 0; // something arrived
      if (pingSentAt && now - pingSentAt > PING_TIMEOUT_MS) {
        outcome ??= { final: false, reason: 'timeout', immediate: true };
        closeWith(CloseCode.TIMEOUT, 'ping timeout');
        return;
      }
      if (!pingSentAt && vp.state === 'LIVE' && this.status.sharerPresent && now - inbox.lastArrival > PING_EVERY_MS) {
        pingSentAt = now;
        vp.sendPing(++token).then(send, () => {});
      }
    }, 5000);

    const sink = (/** @type {Uint8Array} */ data) => {
      vp.sendInput(data).then(send, (exc) => {
        if (!(exc instanceof InvalidState)) console.error('termshare: input failed', exc);
      });
    };

    try {
      for (;;) {
        if (this.view.backlog > HIGH_WATER) await this.view.drainTo(LOW_WATER);
        const frame = await inbox.take();
        if (frame === null) break;
        await vp.receiveFrame(frame);
        send();
        for (const event of vp.eventsReceived()) {
          const result = await this._onEvent(event, sink);
          if (result) outcome ??= result;
        }
        if (vp.closeCode !== null || vp.state === 'CLOSED' || vp.state === 'ENDED') {
          if (vp.closeCode !== null && vp.closeCode !== CloseCode.REJECTED) closeWith(vp.closeCode, 'protocol');
          if (vp.state === 'ENDED') closeWith(1000, 'ended');
          if (outcome) break;
        }
      }
    } finally {
      clearTimeout(connectTimer);
      clearInterval(pingTimer);
      ws.onmessage = null;
      if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.close(1000);
    }
    if (closeCode === null && ws.readyState !== WebSocket.CLOSED) {
      // Wait briefly for the close code when we broke out of the loop ourselves.
      await new Promise((resolve) => {
        const t = setTimeout(resolve, 1000);
        ws.addEventListener('close', (ev) => { closeCode = ev.code; clearTimeout(t); resolve(); }, { once: true });
      });
    }
    this._update({ closeCode });
    return outcome ?? this._outcomeOfClose(closeCode, opened);
  }

  /** @param {number|null} code @param {boolean} opened */
  _outcomeOfClose(code, opened) {
    switch (code) {
      case CloseCode.REJECTED: return { final: true, phase: 'rejected' };
      case CloseCode.SESSION_ENDED: return { final: true, phase: 'ended' };
      case CloseCode.UNKNOWN_SESSION: return { final: false, phase: 'not-found', slow: true };
      case CloseCode.LIMIT: return { final: false, phase: 'limit', slow: true };
      case CloseCode.TOO_SLOW: return { final: false, reason: 'slow', immediate: true };
      case CloseCode.TIMEOUT: return { final: false, reason: 'timeout' };
      case CloseCode.BAD_FRAME:
      case CloseCode.TOO_LARGE: return { final: false, reason: 'protocol' };
      default: return { final: false, reason: opened ? 'lost' : 'unreachable' };
    }
  }

  /**
   * Apply one event; return an outcome if it decides how this connection ends.
   * @param {any} event
   * @param {(data: Uint8Array) => void} sink
   */
  async _onEvent(event, sink) {
    switch (event.type) {
      case 'Ready':
        this._update({ sharerPresent: event.sharerPresent });
        return null;
      case 'Welcomed':
        this._update({ canWrite: event.canWrite });
        if (event.canWrite) this.view.enableInput(sink);
        return null;
      case 'Snapshot':
        await this.view.snapshot(event.cols, event.rows, event.data);
        this._update({
          phase: 'live', everLive: true, resyncing: false, attempt: 0, retryAt: null, reason: undefined,
          detail: null, cols: event.cols, rows: event.rows, sharerPresent: true,
        });
        return null;
      case 'Output':
        this.view.write(event.data);
        return null;
      case 'Resize':
        await this.view.resize(event.cols, event.rows);
        this._update({ cols: event.cols, rows: event.rows });
        return null;
      case 'Viewers':
        this._update({ viewers: event.count });
        return null;
      case 'StreamBroken':
        this._update({ resyncing: true });
        return null;
      case 'SharerAway':
        this._update({ sharerPresent: false });
        return null;
      case 'SharerBack':
        this._update({ sharerPresent: true });
        return null;
      case 'Ended':
        this._update({ exitStatus: event.exitStatus });
        return { final: true, phase: 'ended' };
      case 'Removed':
        return { final: true, phase: 'removed' };
      case 'Rejected':
        switch (event.reason) {
          case RejectReason.WRONG_KEY: return { final: true, phase: 'rejected' };
          case RejectReason.READ_ONLY_SHARE: return { final: true, phase: 'readonly-share' };
          case RejectReason.REMOVED: return { final: true, phase: 'removed' };
          default: return { final: false, reason: 'protocol' }; // replayed HELLO, channel error
        }
      case 'Pong':
        return null;
      case 'ProtocolFailed':
        this._update({ detail: event.error });
        return { final: false, reason: 'protocol' };
      default:
        return null;
    }
  }
}
