// What the lab's processes do while nobody uses them (benchmarks/idle.ts measures what it costs):
// a variant samples its event loop only while a client is connected, the load generator only
// while its load is not all paused; an idle process's nodejs_eventloop_lag_* read NaN (not
// sampled), never a made-up figure. Real servers on port 0, real scrapes.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  TestClient,
  controlRequest,
  metricsOf,
  sample,
  startLoadServer,
  startVariant,
  waitForValue,
  type RunningVariant,
} from './helpers.js';

const P99 = 'nodejs_eventloop_lag_p99_seconds';

/**
 * How long the polls below leave between scrapes. Each scrape resets Node's delay histogram, and
 * after a reset its first tick only marks the time: a window records a sample from its second
 * tick on (200 ms at the lab's 100 ms sampling); polled every 50 ms, it never would.
 */
const WINDOW_MS = 250;

/** The delay p99 of a scrape, which also ends the sampling window it reads (and puts a sampler nobody holds to sleep). */
async function p99Of(metricsPort: number): Promise<number> {
  return sample(await metricsOf({ metricsPort }), P99);
}

describe('an idle variant', () => {
  let server: RunningVariant;
  before(async () => {
    server = await startVariant('sync');
  });
  after(async () => {
    await server.stop();
  });

  it('samples its event loop only while a client is connected: NaN before and after, a figure between', async () => {
    await p99Of(server.metricsPort); // ends whatever the readiness check may have held
    const idle = await p99Of(server.metricsPort);
    assert.ok(Number.isNaN(idle), `no client since the last scrape: ${P99} should be NaN, read ${idle}`);

    const client = await TestClient.connect(server.port);
    try {
      assert.equal(await client.ask('20'), 'fib: 6765');
      const held = await waitForValue(
        'a sampled delay with a client connected',
        () => p99Of(server.metricsPort),
        Number.isFinite,
        {
          intervalMs: WINDOW_MS,
        },
      );
      assert.ok(held >= 0.09, `each sample includes the 100 ms sampling interval: read ${held}`);
    } finally {
      client.close();
    }
    await waitForValue(
      'the client gone',
      async () => sample(await metricsOf(server), 'fib_connections_active'),
      (open) => open === 0,
    );
    // That scrape saw no client and put the sampler to sleep: the next one has nothing.
    const after = await p99Of(server.metricsPort);
    assert.ok(Number.isNaN(after), `no client since the last scrape: ${P99} should be NaN again, read ${after}`);
  });
});

describe('an idle load generator', () => {
  let server: RunningVariant;
  let load: Awaited<ReturnType<typeof startLoadServer>>;
  before(async () => {
    server = await startVariant('eventloop');
    load = await startLoadServer(['--target', `ev=127.0.0.1:${server.port}`, '--scenario', 'perf2', '--duration', '0']);
  });
  after(async () => {
    load?.child.kill('SIGKILL');
    await server?.stop();
  });

  it('samples its event loop while it sends, not while all of its load is paused', async () => {
    const base = `http://127.0.0.1:${load.port}`;
    await waitForValue('a sampled delay while sending', () => p99Of(load.port), Number.isFinite, { intervalMs: WINDOW_MS });
    const paused = await controlRequest(`${base}/pause`, 'PUT', { seconds: 60 });
    assert.equal(paused.status, 200, await paused.text());
    await p99Of(load.port); // the window the pause began in
    const idle = await p99Of(load.port);
    assert.ok(Number.isNaN(idle), `all load paused since the last scrape: ${P99} should be NaN, read ${idle}`);
    assert.equal((await controlRequest(`${base}/pause`, 'DELETE')).status, 200);
    await waitForValue('a sampled delay once resumed', () => p99Of(load.port), Number.isFinite, { intervalMs: WINDOW_MS });
  });
});
