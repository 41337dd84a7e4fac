// The pacer's clock on its real thread: a timer never fires before it is due, and timers due
// close together share a wake-up (MIN_WAKE_GAP_MS apart at least), which is what keeps an open
// loop at 10,000 requests/s from waking its sending thread once per request.

import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { MIN_WAKE_GAP_MS, PreciseClock } from '../services/loadgen/pacer.js';

describe('the pacer clock (real thread)', () => {
  const clocks: PreciseClock[] = [];
  after(() => Promise.all(clocks.map((clock) => clock.close())));

  it('fires no timer early, and wakes its thread at most once per MIN_WAKE_GAP_MS', async () => {
    const clock = new PreciseClock();
    clocks.push(clock);
    await clock.ready();
    // 100 timers 0.02 ms apart, from 1 ms on: 2 ms of them, all on the pacer (under COARSE_MS).
    const count = 100;
    const gapMs = 0.02;
    const first = clock.now() + 1;
    const early: string[] = [];
    await new Promise<void>((resolve) => {
      let left = count;
      for (let i = 0; i < count; i++) {
        const due = first + i * gapMs;
        clock.setTimer(() => {
          const at = clock.now();
          if (at < due) early.push(`timer ${i} fired ${(due - at).toFixed(3)} ms early`);
          if (--left === 0) resolve();
        }, due - clock.now());
      }
    });
    assert.deepEqual(early, [], 'no timer fires before it is due');
    // Wake-ups are at least MIN_WAKE_GAP_MS apart, over a span of (count - 1) * gapMs: one per
    // timer would be 100.
    const most = Math.floor(((count - 1) * gapMs) / MIN_WAKE_GAP_MS) + 2;
    assert.ok(
      clock.wakeUps <= most,
      `${clock.wakeUps} wake-ups for ${count} timers over ${(count - 1) * gapMs} ms: at most ${most}`,
    );
  });

  it('keeps the process alive only while a timer waits, like a Node timer', async () => {
    const clock = new PreciseClock();
    clocks.push(clock);
    await clock.ready();
    // The pacer thread's port is what keeps a process alive (process.getActiveResourcesInfo()).
    const alive = () => process.getActiveResourcesInfo().filter((resource) => resource === 'MessagePort').length;
    assert.equal(alive(), 0, 'started, no timer: the pacer keeps nothing alive');
    await new Promise<void>((resolve) => {
      clock.setTimer(resolve, 1);
      assert.equal(alive(), 1, 'a timer waits: the pacer keeps the process alive');
    });
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(alive(), 0, 'the last timer fired: nothing keeps the process alive');
  });
});
