// The terminal: an xterm.js instance that mirrors the sharer's screen at the sharer's size.
//
// The viewer never changes the remote size. To fit the window it picks a font size (between
// MIN_FONT and MAX_FONT) at which cols × rows fits; below MIN_FONT the stage scrolls instead.
// Output goes through term.write(data, callback); `backlog` counts bytes handed to xterm.js and not
// yet parsed, so the connection can stop pulling frames while it is high (flow control).

import { Terminal } from '@xterm/xterm';
import { WebglAddon } from '@xterm/addon-webgl';
import { filterReplies } from './replies.js';

const FONT_FAMILY = [
  'ui-monospace', '"SF Mono"', '"Cascadia Mono"', '"Cascadia Code"', '"JetBrains Mono"',
  '"Fira Code"', '"Source Code Pro"', 'Menlo', 'Consolas', '"DejaVu Sans Mono"', '"Liberation Mono"',
  '"Noto Sans Mono"', 'monospace',
].join(', ');
const MIN_FONT = 8;
const MAX_FONT = 18;
const PROBE_FONT = 14;

const THEME = {
  background: '#0d1016',
  foreground: '#d6dbe5',
  cursor: '#e6e9ef',
  cursorAccent: '#0d1016',
  selectionBackground: '#3a4a6b',
  selectionInactiveBackground: '#2a3347',
  scrollbarSliderBackground: 'rgba(140, 150, 170, 0.25)',
  scrollbarSliderHoverBackground: 'rgba(140, 150, 170, 0.4)',
  scrollbarSliderActiveBackground: 'rgba(140, 150, 170, 0.5)',
  black: '#3b4252',
  red: '#f07178',
  green: '#a6d189',
  yellow: '#e5c07b',
  blue: '#7aa2f7',
  magenta: '#c792ea',
  cyan: '#7fd4d9',
  white: '#c8cdd8',
  brightBlack: '#5c6370',
  brightRed: '#ff8f95',
  brightGreen: '#c3e88d',
  brightYellow: '#ffd98e',
  brightBlue: '#9ab8ff',
  brightMagenta: '#dcb0ff',
  brightCyan: '#a3f0f4',
  brightWhite: '#f5f7fa',
};

const nextFrame = () => new Promise((resolve) => {
  // requestAnimationFrame does not run in hidden tabs; a timeout keeps fitting from stalling there.
  let done = false;
  const finish = () => { if (!done) { done = true; resolve(); } };
  requestAnimationFrame(finish);
  setTimeout(finish, 100);
});

// Rasterisers that run WebGL on the CPU. Chromium hands out SwiftShader without reporting a major
// performance caveat (headless, --disable-gpu, blocklisted GPUs), and there xterm.js's WebGL
// renderer blocks the main thread on the GPU process: in headless Chromium on 2 cores it drew a
// flood at 4-5 MB/s against 12-13 MB/s for the DOM renderer (bench/browser.py, "limit").
const SOFTWARE_GL = /swiftshader|llvmpipe|lavapipe|softpipe|software|basic render/i;

/** Whether a WebGL context is rasterised in software (as far as the browser tells). @param {WebGL2RenderingContext} gl */
function softwareGl(gl) {
  let name = String(gl.getParameter(gl.RENDERER) ?? '');
  // Chromium and Safari report a generic "WebKit WebGL" there and the real renderer only through
  // this extension (Firefox deprecated the extension and reports a sanitised name instead).
  if (/^webkit webgl$/i.test(name)) {
    const info = gl.getExtension('WEBGL_debug_renderer_info');
    if (info) name = String(gl.getParameter(info.UNMASKED_RENDERER_WEBGL) ?? '');
  }
  return SOFTWARE_GL.test(name);
}

