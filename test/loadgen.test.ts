// The load generator on real sockets: its output (table, JSON, CSV), the corrected and naive
// latencies against a server that stalls on purpose, legacy targets, --variants, the control
// API (its limits, its token, the Host it answers, the files it reads), the maximum-throughput
// search, its own /metrics, and flagging itself when it cannot keep its schedule.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ControlAccess } from '../services/loadgen/control.js';
import { GeneratorHealth, NO_HEALTH, concatHealth, judge, mergeHealth, type ThreadHealth } from '../services/loadgen/health.js';
import type { LoadReport } from '../services/loadgen/report.js';
import type { SearchResult } from '../services/loadgen/search.js';
import { LoadgenPause, loadgenToken } from '../services/sweep/pause.js';
import {
  TEST_CONTROL_TOKEN,
  controlRequest,
  fetchText,
  poll,
  processStatus,
  runLab,
  sample,
  startBareReplyServer,
  startLoadServer,
  startStallingServer,
  startVariant,
  waitFor,
  writeScenario,
  type RunningVariant,
} from './helpers.js';

const readReport = (json: string) => JSON.parse(json) as LoadReport;

describe('lab load', () => {
  let server: RunningVariant;
  before(async () => {
    server = await startVariant('eventloop');
  });
  after(async () => {
    await server?.stop();
  });

  it('runs perf1 and perf2 together and reports each probe as JSON, with HDR histograms', async () => {
    const { code, stdout, stderr } = await runLab([
      'load',
      '--target',
      `ev=127.0.0.1:${server.port}`,
      '--scenario',
      'perf1,perf2',
      '--duration',
      '2s',
      '--json',
    ]);
    assert.equal(code, 0, stderr);
    const report = readReport(stdout);
    assert.equal(report.scenario.name, 'perf1+perf2');
    assert.equal(report.phases.length, 1);
    const phase = report.phases[0]!;
    assert.ok(phase.durationSeconds >= 1.9 && phase.durationSeconds < 3, `durationSeconds ${phase.durationSeconds}`);
    assert.equal(typeof phase.generator.cpuCores, 'number');
    // Whether the generator was the bottleneck depends on what else the machine runs: the report
    // must be consistent (bound exactly when it names a cause, with a reason for each).
    const health = phase.generator;
    assert.equal(health.generatorBound, health.causes.length > 0, JSON.stringify(health));
    assert.ok(health.reasons.length >= health.causes.length, JSON.stringify(health));
    assert.equal(health.reasons.length > 0, health.generatorBound, JSON.stringify(health));
    assert.deepEqual(
      report.results.map((r: { scenario: string; probe: string; n: string; model: string }) => [
        r.scenario,
        r.probe,
        r.n,
        r.model,
      ]),
      [
        ['perf1', 'long', '30', 'closed'],
        ['perf2', 'short', '1', 'closed'],
      ],
    );
    for (const r of report.results) {
      assert.equal(r.target, 'ev');
      assert.ok(r.requests > 0 && r.ok === r.requests, `${r.probe}: ${r.ok} ok of ${r.requests}`);
      assert.deepEqual(r.errors, {});
      const { p50, p90, p99, p999, max } = r.latencyMs;
      assert.ok(
        p50 > 0 && p50 <= p90 && p90 <= p99 && p99 <= p999 && p999 <= max,
        `${r.probe} percentiles ${JSON.stringify(r.latencyMs)}`,
      );
      assert.ok(Math.abs(r.requestsPerSecond - r.requests / phase.durationSeconds) < 1);
      assert.match(r.histograms.latency, /^[A-Za-z0-9+/=]{20,}$/);
      assert.equal(r.uncorrectedLatencyMs, null, 'closed loop: latency is from the send');
      assert.equal(r.fairness, 1, 'one connection per probe is trivially fair');
    }
    assert.match(stderr, /^\[\s+\d+s\] ev: long [\d.]+\/s p50 /m, 'plain live lines on stderr when it is not a terminal');
  });

  it("shows in every live line the rate the sending threads measured, not what their flushes' timing let into the display's second", async () => {
    // The sending threads flush every second on their own clocks, the display refreshes every
    // second on the main thread's: a rate counted from what arrived in the display's second read
    // 0/s for the first one (no flush yet) and double wherever two flushes fell into one.
    const rate = 200;
    const scenario = writeScenario(
      [
        'name: paced',
        'duration: 5s',
        'probes:',
        '  - name: short',
        '    model: open',
        `    rate: ${rate}`,
        '    connections: 4',
        '    n: 1',
      ].join('\n'),
    );
    const { code, stderr } = await runLab(['load', '--target', `ev=127.0.0.1:${server.port}`, '--scenario', scenario, '--json']);
    assert.equal(code, 0, stderr);
    const lines = [...stderr.matchAll(/^\[\s*(\d+)s\] ev: short ([\d.]+)\/s /gm)].map((m) => ({
      at: Number(m[1]),
      rate: Number(m[2]),
    }));
    const shown = lines.map((l) => `[${l.at}s] ${l.rate}/s`).join(', ');
    console.log(`live lines of an open loop at ${rate}/s: ${shown}`);
    assert.ok(lines.length >= 3, `a live line for most of the 5 s: ${shown}\n${stderr}`);
    for (const line of lines)
      assert.ok(Math.abs(line.rate - rate) <= rate / 4, `every line within 25% of the scheduled ${rate}/s: ${shown}`);
  });

  it('prints a final table by default, and CSV with --csv', async () => {
    const table = await runLab(['load', '--target', `ev=127.0.0.1:${server.port}`, '--duration', '1s']);
    assert.equal(table.code, 0);
    const lines = table.stdout.trim().split('\n');
    assert.match(lines[0]!, /^perf2: 1\.\d s measured$/);
    assert.match(
      lines[1]!,
      /^target\s+scenario\s+probe\s+n\s+req\/s\s+p50\s+p90\s+p99\s+p99\.9\s+max\s+p99 uncorr\s+errors\s+fairness\s+gen-bound$/,
    );
    assert.match(lines[2]!, /^ev\s+perf2\s+short\s+1\s+\d+\s+(\S+\s+){5}-\s+0\s+1\.00\s+no$/);
    assert.match(
      lines[3]!,
      /^generator: sending thread busy \d+%, event-loop delay p99 \S+, process [\d.]+ cores: not the bottleneck$/,
    );
    const csv = await runLab(['load', '--target', `ev=127.0.0.1:${server.port}`, '--duration', '1s', '--csv']);
    assert.equal(csv.code, 0);
    const [header, row] = csv.stdout.trim().split('\n');
    assert.equal(
      header,
      'target,scenario,probe,model,n,connections,requests,ok,errors,requests_per_second,p50_ms,p90_ms,p99_ms,p999_ms,max_ms,uncorrected_p99_ms,queue_wait_p99_ms,fairness,generator_bound',
    );
    assert.match(row!, /^ev,perf2,short,closed,1,1,\d+,\d+,,[\d.]+,([\d.]+,){5},,1,false$/);
  });

  it("splits results by the scenario's phases: the talk's demo in the final table", async () => {
    const scenario = writeScenario(
      [
        'name: demo',
        'duration: 3s',
        'probes:',
        '  - name: short',
        '    n: 1',
        '  - name: long',
        '    n: 30',
        '    start: 1s',
        '    stop: 2s',
      ].join('\n'),
    );
    const { code, stdout, stderr } = await runLab([
      'load',
      '--target',
      `ev=127.0.0.1:${server.port}`,
      '--scenario',
      scenario,
      '--json',
    ]);
    assert.equal(code, 0, stderr);
    const short = readReport(stdout).results.find((r) => r.probe === 'short')!;
    const phases = Object.fromEntries(short.phases.map((p) => [p.phase, p])) as Record<
      '0 long' | '1 long',
      (typeof short.phases)[number]
    >;
    assert.deepEqual(Object.keys(phases).sort(), ['0 long', '1 long']);
    assert.ok(
      Math.abs(phases['1 long'].seconds - 1) < 0.2,
      `about 1 s with the long request running: ${phases['1 long'].seconds}`,
    );
    const ratio = phases['0 long'].requestsPerSecond / phases['1 long'].requestsPerSecond;
    console.log(
      `eventloop: fib(1) ${phases['0 long'].requestsPerSecond} req/s alone, ${phases['1 long'].requestsPerSecond} while fib(30) loops (${ratio.toFixed(0)}x)`,
    );
    assert.ok(ratio > 5, `one event loop: short requests wait for each fib(30) (${ratio.toFixed(1)}x)`);
    const table = await runLab(['load', '--target', `ev=127.0.0.1:${server.port}`, '--scenario', scenario]);
    assert.match(table.stdout, /^\s+while 0 long\s+\d+/m);
    assert.match(table.stdout, /^\s+while 1 long\s+\d+/m);
  });

  it("reports Jain's fairness over a probe's connections", async () => {
    const { code, stdout, stderr } = await runLab([
      'load',
      '--target',
      `ev=127.0.0.1:${server.port}`,
      '--connections',
      '4',
      '--duration',
      '1s',
      '--json',
    ]);
    assert.equal(code, 0, stderr);
    const result = readReport(stdout).results[0]!;
    // The event loop answers four identical closed loops in turn: each gets a fair share.
    assert.ok(result.fairness !== null && result.fairness > 0.9 && result.fairness <= 1, `fairness ${result.fairness}`);
  });

  it('opens a connection per request when the target asks for it', async () => {
    const { code, stdout, stderr } = await runLab([
      'load',
      '--target',
      `ev=127.0.0.1:${server.port}?connect=per-request`,
      '--duration',
      '1s',
      '--json',
    ]);
    assert.equal(code, 0, stderr);
    const result = readReport(stdout).results[0]!;
    assert.ok(result.requests > 10 && result.ok === result.requests, JSON.stringify(result.errors));
  });

  it("speaks to the talk's own servers (legacy: no newline, bare-number replies)", async () => {
    const talk = await startBareReplyServer();
    try {
      const { code, stdout, stderr } = await runLab([
        'load',
        '--target',
        `talk=127.0.0.1:${talk.port}?legacy`,
        '--scenario',
        'perf1',
        '--duration',
        '1s',
        '--json',
      ]);
      assert.equal(code, 0, stderr);
      const result = readReport(stdout).results[0]!;
      assert.ok(result.ok > 0 && result.ok === result.requests, JSON.stringify(result));
    } finally {
      await talk.close();
    }
    // The lab's own servers answer legacy clients per chunk, too.
    const { stdout } = await runLab(['load', '--target', `ev=127.0.0.1:${server.port}?legacy`, '--duration', '1s', '--json']);
    const result = readReport(stdout).results[0]!;
    assert.ok(result.ok > 0 && result.ok === result.requests, JSON.stringify(result));
  });

  it('counts connect_error for a target that refuses connections, and still finishes', async () => {
    const refusing = await startVariant('eventloop');
    const port = refusing.port;
    await refusing.stop();
    const { code, stdout } = await runLab(['load', '--target', `gone=127.0.0.1:${port}`, '--duration', '1s', '--json']);
    assert.equal(code, 1, 'nothing was answered: the run failed (its report is still printed)');
    const result = readReport(stdout).results[0]!;
    assert.ok((result.errors.connect_error ?? 0) >= 1, JSON.stringify(result));
    assert.equal(result.ok, 0);
  });

  it('corrects for coordinated omission: against a server that stalls once, the corrected p99 shows the stall, the naive one does not', async () => {
    const stallMs = 1000;
    const stalling = await startStallingServer({ stallAfterMs: 1000, stallMs });
    const scenario = writeScenario(
      [
        'name: steady',
        'duration: 4s',
        'probes:',
        '  - name: short',
        '    model: open',
        '    rate: 200',
        '    connections: 1',
        '    n: 1',
      ].join('\n'),
    );
    try {
      const { code, stdout, stderr } = await runLab([
        'load',
        '--target',
        `stall=127.0.0.1:${stalling.port}`,
        '--scenario',
        scenario,
        '--json',
      ]);
      assert.equal(code, 0, stderr);
      const report = readReport(stdout);
      const result = report.results[0]!;
      const uncorrected = result.uncorrectedLatencyMs!;
      const shown = `corrected p99 ${result.latencyMs.p99} ms, uncorrected p99 ${uncorrected.p99} ms, stall ${stallMs} ms, ${result.requests} requests`;
      console.log(`open loop against a stalling server: ${shown}`);
      assert.ok(stalling.stalled(), 'the server stalled during the run');
      assert.ok(result.requests >= 700, `the schedule kept going: ${shown}`);
      assert.ok(result.latencyMs.p99 >= stallMs / 2, `the corrected p99 must show the stall: ${shown}`);
      assert.ok(uncorrected.p99 < stallMs / 10, `the uncorrected p99 must be far below it: ${shown}`);
      assert.ok(
        result.queueWaitMs!.max >= stallMs / 2,
        `the wait for the stalled connection is queue wait: ${JSON.stringify(result.queueWaitMs)}`,
      );
      assert.equal(
        report.phases[0]!.generator.generatorBound,
        false,
        `a stalling server never makes the run generator-bound: ${JSON.stringify(report.phases[0]!.generator)}`,
      );
    } finally {
      await stalling.close();
    }
  });

  it('flags itself generator-bound when it cannot keep its schedule', async () => {
    const scenario = writeScenario(
      [
        'name: impossible',
        'duration: 2s',
        'probes:',
        '  - name: flood',
        '    model: open',
        '    rate: 1000000',
        '    connections: 64',
        '    depth: 16',
        '    n: 1',
      ].join('\n'),
    );
    // Its own server: the flood must not leave work behind for the other tests.
    const flooded = await startVariant('eventloop');
    try {
      const { code, stdout, stderr } = await runLab(['load', '--target', `ev=127.0.0.1:${flooded.port}`, '--scenario', scenario]);
      assert.equal(code, 0, stderr);
      assert.match(stdout, /GENERATOR-BOUND \(/, stdout);
      assert.match(stdout, /\bYES$/m, stdout);
    } finally {
      await flooded.stop('SIGKILL');
    }
  });

  it('measures --variants one at a time, each on its own local server', async () => {
    const { code, stdout, stderr } = await runLab([
      'load',
      '--variants',
      'eventloop,threadpool',
      '--scenario',
      'perf2',
      '--duration',
      '1s',
      '--json',
    ]);
    assert.equal(code, 0, stderr);
    const report = readReport(stdout);
    assert.deepEqual(
      report.phases.map((p: { targets: string[] }) => p.targets),
      [['eventloop'], ['threadpool']],
    );
    assert.deepEqual(
      report.results.map((r: { target: string }) => r.target),
      ['eventloop', 'threadpool'],
    );
    for (const result of report.results) assert.ok(result.ok > 0 && result.ok === result.requests, JSON.stringify(result));
  });

  it('finds the maximum throughput: steps the rate up until p99 passes its bound, and reports the knee', async () => {
    const { code, stdout, stderr } = await runLab([
      'load',
      '--target',
      `ev=127.0.0.1:${server.port}`,
      '--scenario',
      'perf1',
      '--search',
      '--rate',
      '20',
      '--search-step',
      '1s',
      '--max-p99',
      '50ms',
      '--json',
    ]);
    assert.equal(code, 0, stderr);
    const result = (JSON.parse(stdout) as { search: SearchResult[] }).search[0]!;
    const rates = result.steps.map((s) => s.rate);
    assert.ok(rates.length >= 2, `several steps: ${JSON.stringify(result)}`);
    for (let i = 1; i < rates.length; i++)
      assert.ok(Math.abs(rates[i]! / rates[i - 1]! - 1.5) < 1e-9, `each step 1.5x the last: ${rates}`);
    const last = result.steps[result.steps.length - 1]!;
    assert.equal(last.passed, false, 'the search ends on the first failing step');
    assert.ok(result.steps.slice(0, -1).every((s) => s.passed));
    // fib(30) takes ~4 ms on one event loop: it cannot serve much more than 250 per second.
    assert.ok(
      result.kneeRate !== null && result.kneeRate >= 20 && result.kneeRate < 400,
      `knee ${result.kneeRate}: ${JSON.stringify(result.steps)}`,
    );
    assert.match(result.stoppedBecause, /p99|error rate/);
  });

  it('serves /metrics and a control API: GET shows the run, PUT switches scenario, bad input gets a 400 naming the field', async () => {
    const load = await startLoadServer([
      '--target',
      `ev=127.0.0.1:${server.port}`,
      '--scenario',
      'perf2',
      '--duration',
      '0',
      '--think',
      '5ms',
    ]);
    try {
      const base = `http://127.0.0.1:${load.port}`;
      const { value: body } = await poll(
        async () => (await fetchText(`${base}/metrics`)).body,
        (page) => /^loadgen_request_duration_seconds_count\{[^}]*\} [1-9]/m.test(page),
        { timeoutMs: 5000, intervalMs: 100 },
      );
      assert.match(body, /^loadgen_request_duration_seconds_count\{variant="ev",scenario="perf2",probe="short"\} [1-9]/m);
      assert.match(body, /^loadgen_requests_total\{variant="ev",scenario="perf2",probe="short",outcome="ok"\} [1-9]/m);
      assert.match(body, /^loadgen_generator_bound 0$/m);
      assert.match(body, /^loadgen_schedule_lag_seconds_count 0$/m);
      assert.equal((await fetchText(`${base}/healthz`)).status, 200);

      const state = JSON.parse((await fetchText(`${base}/scenario`)).body) as {
        scenario: { spec: string };
        targets: string[];
        stats: Array<{ probe: string }>;
      };
      assert.equal(state.scenario.spec, 'perf2');
      assert.deepEqual(state.targets, ['ev']);
      assert.equal(state.stats[0]!.probe, 'short');

      const put = (payload: unknown) => controlRequest(`${base}/scenario`, 'PUT', payload);
      const switched = await put({ scenario: 'perf1', think: null });
      assert.equal(switched.status, 200);
      const now = (await switched.json()) as {
        scenario: { spec: string };
        stats: Array<{ probe: string }>;
        overrides: { think: string | null };
      };
      assert.equal(now.scenario.spec, 'perf1');
      assert.deepEqual(
        now.stats.map((s) => s.probe),
        ['long'],
      );
      assert.equal(now.overrides.think, null);

      const bad = await put({ scenario: 'perf9' });
      assert.equal(bad.status, 400);
      assert.match(((await bad.json()) as { error: string }).error, /scenario.*perf9/);
      const badField = await put({ connections: 0 });
      assert.equal(badField.status, 400);
      assert.match(((await badField.json()) as { error: string }).error, /connections/);
      const unknownTarget = await put({ targets: ['elsewhere'] });
      assert.equal(unknownTarget.status, 400);
      assert.match(((await unknownTarget.json()) as { error: string }).error, /unknown target "elsewhere"/);

      load.child.kill('SIGTERM');
      assert.equal(await load.exited, 0);
      assert.match(load.stdout(), /^perf1: [\d.]+ s measured$/m, "the final table is the current run's");
    } finally {
      load.child.kill('SIGKILL');
    }
  });
});

