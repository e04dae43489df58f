// The connect page (index.html): paste a link, or give relay URL + session id + key.
//
// It works wherever the static files are hosted. Joining keeps the key in the fragment of this
// same page (`#relay=…&sid=…&key=r.…`), so it is never sent to any server, and the viewer runs
// here: no request is made to the relay except its websocket.

import { parseLink, formatLink, LinkError } from '../protocol/index.js';
import { h, icon } from './dom.js';

/**
 * Parse the fragment of the connect page. null if it holds no session.
 * @param {string} hash location.hash
 * @returns {null|{base: string, sid: string, role: 'rw'|'ro', secret: Uint8Array}} throws LinkError
 */
export function linkFromConnectHash(hash) {
  const params = new URLSearchParams(hash.replace(/^#/, ''));
  const relay = params.get('relay');
  const sid = params.get('sid');
  const key = params.get('key');
  if (!relay && !sid && !key) return null;
  if (!relay) throw new LinkError('the relay URL is missing');
  return parseLink(`${relay.trim().replace(/\/+$/, '')}/s/${(sid ?? '').trim()}#${(key ?? '').trim().replace(/^#/, '')}`);
}

/** @param {{base: string, sid: string, role: 'rw'|'ro', secret: Uint8Array}} link */
export function connectHashFor(link) {
  const key = formatLink(link).split('#')[1];
  return `#relay=${encodeURIComponent(link.base)}&sid=${encodeURIComponent(link.sid)}&key=${encodeURIComponent(key)}`;
}

/** The relay URL this page is served from, if it looks like one (`<base>/` or `<base>/index.html`). */
function ownBase() {
  if (location.protocol !== 'http:' && location.protocol !== 'https:') return '';
  return `${location.origin}${location.pathname.replace(/index\.html$/, '').replace(/\/+$/, '')}`;
}

/**
 * @param {HTMLElement} root
 * @param {string} [error] an error to show from a fragment that did not parse
 */
export function renderConnectPage(root, error) {
  const linkInput = h('input#link', {
    type: 'text', name: 'link', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'off',
    placeholder: 'https://relay.example/s/AbCdEfGhIjKlMnOp#r.…',
  });
  const relayInput = h('input#relay', { type: 'url', name: 'relay', autocomplete: 'url', spellcheck: 'false', placeholder: 'https://relay.example' });
  relayInput.value = ownBase();
  const sidInput = h('input#sid', { type: 'text', name: 'sid', autocomplete: 'off', spellcheck: 'false', placeholder: '16 characters', maxlength: '16' });
  const keyInput = h('input#key', { type: 'password', name: 'key', autocomplete: 'off', spellcheck: 'false', placeholder: 'r.… or w.…' });
  const errorBox = h('p.form-error', { role: 'alert', hidden: !error, text: error ?? '' });
  const details = h('details.parts', null,
    h('summary', { text: 'Or enter relay, session and key' }),
    h('div.grid', null,
      h('label', { for: 'relay', text: 'Relay URL' }), relayInput,
      h('label', { for: 'sid', text: 'Session id' }), sidInput,
      h('label', { for: 'key', text: 'Key' }), keyInput,
    ),
  );

  const form = h('form.connect-form', {
    novalidate: true,
    onsubmit: (/** @type {Event} */ ev) => {
      ev.preventDefault();
      errorBox.hidden = true;
      try {
        let link;
        const pasted = linkInput.value.trim();
        if (pasted) {
          link = parseLink(pasted);
        } else {
          link = linkFromConnectHash(`relay=${encodeURIComponent(relayInput.value)}&sid=${encodeURIComponent(sidInput.value)}&key=${encodeURIComponent(keyInput.value)}`);
          if (link === null) throw new LinkError('paste a link, or fill in the relay URL, session id and key');
        }
        // Same page, new fragment: the hashchange handler starts the viewer. Nothing is sent.
        location.hash = connectHashFor(link);
      } catch (exc) {
        errorBox.textContent = exc instanceof LinkError ? capitalise(exc.message) + '.' : String(exc);
        errorBox.hidden = false;
      }
    },
  },
    h('label.field-label', { for: 'link', text: 'Link' }),
    linkInput,
    details,
    errorBox,
    h('button.btn.primary.wide', { type: 'submit' }, 'Join session'),
  );

  root.replaceChildren(h('div.connect-page', null,
    h('div.connect-card', null,
      h('div.logo.big', null, icon('logo', 'icon logo-mark'), h('span.wordmark', { text: 'termshare' })),
      h('h1', { text: 'Join a shared terminal' }),
      h('p.sub', { text: 'Watch a terminal someone is sharing with termshare, or type into it with a read-write link.' }),
      form,
      h('p.fine', null, icon('lock'), h('span', { text: 'The key stays in this browser. It lives after the # of the address, which browsers never send to a server, and only sets up end-to-end encryption with the sharer. The relay never sees your screen or your keystrokes.' })),
    ),
  ));
  linkInput.focus();
}

/** @param {string} s */
function capitalise(s) {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
