// termshare browser viewer: entry point of both pages.
//
//   session.html  served at <base>/s/<sid>; the key is in location.hash (#r.… or #w.…)
//   index.html    served at <base>/ or hosted anywhere; a connect form, or the viewer when the
//                 fragment is #relay=…&sid=…&key=…
//
// `?embed=1` (query, never the secret) hides the header for iframes.
// window.termshare = { screenText(), state(), viewers(), onWritten(fn) } for tests and automation;
// onWritten(fn) calls fn(bytes) each time a chunk of the sharer's output has been parsed by the
// terminal (the bench times keystroke echoes in the page with it); onWritten(null) stops.

import { parseLink, formatLink, LinkError, deriveRoSecret } from './protocol/index.js';
import { SessionDriver } from './net/session.js';
import { TerminalView } from './ui/terminal.js';
import { Header } from './ui/header.js';
import { MessageLayer, messageFor } from './ui/messages.js';
import { renderConnectPage, linkFromConnectHash } from './ui/connect.js';
import { h } from './ui/dom.js';
import { installCspStyleShim } from './ui/csp-shim.js';

const SR_KEY = 'termshare.screenReader';

/** @type {{phase: string, viewers: number|null}} */
let current = { phase: 'idle', viewers: null };
/** @type {TerminalView|null} */
let view = null;
/** @type {((data: Uint8Array) => void)|null} */
let writeListener = null;

window.termshare = Object.freeze({
  screenText: () => (view ? view.screenText() : ''),
  state: () => current.phase,
  viewers: () => (typeof current.viewers === 'number' ? current.viewers : 0),
  onWritten: (/** @type {((data: Uint8Array) => void)|null} */ fn) => {
    if (fn !== null && typeof fn !== 'function') throw new TypeError('onWritten takes a function or null');
    writeListener = fn;
    if (view) view.onWritten = fn;
  },
});

function readScreenReaderPref() {
  try { return localStorage.getItem(SR_KEY) === '1'; } catch { return false; }
}
function writeScreenReaderPref(on) {
  try { localStorage.setItem(SR_KEY, on ? '1' : '0'); } catch { /* storage may be blocked in iframes */ }
}

/** Why this browser cannot run the viewer, or null. */
async function unsupportedReason() {
  if (!window.isSecureContext || !globalThis.crypto?.subtle) {
    return 'Browsers allow the cryptography termshare needs only on secure pages. Open this link over https:// (or on localhost).';
  }
  try {
    await crypto.subtle.generateKey({ name: 'X25519' }, false, ['deriveBits']);
    await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
  } catch {
    return 'termshare needs X25519 and Ed25519 in WebCrypto. Update to a current version of Chrome, Edge, Firefox or Safari.';
  }
  if (typeof WebSocket !== 'function') return 'This browser has no WebSocket support.';
  return null;
}

/**
 * Build the viewer UI and connect.
 * @param {HTMLElement} root
 * @param {{base: string, sid: string, role: 'rw'|'ro', secret: Uint8Array, keyFp: Uint8Array}|null} link
 * @param {{embed: boolean, connectPage: string|null, linkError?: string}} opts
 */
async function startViewer(root, link, opts) {
  document.body.classList.add('viewer');
  const screenReader = readScreenReaderPref();
  const roLink = link ? async () => {
    const secret = link.role === 'ro' ? link.secret : await deriveRoSecret(link.secret, link.sid);
    return formatLink(link.base, link.sid, 'ro', secret, link.keyFp);
  } : null;
  const header = new Header({
    sid: link?.sid ?? null,
    roLink,
    screenReader,
    onScreenReader: (on) => { writeScreenReaderPref(on); view?.setScreenReaderMode(on); },
  });
  const stage = h('div.stage');
  const main = h('main.stage-wrap', null, stage);
  root.replaceChildren(...(opts.embed ? [] : [header.el]), main);

  /** @type {SessionDriver|null} */
  let driver = null;
  const layer = new MessageLayer(main, (action) => {
    if (action === 'retry') driver?.retryNow();
    if (action === 'connect' && opts.connectPage) location.assign(opts.connectPage);
    if (action === 'read-only' && link) void goReadOnly();
    if (action === 'dismiss') {
      layer.dismissed = true;
      show(current);
      view?.focus();
    }
  });

  const show = (/** @type {any} */ status) => {
    current = status;
    header.update(status);
    const m = messageFor(status, { canGoReadOnly: link?.role === 'rw', hasConnectPage: !!opts.connectPage });
    layer.show(m, status.retryAt ?? null);
    main.dataset.phase = status.phase;
    const card = !!m.page && !layer.dismissed;
    main.classList.toggle('dimmed', card || status.phase === 'reconnecting' || (status.phase === 'live' && !status.sharerPresent));
    document.title = titleFor(status);
  };

  if (!link) {
    show({ phase: 'invalid-link', error: opts.linkError });
    return;
  }
  const problem = await unsupportedReason();
  if (problem) {
    show({ phase: 'unsupported', error: problem });
    return;
  }

  installCspStyleShim();
  view = new TerminalView(stage, { screenReaderMode: screenReader });
  view.onWritten = writeListener;
  // Clicking anywhere on the stage focuses the terminal (for typing on read-write links).
  stage.addEventListener('mousedown', (ev) => { if (ev.target === stage) { ev.preventDefault(); view?.focus(); } });

  const run = async (/** @type {typeof link} */ l) => {
    driver = new SessionDriver(l, /** @type {TerminalView} */ (view), show);
    show(driver.status);
    await driver.run();
  };
  const goReadOnly = async () => {
    const secret = await deriveRoSecret(link.secret, link.sid);
    await run({ ...link, role: 'ro', secret });
  };
  await run(link);
}

/** @param {any} s */
function titleFor(s) {
  const labels = { live: 'live', connecting: 'connecting', reconnecting: 'reconnecting', ended: 'ended' };
  const label = labels[s.phase];
  return label ? `termshare · ${label}` : 'termshare';
}

function main() {
  const root = /** @type {HTMLElement} */ (document.getElementById('app'));
  const page = document.body.dataset.page ?? 'session';
  const embed = new URLSearchParams(location.search).get('embed') === '1';
  if (embed) document.body.classList.add('embed');

  // A new fragment means a new link: start over cleanly.
  window.addEventListener('hashchange', () => location.reload());

  if (page === 'connect') {
    let link = null;
    try {
      link = linkFromConnectHash(location.hash);
    } catch (exc) {
      if (!(exc instanceof LinkError)) throw exc;
      current = { phase: 'invalid-link', viewers: null };
      renderConnectPage(root, capitalise(exc.message) + '.');
      return;
    }
    if (link === null) {
      current = { phase: 'idle', viewers: null };
      renderConnectPage(root);
      return;
    }
    void startViewer(root, link, { embed, connectPage: location.pathname + location.search });
    return;
  }

  // Session page: <base>/s/<sid>#r.… ; parseLink derives base from the path.
  let link = null;
  let linkError;
  try {
    link = parseLink(location.href);
  } catch (exc) {
    if (!(exc instanceof LinkError)) throw exc;
    linkError = capitalise(exc.message) + '.';
  }
  void startViewer(root, link, { embed, connectPage: '../', linkError });
}

/** @param {string} s */
function capitalise(s) {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

main();
