// ViewerProtocol: the viewer's side of a session, sans I/O (docs/PROTOCOL.md §6, §7.1).
// Mirrors termshare/protocol/viewer.py.
//
// The driver opens a websocket to `<base>/ws/view/<sid>`, awaits `receiveFrame()` for every binary
// message, sends what `framesToSend()` returns, and acts on `eventsReceived()`.
//
//   CONNECTING --READY--> HANDSHAKE --WELCOME--> SYNCING --SNAPSHOT--> LIVE
//                                                  ^                     |
//                                                  +--- gap / bad GROUP -+   (sends RESYNC)
//   BYE -> ENDED;   REJECT, REMOVED, bad channel frame -> CLOSED
//
// Peer input never throws: a bad channel frame or a malformed relay frame moves to CLOSED with
// `closeCode` set and a ProtocolFailed event; the driver closes the socket and may reconnect with a
// new ViewerProtocol (fresh handshake, so no key or nonce is reused). A bad GROUP or GROUP_DIRECT
// frame only breaks the stream: it is never applied, and the next SNAPSHOT resynchronises (§6.2).
//
// All public async methods run one at a time in call order (an internal queue), so a sendInput()
// issued while a frame is being decrypted cannot reorder the upstream channel.

import { makeHeader, parseFrame } from './envelope.js';
import { FrameError, HandshakeError, InvalidState, MessageError, ProtocolError } from './errors.js';
import {
  RecvChain, SendChain, aeadOpen, channelChainKeys, concat, derivePsk, groupDirectKey, helloTag, importAesKey,
  importEd25519, GROUP_SIG_LABEL, nonce, signKeyFp, utf8, verifyEd25519, welcomeSignedData, x25519, x25519KeyPair,
} from './keys.js';
import { decodeMessage, decodeWelcome, encodeMessage } from './messages.js';
import { CloseCode, FrameKind, KEY_SIZE, MAX_INPUT, MessageType, Role, SIG_SIZE, TAG_SIZE } from './wire.js';

const subtle = /** @type {SubtleCrypto} */ (globalThis.crypto?.subtle);

/**
 * @typedef {'CONNECTING'|'HANDSHAKE'|'SYNCING'|'LIVE'|'ENDED'|'CLOSED'} ViewerState
 *
 * Events (drained by eventsReceived()); `type` is the Python class name, fields are camelCase:
 * @typedef {{type: 'Ready', viewerId: number, sharerPresent: boolean}
 *   | {type: 'Welcomed', canWrite: boolean}
 *   | {type: 'Snapshot', cols: number, rows: number, data: Uint8Array}
 *   | {type: 'Output', data: Uint8Array}
 *   | {type: 'Resize', cols: number, rows: number}
 *   | {type: 'Viewers', count: number}
 *   | {type: 'StreamBroken', reason: 'gap'|'auth'|'epoch'|'skipped'}
 *   | {type: 'SharerAway'}
 *   | {type: 'SharerBack'}
 *   | {type: 'Ended', exitStatus: number}
 *   | {type: 'Removed'}
 *   | {type: 'Rejected', reason: number}
 *   | {type: 'Pong', token: number|bigint}
 *   | {type: 'ProtocolFailed', closeCode: number, error: string}} ViewerEvent
 *
 * Pong's token is a number when it is at most Number.MAX_SAFE_INTEGER, otherwise a bigint.
 */

/** @typedef {{epoch: number, key: CryptoKey}} GroupKey */

/** @param {number} n @returns {Uint8Array} */
function defaultRng(n) {
  return globalThis.crypto.getRandomValues(new Uint8Array(n));
}

