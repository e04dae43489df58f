// Full-page messages and the slim banner over the terminal, chosen from the connection status.

import { h, icon } from './dom.js';

/**
 * @typedef {object} Message
 * @property {'info'|'warn'|'bad'|'off'} tone
 * @property {Parameters<typeof icon>[0]} icon
 * @property {string} title
 * @property {string} body
 * @property {boolean} [spinner]
 * @property {boolean} [countdown]   append "Retrying in N s…"
 * @property {{label: string, action: string, primary?: boolean}[]} [actions]
 */

const RETRY = { label: 'Retry now', action: 'retry', primary: true };

/**
 * What to show for a status: a full-page card, a banner over a still-visible terminal, or neither.
 * @param {any} s status (see net/session.js) plus optional `error` for invalid-link/unsupported
 * @param {{canGoReadOnly: boolean, hasConnectPage: boolean}} ctx
 * @returns {{page: Message|null, banner: Message|null}}
 */
export function messageFor(s, ctx) {
  const reasonText = {
    unreachable: "The relay can't be reached.",
    lost: 'The connection to the relay was lost.',
    protocol: 'The connection was closed after a protocol error.',
    timeout: 'The connection stopped responding.',
    slow: 'This viewer fell behind.',
  };
  switch (s.phase) {
    case 'invalid-link':
      return { page: {
        tone: 'bad', icon: 'key', title: 'This link is missing its key',
        body: `${s.error ?? 'The link is not a termshare link.'} Ask the person sharing for the complete link: it ends with #r.… (watch) or #w.… (watch and type).`,
        actions: ctx.hasConnectPage ? [{ label: 'Enter a link', action: 'connect', primary: true }] : [],
      }, banner: null };
    case 'unsupported':
      return { page: { tone: 'bad', icon: 'alert', title: "This browser can't join", body: s.error ?? '' }, banner: null };
    case 'connecting':
      if (s.sharerPresent === false) {
        return { page: {
          tone: 'info', icon: 'plug', spinner: true, title: 'Waiting for the sharer',
          body: 'The sharer is reconnecting to the relay. This page joins as soon as they are back.',
        }, banner: null };
      }
      return { page: { tone: 'info', icon: 'lock', spinner: true, title: 'Joining the session…', body: 'Setting up an end-to-end encrypted channel with the sharer.' }, banner: null };
    case 'live':
      if (!s.sharerPresent) {
        return { page: null, banner: { tone: 'warn', icon: 'plug', title: 'The sharer is disconnected', body: 'The screen will update when they are back.' } };
      }
      if (s.resyncing) {
        return { page: null, banner: { tone: 'info', icon: 'lock', spinner: true, title: 'Catching up', body: 'Fetching a fresh copy of the screen.' } };
      }
      return { page: null, banner: null };
    case 'reconnecting': {
      const why = reasonText[s.reason] ?? 'The connection was interrupted.';
      const detail = s.reason === 'protocol' && s.detail ? ` (${s.detail})` : '';
      if (s.everLive && s.attempt <= 3) {
        return { page: null, banner: { tone: 'warn', icon: 'plug', spinner: !s.retryAt, countdown: true, title: 'Reconnecting', body: why + detail, actions: [RETRY] } };
      }
      if (s.reason === 'protocol' && s.attempt >= 3) {
        return { page: { tone: 'bad', icon: 'alert', countdown: true, title: 'Protocol error', body: `The relay or the sharer sent something this viewer could not accept${detail}. It keeps trying with a fresh connection.`, actions: [RETRY] }, banner: null };
      }
      return { page: { tone: 'warn', icon: 'plug', countdown: true, spinner: !s.retryAt, title: s.reason === 'unreachable' ? "Can't reach the relay" : 'Reconnecting', body: why + detail, actions: [RETRY] }, banner: null };
    }
    case 'not-found':
      return { page: {
        tone: 'warn', icon: 'search', countdown: true, title: 'Session not found',
        body: 'This relay has no session with this id. It may have ended, or not have started yet; check the link.',
        actions: [RETRY],
      }, banner: null };
    case 'limit':
      return { page: {
        tone: 'warn', icon: 'users', countdown: true, title: 'The session is full',
        body: 'The relay reached its limit of viewers or connections.', actions: [RETRY],
      }, banner: null };
    case 'ended': {
      const st = s.exitStatus;
      const body = st === null || st === undefined
        ? 'The sharer stopped sharing.'
        : `The shared terminal exited${st === 0 ? '' : ` with status ${st}`}.`;
      const actions = s.everLive ? [{ label: 'Show last screen', action: 'dismiss' }] : [];
      return { page: { tone: 'off', icon: 'flag', title: 'The session has ended', body, actions }, banner: null };
    }
    case 'rejected':
      return { page: {
        tone: 'bad', icon: 'key', title: 'Wrong key',
        body: "The sharer did not accept this link's key. It may be mistyped, cut short, or from an earlier session. Ask for a fresh link.",
      }, banner: null };
    case 'readonly-share':
      return { page: {
        tone: 'bad', icon: 'eye', title: 'This share is read-only',
        body: ctx.canGoReadOnly
          ? 'The sharer does not accept typing from viewers. You can still watch.'
          : 'The sharer does not accept typing from viewers. Ask for a read-only link.',
        actions: ctx.canGoReadOnly ? [{ label: 'Watch read-only', action: 'read-only', primary: true }] : [],
      }, banner: null };
    case 'removed':
      return { page: { tone: 'bad', icon: 'ban', title: 'You were removed', body: 'The sharer removed this viewer from the session.' }, banner: null };
    case 'error':
      return { page: { tone: 'bad', icon: 'alert', title: 'Something went wrong', body: s.error ?? 'An unexpected error occurred.' }, banner: null };
    default:
      return { page: null, banner: null };
  }
}