/** One request with headers exactly as given (fetch will not send a foreign Host); `host: null` sends none. */
function rawRequest(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string | null> = {},
  body?: string,
): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const { host, ...rest } = headers;
    const sent: Record<string, string> = Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== null)) as Record<
      string,
      string
    >;
    if (host) sent.host = host;
    const req = httpRequest({ host: '127.0.0.1', port, method, path, headers: sent, setHost: host !== null && !host }, (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** A refusal's body: one line of JSON, `{"error": ...}`; returns the error. */
function oneLineError(body: string): string {
  assert.equal(body.trimEnd().split('\n').length, 1, `one line: ${body}`);
  const parsed = JSON.parse(body) as { error: unknown };
  assert.deepEqual(Object.keys(parsed), ['error']);
  return String(parsed.error);
}

describe("the control API's limits, and who may use it", () => {
  let server: RunningVariant;
  let load: Awaited<ReturnType<typeof startLoadServer>>;
  let base: string;
  let root: string;
  before(async () => {
    server = await startVariant('eventloop');
    root = mkdtempSync(join(tmpdir(), 'loadgen-control-'));
    const dir = join(root, 'scenarios');
    mkdirSync(dir);
    writeFileSync(join(dir, 'inside.yaml'), 'name: inside\nprobes:\n  - name: short\n    n: 1\n    think: 20ms\n');
    writeFileSync(
      join(dir, 'five.yaml'),
      `name: five\nprobes:\n${[1, 2, 3, 4, 5].map((i) => `  - name: p${i}\n    n: 1\n    think: 50ms`).join('\n')}\n`,
    );
    // Outside the directory: keys a validation error would name.
    writeFileSync(join(root, 'outside.yaml'), 'name: outside\nsecret_key_name: 1\nprobes:\n  - name: a\n    n: 1\n');
    load = await startLoadServer([
      '--target',
      `ev=127.0.0.1:${server.port}`,
      '--scenario',
      'perf2',
      '--duration',
      '0',
      '--think',
      '20ms',
      '--scenario-dir',
      dir,
    ]);
    base = `http://127.0.0.1:${load.port}`;
  });
  after(async () => {
    load?.child.kill('SIGKILL');
    await server?.stop();
  });

  const state = async () =>
    (await (await fetch(`${base}/scenario`)).json()) as {
      scenario: { spec: string };
      overrides: { connections: number | null; rate: number | null };
      pausedUntil: string | null;
    };

  it('answers PUT /scenario with rate 1e300 at once: 400 naming the limit, and goes on serving', async () => {
    // It used to never answer, stop answering GETs, and die of memory some 17 s later.
    const put = await controlRequest(`${base}/scenario`, 'PUT', '{"scenario":"mixed","rate":1e300}', {
      signal: AbortSignal.timeout(10_000),
    }).catch((error: Error) => assert.fail(`no answer: ${error.message}`));
    assert.equal(put.status, 400);
    assert.match(
      oneLineError(await put.text()),
      /^invalid rate: expected requests per second from 0\.001 to 1000000, got 1e\+300$/,
    );
    for (let i = 0; i < 3; i++) assert.equal((await fetchText(`${base}/healthz`)).status, 200);
    assert.equal((await state()).scenario.spec, 'perf2', 'nothing was switched');
  });

  const PAST_THE_LIMIT: Array<[string, string, unknown, RegExp]> = [
    ['PUT', '/scenario', { connections: 257 }, /^invalid connections: expected an integer from 1 to 256, got 257$/],
    ['PUT', '/scenario', { connections: 0 }, /^invalid connections: expected an integer from 1 to 256, got 0$/],
    ['PUT', '/scenario', { connections: 2.5 }, /^invalid connections: expected an integer from 1 to 256/],
    ['PUT', '/scenario', { rate: 1_000_001 }, /^invalid rate: expected requests per second from 0\.001 to 1000000, got 1000001$/],
    ['PUT', '/scenario', { rate: 0 }, /^invalid rate: expected requests per second from 0\.001 to 1000000/],
    ['PUT', '/scenario', { think: '3600001ms' }, /^invalid think: expected a duration from 0 to 1h /],
    [
      'PUT',
      '/scenario',
      { scenario: 'five.yaml', connections: 256 },
      /^invalid connections: the run would open 1280 connections \(1280 per target x 1 target\): at most 1024 in one run$/,
    ],
    ['PUT', '/pause', { seconds: 3601 }, /^invalid seconds: expected a number of seconds from 1 to 3600, got 3601$/],
    ['PUT', '/pause', { seconds: 0 }, /^invalid seconds: expected a number of seconds from 1 to 3600, got 0$/],
  ];
  for (const [method, path, body, pattern] of PAST_THE_LIMIT) {
    it(`refuses ${method} ${path} ${JSON.stringify(body)} with 400 naming the limit`, async () => {
      const response = await controlRequest(`${base}${path}`, method, body);
      assert.equal(response.status, 400);
      assert.match(oneLineError(await response.text()), pattern);
      const now = await state();
      assert.deepEqual([now.scenario.spec, now.overrides.connections, now.pausedUntil], ['perf2', null, null], 'nothing changed');
    });
  }

  it('runs the maximum rate with a bounded queue, answering GETs throughout', async () => {
    const max = await controlRequest(`${base}/scenario`, 'PUT', { scenario: 'mixed', rate: 1_000_000, connections: 8 });
    assert.equal(max.status, 200, await max.text());
    try {
      // The generator cannot send a million a second: past its queue's bound, due requests count as timeouts at once.
      await waitFor(
        'due requests past the queue counted as timeout',
        async () =>
          sample((await fetchText(`${base}/metrics`)).body, 'loadgen_requests_total', { scenario: 'mixed', outcome: 'timeout' }) >
          0,
        () => `rss ${processStatus(load.child.pid!).rssBytes >> 20} MB`,
      );
      for (let i = 0; i < 5; i++) assert.equal((await fetchText(`${base}/scenario`)).status, 200);
      const rss = processStatus(load.child.pid!).rssBytes;
      assert.ok(rss < 400 * 2 ** 20, `RSS ${rss >> 20} MB`);
    } finally {
      assert.equal(
        (await controlRequest(`${base}/scenario`, 'PUT', { scenario: 'perf2', rate: null, connections: null })).status,
        200,
      );
    }
  });

  it('refuses a change without the token or with a wrong one (401), and lets anyone read', async () => {
    for (const [method, path] of [
      ['PUT', '/scenario'],
      ['PUT', '/pause'],
      ['DELETE', '/pause'],
      ['PUT', '/spotlight'],
    ] as const) {
      const body =
        path === '/pause' && method === 'PUT'
          ? { seconds: 60 }
          : path === '/spotlight'
            ? { variants: ['ev'] }
            : { scenario: 'perf1' };
      const missing = await controlRequest(`${base}${path}`, method, body, { token: null });
      assert.equal(missing.status, 401, `${method} ${path} without a token`);
      assert.equal(missing.headers.get('www-authenticate'), 'Bearer realm="loadgen"');
      assert.match(oneLineError(await missing.text()), /needs the control token: send Authorization: Bearer <token>/);
      const wrong = await controlRequest(`${base}${path}`, method, body, { token: `${TEST_CONTROL_TOKEN}x` });
      assert.equal(wrong.status, 401, `${method} ${path} with a wrong token`);
      assert.match(oneLineError(await wrong.text()), /^wrong control token/);
      const garbled = await controlRequest(`${base}${path}`, method, body, {
        token: null,
        headers: { authorization: `Basic ${TEST_CONTROL_TOKEN}` },
      });
      assert.equal(garbled.status, 401, `${method} ${path} with another scheme`);
    }
    const now = await state();
    assert.deepEqual([now.scenario.spec, now.pausedUntil], ['perf2', null], 'nothing changed');
    for (const path of ['/scenario', '/pause', '/metrics', '/healthz'])
      assert.equal((await fetchText(`${base}${path}`)).status, 200, `GET ${path} needs no token`);
  });

  it('answers only a Host that names it (421 otherwise, /metrics too) and refuses a foreign Origin (403)', async () => {
    const { port } = load;
    const token = { authorization: `Bearer ${TEST_CONTROL_TOKEN}` };
    for (const [method, path, headers, status] of [
      ['GET', '/scenario', { host: 'evil.example' }, 421],
      ['GET', '/scenario', { host: `evil.example:${port}` }, 421],
      ['GET', '/metrics', { host: 'evil.example' }, 421],
      ['GET', '/healthz', { host: 'evil.example' }, 421],
      ['PUT', '/pause', { host: `evil.example:${port}`, ...token }, 421],
      ['GET', '/scenario', { host: `127.0.0.1:${port + 1}` }, 421],
      ['GET', '/scenario', { host: `user@127.0.0.1:${port}` }, 421],
      ['GET', '/scenario', { host: null }, 400], // Node's own answer to HTTP/1.1 without a Host
      ['GET', '/scenario', { origin: 'http://evil.example' }, 403],
      ['GET', '/scenario', { origin: 'null' }, 403],
      ['PUT', '/pause', { origin: `http://evil.example:${port}`, ...token }, 403],
      ['GET', '/scenario', { host: `localhost:${port}` }, 200],
      ['GET', '/scenario', { host: `[::1]:${port}` }, 200],
      ['GET', '/scenario', { host: `LOCALHOST:${port}`, origin: `http://127.0.0.1:${port}` }, 200],
    ] as const) {
      const response = await rawRequest(port, method, path, headers, method === 'PUT' ? '{"seconds": 60}' : undefined);
      assert.equal(response.status, status, `${method} ${path} ${JSON.stringify(headers)}: ${response.body}`);
      if (status === 421) assert.match(oneLineError(response.body), /^Host "[^"]*" is not this load generator/);
      if (status === 403) assert.match(oneLineError(response.body), /^Origin "[^"]*" is not this load generator/);
    }
    assert.equal((await state()).pausedUntil, null, 'the PUTs with a foreign Host or Origin changed nothing');
  });

  it("in a container (listening on 0.0.0.0 or ::) answers IP literals, localhost, its hostname and compose's `loadgen`, on any port", () => {
    const asked = (access: ControlAccess, host: string | undefined, origin?: string) =>
      access.stranger({ headers: { host, origin }, socket: { localPort: 9465 } } as unknown as IncomingMessage)?.status ?? 200;
    for (const listen of ['0.0.0.0', '::']) {
      const access = new ControlAccess(TEST_CONTROL_TOKEN, listen);
      for (const host of [
        'loadgen:9465',
        '127.0.0.1:9465',
        '172.18.0.5:9465',
        '[::1]:9465',
        'localhost:9465',
        `${hostname()}:9465`,
        '127.0.0.1:19465',
      ])
        assert.equal(asked(access, host), 200, `${listen}: Host ${host}`);
      for (const host of ['evil.example:9465', 'loadgen.evil.example:9465', 'prometheus:9465', undefined])
        assert.equal(asked(access, host), 421, `${listen}: Host ${host}`);
      assert.equal(asked(access, 'loadgen:9465', 'http://evil.example'), 403);
      assert.equal(asked(access, '127.0.0.1:9465', 'http://203.0.113.7'), 403, "another machine's page, by its address");
      assert.equal(asked(access, 'loadgen:9465', 'http://localhost:3000'), 200);
    }
  });

  it('reads scenario files only from its directory, and a path outside gets the answer of a missing file', async () => {
    const put = (scenario: string) => controlRequest(`${base}/scenario`, 'PUT', { scenario });
    const inside = await put('inside.yaml');
    assert.equal(inside.status, 200, await inside.text());
    assert.equal((await state()).scenario.spec, 'inside.yaml');
    const answer = async (spec: string) => {
      const response = await put(spec);
      assert.equal(response.status, 400, spec);
      return oneLineError(await response.text()).replace(JSON.stringify(spec), '<spec>');
    };
    const missing = await answer('missing.yaml');
    assert.match(missing, /^invalid scenario: no scenario file <spec> in the scenario directory \(LOAD_SCENARIO_DIR\)/);
    for (const spec of [join(root, 'outside.yaml'), '../outside.yaml', join(root, 'missing.yaml'), '/etc/passwd.yaml']) {
      const error = await answer(spec);
      assert.equal(error, missing, spec);
      assert.doesNotMatch(error, /secret_key_name|ENOENT/);
    }
    // A change that leaves the scenario out reads the same file again.
    const rate = await controlRequest(`${base}/scenario`, 'PUT', { think: '30ms' });
    assert.equal(rate.status, 200, await rate.text());
    assert.equal((await state()).scenario.spec, 'inside.yaml');
    assert.equal((await put('perf2')).status, 200, 'built-in names as ever');
  });

  it("sends the sweep's pause lease with the token, and says so when it is wrong", async () => {
    const pause = new LoadgenPause(base, TEST_CONTROL_TOKEN);
    assert.match(String(await pause.renew(30)), /background load paused/);
    assert.notEqual((await state()).pausedUntil, null);
    await pause.end();
    assert.equal((await state()).pausedUntil, null, 'DELETE /pause took the token too');
    const wrong = new LoadgenPause(base, 'not-the-token-of-this-run');
    assert.match(String(await wrong.renew(30)), /answered 401: a wrong control token \(LOADGEN_TOKEN/);
    assert.equal((await state()).pausedUntil, null);
    // Where the sweep finds the token: LOADGEN_TOKEN, else .env in the current directory.
    const envFile = join(root, '.env');
    writeFileSync(envFile, 'OTHER=1\nLOADGEN_TOKEN=from-the-env-file-0123\n');
    const saved = process.env.LOADGEN_TOKEN;
    try {
      delete process.env.LOADGEN_TOKEN;
      assert.equal(loadgenToken(envFile), 'from-the-env-file-0123');
      process.env.LOADGEN_TOKEN = 'from-the-environment-0123';
      assert.equal(loadgenToken(envFile), 'from-the-environment-0123');
      delete process.env.LOADGEN_TOKEN;
      assert.equal(loadgenToken(join(root, 'no-such.env')), null);
    } finally {
      if (saved === undefined) delete process.env.LOADGEN_TOKEN;
      else process.env.LOADGEN_TOKEN = saved;
    }
  });

  it('makes up a token when none is given, prints it with the control URL, and takes only that one', async () => {
    const own = await startLoadServer(['--target', `ev=127.0.0.1:${server.port}`, '--duration', '0', '--think', '50ms'], {
      token: null,
      env: { LOADGEN_TOKEN: '' },
    });
    try {
      const printed = /control on (http:\/\/\S+\/scenario), control token (\S+) /.exec(own.stderr());
      assert.ok(printed, own.stderr());
      const [, url, token] = printed as unknown as [string, string, string];
      assert.ok(token.length >= 16 && token !== TEST_CONTROL_TOKEN, token);
      assert.equal((await controlRequest(url, 'PUT', { think: '60ms' }, { token })).status, 200);
      assert.equal((await controlRequest(url, 'PUT', { think: '70ms' })).status, 401, "another run's token");
    } finally {
      own.child.kill('SIGKILL');
    }
  });
});

describe("the generator's health over a window", () => {
  /** A stretch of a thread: its busy share, event-loop delay (p99, and the share of 100 samples a second past 20 ms), schedule lag. */
  const stretch = (wallMs: number, busy: number, delayMs: number, lateShare: number, lag: number): ThreadHealth => ({
    ...NO_HEALTH,
    wallMs,
    busy,
    cpuCores: busy,
    eventLoopDelayP99Ms: delayMs,
    eventLoopDelaySamples: Math.round(wallMs / 10),
    eventLoopDelayLateShare: lateShare,
    scheduleLagP99Ms: lag,
    scheduleLagMaxMs: lag,
    scheduleLagCount: 10,
  });

  it('weighs each stretch of a thread by its length: a flush microseconds after the last one does not read 100% busy', () => {
    // A second of a thread 30% busy, then a 5 us window read inside the callback that flushed twice.
    const window = concatHealth(stretch(1000, 0.3, 2, 0, 0.5), stretch(0.005, 1, 0, 0, 0.1));
    assert.ok(Math.abs(window.busy - 0.3) < 0.001, `busy ${window.busy}`);
    assert.equal(judge(window, null).generatorBound, false, JSON.stringify(judge(window, null)));
    assert.equal(window.wallMs, 1000.005);
    assert.equal(window.scheduleLagCount, 20);
    // The schedule lag's tails stay the worst of the stretches: a late timer in either is late in the window.
    const late = concatHealth(stretch(1000, 0.3, 2, 0, 0.5), stretch(500, 0.2, 35, 0.04, 7));
    assert.equal(late.scheduleLagMaxMs, 7);
    // Threads side by side: the busiest speaks (mergeHealth), as before.
    assert.equal(mergeHealth([stretch(1000, 0.3, 2, 0, 0.5), stretch(1000, 0.95, 2, 0, 0.5)]).busy, 0.95);
  });

  it("pools a window's event-loop delay samples: one stall in ten seconds is no p99, stalls in 2% of them are", () => {
    // Ten one-second flushes; in one, a single sample of its 100 was 27 ms late (its own p99 27 ms).
    const quiet = Array.from({ length: 9 }, () => stretch(1000, 0.3, 2, 0, 0.5));
    const once = [...quiet, stretch(1000, 0.3, 27, 0.01, 0.5)].reduce(concatHealth);
    assert.equal(once.eventLoopDelaySamples, 1000);
    assert.ok(Math.abs(once.eventLoopDelayLateShare - 0.001) < 1e-9, `late share ${once.eventLoopDelayLateShare}`);
    assert.equal(once.eventLoopDelayP99Ms, 27, "the worst flush's p99, shown");
    assert.equal(judge(once, null).generatorBound, false, JSON.stringify(judge(once, null)));
    // Five flushes with 4 late samples of 100 each: 2% of the window's samples.
    const often = [...quiet.slice(0, 5), ...Array.from({ length: 5 }, () => stretch(1000, 0.3, 35, 0.04, 0.5))].reduce(
      concatHealth,
    );
    assert.ok(Math.abs(often.eventLoopDelayLateShare - 0.02) < 1e-9, `late share ${often.eventLoopDelayLateShare}`);
    const verdict = judge(often, null);
    assert.deepEqual(verdict.causes, ['event_loop_delay'], JSON.stringify(verdict));
    assert.match(verdict.reasons.join(), /event-loop delay p99 over 20 ms: 2\.0% of 1000 samples later/);
    // Threads side by side: the one with the most late samples speaks, with its own count.
    const threads = mergeHealth([stretch(2000, 0.3, 2, 0, 0.5), stretch(1000, 0.3, 35, 0.02, 0.5)]);
    assert.deepEqual([threads.eventLoopDelayLateShare, threads.eventLoopDelaySamples], [0.02, 100]);
  });

  it("counts a sending thread's late event-loop samples from Node's own histogram", async () => {
    const health = new GeneratorHealth();
    try {
      // Two stalls of 60 ms among about 375 ms of idle turns sampled every 10 ms (Node's first
      // sample only starts its clock: the stalls come after it).
      for (const stall of [false, true, false, true, false]) {
        if (stall) {
          const until = performance.now() + 60;
          while (performance.now() < until);
        }
        await sleep(75);
      }
      const report = health.report();
      const shown = JSON.stringify(report);
      assert.ok(report.eventLoopDelaySamples >= 2, shown);
      // At least the two stalled samples are late (each about 50 ms past its due time); a busy
      // machine can only add late ones.
      assert.ok(Math.round(report.eventLoopDelayLateShare * report.eventLoopDelaySamples) >= 2, shown);
      assert.ok(report.eventLoopDelayP99Ms > 20, shown);
    } finally {
      health.close();
    }
  });
});
