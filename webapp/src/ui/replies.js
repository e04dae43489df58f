// Drop the answers xterm.js generates to terminal queries before they reach the sharer.
//
// The sharer's own terminal already answers every query its programs send (cursor position,
// device attributes, colours, ...). If each read-write viewer's xterm.js answered as well, the
// program would read several extra, wrong answers as if they were typed. xterm.js emits its
// answers through the same onData event as keystrokes, so we recognise them by shape.
//
// xterm.js fires one onData event per answer, and never glues an answer to a keystroke, so the
// rule is per event: an event made only of answer-shaped sequences is dropped whole; any other
// event (keys, paste, mouse reports) is passed on untouched. This keeps pasted text intact even if
// it happens to contain such a sequence.
//
// One shape is ambiguous: Shift/Ctrl/Alt+F3 is `ESC [ 1 ; <2..16> R`, which is also the cursor
// position report for row 1, column 2..16. It is kept as a key unless the caller says a cursor
// position report is expected (`expectCursorReport`, set when the sharer's program sent DSR 6).

const ESC = '\x1b';

// Each pattern matches one whole answer sequence, anchored at the current position (sticky).
const ANSWERS = [
  // Cursor position report (CPR) `CSI row ; col R`, DEC extended `CSI ? row ; col [; page] R`.
  /\x1b\[\d+;\d+R/y,
  /\x1b\[\?\d+;\d+(?:;\d+)?R/y,
  // Device status report `CSI 0 n` / `CSI 3 n`, DEC private status `CSI ? ... n`.
  /\x1b\[\??[\d;]*n/y,
  // Primary / secondary / tertiary device attributes: `CSI ? ... c`, `CSI > ... c`, `CSI = ... c`.
  /\x1b\[[?>=][\d;]*c/y,
  // Mode reports (DECRQM): `CSI ? mode ; value $ y`, `CSI mode ; value $ y`.
  /\x1b\[\??\d+;\d+\$y/y,
  // Window reports (XTWINOPS): size in chars `CSI 8;r;c t`, pixels `CSI 4;h;w t`, cell `CSI 6;h;w t`,
  // and the other numeric `CSI ... t` answers (state, position, title stack).
  /\x1b\[\d+(?:;\d+)*t/y,
  // Kitty keyboard protocol flags report `CSI ? flags u`.
  /\x1b\[\?\d*u/y,
  // OSC answers (colours `OSC 4;n;rgb:..`, `OSC 10/11/12;rgb:..`, others), ended by BEL or ST.
  /\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)/y,
  // DCS answers: DECRQSS `DCS 1 $ r ... ST`, XTVERSION `DCS > | ... ST`, XTGETTCAP, ...
  /\x1bP[^\x1b]*\x1b\\/y,
];

const FOCUS = /\x1b\[[IO]/y;
const MODIFIED_F3 = /^\x1b\[1;(?:[2-9]|1[0-6])R$/;

/**
 * Length of the answer sequence starting at `pos`, or 0 if none starts there.
 * @param {string} str
 * @param {number} pos
 * @param {boolean} dropFocus
 */
function answerAt(str, pos, dropFocus) {
  const patterns = dropFocus ? [...ANSWERS, FOCUS] : ANSWERS;
  for (const re of patterns) {
    re.lastIndex = pos;
    const m = re.exec(str);
    if (m !== null) return m[0].length;
  }
  return 0;
}

/**
 * Whether one onData event consists only of answers to terminal queries.
 * @param {string} str one onData event
 * @param {{expectCursorReport?: boolean, dropFocus?: boolean}} [options]
 * @returns {boolean}
 */
export function isReply(str, { expectCursorReport = false, dropFocus = true } = {}) {
  if (str.length === 0 || str[0] !== ESC) return false;
  if (!expectCursorReport && MODIFIED_F3.test(str)) return false;
  let pos = 0;
  while (pos < str.length) {
    const n = answerAt(str, pos, dropFocus);
    if (n === 0) return false;
    pos += n;
  }
  return true;
}

/**
 * Filter one onData event: '' if it is only answers to terminal queries, else the event unchanged.
 *
 * Focus reports (`CSI I` / `CSI O`) are dropped too by default: they describe the viewer's browser
 * window, not the sharer's terminal, and several viewers would send conflicting ones.
 * @param {string} str one onData event
 * @param {{expectCursorReport?: boolean, dropFocus?: boolean}} [options]
 * @returns {string}
 */
export function filterReplies(str, options) {
  return isReply(str, options) ? '' : str;
}