export class MessageLayer {
  /**
   * @param {HTMLElement} host the element the card and banner cover (position: relative)
   * @param {(action: string) => void} onAction
   */
  constructor(host, onAction) {
    this.onAction = onAction;
    this.page = h('div.overlay', { hidden: true });
    this.banner = h('div.banner', { hidden: true, role: 'status', 'aria-live': 'polite' });
    host.append(this.banner, this.page);
    this._retryAt = null;
    this._timer = null;
    /** @type {HTMLElement[]} */
    this._countdowns = [];
    this._key = '';
    /** the user closed the final card (e.g. to read the last screen) */
    this.dismissed = false;
  }

  /** @param {{page: Message|null, banner: Message|null}} m @param {number|null} retryAt */
  show(m, retryAt) {
    if (this.dismissed && m.page) m = { ...m, page: null };
    const key = JSON.stringify(m) + String(retryAt);
    if (key !== this._key) {
      this._key = key;
      this._countdowns = [];
      this._render(this.page, m.page, 'card');
      this._render(this.banner, m.banner, 'strip');
    }
    this._retryAt = retryAt;
    this._tick();
  }

  /** @param {HTMLElement} el @param {Message|null} msg @param {'card'|'strip'} kind */
  _render(el, msg, kind) {
    el.replaceChildren();
    el.hidden = msg === null;
    if (msg === null) return;
    const countdown = msg.countdown ? h('span.countdown') : null;
    if (countdown) this._countdowns.push(countdown);
    const actions = (msg.actions ?? []).map((a) => h(`button.btn${a.primary ? '.primary' : ''}`, {
      type: 'button', onclick: () => this.onAction(a.action),
    }, a.label));
    if (kind === 'card') {
      el.append(h(`div.card.tone-${msg.tone}`, { role: 'alert' },
        h('div.card-icon', null, msg.spinner ? h('span.spinner') : icon(msg.icon)),
        h('h1', { text: msg.title }),
        h('p', null, msg.body, countdown ? ' ' : null, countdown),
        actions.length ? h('div.actions', null, actions) : null,
      ));
    } else {
      el.append(h(`div.strip.tone-${msg.tone}`, null,
        msg.spinner ? h('span.spinner.small') : icon(msg.icon),
        h('strong', { text: msg.title }),
        h('span.strip-body', null, msg.body, countdown ? ' ' : null, countdown),
        actions.length ? h('div.actions', null, actions) : null,
      ));
    }
  }

  _tick() {
    clearTimeout(this._timer);
    const text = this._retryAt === null ? 'Connecting…'
      : `Retrying in ${Math.max(0, Math.ceil((this._retryAt - Date.now()) / 1000))} s…`;
    for (const c of this._countdowns) c.textContent = text;
    if (this._retryAt !== null && this._countdowns.length) this._timer = setTimeout(() => this._tick(), 500);
  }
}