export class TerminalView {
  /**
   * @param {HTMLElement} stage the scrollable area the terminal is centred in
   * @param {{screenReaderMode?: boolean}} [options]
   */
  constructor(stage, { screenReaderMode = false } = {}) {
    this.stage = stage;
    this.frame = document.createElement('div');
    this.frame.className = 'term-frame';
    stage.append(this.frame);

    this.term = new Terminal({
      cols: 80,
      rows: 24,
      fontFamily: FONT_FAMILY,
      fontSize: PROBE_FONT,
      lineHeight: 1.0,
      scrollback: 2000,
      cursorBlink: false,
      cursorStyle: 'block',
      cursorInactiveStyle: 'outline',
      disableStdin: true, // until WELCOME says this viewer may type
      screenReaderMode,
      allowProposedApi: false,
      theme: THEME,
      drawBoldTextInBrightColors: false,
      minimumContrastRatio: 1,
    });
    this.term.open(this.frame);
    /** 'webgl' or 'dom' */
    this.renderer = 'dom';
    this._loadWebgl();

    this.cols = 80;
    this.rows = 24;
    /** bytes given to term.write() whose callback has not run yet */
    this.backlog = 0;
    /** Called with each chunk of output once xterm.js has parsed it (window.termshare.onWritten). @type {((data: Uint8Array) => void)|null} */
    this.onWritten = null;
    /** @type {(() => void)[]} */
    this._drainWaiters = [];
    this._cprExpected = 0;
    this._fitting = false;
    this._fitAgain = false;
    this._ratio = null; // {w, h}: CSS pixels per font pixel of one cell

    // Count cursor position requests from the sharer's program (DSR 6), so that an answer-shaped
    // key (Shift+F3) is only dropped when xterm.js is answering one.
    this.term.parser.registerCsiHandler({ final: 'n' }, (params) => {
      if (params[0] === 6) this._cprExpected++;
      return false; // let xterm.js handle it as usual
    });
    this.term.parser.registerCsiHandler({ prefix: '?', final: 'n' }, (params) => {
      if (params[0] === 6) this._cprExpected++;
      return false;
    });

    // Observe the stage's container: its size does not change when the stage shows scrollbars,
    // so fitting cannot feed back into itself.
    this._box = stage.parentElement ?? stage;
    this._lastFit = '';
    this._resizeObserver = new ResizeObserver(() => this.fit());
    this._resizeObserver.observe(this._box);
    this.fit();
  }

  _loadWebgl() {
    try {
      // A software-emulated WebGL (no GPU, e.g. a VM or headless browser) draws slower than the
      // DOM renderer and blocks the page under a flood: take WebGL only when it is accelerated.
      const probe = document.createElement('canvas').getContext('webgl2', { failIfMajorPerformanceCaveat: true });
      if (!probe || softwareGl(probe)) return; // keep the DOM renderer
      const webgl = new WebglAddon();
      webgl.onContextLoss(() => {
        webgl.dispose(); // falls back to the DOM renderer
        this.renderer = 'dom';
        this._updateCursorBlink();
      });
      this.term.loadAddon(webgl);
      this.renderer = 'webgl';
    } catch {
      this.renderer = 'dom';
    }
  }

  /**
   * Send keystrokes, paste and mouse reports (not answers to queries) to `sink`.
   * @param {(data: Uint8Array) => void} sink
   */
  enableInput(sink) {
    this.term.options.disableStdin = false;
    this._updateCursorBlink();
    const encoder = new TextEncoder();
    this._inputSubs = [
      this.term.onData((str) => {
        const expectCursorReport = this._cprExpected > 0;
        const data = filterReplies(str, { expectCursorReport });
        if (data.length === 0) {
          if (expectCursorReport && /R$/.test(str)) this._cprExpected--;
          return;
        }
        sink(encoder.encode(data));
      }),
      // Binary strings (X10 mouse reports with coordinates above 95): one byte per char code.
      this.term.onBinary((str) => {
        const bytes = new Uint8Array(str.length);
        for (let i = 0; i < str.length; i++) bytes[i] = str.charCodeAt(i) & 0xff;
        sink(bytes);
      }),
    ];
  }

  disableInput() {
    this.term.options.disableStdin = true;
    this._updateCursorBlink();
    for (const sub of this._inputSubs ?? []) sub.dispose();
    this._inputSubs = [];
  }

  /**
   * Blink the cursor of a terminal one can type in, but only with the WebGL renderer. The DOM
   * renderer blinks with an endless CSS animation, so the focused page draws a frame at every
   * vsync and each keystroke finds one pending; Chromium (DeferRendererTasksAfterInput) then holds
   * every task of the page, the websocket message with the echo included, until that frame has
   * run, and the echo shows a frame later: in bench/browser.py, keydown -> echo parsed took 13 ms
   * instead of 3.5. WebGL blinks on a 600 ms timer and draws only when the cursor toggles.
   */
  _updateCursorBlink() {
    this.term.options.cursorBlink = !this.term.options.disableStdin && this.renderer === 'webgl';
  }

  focus() { this.term.focus(); }

  /** @param {boolean} on */
  setScreenReaderMode(on) { this.term.options.screenReaderMode = on; }

  /** @param {Uint8Array} data */
  write(data) {
    if (data.length === 0) return;
    const n = data.length;
    this.backlog += n;
    this.term.write(data, () => {
      this.backlog -= n;
      this._wakeDrainWaiters();
      if (this.onWritten !== null) this.onWritten(data);
    });
  }

