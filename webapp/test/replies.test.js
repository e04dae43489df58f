// Unit tests of webapp/src/ui/replies.js (node --test, no dependencies).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { filterReplies, isReply } from '../src/ui/replies.js';

const ESC = '\x1b';

test('answers to terminal queries are dropped', () => {
  const answers = [
    `${ESC}[12;40R`, // CPR
    `${ESC}[?12;40R`, `${ESC}[?12;40;1R`, // DECXCPR
    `${ESC}[0n`, `${ESC}[3n`, `${ESC}[?10n`, // DSR
    `${ESC}[?1;2c`, `${ESC}[?6c`, `${ESC}[?62;4;22c`, // DA1
    `${ESC}[>0;276;0c`, `${ESC}[>85;95;0c`, // DA2
    `${ESC}[?2004;1$y`, `${ESC}[4;2$y`, // DECRQM
    `${ESC}[8;24;80t`, `${ESC}[4;480;720t`, `${ESC}[6;17;9t`, // XTWINOPS
    `${ESC}[?0u`, // kitty keyboard flags
    `${ESC}]10;rgb:d8d8/dede/e9e9${ESC}\\`, `${ESC}]11;rgb:0f0f/1212/1818\x07`, // OSC 10/11
    `${ESC}]4;1;rgb:ffff/0000/0000${ESC}\\`, // OSC 4
    `${ESC}P1$r0;1r${ESC}\\`, `${ESC}P0$r${ESC}\\`, `${ESC}P>|xterm.js(6.0.0)${ESC}\\`, // DCS
    `${ESC}[I`, `${ESC}[O`, // focus reports
    `${ESC}[?1;2c${ESC}[12;40R`, // two answers in one event
  ];
  for (const a of answers) {
    assert.equal(filterReplies(a), '', JSON.stringify(a));
    assert.equal(isReply(a), true, JSON.stringify(a));
  }
});

test('keystrokes are passed on', () => {
  const keys = [
    'a', 'hello', '\r', '\x7f', '\x03', '\t', ' ',
    `${ESC}`, `${ESC}a`, // Escape, Alt+a
    `${ESC}[A`, `${ESC}[B`, `${ESC}OA`, `${ESC}[H`, `${ESC}[F`, // arrows, home/end
    `${ESC}OP`, `${ESC}OQ`, `${ESC}OR`, `${ESC}OS`, // F1..F4
    `${ESC}[1;2P`, `${ESC}[1;5Q`, `${ESC}[1;3S`, // modified F1, F2, F4
    `${ESC}[15~`, `${ESC}[24;5~`, `${ESC}[3~`, `${ESC}[5~`, // F5, Ctrl+F12, Delete, PgUp
    `${ESC}[1;5C`, `${ESC}[1;2A`, // Ctrl+Right, Shift+Up
    `${ESC}[Z`, // Shift+Tab
    'é', '日本語', '👍',
  ];
  for (const k of keys) assert.equal(filterReplies(k), k, JSON.stringify(k));
});

test('modified F3 is a key unless a cursor report is expected', () => {
  for (const mod of [2, 3, 5, 8, 16]) {
    const seq = `${ESC}[1;${mod}R`;
    assert.equal(filterReplies(seq), seq);
    assert.equal(filterReplies(seq, { expectCursorReport: true }), '');
  }
  // Row 1 but a column no key produces is always a report.
  assert.equal(filterReplies(`${ESC}[1;17R`), '');
  assert.equal(filterReplies(`${ESC}[1;1R`), '');
});

test('mouse reports are passed on', () => {
  const reports = [
    `${ESC}[<0;10;5M`, `${ESC}[<0;10;5m`, `${ESC}[<64;3;4M`, // SGR
    `${ESC}[M !!`, `${ESC}[M#\x80\x81`, // X10 / normal
    `${ESC}[32;10;5M`, // urxvt
  ];
  for (const r of reports) assert.equal(filterReplies(r), r, JSON.stringify(r));
});

test('paste is passed on untouched, even when it contains answer-shaped text', () => {
  const pastes = [
    `${ESC}[200~echo hi${ESC}[201~`,
    `${ESC}[200~${ESC}[12;40R${ESC}[201~`,
    `ls -la\rcat ${ESC}[12;40R file`,
    `text${ESC}[?1;2c`,
    `${ESC}[?1;2ctext`,
  ];
  for (const p of pastes) assert.equal(filterReplies(p), p, JSON.stringify(p));
});

test('focus reports can be kept', () => {
  assert.equal(filterReplies(`${ESC}[I`, { dropFocus: false }), `${ESC}[I`);
  assert.equal(filterReplies(`${ESC}[O`, { dropFocus: false }), `${ESC}[O`);
});

test('empty and unterminated sequences', () => {
  assert.equal(filterReplies(''), '');
  assert.equal(filterReplies(`${ESC}]11;rgb:0000/0000/0000`), `${ESC}]11;rgb:0000/0000/0000`);
  assert.equal(filterReplies(`${ESC}P1$r`), `${ESC}P1$r`);
});
