// The open loop's arrival schedule: when each request is due, independent of when replies come
// back (that independence is what makes it an open loop). Evenly spaced, or a Poisson process
// (exponential gaps with the same mean). Written by hand: it is the point of the lesson, and the
// randomness and the rate are injected so tests can check the schedule exactly.

import { LOAD_LIMITS } from './limits.js';

export type ArrivalKind = 'fixed' | 'poisson';

/**
 * Yields intended send times, in ms on the run's clock, from `startMs` on. `rateAt(t)` is the
 * rate (requests per second) at time t; a rate of 0 yields nothing more. Rates are held to
 * LOAD_LIMITS.rate: a gap of at least 1 us, which a double still adds to a clock of centuries
 * (a gap below half the clock's last digit would leave the schedule standing still).
 */
export function* arrivals(
  kind: ArrivalKind,
  rateAt: (t: number) => number,
  startMs: number,
  random: () => number = Math.random,
): Generator<number, void, undefined> {
  let t = startMs;
  for (;;) {
    const asked = rateAt(t);
    if (!(asked > 0)) return;
    const rate = Math.min(Math.max(asked, LOAD_LIMITS.rate.min), LOAD_LIMITS.rate.max);
    const meanGapMs = 1000 / rate;
    t += kind === 'fixed' ? meanGapMs : -Math.log(1 - random()) * meanGapMs;
    yield t;
  }
}

/** A small, seedable generator of uniform numbers in [0, 1) (mulberry32), for reproducible schedules. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let x = state;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}
