// `lab sweep --native` and `lab report`, without Docker: a tiny sweep of one variant at two
// quotas, interrupted after its first point and resumed, then its report in headless Chromium;
// sweeps killed with SIGKILL, whose cgroups and servers the next sweep removes.
// Real `lab serve` processes in a real cgroup (or pinned to cores where none can be made).

import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { SweepFile } from '../services/sweep/file.js';
import { CLI, childProcesses, poll, runLab, waitFor } from './helpers.js';
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

const CGROUP_ROOT = '/sys/fs/cgroup';

/**
 * The native sweep imposes a quota with Linux's cgroups or taskset: elsewhere (macOS, Windows)
 * the tests that run one are skipped, each with this one line.
 */
const NOT_LINUX =
  process.platform === 'linux' ? false : `needs Linux (a cgroup or taskset imposes the quota); skipped on ${process.platform}`;

/** Why a native sweep can isolate nothing here (no cgroup it may create, no taskset), or null. */
function nativeIsolationMissing(): string | null {
  const cgroups =
    process.getuid?.() === 0 &&
    ['cgroup.controllers', 'cpu/cpu.cfs_quota_us', 'cpu,cpuacct/cpu.cfs_quota_us'].some((f) => existsSync(join(CGROUP_ROOT, f)));
  if (cgroups || spawnSync('taskset', ['--version']).status === 0) return null;
  return 'no CPU cgroup can be created here (not root, or no cpu controller) and taskset is not installed';
}

/** The groups named after a sweep's pid, in the v2 root or any v1 hierarchy. */
function groupsOf(pid: number): string[] {
  const found: string[] = [];
  for (const hierarchy of ['', 'cpu', 'cpu,cpuacct', 'cpuacct'].map((h) => join(CGROUP_ROOT, h))) {
    let entries: string[];
    try {
      entries = readdirSync(hierarchy);
    } catch {
      continue;
    }
    for (const entry of entries) {
      if (entry === `concurrency-lab-sweep-${pid}` || entry.startsWith(`concurrency-lab-sweep-${pid}-`))
        found.push(join(hierarchy, entry));
    }
  }
  return found;
}

/** Running, not a zombie: a killed process whose parent never reaps it stays a zombie, holding nothing. */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** The `lab serve` processes a sweep started (its children: the shell that joins a cgroup execs the server). */
function servesOf(sweep: number): number[] {
  return childProcesses(sweep)
    .filter(({ pid, zombie }) => {
      if (zombie) return false;
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes('serve');
      } catch {
        return false;
      }
    })
    .map(({ pid }) => pid);
}