  _wakeDrainWaiters() {
    if (this._drainWaiters.length === 0) return;
    const waiters = this._drainWaiters;
    this._drainWaiters = [];
    for (const w of waiters) w();
  }

  /**
   * Resolve once the backlog is at most `limit` bytes.
   * @param {number} limit
   */
  async drainTo(limit) {
    while (this.backlog > limit) await new Promise((resolve) => this._drainWaiters.push(resolve));
  }

  /** Resolve once everything written so far has been parsed. */
  barrier() {
    return new Promise((resolve) => this.term.write('', resolve));
  }

  /**
   * Reset the terminal, size it cols × rows and draw `data` on it (a SNAPSHOT, PROTOCOL.md §5.3).
   * @param {number} cols @param {number} rows @param {Uint8Array} data
   */
  async snapshot(cols, rows, data) {
    await this.barrier();
    this.term.reset();
    // xterm.js draws no cursor until the terminal is focused or a program switches screens;
    // a read-only viewer never focuses it, so flip to the alternate screen and back once.
    this.term.write('\x1b[?1047h\x1b[?1047l');
    this._cprExpected = 0;
    this._setSize(cols, rows);
    this.write(data);
  }

  /** @param {number} cols @param {number} rows */
  async resize(cols, rows) {
    await this.barrier(); // output sent before the resize is drawn at the old size
    this._setSize(cols, rows);
  }

  _setSize(cols, rows) {
    if (cols === this.cols && rows === this.rows) return;
    this.cols = cols;
    this.rows = rows;
    this.term.resize(cols, rows);
    this.fit();
  }

  /** Choose the font size at which the remote size fits the stage (debounced, asynchronous). */
  fit() {
    if (this._fitting) {
      this._fitAgain = true;
      return;
    }
    this._fitting = true;
    this._fit().finally(() => {
      this._fitting = false;
      if (this._fitAgain) {
        this._fitAgain = false;
        this.fit();
      }
    });
  }

  /** Size of the drawn cells, and of the frame around them (padding, border). */
  _screenSize() {
    const screen = /** @type {HTMLElement|null} */ (this.frame.querySelector('.xterm-screen'));
    if (!screen) return { w: 0, h: 0, chromeW: 0, chromeH: 0 };
    const w = screen.offsetWidth;
    const h = screen.offsetHeight;
    return { w, h, chromeW: this.frame.offsetWidth - w, chromeH: this.frame.offsetHeight - h };
  }

  async _setFont(size) {
    if (this.term.options.fontSize !== size) this.term.options.fontSize = size;
    await nextFrame();
    return this._screenSize();
  }

  async _fit() {
    const style = getComputedStyle(this.stage);
    const padX = parseFloat(style.paddingLeft) + parseFloat(style.paddingRight);
    const padY = parseFloat(style.paddingTop) + parseFloat(style.paddingBottom);
    const { cols, rows } = this;
    const boxW = this._box.clientWidth;
    const boxH = this._box.clientHeight;
    const key = `${cols}x${rows}@${boxW}x${boxH}`;
    if (key === this._lastFit) return;

    if (this._ratio === null) {
      const probe = await this._setFont(PROBE_FONT);
      if (probe.w === 0 || probe.h === 0) return;
      this._ratio = { w: probe.w / (this.term.cols * PROBE_FONT), h: probe.h / (this.term.rows * PROBE_FONT) };
    }
    const chrome = this._screenSize();
    const availW = boxW - padX - chrome.chromeW;
    const availH = boxH - padY - chrome.chromeH;
    if (availW <= 0 || availH <= 0) return;
    const ideal = Math.min(availW / (cols * this._ratio.w), availH / (rows * this._ratio.h));
    let size = Math.max(MIN_FONT, Math.min(MAX_FONT, Math.floor(ideal)));
    let got = await this._setFont(size);
    // Cell sizes are rounded to device pixels, so the estimate can be a little off: step down.
    for (let i = 0; i < 4 && size > MIN_FONT && (got.w > availW || got.h > availH); i++) {
      size -= 1;
      got = await this._setFont(size);
    }
    this.stage.classList.toggle('overflowing', got.w > availW || got.h > availH);
    this._lastFit = key;
  }

  /** The visible screen (not scrollback) as text: rows joined by '\n', trailing spaces trimmed. */
  screenText() {
    const buffer = this.term.buffer.active;
    const lines = [];
    for (let y = 0; y < this.term.rows; y++) {
      const line = buffer.getLine(buffer.baseY + y);
      lines.push(line ? line.translateToString(true).replace(/\s+$/, '') : '');
    }
    return lines.join('\n');
  }

  dispose() {
    this._resizeObserver.disconnect();
    this.term.dispose();
    this.frame.remove();
  }
}
