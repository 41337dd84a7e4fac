// The spotlight's parts on real sockets: its target options and settings, the background pause
// (a paused target gets nothing while the others go on), the lease that abandons a turn, lesson
// series removed when a target leaves the rotation, and the control API's limits (413 past the
// stated body size, 400 for bad JSON or unknown fields, PUT/DELETE /pause), stale fairness
// series removed after a switch, and `lab load` failing a run in which nothing was answered.

import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { createLoadgenMetrics } from '../services/loadgen/metrics.js';
import { MAX_BODY_BYTES } from '../services/loadgen/control.js';
import { parseTargets, resolveLoadOptions, type SpotlightOptions, type Target } from '../services/loadgen/options.js';
import { PauseGate } from '../services/loadgen/pause.js';
import { LoadRun } from '../services/loadgen/run.js';
import { loadScenario } from '../services/loadgen/scenario.js';
import {
  Spotlight,
  allWorkersHogs,
  collapseRatio,
  overRounds,
  toSpotlightTarget,
  type LessonTurn,
  type PhaseRound,
  type SpotlightEvent,
} from '../services/loadgen/spotlight.js';
import { NO_HEALTH, judge } from '../services/loadgen/health.js';
import {
  TEST_CONTROL_TOKEN,
  configErrorOf as configError,
  controlRequest,
  fetchText,
  freePort,
  runLab,
  sample,
  startAlwaysUnavailableServer,
  startLoadServer,
  startVariant,
  waitFor,
  type RunningVariant,
} from './helpers.js';

const target = (name: string, server: RunningVariant, extra: Partial<Target> = {}): Target => ({
  name,
  host: '127.0.0.1',
  port: server.port,
  connectPerRequest: false,
  legacy: false,
  metrics: `127.0.0.1:${server.metricsPort}`,
  ...extra,
});

