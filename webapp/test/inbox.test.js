// The browser's inbox drops output past its soft limit as a relay would, and marks each run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Inbox, SOFT_LIMIT } from '../src/net/inbox.js';
import { encodeFrame, parseFrame } from '../src/protocol/envelope.js';
import { FrameKind } from '../src/protocol/wire.js';

const output = (kind, size) => encodeFrame(kind, new Uint8Array(size), kind === FrameKind.GROUP ? 0 : 1);

async function drain(inbox) {
  const kinds = [];
  while (inbox.bytes > 0) kinds.push(parseFrame(await inbox.take()).kind);
  return kinds;
}

test('a run of dropped output leaves one SKIPPED in its place, and the next other frame ends it', async () => {
  const inbox = new Inbox();
  const big = 512 * 1024;
  let pushed = 0;
  while (inbox.bytes + big + 18 <= SOFT_LIMIT) { inbox.push(output(FrameKind.GROUP, big)); pushed++; }
  inbox.push(output(FrameKind.GROUP_DIRECT, big)); // over the limit: dropped, marked
  inbox.push(output(FrameKind.GROUP_DIRECT, 20)); // small, would fit: still in the run, dropped
  inbox.push(output(FrameKind.GROUP, 100));
  inbox.push(output(FrameKind.DIRECT, 100)); // the snapshot: ends the run
  assert.equal(inbox.dropped, 3);
  const kinds = await drain(inbox);
  assert.deepEqual(kinds.slice(pushed), [FrameKind.SKIPPED, FrameKind.DIRECT]);
  inbox.push(output(FrameKind.GROUP_DIRECT, 20)); // room again, and no run: delivered
  for (let i = 0; i < 40; i++) inbox.push(output(FrameKind.GROUP, big)); // a new run, marked again
  const again = await drain(inbox);
  assert.equal(again[0], FrameKind.GROUP_DIRECT);
  assert.deepEqual(again.filter((k) => k === FrameKind.SKIPPED).length, 1);
  assert.equal(again.at(-1), FrameKind.SKIPPED);
});
