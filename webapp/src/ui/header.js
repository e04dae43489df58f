// The slim header above the terminal: state, access badge, viewers, copy link, screen reader.

import { h, icon, copyText } from './dom.js';

const PHASE_LABEL = {
  connecting: 'Connecting…',
  live: 'Live',
  reconnecting: 'Reconnecting…',
  ended: 'Ended',
  rejected: 'Wrong key',
  'readonly-share': 'Read-only share',
  'not-found': 'Not found',
  removed: 'Removed',
  limit: 'Session full',
  error: 'Error',
  unsupported: 'Unsupported',
  'invalid-link': 'Invalid link',
};

const PHASE_TONE = {
  connecting: 'pending', live: 'live', reconnecting: 'pending', ended: 'off', rejected: 'bad',
  'readonly-share': 'bad', 'not-found': 'bad', removed: 'bad', limit: 'pending', error: 'bad',
  unsupported: 'bad', 'invalid-link': 'bad',
};

export class Header {
  /**
   * @param {{
   *   sid: string|null,
   *   roLink: (() => Promise<string>)|null,
   *   screenReader: boolean,
   *   onScreenReader: (on: boolean) => void,
   * }} options
   */
  constructor({ sid, roLink, screenReader, onScreenReader }) {
    this.dot = h('span.dot');
    this.stateText = h('span.state-text', { text: 'Connecting…' });
    this.state = h('div.state', { role: 'status', 'aria-live': 'polite' }, this.dot, this.stateText);
    this.badge = h('span.badge', { hidden: true });
    this.viewersText = h('span', { text: '' });
    this.viewers = h('span.chip.viewers', { hidden: true, title: 'People watching this session' },
      icon('users'), this.viewersText);
    this.size = h('span.chip.size', { hidden: true, title: "The sharer's terminal size (columns × rows)" });

    this.copyLabel = h('span.label', { text: 'Copy read-only link' });
    this.copyBtn = roLink ? h('button.btn', {
      type: 'button', title: 'Copy a link that lets others watch without typing',
      onclick: async () => {
        const ok = await copyText(await roLink());
        this._flashCopy(ok ? 'Copied' : 'Copy failed');
      },
    }, icon('link'), this.copyLabel) : null;
    if (this.copyBtn) this.copyBtn.hidden = true; // shown once the session is joined

    this.srOn = screenReader;
    this.srBtn = h('button.btn.toggle', {
      type: 'button', 'aria-pressed': String(screenReader),
      title: 'Screen reader mode: expose the terminal text to assistive technology',
      onclick: () => {
        this.srOn = !this.srOn;
        this.srBtn.setAttribute('aria-pressed', String(this.srOn));
        onScreenReader(this.srOn);
      },
    }, icon('speech'), h('span.label', { text: 'Screen reader' }));

    this.el = h('header.topbar', null,
      h('div.left', null,
        h('div.logo', null, icon('logo', 'icon logo-mark'), h('span.wordmark', { text: 'termshare' })),
        h('span.sep'),
        this.state,
      ),
      h('div.right', null,
        h('span.chip.e2e', { title: 'End-to-end encrypted: the relay cannot read this terminal' },
          icon('lock'), h('span.label', { text: 'Encrypted' })),
        this.size,
        this.viewers,
        this.badge,
        this.copyBtn,
        this.srBtn,
      ),
    );
    if (sid) this.el.title = `Session ${sid}`;
  }

  _flashCopy(text) {
    this.copyLabel.textContent = text;
    this.copyBtn?.classList.add('done');
    clearTimeout(this._copyTimer);
    this._copyTimer = setTimeout(() => {
      this.copyLabel.textContent = 'Copy read-only link';
      this.copyBtn?.classList.remove('done');
    }, 1800);
  }

  /** @param {import('../net/session.js').Status | {phase: string}} status */
  update(status) {
    const s = /** @type {any} */ (status);
    let label = PHASE_LABEL[s.phase] ?? s.phase;
    let tone = PHASE_TONE[s.phase] ?? 'pending';
    if (s.phase === 'live' && s.resyncing) { label = 'Resyncing…'; tone = 'pending'; }
    if (s.phase === 'live' && !s.sharerPresent) { label = 'Sharer away'; tone = 'pending'; }
    if (s.phase === 'connecting' && s.sharerPresent === false) label = 'Waiting for sharer…';
    this.stateText.textContent = label;
    this.dot.dataset.tone = tone;
    this.state.dataset.tone = tone;

    if (s.canWrite === true) {
      this.badge.hidden = false;
      this.badge.textContent = 'Read-write';
      this.badge.className = 'badge rw';
      this.badge.title = 'Your keystrokes are typed into the shared terminal';
    } else if (s.canWrite === false) {
      this.badge.hidden = false;
      this.badge.textContent = 'Read-only';
      this.badge.className = 'badge ro';
      this.badge.title = 'You are watching; nothing you type is sent';
    }
    if (typeof s.viewers === 'number') {
      this.viewers.hidden = false;
      this.viewersText.textContent = `${s.viewers}`;
      this.viewers.title = s.viewers === 1 ? '1 person is watching' : `${s.viewers} people are watching`;
      this.viewers.setAttribute('aria-label', this.viewers.title);
    }
    if (this.copyBtn) this.copyBtn.hidden = !(s.everLive && ['live', 'reconnecting', 'connecting'].includes(s.phase));
    if (s.cols && s.rows && s.everLive) {
      this.size.hidden = false;
      this.size.textContent = `${s.cols}×${s.rows}`;
    }
  }
}