describe('spotlight configuration', () => {
  it('reads the spotlight options of a target', () => {
    const [sync, pool, threads, plain] = parseTargets([
      'sync=sync:25000?metrics=sync:9464&turns',
      'threadpool=threadpool:25000?metrics=threadpool:9464&parallel=fixed-workers',
      'threads=[::1]:25000?metrics=[::1]:9464&parallel=per-connection&connect=per-request',
      'eventloop=eventloop:25000',
    ]);
    assert.deepEqual(toSpotlightTarget(sync!), {
      target: sync,
      metricsUrl: 'http://sync:9464/metrics',
      takesTurns: true,
      parallelism: 'single',
    });
    assert.equal(sync!.connectPerRequest, true, 'a server that takes turns: the background takes turns too');
    assert.equal(toSpotlightTarget(pool!).parallelism, 'fixed-workers');
    assert.equal(pool!.connectPerRequest, false);
    assert.deepEqual([toSpotlightTarget(threads!).parallelism, threads!.metrics], ['per-connection', '[::1]:9464']);
    assert.deepEqual(toSpotlightTarget(plain!), { target: plain, metricsUrl: null, takesTurns: false, parallelism: 'single' });
    assert.equal(parseTargets('s=h:1?turns&connect=persistent')[0]!.connectPerRequest, false, 'an explicit connect wins');
    assert.match(
      configError(() => parseTargets('a=h:1?parallel=many')),
      /--target.*parallel=many/,
    );
    assert.match(
      configError(() => parseTargets('a=h:1?metrics=nowhere')),
      /--target.*metrics=nowhere/,
    );
    assert.match(
      configError(() => parseTargets('a=h:1?metrics=h:99999')),
      /--target a metrics.*65535/,
    );
  });

  it('resolves its settings, with guards naming the option', () => {
    const base = { targets: 'a=h:1,b=h:2,c=h:3' };
    const options = resolveLoadOptions({ ...base, spotlight: true });
    assert.deepEqual(options.spotlight, {
      variants: ['a', 'b', 'c'],
      phaseMs: 2500,
      warmupMs: 500,
      gapMs: 5000,
      rotations: null,
      longN: 30,
      rounds: 3,
    });
    assert.equal(options.background, false, 'no --scenario: the spotlight alone');
    assert.equal(options.durationMs, 0, 'until stopped');
    const set = resolveLoadOptions({
      ...base,
      spotlight: '1',
      scenarioSpec: 'perf1,perf2',
      spotlightPhaseMs: '1.5s',
      spotlightWarmupMs: '250ms',
      spotlightGapMs: '0',
      spotlightVariants: 'c, a',
      rotations: '2',
      spotlightLongN: '32',
      rounds: '5',
    });
    assert.deepEqual(set.spotlight, {
      variants: ['c', 'a'],
      phaseMs: 1500,
      warmupMs: 250,
      gapMs: 0,
      rotations: 2,
      longN: 32,
      rounds: 5,
    });
    assert.equal(set.background, true);
    assert.equal(resolveLoadOptions({ ...base, spotlight: '0' }).spotlight, null, 'LOAD_SPOTLIGHT=0 is off');
    assert.match(
      configError(() => resolveLoadOptions({ ...base, spotlight: 'maybe' })),
      /--spotlight \(LOAD_SPOTLIGHT\)/,
    );
    assert.match(
      configError(() => resolveLoadOptions({ ...base, spotlight: true, spotlightPhaseMs: '100ms' })),
      /--spotlight-phase \(SPOTLIGHT_PHASE\).*200ms/,
    );
    assert.match(
      configError(() => resolveLoadOptions({ ...base, spotlight: true, spotlightVariants: 'a,z' })),
      /--spotlight-variants \(SPOTLIGHT_VARIANTS\).*"z"/,
    );
    assert.match(
      configError(() => resolveLoadOptions({ ...base, rotations: '1' })),
      /--rotations.*only with --spotlight/,
    );
    assert.match(
      configError(() => resolveLoadOptions({ ...base, spotlight: true, json: true })),
      /--spotlight.*--rotations/,
    );
    assert.match(
      configError(() => resolveLoadOptions({ ...base, spotlight: true, search: true })),
      /--spotlight/,
    );
  });

  it('sizes the third phase and the collapse ratio as documented', () => {
    assert.equal(allWorkersHogs('single', 2, 1), null);
    assert.equal(allWorkersHogs('fixed-workers', 2, 3), 3);
    assert.equal(allWorkersHogs('fixed-workers', 2, null), null);
    assert.equal(allWorkersHogs('per-connection', 1.5, 7), 2);
    assert.equal(allWorkersHogs('per-connection', 2, 0), 2);
    assert.equal(collapseRatio(1000, 10), 100);
    assert.equal(collapseRatio(1000, 0), Infinity);
    assert.ok(Number.isNaN(collapseRatio(0, 0)));
  });

  it('flags a phase generator-bound when at least half its rounds were; the median stays among the others', () => {
    /** A round at `rate` fib(1)s a second whose sending thread's event loop was `delayMs` late at p99. */
    const round = (rate: number, delayMs: number): PhaseRound => ({
      hogs: 0,
      seconds: 1,
      short: { requests: rate, ok: rate, okPerSecond: rate, p50Ms: 0.1, p99Ms: 0.3, maxMs: 1, errors: {} },
      long: null,
      workersUsed: null,
      // 100 samples, 4 of them past 20 ms when the round stalled.
      generator: judge(
        {
          ...NO_HEALTH,
          cpuCores: 0.4,
          busy: 0.5,
          eventLoopDelayP99Ms: delayMs,
          eventLoopDelaySamples: 100,
          eventLoopDelayLateShare: delayMs > 20 ? 0.04 : 0,
        },
        null,
      ),
    });
    // One round in three with a 35 ms stall (and a rate it cost): the phase's median is a clean round's.
    const one = overRounds('alone', 0, [round(1000, 2), round(700, 35), round(1010, 3)]);
    assert.equal(one.short.okPerSecond, 1000);
    assert.equal(one.generator.generatorBound, false, JSON.stringify(one.generator));
    assert.deepEqual(one.generator.causes, []);
    assert.deepEqual(one.boundRounds, { event_loop_delay: 1 }, 'the round is still counted');
    // Two in three: the median is a stalled round's, and the phase says so, with the cause.
    const two = overRounds('alone', 0, [round(1000, 2), round(700, 35), round(720, 40)]);
    assert.equal(two.generator.generatorBound, true);
    assert.deepEqual(two.generator.causes, ['event_loop_delay']);
    assert.match(
      two.generator.reasons.join(),
      /event-loop delay p99 over 20 ms: 4\.0% of 100 samples later \(worst stretch's p99 40\.0 ms\)/,
    );
    // With one or two rounds a bound round moves the median (of two, their mean): flagged.
    assert.equal(overRounds('alone', 0, [round(700, 35)]).generator.generatorBound, true);
    assert.equal(overRounds('alone', 0, [round(1000, 2), round(700, 35)]).generator.generatorBound, true);
    assert.equal(overRounds('alone', 0, [round(1000, 2), round(990, 3), round(1010, 1)]).generator.generatorBound, false);
  });
});

/** Two eventloop servers, `a` and `b`, for the tests of the describe that calls this: started before them, stopped after. */
function twoEventloops(): { a: RunningVariant; b: RunningVariant } {
  const servers = {} as { a: RunningVariant; b: RunningVariant };
  before(async () => {
    [servers.a, servers.b] = await Promise.all([startVariant('eventloop'), startVariant('eventloop')]);
  });
  after(async () => {
    await Promise.all([servers.a?.stop(), servers.b?.stop()]);
  });
  return servers;
}

describe('the background pause', () => {
  const servers = twoEventloops();

  for (const model of ['closed', 'open'] as const) {
    it(`${model} loop: a paused target gets nothing, the others go on, and it resumes`, async () => {
      const { a, b } = servers;
      const gate = new PauseGate();
      const scenario =
        model === 'closed'
          ? loadScenario('perf1,perf2')
          : { ...loadScenario('mixed'), probes: loadScenario('mixed').probes.map((p) => ({ ...p, rate: 400 })) };
      const run = new LoadRun(
        { scenario, targets: [target('a', a), target('b', b)], durationMs: 0, warmupMs: 0, timeoutMs: 10_000, gate },
        null,
      );
      const requests = (name: string) => run.tallies.filter((r) => r.key.target === name).reduce((sum, r) => sum + r.requests, 0);
      try {
        await waitFor(
          'both targets loaded',
          () => requests('a') > 20 && requests('b') > 20,
          () => `both targets loaded: a ${requests('a')}, b ${requests('b')}`,
        );
        gate.pause('a');
        await waitFor(
          "a's connections closed by the pause",
          () => gate.quiet('a', 5000),
          () => `a's connections closed: ${gate.connections('a')} held`,
        );
        const [aPaused, bPaused] = [requests('a'), requests('b')];
        await waitFor(
          'b going on while a is paused',
          () => requests('b') > bPaused + 50,
          () => `b goes on: ${requests('b') - bPaused} more`,
        );
        assert.equal(requests('a'), aPaused, `a got ${requests('a') - aPaused} requests while paused`);
        assert.equal(gate.connections('a'), 0, 'a paused target holds no connection');
        const errors = run.tallies.filter((r) => r.key.target === 'a').reduce((sum, r) => sum + r.errors, 0);
        assert.equal(errors, 0, 'skipped requests are not errors');
        gate.resume('a');
        await waitFor(
          'a resuming after the pause',
          () => requests('a') > aPaused + 20,
          () => `a resumes: ${requests('a') - aPaused} more`,
        );
      } finally {
        run.stop();
        await run.finished;
      }
    });
  }
});

describe('the spotlight rotation', () => {
  let ev: RunningVariant;
  let pool: RunningVariant;
  before(async () => {
    [ev, pool] = await Promise.all([startVariant('eventloop'), startVariant('threadpool', { POOL_SIZE: '2' })]);
  });
  after(async () => {
    await Promise.all([ev?.stop(), pool?.stop()]);
  });

  const settings = (variants: string[], rotations: number | null): SpotlightOptions => ({
    variants,
    phaseMs: 400,
    warmupMs: 100,
    gapMs: 0,
    rotations,
    longN: 30,
    rounds: 1,
  });

  it('pauses the background against every target for a turn, and lets it run between turns', async () => {
    const gate = new PauseGate();
    const targets = [target('ev', ev), target('pool', pool, { parallelism: 'fixed-workers' })];
    const background = new LoadRun(
      { scenario: loadScenario('perf2'), targets, durationMs: 0, warmupMs: 0, timeoutMs: 10_000, gate },
      null,
    );
    const requests = (name: string) => background.tallies.find((r) => r.key.target === name)!.requests;
    const both = () => requests('ev') + requests('pool');
    const turns: Array<{ variant: string; background: number }> = [];
    const gaps: number[] = [];
    let turnStart: number | null = null;
    let turnEnd: number | null = null;
    const onEvent = (event: SpotlightEvent) => {
      if (event.type === 'phase' && event.phase === 'alone' && turnStart === null) {
        if (turnEnd !== null) gaps.push(both() - turnEnd);
        turnStart = both();
      }
      if (event.type === 'turn' && turnStart !== null) {
        turns.push({ variant: event.turn.variant, background: both() - turnStart });
        turnStart = null;
        turnEnd = both();
      }
    };
    const spotlight = new Spotlight(
      targets.map(toSpotlightTarget),
      { ...settings(['ev', 'pool'], 1), gapMs: 500 },
      {
        gate,
        metrics: null,
        onEvent,
      },
    );
    try {
      await spotlight.run(new AbortController().signal);
    } finally {
      background.stop();
      await background.finished;
    }
    console.log(`background requests during each turn: ${JSON.stringify(turns)}, in the gap between: ${JSON.stringify(gaps)}`);
    assert.deepEqual(
      turns.map((w) => w.variant),
      ['ev', 'pool'],
    );
    for (const turn of turns)
      assert.equal(turn.background, 0, `the background sent ${turn.background} requests during ${turn.variant}'s turn`);
    assert.ok(gaps[0]! > 10, `the background ran between the turns: ${JSON.stringify(gaps)}`);
  });

  it('abandons the turn in progress when all load is paused, exports nothing from it, and resumes after', async () => {
    const gate = new PauseGate();
    const metrics = createLoadgenMetrics();
    const events: SpotlightEvent[] = [];
    let leased = false;
    const onEvent = (event: SpotlightEvent) => {
      events.push(event);
      // The lease arrives during the first turn's second phase, and lasts 300 ms.
      if (event.type === 'phase' && event.phase === 'beside_one_long' && !leased) {
        leased = true;
        setTimeout(() => gate.setAll(true), 100);
        setTimeout(() => gate.setAll(false), 400);
      }
    };
    const spotlight = new Spotlight([toSpotlightTarget(target('ev', ev))], settings(['ev'], 1), { gate, metrics, onEvent });
    let scrapedDuringLease = '';
    gate.subscribe(() => {
      if (gate.allPaused) void metrics.registry.metrics().then((text) => (scrapedDuringLease = text));
    });
    await spotlight.run(new AbortController().signal);
    const kinds = events.map((e) => (e.type === 'phase' ? `${e.type}:${e.phase}` : e.type));
    assert.deepEqual(
      kinds,
      ['phase:alone', 'phase:beside_one_long', 'abandoned', 'phase:alone', 'phase:beside_one_long', 'turn'],
      kinds.join(', '),
    );
    assert.doesNotMatch(scrapedDuringLease, /^loadgen_lesson_collapse_ratio\{/m, 'the abandoned turn exported no figures');
    const text = await metrics.registry.metrics();
    assert.ok(sample(text, 'loadgen_lesson_collapse_ratio', { variant: 'ev' }) > 0, 'the turn after the lease did');
  });

  it('removes the lesson series of a target taken out of the rotation', async () => {
    const gate = new PauseGate();
    const metrics = createLoadgenMetrics();
    const targets = [target('ev', ev), target('pool', pool, { parallelism: 'fixed-workers' })];
    const turns: LessonTurn[] = [];
    const spotlight = new Spotlight(targets.map(toSpotlightTarget), settings(['ev', 'pool'], 1), {
      gate,
      metrics,
      onEvent: (event) => event.type === 'turn' && turns.push(event.turn),
    });
    await spotlight.run(new AbortController().signal);
    let text = await metrics.registry.metrics();
    for (const variant of ['ev', 'pool'])
      assert.ok(sample(text, 'loadgen_lesson_timestamp_seconds', { variant }) > 0, `${variant} has figures`);
    assert.ok(
      sample(text, 'loadgen_lesson_short_requests_per_second', { variant: 'pool', phase: 'beside_all_workers_long' }) > 0,
    );
    assert.equal(sample(text, 'loadgen_lesson_workers', { variant: 'pool' }), 2, 'POOL_SIZE=2: two hogs in the third phase');
    spotlight.setVariants(['ev']);
    text = await metrics.registry.metrics();
    const left = text.split('\n').filter((line) => /^loadgen_(lesson_\w+|spotlight\w*)\{[^}]*variant="pool"/.test(line));
    assert.deepEqual(left, [], 'no series of pool is left');
    assert.ok(sample(text, 'loadgen_lesson_timestamp_seconds', { variant: 'ev' }) > 0, 'ev keeps its figures');
    assert.equal(sample(text, 'loadgen_spotlight', { variant: 'ev' }), 0);
  });
});

describe('the control API', () => {
  let server: RunningVariant;
  let load: Awaited<ReturnType<typeof startLoadServer>>;
  let base: string;
  before(async () => {
    server = await startVariant('eventloop');
    load = await startLoadServer([
      '--target',
      `ev=127.0.0.1:${server.port}`,
      '--scenario',
      'perf1,perf2',
      '--duration',
      '0',
      '--think',
      '20ms',
    ]);
    base = `http://127.0.0.1:${load.port}`;
  });
  after(async () => {
    load?.child.kill('SIGKILL');
    await server?.stop();
  });

  const send = (method: string, path: string, body?: string) =>
    controlRequest(`${base}${path}`, method, body).then(async (response) => ({
      status: response.status,
      body: (await response.json()) as Record<string, unknown>,
    }));

  it(`refuses a body over ${MAX_BODY_BYTES} bytes with 413, bad JSON and unknown fields with 400`, async () => {
    const big = await send('PUT', '/scenario', JSON.stringify({ scenario: 'perf2', padding: 'x'.repeat(1024 * 1024) }));
    assert.equal(big.status, 413);
    assert.match(String(big.body.error), new RegExp(`over ${MAX_BODY_BYTES} bytes`));
    // Sent without a length (chunked): answered as soon as it passes the limit, the rest thrown away.
    const status = await new Promise<number>((resolve, reject) => {
      const headers = { 'transfer-encoding': 'chunked', authorization: `Bearer ${TEST_CONTROL_TOKEN}` };
      const req = request(`${base}/scenario`, { method: 'PUT', headers }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      req.on('error', reject);
      const spaces = Buffer.alloc(64 * 1024, ' ');
      let sent = 0;
      const more = () => {
        while (sent < 50 * 1024 * 1024 && !req.destroyed) {
          sent += spaces.length;
          if (!req.write(spaces)) return void req.once('drain', more);
        }
        req.end();
      };
      more();
    });
    assert.equal(status, 413, 'a stream of spaces past the limit');
    const state = await send('GET', '/scenario');
    assert.equal((state.body.scenario as { spec: string }).spec, 'perf1,perf2', 'nothing was switched');
    const bad = await send('PUT', '/scenario', '{"scenario": ');
    assert.equal(bad.status, 400);
    assert.match(String(bad.body.error), /not JSON/);
    const unknown = await send('PUT', '/scenario', JSON.stringify({ scenario: 'perf2', turbo: true }));
    assert.equal(unknown.status, 400);
    assert.match(String(unknown.body.error), /turbo/);
    const unknownPause = await send('PUT', '/pause', JSON.stringify({ seconds: 5, forever: true }));
    assert.equal(unknownPause.status, 400);
    assert.match(String(unknownPause.body.error), /forever/);
    for (const seconds of [0, 3601, 'ten']) {
      const out = await send('PUT', '/pause', JSON.stringify({ seconds }));
      assert.equal(out.status, 400, `seconds ${JSON.stringify(seconds)}`);
      assert.match(String(out.body.error), /seconds/);
    }
    assert.equal((await send('GET', '/spotlight')).status, 404, 'no spotlight runs here');
  });

  it('pauses all load for a lease, shows it, resumes on DELETE and when the lease runs out', async () => {
    const metricsText = async () => (await fetchText(`${base}/metrics`)).body;
    /** Requests the load generator has completed against ev, whatever their outcome. */
    const sent = (text: string) =>
      text
        .split('\n')
        .filter((line) => line.startsWith('loadgen_requests_total{variant="ev"'))
        .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
    let text = await metricsText();
    assert.equal(sample(text, 'loadgen_paused'), 0);
    const paused = await send('PUT', '/pause', JSON.stringify({ seconds: 30 }));
    assert.equal(paused.status, 200);
    assert.equal(paused.body.quiet, true, 'it answers once the load has stopped');
    const until = Date.parse(String(paused.body.pausedUntil));
    assert.ok(Math.abs(until - (Date.now() + 30_000)) < 5000, `pausedUntil ${String(paused.body.pausedUntil)}`);
    assert.equal((await send('GET', '/scenario')).body.pausedUntil, paused.body.pausedUntil);
    text = await metricsText();
    assert.equal(sample(text, 'loadgen_paused'), 1);
    const before = sent(await metricsText());
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(sent(await metricsText()), before, 'nothing is sent during the lease');
    const renewed = await send('PUT', '/pause', JSON.stringify({ seconds: 1 }));
    assert.ok(Date.parse(String(renewed.body.pausedUntil)) < until, 'a new PUT replaces the lease');
    await waitFor(
      'the 1 s lease running out',
      async () => sample(await metricsText(), 'loadgen_paused') === 0,
      () => 'the 1 s lease ran out',
    );
    assert.equal((await send('GET', '/scenario')).body.pausedUntil, null);
    const resumedAt = sent(await metricsText());
    await waitFor(
      'the load resuming after the lease',
      async () => sent(await metricsText()) > resumedAt,
      () => 'the load resumes after the lease',
    );
    await send('PUT', '/pause', JSON.stringify({ seconds: 60 }));
    const deleted = await send('DELETE', '/pause');
    assert.deepEqual(deleted, { status: 200, body: { pausedUntil: null } });
    assert.equal(sample(await metricsText(), 'loadgen_paused'), 0);
  });

  it('measures one stretch on POST /measure, only while all load is paused (how lab sweep measures the compose lab)', async () => {
    const stretch = JSON.stringify({
      target: 'ev',
      probes: [{ name: 'short', n: 1, connections: 1 }],
      durationMs: 300,
      warmupMs: 100,
    });
    const refused = await send('POST', '/measure', stretch);
    assert.equal(refused.status, 409, JSON.stringify(refused.body));
    assert.match(String(refused.body.error), /pause all load first/);
    await send('PUT', '/pause', JSON.stringify({ seconds: 30 }));
    try {
      const measured = await send('POST', '/measure', stretch);
      assert.equal(measured.status, 200, JSON.stringify(measured.body));
      const short = (measured.body.probes as Record<string, { ok: number; okPerSecond: number; p50Ms: number }>).short!;
      assert.ok(short.ok > 0 && short.okPerSecond > 0 && short.p50Ms > 0, JSON.stringify(short));
      assert.ok(Math.abs(Number(measured.body.seconds) - 0.3) < 0.1, `measured ${String(measured.body.seconds)} s`);
      assert.equal(typeof (measured.body.generator as { generatorBound: unknown }).generatorBound, 'boolean');
      const unknown = await send('POST', '/measure', JSON.stringify({ ...JSON.parse(stretch), target: 'elsewhere' }));
      assert.equal(unknown.status, 400);
      assert.match(String(unknown.body.error), /unknown target "elsewhere"/);
      const get = await fetch(`${base}/measure`);
      await get.body?.cancel();
      assert.equal(get.status, 405, 'POST only: lab sweep tells a generator that can measure by this');
    } finally {
      await send('DELETE', '/pause');
    }
  });

  it('keeps the options a switch leaves out, and removes the fairness series of what was switched off', async () => {
    const metricsText = async () => (await fetchText(`${base}/metrics`)).body;
    await waitFor(
      "perf1's fairness series",
      async () => /^loadgen_fairness_index\{variant="ev",scenario="perf1",probe="long"\}/m.test(await metricsText()),
      () => 'perf1 has a fairness series',
    );
    const switched = await send('PUT', '/scenario', JSON.stringify({ scenario: 'perf2' }));
    assert.equal(switched.status, 200);
    assert.equal((switched.body.overrides as { think: string }).think, '20.0ms', 'the think time was left out: kept');
    const text = await metricsText();
    assert.doesNotMatch(text, /^loadgen_fairness_index\{[^}]*scenario="perf1"/m, 'perf1 was switched off');
    assert.match(text, /^loadgen_fairness_index\{variant="ev",scenario="perf2",probe="short"\}/m);
  });
});

describe('the control API of a spotlight', () => {
  const servers = twoEventloops();

  it('shows the rotation, changes it with PUT /spotlight, and drops the series of a target taken out', async () => {
    const { a, b } = servers;
    const address = (server: RunningVariant) => `127.0.0.1:${server.port}?metrics=127.0.0.1:${server.metricsPort}`;
    const load = await startLoadServer([
      '--spotlight',
      '--target',
      `a=${address(a)}`,
      '--target',
      `b=${address(b)}`,
      '--spotlight-phase',
      '300ms',
      '--spotlight-warmup',
      '100ms',
      '--spotlight-gap',
      '0',
    ]);
    try {
      const base = `http://127.0.0.1:${load.port}`;
      const metricsText = async () => (await fetchText(`${base}/metrics`)).body;
      await waitFor(
        "a's first turn",
        async () => sample(await metricsText(), 'loadgen_lesson_timestamp_seconds', { variant: 'a' }) > 0,
        () => `a's first turn: ${load.stderr()}`,
      );
      const shown = (await (await fetch(`${base}/spotlight`)).json()) as { variants: string[]; last: Record<string, unknown> };
      assert.deepEqual(shown.variants, ['a', 'b']);
      assert.ok(shown.last.a, JSON.stringify(shown));
      const scenario = (await (await fetch(`${base}/scenario`)).json()) as {
        scenario: unknown;
        spotlight: { variants: string[] };
      };
      assert.equal(scenario.scenario, null, 'no --scenario: no background load');
      assert.deepEqual(scenario.spotlight.variants, ['a', 'b']);
      const put = (body: unknown) => controlRequest(`${base}/spotlight`, 'PUT', body);
      const unknown = await put({ variants: ['c'] });
      assert.equal(unknown.status, 400);
      assert.match(((await unknown.json()) as { error: string }).error, /variants.*unknown target "c"/);
      assert.equal((await put({ variants: ['b'], phase: '1s' })).status, 400, 'unknown fields are refused');
      const changed = await put({ variants: ['b'] });
      assert.equal(changed.status, 200);
      assert.deepEqual(((await changed.json()) as { variants: string[] }).variants, ['b']);
      // Another turn of b: a never comes back, and none of its series is left.
      const turnsOfB = async () => sample(await metricsText(), 'loadgen_lesson_timestamp_seconds', { variant: 'b' });
      const first = (await turnsOfB()) || 0; // NaN before b's first turn
      await waitFor(
        "b's next turn",
        async () => (await turnsOfB()) > first,
        () => "b's next turn",
      );
      const text = await metricsText();
      const left = text.split('\n').filter((line) => /^loadgen_(lesson_\w+|spotlight\w*)\{[^}]*variant="a"/.test(line));
      assert.deepEqual(left, [], 'no series of a is left');
      assert.ok(sample(text, 'loadgen_lesson_collapse_ratio', { variant: 'b' }) >= 1);

      // A lease abandons the turn in progress; the rotation goes on after it.
      const lease = await controlRequest(`${base}/pause`, 'PUT', { seconds: 60 });
      assert.deepEqual(((await lease.json()) as { quiet: boolean }).quiet, true);
      const during = (await (await fetch(`${base}/spotlight`)).json()) as { now: unknown };
      assert.equal(during.now, null, 'no turn runs during the lease');
      const leasedAt = (await turnsOfB()) || 0;
      await controlRequest(`${base}/pause`, 'DELETE');
      await waitFor(
        'a turn after the lease',
        async () => (await turnsOfB()) > leasedAt,
        () => 'a turn after the lease',
      );
      load.child.kill('SIGTERM');
      assert.equal(await load.exited, 0, load.stderr());
      assert.match(load.stdout(), /^spotlight: perf2 \(fib\(1\)\) requests per second/m);
    } finally {
      load.child.kill('SIGKILL');
    }
  });
});

describe('lab load fails a run in which nothing was answered', () => {
  it('exits 1 against a port where nothing listens', async () => {
    const port = await freePort();
    const { code, stdout, stderr } = await runLab(['load', '--target', `gone=127.0.0.1:${port}`, '--duration', '1s', '--json']);
    assert.equal(code, 1, stderr);
    const [result] = (JSON.parse(stdout) as { results: Array<{ ok: number; errors: Record<string, number> }> }).results;
    assert.ok(result!.ok === 0 && (result!.errors.connect_error ?? 0) >= 1, JSON.stringify(result));
    assert.match(stderr, /every request failed \(\d+ requests: connect_error \d+\)/);
  });

  it('exits 1 against a server that answers every request with an error', async () => {
    const failing = await startAlwaysUnavailableServer();
    try {
      const { code, stderr } = await runLab(['load', '--target', `down=127.0.0.1:${failing.port}`, '--duration', '1s']);
      assert.equal(code, 1, stderr);
      assert.match(stderr, /every request failed \(\d+ requests: unavailable \d+\)/);
    } finally {
      await failing.close();
    }
  });
});