export class ViewerProtocol {
  /**
   * @param {{link: import('./link.js').Link, rng?: (n: number) => Uint8Array}} options
   */
  constructor({ link, rng = defaultRng }) {
    if (!link || typeof link.sid !== 'string' || !(link.secret instanceof Uint8Array) || !(link.keyFp instanceof Uint8Array)) {
      throw new TypeError('ViewerProtocol needs a link from parseLink()');
    }
    /** @readonly */ this.sid = link.sid;
    /** @readonly @type {'rw'|'ro'} */ this.role = link.role;
    /** @private */ this._roleCode = link.role === 'rw' ? Role.READ_WRITE : Role.READ_ONLY;
    /** @private */ this._secret = link.secret.slice();
    /** @private */ this._keyFp = link.keyFp.slice();
    /** @private */ this._sidBytes = utf8(link.sid);
    /** @private */ this._rng = rng;
    /** @private @type {Promise<Uint8Array>|null} */ this._pskPromise = null;
    /** @private @type {ViewerState} */ this._state = 'CONNECTING';
    /** @private @type {number|null} */ this._viewerId = null;
    /** @private */ this._canWrite = false;
    /** @private @type {number|null} */ this._closeCode = null;
    /** The error that closed the protocol, if any (for logs; never contains key material). @type {Error|null} */
    this.failure = null;
    /** @private @type {Uint8Array[]} */ this._frames = [];
    /** @private @type {ViewerEvent[]} */ this._events = [];
    /** @private @type {CryptoKey|null} */ this._evPrivate = null;
    /** @private @type {Uint8Array} */ this._evPublic = new Uint8Array(0);
    /** @private @type {SendChain|null} */ this._send = null;
    /** @private @type {RecvChain|null} */ this._recv = null;
    /** @private @type {CryptoKey|null} */ this._signKey = null;
    /** @private @type {GroupKey|null} */ this._group = null;
    /** this channel's key for GROUP_DIRECT frames (§3.3.1) @private @type {CryptoKey|null} */
    this._groupDirect = null;
    /** @private @type {GroupKey|null} */ this._pending = null;
    /** next seq at which the current epoch must end to switch to _pending (-1: never) @private */
    this._pendingFrom = -1;
    /** @private */ this._nextSeq = 0;
    /** @private @type {Promise<unknown>} */ this._tail = Promise.resolve();
  }

  /** @returns {ViewerState} */
  get state() { return this._state; }
  /** Close code the driver must close the websocket with, once the protocol decided to close. @returns {number|null} */
  get closeCode() { return this._closeCode; }
  /** Whether this viewer may type (set by WELCOME). @returns {boolean} */
  get canWrite() { return this._canWrite; }
  /** @returns {number|null} */
  get viewerId() { return this._viewerId; }

  // -- driver interface -------------------------------------------------------------------------

  /** Drain the queued outgoing frames (send each as one binary websocket message, in order). @returns {Uint8Array[]} */
  framesToSend() {
    const frames = this._frames;
    this._frames = [];
    return frames;
  }

  /** Drain the events reported since the last call. @returns {ViewerEvent[]} */
  eventsReceived() {
    const events = this._events;
    this._events = [];
    return events;
  }

  /**
   * Feed one websocket message. Never throws on peer input.
   * @param {Uint8Array|ArrayBuffer|ArrayBufferView} data
   * @returns {Promise<void>}
   */
  receiveFrame(data) {
    return this._serial(() => this._receive(data));
  }

  /**
   * Queue keystrokes (split into INPUT messages of at most MAX_INPUT bytes).
   * Throws InvalidState unless joined (SYNCING/LIVE) on a channel WELCOME allowed to write.
   * @param {Uint8Array} data
   * @returns {Promise<void>}
   */
  sendInput(data) {
    return this._serial(async () => {
      if (!this._joined() || !this._canWrite) throw new InvalidState('this link cannot type (read-only, or not joined yet)');
      for (let start = 0; start < data.length; start += MAX_INPUT) {
        await this._sendUpstream({ type: MessageType.INPUT, data: data.subarray(start, start + MAX_INPUT) });
      }
    });
  }

  /** Ask the sharer for a SNAPSHOT. Throws InvalidState unless joined. @returns {Promise<void>} */
  sendResync() {
    return this._serial(async () => {
      if (!this._joined()) throw new InvalidState('not joined yet');
      await this._sendUpstream({ type: MessageType.RESYNC });
    });
  }

