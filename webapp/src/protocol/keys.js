// Key schedule, AEAD and signatures (docs/PROTOCOL.md §3), on WebCrypto only (`globalThis.crypto.subtle`),
// so the same code runs in browsers and in Node 20.

import { DecryptionError, HandshakeError, SequenceError } from './errors.js';
import { makeHeader } from './envelope.js';
import { KEY_FP_SIZE, KEY_SIZE, REKEY_FRAMES, Role, SECRET_SIZE } from './wire.js';

// Undefined outside secure contexts (plain http on a non-localhost address): see checkCryptoSupport().
const subtle = /** @type {SubtleCrypto} */ (globalThis.crypto?.subtle);
const encoder = new TextEncoder();

const LABEL_READ_ONLY = encoder.encode('termshare/1 read-only');
const LABEL_PSK_RW = encoder.encode('termshare/1 psk rw');
const LABEL_PSK_RO = encoder.encode('termshare/1 psk ro');
const LABEL_HELLO = encoder.encode('termshare/1 hello');
const LABEL_CHANNEL = encoder.encode('termshare/1 channel');
const LABEL_KEY = encoder.encode('termshare/1 key');
const LABEL_RATCHET = encoder.encode('termshare/1 ratchet');
const LABEL_GROUP_DIRECT = encoder.encode('termshare/1 group direct');
export const GROUP_SIG_LABEL = encoder.encode('termshare/1 group');
const WELCOME_SIG_LABEL = encoder.encode('termshare/1 welcome');
const ZERO_NONCE = new Uint8Array(12);
const EMPTY = new Uint8Array(0);
const X25519_PKCS8_PREFIX = Uint8Array.from([
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20,
]);

/** @typedef {(n: number) => Uint8Array} Rng */

/**
 * Concatenate byte strings.
 * @param {...Uint8Array} parts
 * @returns {Uint8Array}
 */
export function concat(...parts) {
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** @param {string} text @returns {Uint8Array} ASCII/UTF-8 bytes */
export function utf8(text) {
  return encoder.encode(text);
}

/**
 * HKDF-SHA256 (RFC 5869).
 * @param {Uint8Array} ikm
 * @param {Uint8Array} salt
 * @param {Uint8Array} info
 * @param {number} length bytes
 * @returns {Promise<Uint8Array>}
 */
export async function hkdf(ikm, salt, info, length) {
  const key = await subtle.importKey('raw', ikm, 'HKDF', false, ['deriveBits']);
  return new Uint8Array(await subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt, info }, key, length * 8));
}

/**
 * AEAD nonce: u32 epoch || u32 0 || u32 seq (§3.4).
 * @param {number} epoch
 * @param {number} seq
 * @returns {Uint8Array}
 */
export function nonce(epoch, seq) {
  const out = new Uint8Array(12);
  const view = new DataView(out.buffer);
  view.setUint32(0, epoch);
  view.setUint32(8, seq);
  return out;
}

/**
 * Import a raw 32-byte AES-256-GCM key (do this once per key, not per frame).
 * @param {Uint8Array} raw
 * @returns {Promise<CryptoKey>}
 */
export function importAesKey(raw) {
  return subtle.importKey('raw', raw, { name: 'AES-GCM' }, false, ['encrypt', 'decrypt']);
}

/**
 * AES-256-GCM encrypt; returns ciphertext || 16-byte tag.
 * @param {CryptoKey} key
 * @param {Uint8Array} iv
 * @param {Uint8Array} plaintext
 * @param {Uint8Array} aad
 * @returns {Promise<Uint8Array>}
 */
export async function aeadSeal(key, iv, plaintext, aad) {
  return new Uint8Array(await subtle.encrypt({ name: 'AES-GCM', iv, additionalData: aad, tagLength: 128 }, key, plaintext));
}

/**
 * AES-256-GCM decrypt of ciphertext || tag; throws DecryptionError if the check fails.
 * @param {CryptoKey} key
 * @param {Uint8Array} iv
 * @param {Uint8Array} ciphertext
 * @param {Uint8Array} aad
 * @returns {Promise<Uint8Array>}
 */
export async function aeadOpen(key, iv, ciphertext, aad) {
  try {
    return new Uint8Array(await subtle.decrypt({ name: 'AES-GCM', iv, additionalData: aad, tagLength: 128 }, key, ciphertext));
  } catch {
    throw new DecryptionError('frame failed authentication');
  }
}

/**
 * ro_secret = HKDF(rw_secret, sid, "termshare/1 read-only", 16) (§2.2).
 * @param {Uint8Array} rwSecret
 * @param {string} sid
 */