function groupProcesses(group: string): number[] {
  try {
    return readFileSync(join(group, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** A native sweep of threadpool at 1 core, its output collected. */
function startNativeSweep(out: string, throughput: string, collapse: string) {
  const child = spawn(
    process.execPath,
    [
      CLI,
      'sweep',
      '--native',
      '--variants',
      'threadpool',
      '--cpus',
      '1',
      '--warmup',
      '200ms',
      '--throughput-duration',
      throughput,
      '--collapse-duration',
      collapse,
      '--loadgen',
      'http://127.0.0.1:9',
      '--out',
      out,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const sweep = { child, pid: child.pid!, stderr: '', exited: once(child, 'exit') };
  child.stderr.on('data', (chunk: Buffer) => (sweep.stderr += chunk.toString()));
  return sweep;
}

async function killHard(child: ChildProcess, exited: Promise<unknown>): Promise<void> {
  child.kill('SIGKILL');
  await exited;
}

const LEFTOVERS = /^lab sweep: removed what a killed sweep left: .*$/m;

/** The pids a leftovers line says were killed (`killed 2 stale lab serve process(es), pid 12, 13`). */
function killedIn(line: string): number[] {
  return (/process\(es\), pid ([\d, ]+)/.exec(line)?.[1] ?? '').split(', ').filter(Boolean).map(Number);
}

describe('lab sweep --native and lab report', () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  it(
    'an interrupted sweep keeps its measured points, puts everything back, and resumes where it stopped',
    { skip: NOT_LINUX },
    async () => {
      const child = spawn(process.execPath, [CLI, ...SWEEP], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const exited = once(child, 'exit') as Promise<[number | null]>;
      await poll(
        () => readSweep()?.points.length ?? 0,
        (points) => points >= 1 || child.exitCode !== null,
        { timeoutMs: 60_000, intervalMs: 100 },
      );
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
    },
  );

  it('each point ran inside its quota: pools sized from it at start, CPU held to it', { skip: NOT_LINUX }, () => {
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

  it(
    'a sweep killed with SIGKILL leaves its cgroup and its server: the next sweep removes them, a live sweep keeps its own',
    { skip: NOT_LINUX },
    async (t) => {
      const missing = nativeIsolationMissing();
      if (missing) return t.skip(missing);
      const started: Array<{ child: ChildProcess; exited: Promise<unknown> }> = [];
      const leaked: number[] = [];
      try {
        // A: killed while it measures its baseline, whose server runs outside any cgroup.
        const a = startNativeSweep(join(dir, 'killed-a.json'), '30s', '30s');
        started.push(a);
        let serverA = 0;
        await waitFor(
          'sweep A measures its baseline on a lab serve of its own',
          () => /baseline: t\(fib/.test(a.stderr) && (serverA = servesOf(a.pid)[0] ?? 0) > 0,
          () => a.stderr,
        );
        const groupsA = groupsOf(a.pid);
        await killHard(a.child, a.exited);
        leaked.push(serverA);
        assert.ok(running(serverA), `A's server ${serverA} outlives A (the leak)`);

        // A2: removes A's leftovers before it starts; killed in the middle of its point, its server in its cgroup.
        const a2 = startNativeSweep(join(dir, 'killed-a2.json'), '500ms', '30s');
        started.push(a2);
        let serverA2 = 0;
        await waitFor(
          'sweep A2 measures its point, the server inside its quota',
          () => {
            serverA2 = servesOf(a2.pid)[0] ?? 0;
            const groups = groupsOf(a2.pid);
            return (
              /\[1\/1\] threadpool at/.test(a2.stderr) &&
              serverA2 > 0 &&
              (groups.length === 0 || groups.every((g) => groupProcesses(g).includes(serverA2)))
            );
          },
          () => `${a2.stderr} groups ${JSON.stringify(groupsOf(a2.pid))}`,
        );
        leaked.push(serverA2);
        const cleanedA = LEFTOVERS.exec(a2.stderr)?.[0] ?? '';
        t.diagnostic(`A2: ${cleanedA}`);
        assert.ok(killedIn(cleanedA).includes(serverA), `A2 says it killed ${serverA}: ${a2.stderr}`);
        for (const group of groupsA) assert.ok(cleanedA.includes(group), `A2 names ${group}: ${a2.stderr}`);
        assert.deepEqual(groupsOf(a.pid), [], `A's groups removed: ${a2.stderr}`);
        assert.ok(!running(serverA), `A's server ${serverA} is gone`);
        const groupsA2 = groupsOf(a2.pid);

        // B, beside A2 alive: it must leave a live sweep's group and server alone.
        const b = startNativeSweep(join(dir, 'killed-b.json'), '30s', '30s');
        started.push(b);
        await waitFor(
          'sweep B has started (its leftovers check done)',
          () => /lab sweep: native/.test(b.stderr),
          () => b.stderr,
        );
        assert.deepEqual(groupsOf(a2.pid), groupsA2, `B leaves A2's groups: ${b.stderr}`);
        assert.ok(running(serverA2), `B leaves A2's server ${serverA2} running: ${b.stderr}`);
        const serversB = servesOf(b.pid);
        await killHard(b.child, b.exited);
        await killHard(a2.child, a2.exited);
        leaked.push(...serversB);
        assert.ok(running(serverA2), `A2's server ${serverA2} outlives A2 (the leak)`);

        // C: removes what A2 and B left, then sweeps to the end.
        const c = await runLab(
          [
            'sweep',
            '--native',
            '--variants',
            'threadpool',
            '--cpus',
            '1',
            '--warmup',
            '200ms',
            '--throughput-duration',
            '500ms',
            '--collapse-duration',
            '500ms',
            '--loadgen',
            'http://127.0.0.1:9',
            '--out',
            join(dir, 'after-kill.json'),
          ],
          {},
          120_000,
        );
        assert.equal(c.code, 0, c.stderr);
        const cleaned = c.stderr.match(new RegExp(LEFTOVERS.source, 'gm')) ?? [];
        assert.equal(cleaned.length, 1, `one line says what was removed: ${c.stderr}`);
        const [line] = cleaned as [string];
        t.diagnostic(`C: ${line}`);
        assert.ok(killedIn(line).includes(serverA2), `C names A2's server ${serverA2}: ${c.stderr}`);
        for (const group of groupsA2) assert.ok(line.includes(group), `C names ${group}: ${c.stderr}`);
        assert.deepEqual([...groupsOf(a2.pid), ...groupsOf(b.pid)], [], `no group of a dead sweep remains: ${c.stderr}`);
        assert.deepEqual([serverA2, ...serversB].filter(running), [], `the stale servers are gone: ${c.stderr}`);
      } finally {
        for (const { child, exited } of started) await killHard(child, exited);
        // What the old code leaves: the servers and the groups of the sweeps killed here.
        for (const pid of leaked.filter(running)) process.kill(pid, 'SIGKILL');
        for (const group of started.flatMap(({ child }) => groupsOf(child.pid!))) {
          await waitFor(`${group} empty`, () => groupProcesses(group).every((pid) => !running(pid)));
          rmdirSync(group);
        }
      }
    },
  );

  it('the report is one self-contained page that Chromium draws without an error', { skip: NOT_LINUX }, async (t) => {
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