  /** Send PING with a u64 token (answered by a Pong event). Throws InvalidState unless joined. @param {bigint|number} token @returns {Promise<void>} */
  sendPing(token) {
    return this._serial(async () => {
      if (!this._joined()) throw new InvalidState('not joined yet');
      await this._sendUpstream({ type: MessageType.PING, token: BigInt(token) });
    });
  }

  // -- internals ------------------------------------------------------------------------------

  /**
   * Run `fn` after every previously queued operation.
   * @template T @param {() => Promise<T>} fn @returns {Promise<T>}
   * @private
   */
  _serial(fn) {
    const result = this._tail.then(fn);
    this._tail = result.catch(() => {});
    return result;
  }

  /** @private */
  _joined() {
    return this._state === 'SYNCING' || this._state === 'LIVE';
  }

  /** @private @returns {Promise<Uint8Array>} */
  _psk() {
    if (this._pskPromise === null) this._pskPromise = derivePsk(this._roleCode, this._secret, this.sid);
    return this._pskPromise;
  }

  /** @private @param {Uint8Array|ArrayBuffer|ArrayBufferView} data */
  async _receive(data) {
    if (this._state === 'ENDED' || this._state === 'CLOSED') return;
    try {
      await this._dispatch(parseFrame(data));
    } catch (exc) {
      this._fail(/** @type {Error} */ (exc));
    }
  }

  /** @private @param {import('./envelope.js').Frame} frame */
  async _dispatch(frame) {
    switch (frame.kind) {
      case FrameKind.GROUP:
        return this._onGroup(frame);
      case FrameKind.GROUP_DIRECT:
        return this._onGroupDirect(frame);
      case FrameKind.DIRECT:
        return this._onDirect(frame);
      case FrameKind.READY:
        return this._onReady(frame);
      case FrameKind.WELCOME:
        return this._onWelcome(frame);
      case FrameKind.REJECT:
        this._checkRecipient(frame);
        this._state = 'CLOSED';
        this._closeCode = CloseCode.REJECTED;
        this._eraseKeys();
        this._events.push({ type: 'Rejected', reason: frame.body[0] });
        return;
      case FrameKind.SHARER_AWAY:
        this._events.push({ type: 'SharerAway' });
        return;
      case FrameKind.SHARER_BACK:
        this._events.push({ type: 'SharerBack' });
        // The first HELLO may have been lost while the sharer was away: restart with a new EV.
        if (this._state === 'HANDSHAKE') await this._sendHello();
        return;
      case FrameKind.SKIPPED:
        // The relay dropped output queued for us: resync now rather than at the next frame.
        if (this._state === 'LIVE') await this._broken('skipped');
        return;
      default:
        throw new FrameError(`a viewer does not accept frames of kind 0x${frame.kind.toString(16).padStart(2, '0')}`);
    }
  }

  /** @private @param {import('./envelope.js').Frame} frame */
  _checkRecipient(frame) {
    if (this._viewerId === null || frame.viewerId !== this._viewerId) {
      throw new FrameError(`frame addressed to viewer ${frame.viewerId}, not to us`);
    }
  }

  /** @private @param {import('./envelope.js').Frame} frame */
  async _onReady(frame) {
    if (this._state !== 'CONNECTING') throw new FrameError('READY after the session was joined');
    if (frame.body.length !== 1 || frame.body[0] > 1 || frame.viewerId === 0) throw new FrameError('malformed READY for a viewer');
    this._viewerId = frame.viewerId;
    this._state = 'HANDSHAKE';
    this._events.push({ type: 'Ready', viewerId: frame.viewerId, sharerPresent: frame.body[0] === 1 });
    await this._sendHello();
  }

