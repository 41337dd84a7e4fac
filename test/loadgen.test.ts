// The load generator on real sockets: its output (table, JSON, CSV), the corrected and naive
// latencies against a server that stalls on purpose, legacy targets, --variants, the control
// API, the maximum-throughput search, its own /metrics, and flagging itself when it cannot keep
// its schedule.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { LoadReport } from '../services/loadgen/report.js';
import type { SearchResult } from '../services/loadgen/search.js';
import {
  fetchText,
  runLab,
  startBareReplyServer,
  startLoadServer,
  startStallingServer,
  startVariant,
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
    assert.equal(phase.generator.generatorBound, false, JSON.stringify(phase.generator));
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
    assert.match(stderr, /^\[\s+1s\] ev: long [\d.]+\/s p50 /m, 'plain live lines on stderr when it is not a terminal');
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
      let body = '';
      for (let attempt = 0; attempt < 50; attempt++) {
        body = (await fetchText(`${base}/metrics`)).body;
        if (/^loadgen_request_duration_seconds_count\{[^}]*\} [1-9]/m.test(body)) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
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

      const put = (payload: unknown) => fetch(`${base}/scenario`, { method: 'PUT', body: JSON.stringify(payload) });
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
