// CI's short fuzz pass: every variant, a few seconds of random and adversarial sessions with a
// fixed seed (test/fuzz/), then the checks every variant must pass after them. `make fuzz` runs
// the same harness longer, with a new seed each time.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { VARIANT_NAMES } from '../services/variants/index.js';
import { fuzzVariant, summarize } from './fuzz/campaign.js';

const SEED = 20_151_127;
const SECONDS = 3;

// Two variants at a time: a campaign runs for a fixed time, so it sends fewer sessions when it
// shares the machine, and every check after it waits for a state.
describe('fuzz: every variant survives random and adversarial frames', { concurrency: 2 }, () => {
  for (const variant of VARIANT_NAMES) {
    it(
      `${variant}: ${SECONDS} s of fuzzed sessions (seed ${SEED}), then no connection held, a fresh client answered, an idle drain`,
      { timeout: 120_000 },
      async () => {
        const report = await fuzzVariant(variant, { seed: SEED, seconds: SECONDS, clients: 4 });
        console.log(summarize(report));
        assert.ok(report.sessions > 0 && report.replies > 0, summarize(report));
        assert.deepEqual(report.failures, [], `${report.failureCount} failures; ${summarize(report)}`);
      },
    );
  }
});