  /** @private */
  async _sendHello() {
    const viewerId = /** @type {number} */ (this._viewerId);
    const privateBytes = this._rng(32);
    if (!(privateBytes instanceof Uint8Array) || privateBytes.length !== 32) throw new TypeError('rng(32) must return 32 bytes');
    const { privateKey, publicKey } = await x25519KeyPair(privateBytes);
    this._evPrivate = privateKey; // replaces (erases) the ephemeral of a previous HELLO
    this._evPublic = publicKey;
    const psk = await this._psk();
    const header = makeHeader(FrameKind.HELLO, 1 + KEY_SIZE + TAG_SIZE, viewerId);
    const tag = await helloTag(psk, this.sid, header, this._roleCode, publicKey);
    this._frames.push(concat(header, Uint8Array.of(this._roleCode), publicKey, tag));
  }

  /** @private @param {import('./envelope.js').Frame} frame */
  async _onWelcome(frame) {
    if (this._state !== 'HANDSHAKE') throw new HandshakeError('WELCOME outside the handshake');
    this._checkRecipient(frame);
    const viewerId = /** @type {number} */ (this._viewerId);
    const esPublic = frame.body.subarray(0, KEY_SIZE);
    const ciphertext = frame.body.subarray(KEY_SIZE);
    const psk = await this._psk();
    const dh = await x25519(/** @type {CryptoKey} */ (this._evPrivate), esPublic);
    const [ckS2v, ckV2s] = await channelChainKeys(dh, psk, this.sid, viewerId, this._roleCode, this._evPublic, esPublic);
    dh.fill(0);
    const recv = await RecvChain.create(ckS2v, this.sid);
    let welcome;
    let plaintext;
    try {
      plaintext = await recv.open(frame, ciphertext);
      welcome = decodeWelcome(plaintext);
    } catch (exc) {
      if (exc instanceof ProtocolError) throw new HandshakeError(`WELCOME could not be opened: ${exc.message}`);
      throw exc;
    }
    const fp = await signKeyFp(this.sid, welcome.signKey);
    if (fp.some((byte, i) => byte !== this._keyFp[i])) {
      // Anyone holding this link's secret can complete the handshake; only the sharer holds the
      // signing key whose fingerprint the link carries (PROTOCOL.md §2.3, §3.3).
      throw new HandshakeError("the sharer's signing key does not match the link");
    }
    const signKey = await importEd25519(welcome.signKey);
    const signed = welcomeSignedData(this.sid, viewerId, this._roleCode, this._evPublic, esPublic);
    if (!(await verifyEd25519(signKey, welcome.welcomeSig, signed))) {
      // That key is no secret: anyone holding the link's secret could send it with an ES of their
      // own and hold this channel's keys; only the sharer can sign our EV with its ES (§3.1 step 4).
      throw new HandshakeError("the sharer's WELCOME is not signed by its key");
    }
    const send = await SendChain.create(ckV2s, this.sid);
    const groupKey = await importAesKey(welcome.groupKey);
    const groupDirectRaw = await groupDirectKey(ckS2v, this.sid);
    const groupDirect = await importAesKey(groupDirectRaw);
    groupDirectRaw.fill(0);
    plaintext.fill(0);
    this._evPrivate = null; // ephemeral secret: erase as soon as the channel exists
    this._recv = recv;
    this._send = send;
    this._signKey = signKey;
    this._group = { epoch: welcome.groupEpoch, key: groupKey };
    this._groupDirect = groupDirect;
    this._canWrite = welcome.canWrite && this._roleCode === Role.READ_WRITE;
    this._state = 'SYNCING';
    this._events.push({ type: 'Welcomed', canWrite: this._canWrite });
  }

  /** @private @param {import('./envelope.js').Frame} frame */
  async _onDirect(frame) {
    // After a sharer resume, a snapshot may be addressed to a channel whose WELCOME was lost;
    // our fresh HELLO replaces that channel (PROTOCOL.md §7.1).
    if (this._state === 'HANDSHAKE') return;
    if (!this._joined() || this._recv === null) throw new FrameError('DIRECT frame before WELCOME');
    this._checkRecipient(frame);
    const message = decodeMessage(FrameKind.DIRECT, await this._recv.open(frame, frame.body));
    switch (message.type) {
      case MessageType.SNAPSHOT:
        return this._onSnapshot(message);
      case MessageType.REKEY:
        return this._onRekey(message);
      case MessageType.REMOVED:
        this._state = 'CLOSED';
        this._closeCode = CloseCode.REJECTED;
        this._eraseKeys();
        this._events.push({ type: 'Removed' });
        return;
      default: { // PONG
        const token = /** @type {bigint} */ (message.token);
        this._events.push({ type: 'Pong', token: token <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(token) : token });
      }
    }
  }