export function deriveRoSecret(rwSecret, sid) {
  return hkdf(rwSecret, utf8(sid), LABEL_READ_ONLY, SECRET_SIZE);
}

/**
 * psk for a role from that role's secret (rw_secret for READ_WRITE, ro_secret for READ_ONLY) (§3).
 * @param {number} role Role.READ_ONLY or Role.READ_WRITE
 * @param {Uint8Array} secret
 * @param {string} sid
 */
export function derivePsk(role, secret, sid) {
  return hkdf(secret, utf8(sid), role === Role.READ_WRITE ? LABEL_PSK_RW : LABEL_PSK_RO, KEY_SIZE);
}

/**
 * An X25519 key pair from 32 private bytes (the viewer's ephemeral, §3.1).
 * @param {Uint8Array} privateBytes
 * @returns {Promise<{privateKey: CryptoKey, publicKey: Uint8Array}>}
 */
export async function x25519KeyPair(privateBytes) {
  if (privateBytes.length !== 32) throw new RangeError('an X25519 private key is 32 bytes');
  const pkcs8 = concat(X25519_PKCS8_PREFIX, privateBytes);
  const privateKey = await subtle.importKey('pkcs8', pkcs8, { name: 'X25519' }, true, ['deriveBits']);
  pkcs8.fill(0);
  const jwk = await subtle.exportKey('jwk', privateKey);
  const publicKey = b64uToBytes(/** @type {string} */ (jwk.x));
  return { privateKey, publicKey };
}

/** @param {string} text @returns {Uint8Array} */
function b64uToBytes(text) {
  const bin = atob(text.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (text.length % 4)) % 4));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/**
 * X25519(private, peer); HandshakeError on an all-zero result (small-order point, §3.1 step 3).
 * @param {CryptoKey} privateKey
 * @param {Uint8Array} peerPublic 32 bytes
 * @returns {Promise<Uint8Array>}
 */
export async function x25519(privateKey, peerPublic) {
  let dh;
  try {
    const peer = await subtle.importKey('raw', peerPublic, { name: 'X25519' }, false, []);
    dh = new Uint8Array(await subtle.deriveBits({ name: 'X25519', public: peer }, privateKey, 256));
  } catch {
    // WebCrypto refuses an all-zero shared secret itself (OperationError).
    throw new HandshakeError("the peer's ephemeral key is a small-order point");
  }
  if (dh.every((b) => b === 0)) throw new HandshakeError("the peer's ephemeral key is a small-order point");
  return dh;
}

/**
 * hello_key = HKDF(psk, salt=EV, info="termshare/1 hello" || sid, 32) (§3.1).
 * @param {Uint8Array} psk
 * @param {Uint8Array} evPublic
 * @param {string} sid
 */
export function helloKey(psk, evPublic, sid) {
  return hkdf(psk, evPublic, concat(LABEL_HELLO, utf8(sid)), KEY_SIZE);
}

/**
 * The HELLO tag: AES-GCM(hello_key, 0, empty, aad = sid || header || role || EV).
 * @param {Uint8Array} psk
 * @param {string} sid
 * @param {Uint8Array} header 18 bytes
 * @param {number} role
 * @param {Uint8Array} evPublic
 * @returns {Promise<Uint8Array>} 16 bytes
 */
export async function helloTag(psk, sid, header, role, evPublic) {
  const key = await importAesKey(await helloKey(psk, evPublic, sid));
  return aeadSeal(key, ZERO_NONCE, EMPTY, concat(utf8(sid), header, Uint8Array.of(role), evPublic));
}

/**
 * sid || u32 viewer_id || u8 role || EV || ES: what names one handshake, in both the channel's key
 * derivation and WELCOME's signature (§3.1 steps 3 and 4).
 * @param {string} sid @param {number} viewerId @param {number} role
 * @param {Uint8Array} evPublic @param {Uint8Array} esPublic
 * @returns {Uint8Array}
 */
function handshakeNames(sid, viewerId, role, evPublic, esPublic) {
  const ids = new Uint8Array(5);
  new DataView(ids.buffer).setUint32(0, viewerId);
  ids[4] = role;
  return concat(utf8(sid), ids, evPublic, esPublic);
}

/**
 * The two chain keys of a channel at epoch 0 (§3.1 step 3).
 * @param {Uint8Array} dh
 * @param {Uint8Array} psk
 * @param {string} sid
 * @param {number} viewerId
 * @param {number} role
 * @param {Uint8Array} evPublic
 * @param {Uint8Array} esPublic
 * @returns {Promise<[Uint8Array, Uint8Array]>} [ck_s2v, ck_v2s]
 */
