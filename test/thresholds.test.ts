// `lab load --threshold`: the grammar (every bad form refused with one line naming the option,
// exit 2), the scenario file's `thresholds:` list, and a real run against a real native server:
// a threshold no run can meet fails with exit 99 and the value measured, one a good server
// always meets passes with exit 0, and the JSON carries every check and the run record.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { resolveLoadOptions } from '../services/loadgen/options.js';
import { parseThreshold, checkThresholds } from '../services/loadgen/thresholds.js';
import { loadScenario } from '../services/loadgen/scenario.js';
import { configErrorOf, runLab, startVariant, writeScenario, type RunningVariant } from './helpers.js';

const OPTION = '--threshold';

describe('threshold grammar', () => {
  it('reads every metric, operator and unit', () => {
    const cases: Array<[string, Partial<ReturnType<typeof parseThreshold>>]> = [
      ['p99<10ms', { probe: null, metric: 'p99', op: '<', value: 10, unit: 'ms' }],
      ['short:p99.9<=50ms', { probe: 'short', metric: 'p99.9', op: '<=', value: 50 }],
      [' mean > 2s ', { metric: 'mean', op: '>', value: 2000, text: 'mean > 2s' }],
      ['max>=0.5ms', { metric: 'max', op: '>=', value: 0.5 }],
      ['p50<1m', { metric: 'p50', value: 60_000 }],
      ['p90<0.001ms', { metric: 'p90', value: 0.001 }],
      ['errors<1%', { metric: 'errors', value: 0.01, unit: 'share' }],
      ['long:errors<=5', { probe: 'long', metric: 'errors', value: 5, unit: 'count' }],
      ['rate>=1000', { metric: 'rate', value: 1000, unit: 'req/s' }],
      ['rate>2.5/s', { metric: 'rate', value: 2.5 }],
      ['rate>10req/s', { metric: 'rate', value: 10 }],
    ];
    for (const [text, expected] of cases) {
      const threshold = parseThreshold(text, OPTION);
      for (const [key, value] of Object.entries(expected))
        assert.deepEqual(threshold[key as keyof typeof threshold], value, `${text}: ${key}`);
    }
  });

  it('refuses every bad form with one line naming the option and saying what was expected', () => {
    const bad: Array<[unknown, RegExp]> = [
      ['', /expected \[probe:\]metric op value/],
      [42, /expected \[probe:\]metric op value.*got 42/],
      ['p99', /expected \[probe:\]metric op value.*got "p99"/],
      ['p99<', /no value after "<"/],
      ['p99<10', /give p99's unit .*10ms/],
      ['p98<10ms', /unknown metric "p98"/],
      ['latency<10ms', /unknown metric "latency"/],
      ['p99=10ms', /unknown operator "="/],
      ['p99==10ms', /unknown operator "=="/],
      ['p99!=10ms', /unknown operator "!="/],
      ['p99<tenms', /expected a duration with its unit/],
      ['p99<10ns', /expected a duration with its unit/],
      ['p99<-1ms', /expected a duration with its unit/],
      ['p99<10ms<20ms', /expected a duration with its unit/],
      ['errors<101%', /expected a share from 0% to 100%/],
      ['errors<1.5', /expected a share \(1%\) or a count/],
      ['errors<lots', /expected a share \(1%\) or a count/],
      ['rate<fast', /expected requests per second/],
      ['rate<10ms', /expected requests per second/],
      ['Short:p99<1ms', /expected \[probe:\]metric op value/],
      [':p99<1ms', /expected \[probe:\]metric op value/],
      ['short:long:p99<1ms', /expected \[probe:\]metric op value/],
      [`p99<${'9'.repeat(80)}`, /give p99's unit in "p99<9{53}\.\.\."/],
    ];
    for (const [value, pattern] of bad) {
      const message = configErrorOf(() => parseThreshold(value, OPTION));
      assert.match(message, /^invalid --threshold: /, `${JSON.stringify(value)}: ${message}`);
      assert.match(message, pattern, `${JSON.stringify(value)}: ${message}`);
      assert.ok(!message.includes('\n'), `one line: ${message}`);
    }
  });

  it('refuses a probe the scenario lacks, and thresholds with --search or --spotlight', () => {
    const target = 'eventloop=127.0.0.1:25002';
    assert.match(
      configErrorOf(() => resolveLoadOptions({ targets: target, thresholds: ['long:p99<1ms'] })),
      /invalid --threshold: no probe "long" in scenario perf2 \(its probes: short\)/,
    );
    assert.match(
      configErrorOf(() => resolveLoadOptions({ targets: target, thresholds: ['p99<1ms'], search: true })),
      /invalid --threshold: applies to a run of the scenario, not to --search or --spotlight/,
    );
    assert.match(
      configErrorOf(() => resolveLoadOptions({ targets: target, out: '/no/such/dir/run.json' })),
      /invalid --out: no such directory/,
    );
    const options = resolveLoadOptions({
      targets: target,
      scenarioSpec: 'perf1,perf2',
      thresholds: ['long:p99<1s', 'errors<1%'],
    });
    assert.deepEqual(
      options.thresholds.map((t) => t.text),
      ['long:p99<1s', 'errors<1%'],
    );
  });

  it("reads a scenario file's thresholds, and names the file and the entry when one is bad", () => {
    const good = writeScenario(
      'name: mine\nprobes:\n  - name: short\n    n: 1\nthresholds:\n  - "short:p99<10ms"\n  - "errors<1%"\n',
    );
    assert.deepEqual(
      loadScenario(good).thresholds!.map((t) => [t.probe, t.metric, t.value]),
      [
        ['short', 'p99', 10],
        [null, 'errors', 0.01],
      ],
    );
    const badForm = writeScenario('name: mine\nprobes:\n  - name: short\n    n: 1\nthresholds:\n  - "p99<10"\n');
    assert.match(
      configErrorOf(() => loadScenario(badForm)),
      /^invalid scenario file .*: thresholds\[0\]: give p99's unit/,
    );
    const badProbe = writeScenario(
      'name: mine\nprobes:\n  - name: short\n    n: 1\nthresholds:\n  - "errors<1%"\n  - "long:p99<10ms"\n',
    );
    assert.match(
      configErrorOf(() => loadScenario(badProbe)),
      /thresholds\[1\]: no probe "long" in the scenario \(its probes: short\)/,
    );
    const notList = writeScenario('name: mine\nprobes:\n  - name: short\n    n: 1\nthresholds: "p99<10ms"\n');
    assert.match(
      configErrorOf(() => loadScenario(notList)),
      /thresholds: /,
    );
  });

  it('checks each threshold against every target of the probes it names; no reply fails a latency threshold', () => {
    const summary = (p99: number) => ({ p50: p99 / 2, p90: p99, p99, p999: p99, max: p99, mean: p99 / 2 });
    const results = [
      { target: 'a', probe: 'short', requests: 100, ok: 99, requestsPerSecond: 50, latencyMs: summary(5) },
      { target: 'b', probe: 'short', requests: 100, ok: 100, requestsPerSecond: 80, latencyMs: summary(20) },
      { target: 'b', probe: 'long', requests: 0, ok: 0, requestsPerSecond: 0, latencyMs: summary(NaN) },
    ];
    const checks = checkThresholds(
      ['short:p99<10ms', 'errors<=1%', 'long:p99<1s', 'rate>60'].map((t) => parseThreshold(t, OPTION)),
      results,
    );
    assert.deepEqual(
      checks.map((c) => `${c.threshold} ${c.target}/${c.probe} ${c.passed ? 'pass' : 'fail'} ${c.measured}`),
      [
        'short:p99<10ms a/short pass 5',
        'short:p99<10ms b/short fail 20',
        'errors<=1% a/short pass 0.01',
        'errors<=1% b/short pass 0',
        'errors<=1% b/long fail null',
        'long:p99<1s b/long fail null',
        'rate>60 a/short fail 50',
        'rate>60 b/short pass 80',
        'rate>60 b/long fail 0',
      ],
    );
  });
});

describe('lab load --threshold against a real server', () => {
  let server: RunningVariant;
  const dir = mkdtempSync(join(tmpdir(), 'lab-thresholds-'));
  before(async () => {
    server = await startVariant('eventloop');
  });
  after(async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const target = () => `eventloop=127.0.0.1:${server.port}?metrics=127.0.0.1:${server.metricsPort}`;

  it('a bad threshold exits 2 with one line naming --threshold, before any load', async () => {
    const run = await runLab(['load', '--target', target(), '--duration', '1s', '--threshold', 'p99<10']);
    assert.equal(run.code, 2, run.stderr);
    assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
    assert.match(run.stderr, /^lab: invalid --threshold: give p99's unit in "p99<10": e\.g\. 10ms or 10s$/m);
  });

  it('exits 99 when a threshold fails, saying the value measured; 0 when every one passes', async () => {
    // Latencies are recorded in whole microseconds, at least 1: p99 under 1 us cannot be met.
    const out = join(dir, 'failed.json');
    // Both runs at once, against the one server: neither threshold depends on the load beside it.
    const [failed, passed] = await Promise.all([
      runLab([
        'load',
        '--target',
        target(),
        '--duration',
        '1s',
        '--threshold',
        'p99<0.001ms',
        '--threshold',
        'errors<100%',
        '--out',
        out,
      ]),
      runLab([
        'load',
        '--target',
        target(),
        '--duration',
        '1s',
        '--threshold',
        'errors<100%',
        '--threshold',
        'short:rate>0',
        '--json',
      ]),
    ]);
    assert.equal(failed.code, 99, `exit ${failed.code}: ${failed.stderr}`);
    assert.match(failed.stdout, /^threshold p99<0\.001ms: eventloop\/short: FAIL \(p99 = \d+(\.\d+)?(us|ms)\)$/m, failed.stdout);
    assert.match(failed.stdout, /^threshold errors<100%: eventloop\/short: PASS \(errors = 0\.000%\)$/m, failed.stdout);
    assert.match(failed.stderr, /lab load: 1 of 2 threshold checks failed/);
    const written = JSON.parse(readFileSync(out, 'utf8')) as {
      thresholds: Array<{ threshold: string; passed: boolean; measured: number }>;
      run: { lab: { version: string }; node: string; host: { cpus: number }; targets: Array<{ name: string; workers: number }> };
      results: Array<{ intervals: unknown[] }>;
    };
    assert.deepEqual(
      written.thresholds.map((c) => [c.threshold, c.passed]),
      [
        ['p99<0.001ms', false],
        ['errors<100%', true],
      ],
    );
    assert.ok(written.thresholds[0]!.measured >= 0.001, `p99 measured ${written.thresholds[0]!.measured} ms`);
    assert.equal(written.run.node, process.version);
    assert.ok(written.run.host.cpus > 0);
    assert.deepEqual(
      written.run.targets.map((t) => [t.name, t.workers]),
      [['eventloop', 1]],
      'read from its /metrics',
    );
    assert.ok(written.results[0]!.intervals.length >= 1, 'per-interval samples');

    assert.equal(passed.code, 0, passed.stderr);
    assert.match(
      passed.stderr,
      /^threshold short:rate>0: eventloop\/short: PASS \(rate = [\d.]+ req\/s\)$/m,
      'on stderr beside --json',
    );
    const json = JSON.parse(passed.stdout) as { thresholds: Array<{ passed: boolean }> };
    assert.deepEqual(
      json.thresholds.map((c) => c.passed),
      [true, true],
    );
  });
});