  /** @private @param {import('./messages.js').Message} snap */
  _onSnapshot(snap) {
    const group = /** @type {GroupKey} */ (this._group);
    if (this._pending !== null && snap.groupEpoch === this._pending.epoch) {
      this._group = this._pending; // the old group key is dropped here
      this._pending = null;
    } else if (snap.groupEpoch !== group.epoch) {
      throw new MessageError(`SNAPSHOT for group epoch ${snap.groupEpoch}, we hold ${group.epoch}`);
    }
    this._nextSeq = snap.nextSeq;
    this._state = 'LIVE';
    this._events.push({ type: 'Snapshot', cols: snap.cols, rows: snap.rows, data: snap.data });
  }

  /** @private @param {import('./messages.js').Message} rekey */
  async _onRekey(rekey) {
    const group = /** @type {GroupKey} */ (this._group);
    const latest = this._pending !== null ? this._pending.epoch : group.epoch;
    if (rekey.groupEpoch !== latest + 1) throw new MessageError(`REKEY to group epoch ${rekey.groupEpoch}, expected ${latest + 1}`);
    const key = await importAesKey(rekey.groupKey);
    rekey.groupKey.fill(0);
    if (this._pending === null) this._pendingFrom = rekey.closingCount;
    else if (rekey.closingCount) this._pendingFrom = -1; // frames of the skipped epoch exist: resync
    // A newer REKEY replaces an unused pending key (§5.4).
    this._pending = { epoch: rekey.groupEpoch, key };
  }

  /** @private @param {import('./envelope.js').Frame} frame */
  async _onGroup(frame) {
    return this._onGroupStream(frame, (key) => this._openGroup(frame, key));
  }

  /**
   * The plaintext of a GROUP frame, null unless both its signature and its AEAD check pass.
   * @private @param {import('./envelope.js').Frame} frame @param {GroupKey} key the group key of its epoch
   * @returns {Promise<Uint8Array|null>}
   */
  async _openGroup(frame, key) {
    const body = frame.body;
    const ciphertext = body.subarray(0, body.length - SIG_SIZE);
    const signature = body.subarray(body.length - SIG_SIZE);
    // The signature check and the AEAD check run concurrently; nothing is used unless both pass,
    // which is equivalent to "verify, then decrypt" (§6.2) and halves the latency.
    const signKey = this._signKey;
    const sidBytes = this._sidBytes;
    const header = frame.header;
    const [authentic, plaintext] = await Promise.all([
      subtle.digest('SHA-256', ciphertext).then(
        (digest) => verifyEd25519(signKey, signature, concat(GROUP_SIG_LABEL, sidBytes, header, new Uint8Array(digest))),
      ),
      aeadOpen(key.key, nonce(frame.epoch, frame.seq), ciphertext, concat(sidBytes, header)).catch(() => null),
    ]);
    return authentic ? plaintext : null;
  }

  /** @private @param {import('./envelope.js').Frame} frame */
  async _onGroupDirect(frame) {
    // A frame named for another viewer is refused as for DIRECT; when not LIVE it is ignored
    // unread, like every group frame (§6.2).
    if (this._state === 'LIVE') this._checkRecipient(frame);
    // Sealed for this channel alone, so the AEAD check proves the sharer sent it: no signature.
    const groupDirect = /** @type {CryptoKey} */ (this._groupDirect);
    return this._onGroupStream(frame, () =>
      aeadOpen(groupDirect, nonce(frame.epoch, frame.seq), frame.body, concat(this._sidBytes, frame.header)).catch(() => null));
  }