export async function channelChainKeys(dh, psk, sid, viewerId, role, evPublic, esPublic) {
  const info = concat(LABEL_CHANNEL, handshakeNames(sid, viewerId, role, evPublic, esPublic));
  const okm = await hkdf(dh, psk, info, 2 * KEY_SIZE);
  return [okm.slice(0, KEY_SIZE), okm.slice(KEY_SIZE)];
}

/**
 * Data covered by WELCOME's signature: both ephemeral keys of the handshake (§3.1 step 4).
 * @param {string} sid @param {number} viewerId @param {number} role the role the HELLO claimed
 * @param {Uint8Array} evPublic @param {Uint8Array} esPublic
 * @returns {Uint8Array}
 */
export function welcomeSignedData(sid, viewerId, role, evPublic, esPublic) {
  return concat(WELCOME_SIG_LABEL, handshakeNames(sid, viewerId, role, evPublic, esPublic));
}

/** key[c] = HKDF(ck[c], sid, "termshare/1 key", 32) (§3.2). @param {Uint8Array} chainKey @param {string} sid */
export function trafficKey(chainKey, sid) {
  return hkdf(chainKey, utf8(sid), LABEL_KEY, KEY_SIZE);
}

/** ck[c+1] = HKDF(ck[c], sid, "termshare/1 ratchet", 32) (§3.2). @param {Uint8Array} chainKey @param {string} sid */
export function nextChainKey(chainKey, sid) {
  return hkdf(chainKey, utf8(sid), LABEL_RATCHET, KEY_SIZE);
}

/**
 * gd_key = HKDF(ck_s2v[0], sid, "termshare/1 group direct", 32) (§3.3.1): the channel's key for
 * GROUP_DIRECT frames, kept for the channel's life (the group position is its nonce).
 * @param {Uint8Array} chainKey ck_s2v[0] @param {string} sid
 */
export function groupDirectKey(chainKey, sid) {
  return hkdf(chainKey, utf8(sid), LABEL_GROUP_DIRECT, KEY_SIZE);
}

/**
 * Data covered by a group signature: label || sid || header || SHA-256(ciphertext) (§3.4).
 * @param {Uint8Array} sidBytes
 * @param {Uint8Array} header
 * @param {Uint8Array} ciphertext
 * @returns {Promise<Uint8Array>}
 */
export async function groupSignedData(sidBytes, header, ciphertext) {
  const digest = new Uint8Array(await subtle.digest('SHA-256', ciphertext));
  return concat(GROUP_SIG_LABEL, sidBytes, header, digest);
}

/**
 * The fingerprint links carry of the sharer's signing key (PROTOCOL.md §2.3).
 * @param {string} sid @param {Uint8Array} publicKey @returns {Promise<Uint8Array>}
 */
export async function signKeyFp(sid, publicKey) {
  const digest = await subtle.digest('SHA-256', concat(utf8('termshare/1 sharer key'), utf8(sid), publicKey));
  return new Uint8Array(digest).slice(0, KEY_FP_SIZE);
}

/**
 * Import the sharer's Ed25519 public key; null if WebCrypto refuses it (every signature then fails).
 * @param {Uint8Array} publicKey
 * @returns {Promise<CryptoKey|null>}
 */
export async function importEd25519(publicKey) {
  try {
    return await subtle.importKey('raw', publicKey, { name: 'Ed25519' }, false, ['verify']);
  } catch {
    return null;
  }
}

/**
 * @param {CryptoKey|null} key
 * @param {Uint8Array} signature
 * @param {Uint8Array} data
 * @returns {Promise<boolean>}
 */
export async function verifyEd25519(key, signature, data) {
  if (key === null) return false;
  try {
    return await subtle.verify({ name: 'Ed25519' }, key, signature, data);
  } catch {
    return false;
  }
}

/** One direction of a channel, sending side: ratchets every REKEY_FRAMES frames (§3.2). */
export class SendChain {
  /** @param {string} sid @param {Uint8Array} chainKey @param {CryptoKey} key */
  constructor(sid, chainKey, key) {
    /** @private */ this._sid = sid;
    /** @private */ this._sidBytes = utf8(sid);
    /** @private */ this._chain = chainKey;
    /** @private */ this._key = key;
    this.epoch = 0;
    this.seq = 0;
  }

  /** @param {Uint8Array} chainKey @param {string} sid @returns {Promise<SendChain>} */
  static async create(chainKey, sid) {
    return new SendChain(sid, chainKey, await importAesKey(await trafficKey(chainKey, sid)));
  }

