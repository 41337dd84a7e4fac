// `lab sweep --native` and `lab report`, without Docker: a tiny sweep of one variant at two
// quotas, interrupted after its first point and resumed, then its report in headless Chromium.
// Real `lab serve` processes in a real cgroup (or pinned to cores where none can be made).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, describe, it } from 'node:test';
import type { SweepFile } from '../services/sweep/file.js';
import { CLI, runLab } from './helpers.js';
import { checkReportPage, chromiumMissing } from './report-browser.js';

const dir = mkdtempSync(join(tmpdir(), 'lab-sweep-'));
const out = join(dir, 'sweep.json');
// Half of the sweep from a YAML file, half from flags: both paths are read.
const file = join(dir, 'sweep.yaml');
writeFileSync(file, 'variants: [threadpool]\ncpus: [0.5, 2]\nwarmup: 500ms\nnative: true\n');
const SWEEP = [
  'sweep',
  '--file',
  file,
  '--out',
  out,
  '--throughput-duration',
  '1500ms',
  '--collapse-duration',
  '1s',
  // No lab load generator here: a port nothing listens on, so the sweep says so and goes on.
  '--loadgen',
  'http://127.0.0.1:9',
];

function writeYaml(name: string, text: string): string {
  writeFileSync(join(dir, name), text);
  return join(dir, name);
}

function readSweep(): SweepFile | null {
  try {
    return JSON.parse(readFileSync(out, 'utf8')) as SweepFile;
  } catch {
    return null;
  }
}

describe('lab sweep --native and lab report', () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('an interrupted sweep keeps its measured points, puts everything back, and resumes where it stopped', async () => {
    const child = spawn(process.execPath, [CLI, ...SWEEP], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = once(child, 'exit') as Promise<[number | null]>;
    const deadline = Date.now() + 60_000;
    while ((readSweep()?.points.length ?? 0) < 1 && Date.now() < deadline && child.exitCode === null) await sleep(100);
    assert.equal(readSweep()?.points.length, 1, `the first point is written before the second is measured: ${stderr}`);
    child.kill('SIGINT');
    const [code] = await exited;
    assert.equal(code, 130, stderr);
    assert.match(stderr, /interrupted with 1 points left/);
    const cgroup = /cgroup v[12] (\S+)/.exec(stderr)?.[1];
    if (cgroup) assert.ok(!existsSync(cgroup), `${cgroup} removed on Ctrl-C`);

    const resumed = await runLab(SWEEP, {}, 120_000);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stderr, /resuming .*: 1 of 2 points already measured/);
    const sweep = readSweep()!;
    assert.deepEqual(
      sweep.points.map((p) => p.cpus),
      sweep.mode === 'native-affinity' ? [1, 2] : [0.5, 2],
    );
    assert.ok(sweep.baseline && sweep.baseline.requestsPerSecondPerCore > 0, JSON.stringify(sweep.baseline));
  });

  it('each point ran inside its quota: pools sized from it at start, CPU held to it', () => {
    const sweep = readSweep()!;
    const [low, high] = sweep.points as [SweepFile['points'][0], SweepFile['points'][0]];
    const summary = JSON.stringify(
      sweep.points.map(({ cpus, workers, throughput, coresUsed, throttledShare }) => ({
        cpus,
        workers,
        throughput,
        coresUsed,
        throttledShare,
      })),
    );
    // threadpool sizes its pool from the quota it finds at start: ceil(0.5) = 1, 2.
    assert.equal(low.workers, 1, summary);
    assert.equal(high.workers, 2, summary);
    if (sweep.mode !== 'native-affinity') {
      // Hard limits and ratios of the same run, so a machine busy with other work cannot fail them.
      assert.ok(low.coresUsed !== null && low.coresUsed < 0.5 * 1.15, `the cgroup holds it to 0.5 cores: ${summary}`);
      assert.ok(
        low.throttledShare !== null && (low.throttledShare > 0 || low.coresUsed < 0.4),
        `a half core kept busy is throttled (unless neighbours left it less than its quota): ${summary}`,
      );
      // The work done per core used is the same at both quotas: the counters account for the work.
      const perCore = (p: typeof low) => p.throughput / p.coresUsed!;
      const ratio = perCore(high) / perCore(low);
      assert.ok(ratio > 0.5 && ratio < 2, `fib(27) per core used at 2 cores / at 0.5 cores = ${ratio.toFixed(2)}: ${summary}`);
    } else {
      assert.ok(high.throughput > low.throughput, `two cores, more throughput: ${summary}`);
    }
    for (const p of sweep.points) {
      assert.ok(p.collapse.aloneRps > 0 && p.collapse.besideRps > 0, `short requests answered: ${JSON.stringify(p.collapse)}`);
      assert.equal(p.ideal, (p.cpus * p.quotaHolders) / sweep.baseline!.secondsPerRequest);
    }
  });

  it('the report is one self-contained page that Chromium draws without an error', async (t) => {
    const missing = chromiumMissing();
    if (missing && !process.env.CI) return t.skip(missing);
    const report = join(dir, 'report.html');
    const { code, stderr, stdout } = await runLab(['report', out, '--out', report]);
    assert.equal(code, 0, stderr);
    assert.match(stdout, /threadpool: too few points to fit/);
    const page = await checkReportPage(report);
    assert.deepEqual(page.consoleErrors, []);
    assert.deepEqual(page.requests, [], 'nothing fetched at view time');
    assert.equal(page.expectedCharts, 3, 'one throughput chart per variant, collapse, p99');
    assert.equal(page.drawnCharts.length, page.expectedCharts, JSON.stringify(page));
    assert.equal(page.canvases, page.expectedCharts);
    assert.equal(page.blankCanvases, 0, JSON.stringify(page));
  });

  it('bad configuration is one line naming the option, exit 2', async () => {
    for (const [args, option] of [
      [['--cpus', '0'], '--cpus'],
      [['--variants', 'nope'], '--variants'],
      [['--isolation', 'cgroup'], '--isolation'],
      [['--native', '--isolation', 'magic'], '--isolation'],
      [['--native', '--cpus', '64'], '--cpus'],
      [['--file', join(dir, 'missing.yaml')], '--file'],
      [['--file', writeYaml('bad.yaml', 'cpus: [1]\nwarmpu: 2s\n')], 'top level'],
      [['--file', writeYaml('bad2.yaml', 'variants: [threads]\nconnectionsPerCore: many\n')], 'connectionsPerCore'],
    ] as const) {
      const { code, stderr } = await runLab(['sweep', ...args, '--out', join(dir, 'bad.json')]);
      assert.equal(code, 2, `${args.join(' ')}: ${stderr}`);
      assert.equal(stderr.trim().split('\n').length, 1, stderr);
      assert.ok(stderr.includes(option), stderr);
    }
  });
});
