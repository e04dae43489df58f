// Every case of vectors/*.json that applies to the viewer side, checked against webapp/src/protocol.
// Run: node --test webapp/test/
import { test } from 'node:test';
import assert from 'node:assert/strict';

import * as wire from '../src/protocol/wire.js';
import * as errors from '../src/protocol/errors.js';
import { parseFrame } from '../src/protocol/envelope.js';
import { decodeMessage, decodeWelcome, encodeMessage, encodeWelcome } from '../src/protocol/messages.js';
import { parseLink, formatLink } from '../src/protocol/link.js';
import {
  aeadOpen, aeadSeal, channelChainKeys, deriveRoSecret, derivePsk, groupDirectKey, helloKey, helloTag, importAesKey,
  nextChainKey, trafficKey, x25519, x25519KeyPair,
} from '../src/protocol/keys.js';
import { ViewerProtocol } from '../src/protocol/viewer.js';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const VECTORS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../vectors');

/** @param {string} hex @returns {Uint8Array} */
function fromHex(hex) {
  if (hex.length % 2) throw new Error(`odd hex length: ${hex}`);
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** @param {Uint8Array} bytes @returns {string} */
function toHex(bytes) {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

/**
 * JSON.parse that keeps integers beyond 2^53 exact (as BigInt). Vector files hold only hex strings
 * and plain numbers, so a textual pass over unquoted numbers is enough.
 * @param {string} text
 */
function parseJsonBig(text) {
  const marked = text.replace(/([:,[]\s*)(-?\d{16,})(?=\s*[,}\]])/g, '$1"@@bigint:$2"');
  return JSON.parse(marked, (_key, value) =>
    typeof value === 'string' && value.startsWith('@@bigint:') ? normalizeInt(BigInt(value.slice(9))) : value);
}

/** @param {bigint} value @returns {number|bigint} */
function normalizeInt(value) {
  return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
}

/** @param {string} name */
function loadVectors(name) {
  return parseJsonBig(readFileSync(path.join(VECTORS, name), 'utf8'));
}

/** @param {string} name @returns {string} snake_case */
function snake(name) {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** @param {string} name @returns {string} camelCase */
function camel(name) {
  return name.replace(/_([a-z])/g, (_m, c) => c.toUpperCase());
}

/**
 * Render a JS event as the vectors do: {event: ClassName, snake_case fields, bytes as hex}.
 * @param {{type: string, [k: string]: any}} event
 */
function eventJson(event) {
  /** @type {Record<string, any>} */
  const out = { event: event.type };
  for (const [key, value] of Object.entries(event)) {
    if (key === 'type') continue;
    out[snake(key)] = value instanceof Uint8Array ? toHex(value) : typeof value === 'bigint' ? normalizeInt(value) : value;
  }
  return out;
}

/**
 * An rng that returns the given draws in order and checks each requested length.
 * @param {string[]} hexDraws
 */
function scriptedRng(hexDraws) {
  const draws = hexDraws.map(fromHex);
  /** @param {number} n */
  const rng = (n) => {
    const draw = draws.shift();
    if (draw === undefined) throw new Error('rng called more often than the vector allows');
    if (draw.length !== n) throw new Error(`rng asked for ${n} bytes, vector has ${draw.length}`);
    return draw;
  };
  rng.remaining = () => draws.length;
  return rng;
}

/**
 * Assert that `fn` throws (or rejects with) the error class named `name`.
 * @param {() => any} fn @param {string} name
 */
async function assertThrowsNamed(fn, name) {
  let error = null;
  try {
    await fn();
  } catch (exc) {
    error = exc;
  }
  assert.ok(error, `expected ${name}, nothing was thrown`);
  assert.equal(error.name, name, `expected ${name}, got ${error && error.stack}`);
  assert.ok(error instanceof errors[name], `${error.name} is not an instance of errors.${name}`);
  assert.ok(error instanceof errors.TermshareError);
}

test('constants.json', () => {
  const c = loadVectors('constants.json');
  assert.equal(wire.VERSION, c.version);
  assert.equal(wire.HEADER_SIZE, c.header_size);
  assert.equal(wire.MAX_FRAME, c.max_frame);
  assert.equal(wire.MAX_OUTPUT, c.max_output);
  assert.equal(wire.MAX_INPUT, c.max_input);
  assert.equal(wire.MAX_TERM_SIZE, c.max_term_size);
  assert.equal(wire.REKEY_FRAMES, c.rekey_frames);
  assert.equal(wire.REKEY_SECONDS, c.rekey_seconds);
  assert.equal(wire.SECRET_SIZE, c.secret_size);
  assert.equal(wire.TAG_SIZE, c.tag_size);
  assert.equal(wire.SIG_SIZE, c.sig_size);
  assert.deepEqual({ ...wire.FrameKind }, c.kinds);
  assert.deepEqual({ ...wire.MessageType }, c.messages);
  assert.deepEqual({ ...wire.CloseCode }, c.close_codes);
  assert.deepEqual({ ...wire.RejectReason }, c.reject_reasons);
  assert.deepEqual({ ...wire.Role }, c.roles);
  const known = new Set(['version', 'header_size', 'max_frame', 'max_output', 'max_input', 'max_term_size', 'rekey_frames',
    'rekey_seconds', 'secret_size', 'tag_size', 'sig_size', 'kinds', 'messages', 'close_codes', 'reject_reasons', 'roles']);
  for (const key of Object.keys(c)) assert.ok(known.has(key), `constants.json has ${key}, which this test does not check`);
});

for (const c of loadVectors('aead.json')) {
  test(`aead.json ${c.name}`, async () => {
    const key = await importAesKey(fromHex(c.key));
    const iv = fromHex(c.nonce);
    const aad = fromHex(c.aad);
    assert.equal(toHex(await aeadSeal(key, iv, fromHex(c.plaintext), aad)), c.ciphertext);
    assert.equal(toHex(await aeadOpen(key, iv, fromHex(c.ciphertext), aad)), c.plaintext);
    const tampered = fromHex(c.ciphertext);
    tampered[tampered.length - 1] ^= 1;
    await assertThrowsNamed(() => aeadOpen(key, iv, tampered, aad), 'DecryptionError');
  });
}

for (const c of loadVectors('keys.json')) {
  test(`keys.json ${c.name}`, async () => {
    const sid = c.sid;
    const rw = fromHex(c.rw_secret);
    const ro = await deriveRoSecret(rw, sid);
    assert.equal(toHex(ro), c.ro_secret);
    assert.equal(toHex(await derivePsk(wire.Role.READ_WRITE, rw, sid)), c.psk_rw);
    assert.equal(toHex(await derivePsk(wire.Role.READ_ONLY, ro, sid)), c.psk_ro);
    // The fragments are what links carry.
    const base = 'https://relay.example';
    const keyFp = fromHex(c.key_fp);
    assert.equal(formatLink(base, sid, 'rw', rw, keyFp), `${base}/s/${sid}#${c.rw_fragment}`);
    assert.equal(formatLink(base, sid, 'ro', ro, keyFp), `${base}/s/${sid}#${c.ro_fragment}`);
    assert.equal(toHex(parseLink(`${base}/s/${sid}#${c.ro_fragment}`).secret), c.ro_secret);

    const hs = c.handshake;
    const role = hs.role;
    const psk = fromHex(role === wire.Role.READ_WRITE ? c.psk_rw : c.psk_ro);
    const ev = await x25519KeyPair(fromHex(hs.ev_private));
    const es = await x25519KeyPair(fromHex(hs.es_private));
    assert.equal(toHex(ev.publicKey), hs.ev_public);
    assert.equal(toHex(es.publicKey), hs.es_public);
    assert.equal(toHex(await helloKey(psk, ev.publicKey, sid)), hs.hello_key);
    const helloFrame = fromHex(hs.hello_frame);
    const tag = await helloTag(psk, sid, helloFrame.subarray(0, 18), role, ev.publicKey);
    assert.equal(toHex(tag), toHex(helloFrame.subarray(-16)));

    // The viewer itself, driven by READY, must send exactly hello_frame.
    const secret = role === wire.Role.READ_WRITE ? rw : ro;
    const viewer = new ViewerProtocol({
      link: { base, sid, role: role === wire.Role.READ_WRITE ? 'rw' : 'ro', secret, keyFp: fromHex(c.key_fp) },
      rng: scriptedRng([hs.ev_private]),
    });
    const ready = new Uint8Array([1, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1]);
    new DataView(ready.buffer).setUint32(2, hs.viewer_id);
    await viewer.receiveFrame(ready);
    assert.deepEqual(viewer.framesToSend().map(toHex), [hs.hello_frame]);
    assert.equal(viewer.state, 'HANDSHAKE');

    const dh = await x25519(ev.privateKey, es.publicKey);
    assert.equal(toHex(dh), hs.dh);
    assert.equal(toHex(await x25519(es.privateKey, ev.publicKey)), hs.dh);
    const [ckS2v, ckV2s] = await channelChainKeys(dh, psk, sid, hs.viewer_id, role, ev.publicKey, es.publicKey);
    assert.equal(toHex(ckS2v), hs.ck_s2v);
    assert.equal(toHex(ckV2s), hs.ck_v2s);
    assert.equal(toHex(await trafficKey(ckS2v, sid)), hs.key_s2v);
    assert.equal(toHex(await trafficKey(ckV2s, sid)), hs.key_v2s);
    assert.equal(toHex(await groupDirectKey(ckS2v, sid)), hs.gd_key);
    const ckS2v1 = await nextChainKey(ckS2v, sid);
    assert.equal(toHex(ckS2v1), hs.ck_s2v_1);
    assert.equal(toHex(await trafficKey(ckS2v1, sid)), hs.key_s2v_1);
    assert.equal(toHex(await trafficKey(await nextChainKey(ckV2s, sid), sid)), hs.key_v2s_1);
  });
}

const links = loadVectors('links.json');
for (const c of links.valid) {
  test(`links.json valid ${c.url}`, () => {
    const link = parseLink(c.url);
    assert.deepEqual({ ...link, secret: toHex(link.secret), keyFp: toHex(link.keyFp) },
      { base: c.base, sid: c.sid, role: c.role, secret: c.secret, keyFp: c.key_fp });
    assert.deepEqual(parseLink(formatLink(link)), link);
  });
}
for (const c of links.invalid) {
  test(`links.json invalid ${JSON.stringify(c.url)}`, async () => {
    await assertThrowsNamed(() => parseLink(c.url), c.error);
  });
}

const envelopes = loadVectors('envelopes.json');
for (const c of envelopes.valid) {
  test(`envelopes.json valid ${c.kind} ${c.frame.slice(0, 40)}`, () => {
    const frame = parseFrame(fromHex(c.frame));
    assert.deepEqual(
      [frame.version, wire.FRAME_KIND_NAMES.get(frame.kind), frame.viewerId, frame.epoch, frame.seq, toHex(frame.body)],
      [c.version, c.kind, c.viewer_id, c.epoch, c.seq, c.body],
    );
    assert.equal(toHex(frame.header), c.frame.slice(0, 36));
  });
}
for (const c of envelopes.invalid) {
  test(`envelopes.json invalid ${c.frame.slice(0, 48)}`, async () => {
    await assertThrowsNamed(() => parseFrame(fromHex(c.frame)), c.error);
  });
}

const messages = loadVectors('messages.json');
/** @param {Record<string, any>} message */
function messageFields(message) {
  /** @type {Record<string, any>} */
  const out = {};
  for (const [key, value] of Object.entries(message)) {
    if (key === 'type') continue;
    out[key.replace(/[A-Z]/g, (ch) => `_${ch.toLowerCase()}`)] =
      value instanceof Uint8Array ? toHex(value) : typeof value === 'bigint' ? (value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value) : value;
  }
  return out;
}
for (const c of messages.valid) {
  test(`messages.json valid ${c.carrier} ${c.type}`, () => {
    const plaintext = fromHex(c.plaintext);
    if (c.carrier === 'WELCOME') {
      const welcome = decodeWelcome(plaintext);
      assert.deepEqual(messageFields(welcome), c.fields);
      assert.equal(toHex(encodeWelcome(welcome)), c.plaintext);
      return;
    }
    const message = decodeMessage(wire.FrameKind[c.carrier], plaintext);
    assert.equal(wire.MESSAGE_TYPE_NAMES.get(message.type), c.type);
    assert.deepEqual(messageFields(message), c.fields);
    assert.equal(toHex(encodeMessage(message)), c.plaintext);
    // and from the vector's own fields
    /** @type {Record<string, any>} */
    const built = { type: wire.MessageType[c.type] };
    for (const [key, value] of Object.entries(c.fields)) {
      built[camel(key)] = typeof value === 'string' ? fromHex(value) : value;
    }
    assert.equal(toHex(encodeMessage(/** @type {any} */ (built))), c.plaintext);
  });
}
for (const c of messages.invalid) {
  test(`messages.json invalid ${c.carrier} ${c.plaintext.slice(0, 24)}`, async () => {
    const plaintext = fromHex(c.plaintext);
    await assertThrowsNamed(
      () => (c.carrier === 'WELCOME' ? decodeWelcome(plaintext) : decodeMessage(wire.FrameKind[c.carrier], plaintext)),
      c.error,
    );
  });
}

for (const c of loadVectors('transcripts.json')) {
  test(`transcripts.json ${c.name}`, async () => {
    const rng = scriptedRng(c.rng);
    const viewer = new ViewerProtocol({ link: parseLink(c.url), rng });
    const sent = [];
    for (const step of c.steps) {
      if ('receive' in step) {
        await viewer.receiveFrame(fromHex(step.receive)); // must never throw
      } else {
        const expected = step.error ?? null;
        let got = null;
        try {
          if ('send_input' in step) await viewer.sendInput(fromHex(step.send_input));
          else if ('send_resync' in step) await viewer.sendResync();
          else if ('send_ping' in step) await viewer.sendPing(step.send_ping);
          else assert.fail(`unknown step ${JSON.stringify(step)}`);
        } catch (exc) {
          assert.ok(exc instanceof errors.TermshareError, String(exc));
          got = exc.name;
        }
        assert.equal(got, expected);
      }
      sent.push(...viewer.framesToSend());
    }
    assert.deepEqual(sent.map(toHex), c.expect_sent);
    assert.deepEqual(viewer.eventsReceived().map(eventJson), c.expect_events);
    assert.equal(rng.remaining(), 0, 'the viewer drew fewer random values than the vector provides');
  });
}