  /**
   * Encrypt `plaintext` at the next position and return the whole frame (header || ct || tag).
   * Callers must not run two seals of one chain concurrently.
   * @param {number} kind
   * @param {number} viewerId
   * @param {Uint8Array} plaintext
   * @param {Uint8Array} [prefix] clear bytes between header and ciphertext (WELCOME's ES)
   * @returns {Promise<Uint8Array>}
   */
  async sealFrame(kind, viewerId, plaintext, prefix = new Uint8Array(0)) {
    if (this.seq >= REKEY_FRAMES) {
      const chain = await nextChainKey(this._chain, this._sid);
      this._key = await importAesKey(await trafficKey(chain, this._sid));
      this._chain = chain; // the old chain key and traffic key are dropped here
      this.epoch += 1;
      this.seq = 0;
    }
    const epoch = this.epoch;
    const seq = this.seq++;
    const header = makeHeader(kind, prefix.length + plaintext.length + 16, viewerId, epoch, seq);
    const sealed = await aeadSeal(this._key, nonce(epoch, seq), plaintext, concat(this._sidBytes, header));
    return concat(header, prefix, sealed);
  }
}

/** One direction of a channel, receiving side: accepts only the exact next frame (§6.1). */
export class RecvChain {
  /** @param {string} sid @param {Uint8Array} chainKey @param {CryptoKey} key */
  constructor(sid, chainKey, key) {
    /** @private */ this._sid = sid;
    /** @private */ this._sidBytes = utf8(sid);
    /** @private */ this._chain = chainKey;
    /** @private */ this._key = key;
    this.epoch = 0;
    this.seq = 0;
  }

  /** @param {Uint8Array} chainKey @param {string} sid @returns {Promise<RecvChain>} */
  static async create(chainKey, sid) {
    return new RecvChain(sid, chainKey, await importAesKey(await trafficKey(chainKey, sid)));
  }

  /**
   * Open a channel frame. SequenceError unless it is the exact next (epoch, seq); DecryptionError if
   * the AEAD check fails. Only an authentic frame moves the window.
   * @param {{epoch: number, seq: number, header: Uint8Array}} frame
   * @param {Uint8Array} ciphertext
   * @returns {Promise<Uint8Array>}
   */
  async open(frame, ciphertext) {
    let key = this._key;
    let chain = this._chain;
    if (frame.epoch === this.epoch && frame.seq === this.seq) {
      // the current key
    } else if (frame.epoch === this.epoch + 1 && frame.seq === 0 && this.seq === REKEY_FRAMES) {
      chain = await nextChainKey(this._chain, this._sid);
      key = await importAesKey(await trafficKey(chain, this._sid));
    } else {
      throw new SequenceError(`expected channel frame (${this.epoch}, ${this.seq}), got (${frame.epoch}, ${frame.seq})`);
    }
    let plaintext;
    try {
      plaintext = await aeadOpen(key, nonce(frame.epoch, frame.seq), ciphertext, concat(this._sidBytes, frame.header));
    } catch {
      throw new DecryptionError('channel frame failed authentication');
    }
    this._chain = chain; // the old chain key is dropped with the old epoch
    this._key = key;
    this.epoch = frame.epoch;
    this.seq = frame.seq + 1;
    return plaintext;
  }
}

/**
 * Check that this runtime offers every WebCrypto algorithm the protocol needs (WebCrypto exists only
 * in secure contexts; X25519 and Ed25519 need a recent browser). Never throws.
 * @returns {Promise<{ok: boolean, missing: string[]}>}
 */
export async function checkCryptoSupport() {
  if (!subtle) return { ok: false, missing: ['WebCrypto (needs https or localhost)'] };
  const missing = [];
  const probes = /** @type {[string, () => Promise<unknown>][]} */ ([
    ['AES-GCM', () => importAesKey(new Uint8Array(32))],
    ['HKDF', () => hkdf(new Uint8Array(16), new Uint8Array(0), new Uint8Array(0), 32)],
    ['SHA-256', () => subtle.digest('SHA-256', new Uint8Array(0))],
    ['X25519', () => x25519KeyPair(new Uint8Array(32).fill(1))],
    ['Ed25519', async () => {
      const pair = /** @type {CryptoKeyPair} */ (await subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']));
      await subtle.verify({ name: 'Ed25519' }, pair.publicKey, new Uint8Array(64), new Uint8Array(0));
    }],
  ]);
  for (const [name, probe] of probes) {
    try {
      await probe();
    } catch {
      missing.push(name);
    }
  }
  return { ok: missing.length === 0, missing };
}
