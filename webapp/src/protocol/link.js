// Links: `<base>/s/<sid>#w.<secret>` or `#r.<secret>` (docs/PROTOCOL.md §2).
// The parser follows termshare/protocol/link.py (which uses Python's urllib.parse.urlsplit) so that
// both accept and reject exactly the same strings.

import { LinkError } from './errors.js';
import { KEY_FP_SIZE, SECRET_SIZE } from './wire.js';

/**
 * @typedef {'rw'|'ro'} LinkRole
 * @typedef {object} Link
 * @property {string} base  relay URL, e.g. 'https://relay.example/prefix' (no trailing slash)
 * @property {string} sid   session id (16 characters of b64u)
 * @property {LinkRole} role
 * @property {Uint8Array} secret 16 bytes: rw_secret for 'rw', ro_secret for 'ro'
 */

const B64U = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const B64U_VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < B64U.length; i++) B64U_VALUE[B64U.charCodeAt(i)] = i;
const SID_PATTERN = /^[A-Za-z0-9_-]{16}$/;

/**
 * base64url without padding (RFC 4648 §5).
 * @param {Uint8Array} data
 * @returns {string}
 */
export function b64uEncode(data) {
  let out = '';
  let i = 0;
  for (; i + 3 <= data.length; i += 3) {
    const n = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2];
    out += B64U[n >> 18] + B64U[(n >> 12) & 63] + B64U[(n >> 6) & 63] + B64U[n & 63];
  }
  const rest = data.length - i;
  if (rest === 1) {
    const n = data[i] << 16;
    out += B64U[n >> 18] + B64U[(n >> 12) & 63];
  } else if (rest === 2) {
    const n = (data[i] << 16) | (data[i + 1] << 8);
    out += B64U[n >> 18] + B64U[(n >> 12) & 63] + B64U[(n >> 6) & 63];
  }
  return out;
}

/**
 * Decode base64url without padding. Like Python's decoder, unused trailing bits are ignored.
 * Throws LinkError on characters outside the alphabet or an impossible length.
 * @param {string} text
 * @returns {Uint8Array}
 */
export function b64uDecode(text) {
  if (!/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) throw new LinkError('not base64url');
  const out = new Uint8Array(Math.floor((text.length * 3) / 4));
  let bits = 0;
  let acc = 0;
  let j = 0;
  for (let i = 0; i < text.length; i++) {
    acc = ((acc << 6) | B64U_VALUE[text.charCodeAt(i)]) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[j++] = (acc >> bits) & 0xff;
    }
  }
  return out;
}

/** @param {string} text @returns {boolean} */
export function isSessionId(text) {
  return SID_PATTERN.test(text);
}

/**
 * Format a link. Accepts either a Link object or (base, sid, role, secret).
 * @param {Link|string} baseOrLink
 * @param {string} [sid]
 * @param {LinkRole} [role]
 * @param {Uint8Array} [secret]
 * @returns {string}
 */
export function formatLink(baseOrLink, sid, role, secret, keyFp) {
  let base = baseOrLink;
  if (typeof baseOrLink === 'object' && baseOrLink !== null) ({ base, sid, role, secret, keyFp } = baseOrLink);
  if (role !== 'rw' && role !== 'ro') throw new TypeError(`role must be 'rw' or 'ro', not ${role}`);
  const letter = role === 'rw' ? 'w' : 'r';
  const key = new Uint8Array(SECRET_SIZE + KEY_FP_SIZE);
  key.set(/** @type {Uint8Array} */ (secret));
  key.set(/** @type {Uint8Array} */ (keyFp), SECRET_SIZE);
  return `${String(base).replace(/\/+$/, '')}/s/${sid}#${letter}.${b64uEncode(key)}`;
}

/**
 * Python's urllib.parse.urlsplit, reduced to what parseLink needs.
 * @param {string} url
 */
function urlsplit(url) {
  url = url.replace(/^[\x00-\x20]+/, '').replace(/[\t\r\n]/g, '');
  let scheme = '';
  let netloc = '';
  let fragment = '';
  const colon = url.indexOf(':');
  if (colon > 0 && /^[A-Za-z][A-Za-z0-9+\-.]*$/.test(url.slice(0, colon))) {
    scheme = url.slice(0, colon).toLowerCase();
    url = url.slice(colon + 1);
  }
  if (url.startsWith('//')) {
    let end = url.length;
    for (const c of '/?#') {
      const at = url.indexOf(c, 2);
      if (at >= 0 && at < end) end = at;
    }
    netloc = url.slice(2, end);
    url = url.slice(end);
    if (netloc.includes('[') !== netloc.includes(']')) throw new LinkError('not a valid URL: Invalid IPv6 URL');
  }
  const hash = url.indexOf('#');
  if (hash >= 0) {
    fragment = url.slice(hash + 1);
    url = url.slice(0, hash);
  }
  const query = url.indexOf('?');
  if (query >= 0) url = url.slice(0, query);
  return { scheme, netloc, path: url, fragment };
}

/**
 * Parse a link given by a user. Throws LinkError with a sentence a person can act on.
 * @param {string} url
 * @returns {Link}
 */
export function parseLink(url) {
  if (typeof url !== 'string') throw new LinkError('a termshare link is a string');
  const parts = urlsplit(url.trim());
  if ((parts.scheme !== 'http' && parts.scheme !== 'https') || !parts.netloc) {
    throw new LinkError('a termshare link starts with http:// or https:// and names a relay');
  }
  const match = /^(.*)\/s\/([^/]*)$/s.exec(parts.path);
  if (match === null) throw new LinkError('a termshare link ends in /s/<session id>#<key>');
  const [, prefix, sid] = match;
  if (!isSessionId(sid)) throw new LinkError(`'${sid}' is not a session id (16 characters of A-Z a-z 0-9 _ -)`);
  const fragment = parts.fragment;
  if (!fragment) throw new LinkError("the link has no key: the part after '#' is missing (was the link cut short?)");
  const dot = fragment.indexOf('.');
  const letter = dot >= 0 ? fragment.slice(0, dot) : fragment;
  if (dot < 0 || (letter !== 'w' && letter !== 'r')) {
    throw new LinkError("the key after '#' must start with 'w.' (read-write) or 'r.' (read-only)");
  }
  let key;
  try {
    key = b64uDecode(fragment.slice(dot + 1));
  } catch {
    key = new Uint8Array(0);
  }
  if (key.length !== SECRET_SIZE + KEY_FP_SIZE) {
    throw new LinkError("the key after '#' is damaged: it must be 43 characters of base64url");
  }
  return {
    base: `${parts.scheme}://${parts.netloc}${prefix}`, sid, role: letter === 'w' ? 'rw' : 'ro',
    secret: key.slice(0, SECRET_SIZE), keyFp: key.slice(SECRET_SIZE),
  };
}