  /**
   * Where a GROUP or GROUP_DIRECT frame falls in the group stream (§6.2): the group key of its
   * epoch if it is the exact next frame (the pending key if it opens the next epoch, §5.4), null
   * if it is to be ignored, or the reason it breaks the stream.
   * @private @param {{epoch: number, seq: number}} position
   * @returns {GroupKey|null|'gap'|'epoch'}
   */
  _groupPosition({ epoch, seq }) {
    const group = /** @type {GroupKey} */ (this._group);
    if (epoch === group.epoch) {
      if (seq < this._nextSeq) return null; // already applied, or older than our snapshot
      return seq > this._nextSeq ? 'gap' : group;
    }
    if (this._pending !== null && epoch === this._pending.epoch && seq === 0) {
      // 'gap': the old epoch's end was dropped, and switching now would hide it (§5.4)
      return this._nextSeq === this._pendingFrom ? this._pending : 'gap';
    }
    return epoch < group.epoch ? null : 'epoch';
  }

  /**
   * Apply a group-stream frame (§6.2) if it is the exact next one and `open` authenticates it.
   * @private
   * @param {import('./envelope.js').Frame} frame
   * @param {(key: GroupKey) => Promise<Uint8Array|null>} open its plaintext, null if not authentic
   */
  async _onGroupStream(frame, open) {
    if (this._state !== 'LIVE') return; // not yet synced, or resyncing: the SNAPSHOT says where to continue (§6.2)
    const key = this._groupPosition(frame);
    if (key === null) return;
    if (typeof key === 'string') return this._broken(key);
    const plaintext = await open(key);
    if (plaintext === null) return this._broken('auth');
    // Authentic from here on: a malformed message is the sharer's bug, fatal for the connection.
    const message = decodeMessage(FrameKind.GROUP, plaintext);
    if (key === this._pending) {
      this._group = key; // the old group key is dropped here (§3.3)
      this._pending = null;
    }
    this._nextSeq = frame.seq + 1;
    switch (message.type) {
      case MessageType.OUTPUT:
        this._events.push({ type: 'Output', data: message.data });
        return;
      case MessageType.RESIZE:
        this._events.push({ type: 'Resize', cols: message.cols, rows: message.rows });
        return;
      case MessageType.VIEWERS:
        this._events.push({ type: 'Viewers', count: message.count });
        return;
      default: // BYE
        this._state = 'ENDED';
        this._closeCode = CloseCode.NORMAL;
        this._eraseKeys();
        this._events.push({ type: 'Ended', exitStatus: message.exitStatus });
    }
  }

  /** @private @param {'gap'|'auth'|'epoch'} reason */
  async _broken(reason) {
    this._state = 'SYNCING';
    this._events.push({ type: 'StreamBroken', reason });
    await this._sendUpstream({ type: MessageType.RESYNC });
  }

  /** @private @param {import('./messages.js').Message} message */
  async _sendUpstream(message) {
    const send = /** @type {SendChain} */ (this._send);
    this._frames.push(await send.sealFrame(FrameKind.UPSTREAM, /** @type {number} */ (this._viewerId), encodeMessage(message)));
  }

  /** Drop every key reference once the connection is over. @private */
  _eraseKeys() {
    this._evPrivate = null;
    this._send = null;
    this._recv = null;
    this._signKey = null;
    this._group = null;
    this._groupDirect = null;
    this._pending = null;
    this._pskPromise = null;
    this._secret.fill(0);
  }

  /** @private @param {Error} exc */
  _fail(exc) {
    const closeCode = exc instanceof ProtocolError ? exc.closeCode : CloseCode.BAD_FRAME;
    this._state = 'CLOSED';
    this._closeCode = closeCode;
    this.failure = exc;
    this._eraseKeys();
    this._events.push({ type: 'ProtocolFailed', closeCode, error: exc && exc.name ? exc.name : 'Error' });
  }
}
