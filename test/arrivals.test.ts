// The open loop's arrival process over a fixed interval: how many requests are due and how they
// are spaced, with the randomness injected (seeded) so the figures are exact and repeatable.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { arrivals, seededRandom } from '../services/loadgen/arrivals.js';
import { LOAD_LIMITS } from '../services/loadgen/limits.js';

function within(kind: 'fixed' | 'poisson', rate: (t: number) => number, untilMs: number, seed = 42): number[] {
  const times: number[] = [];
  for (const t of arrivals(kind, rate, 0, seededRandom(seed))) {
    if (t >= untilMs) break;
    times.push(t);
  }
  return times;
}

describe('arrivals', () => {
  it('fixed: exactly rate x interval arrivals, evenly spaced', () => {
    const times = within('fixed', () => 100, 10_000);
    assert.equal(times.length, 999, 'due at 10, 20, ... 9990 ms'); // the 1000th is due at 10 000 ms, outside [0, 10 000)
    const gaps = times.slice(1).map((t, i) => t - times[i]!);
    for (const gap of gaps) assert.ok(Math.abs(gap - 10) < 1e-9, `gap ${gap}`);
  });

  it('poisson: about rate x interval arrivals, exponential gaps (mean = 1/rate, coefficient of variation 1)', () => {
    const times = within('poisson', () => 100, 100_000);
    const expected = 10_000;
    assert.ok(
      Math.abs(times.length - expected) < 5 * Math.sqrt(expected),
      `count ${times.length}, expected ${expected} ± ${(5 * Math.sqrt(expected)).toFixed(0)}`,
    );
    const gaps = times.slice(1).map((t, i) => t - times[i]!);
    const mean = gaps.reduce((a, b) => a + b, 0) / gaps.length;
    const sd = Math.sqrt(gaps.reduce((a, b) => a + (b - mean) ** 2, 0) / gaps.length);
    assert.ok(Math.abs(mean - 10) < 0.3, `mean gap ${mean.toFixed(3)} ms`);
    assert.ok(Math.abs(sd / mean - 1) < 0.05, `coefficient of variation ${(sd / mean).toFixed(3)}`);
    assert.ok(gaps.every((gap) => gap > 0));
  });

  it('is repeatable for a seed', () => {
    assert.deepEqual(
      within('poisson', () => 50, 2000, 7),
      within('poisson', () => 50, 2000, 7),
    );
    assert.notDeepEqual(
      within('poisson', () => 50, 2000, 7),
      within('poisson', () => 50, 2000, 8),
    );
  });

  it('follows a changing rate, and stops at rate 0', () => {
    // 10/s for the first second, then 100/s, then nothing after 2 s
    const rate = (t: number) => (t < 1000 ? 10 : t < 2000 ? 100 : 0);
    const times = within('fixed', rate, 5000);
    assert.equal(times.filter((t) => t < 1000).length, 9);
    assert.ok(times.filter((t) => t >= 1000).length >= 99 && times.filter((t) => t >= 1000).length <= 101);
    assert.ok(times.every((t) => t < 2011));
  });

  it('advances at the maximum rate on a clock of a long-running process, and holds a larger rate to it', () => {
    const { max } = LOAD_LIMITS.rate;
    // A year of performance.now(): the gap of the maximum rate (1 us) must still move the clock.
    const year = 365 * 24 * 3_600_000;
    for (const [asked, start] of [
      [max, year],
      [1e300, 1e9],
      [1e300, 0],
    ] as const) {
      const schedule = arrivals('fixed', () => asked, start);
      const times = Array.from({ length: 1000 }, () => schedule.next().value as number);
      const gaps = times.map((t, i) => t - (i === 0 ? start : times[i - 1]!));
      assert.ok(
        gaps.every((gap) => gap > 0),
        `rate ${asked} from ${start} ms: gaps ${gaps.slice(0, 3).join(', ')}: the schedule must advance`,
      );
      const elapsed = times[times.length - 1]! - start;
      assert.ok(Math.abs(elapsed - 1) < 0.01, `1000 arrivals at ${max}/s span 1 ms, not ${elapsed} ms`);
    }
  });
});
