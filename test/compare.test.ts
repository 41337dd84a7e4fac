// `lab compare`: two real `lab load` runs against real native servers, one with a known
// difference (fib(1) against fib(25) under the same target and probe names: B's rate far lower,
// its latency far higher, the intervals far from 0) and a run against itself (every row "no
// difference"); two sweep files (per variant and quota), old ones without a run record included;
// the page in headless Chromium, with markup in every string the inputs may carry; and bad input
// files, each one line naming the file and the field, exit 2, no page written.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execFileSync } from 'node:child_process';
import { labIdentity, runRecord } from '../services/lab/run-record.js';
import { compareInputs, describeRow, readCompareInput, type Comparison } from '../services/sweep/compare.js';
import { configErrorOf, runLab, startVariant, writeScenario, type RunningVariant } from './helpers.js';
import { checkReportPage, chromiumMissing } from './report-browser.js';
import { legitimateSweep } from './sweep-fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'lab-compare-'));
const RAN = 'window.__xss=(window.__xss||0)+1;document.title=document.URL';
const PAYLOAD = `</script><img src=x onerror="${RAN}"><script>${RAN}</script>`;

function write(name: string, content: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  return path;
}

const verdicts = (c: Comparison, metric: string) => c.rows.filter((r) => r.metric === metric).map((r) => r.verdict);

describe('lab compare of two load runs', () => {
  const servers: RunningVariant[] = [];
  const files = { a: join(dir, 'a.json'), b: join(dir, 'b.json') };
  let outputs: Array<{ code: number | null; stderr: string }> = [];

  before(async () => {
    // Two servers, so the two runs go at once without sharing one event loop; the same target
    // and probe names in both runs, so they compare row for row.
    servers.push(await startVariant('eventloop'), await startVariant('eventloop'));
    const heavier = writeScenario('name: heavier\nprobes:\n  - name: short\n    n: 25\n');
    // 4.5 s: at least 4 one-second intervals a side, the fewest lab compare draws an interval from.
    const load = (port: number, scenario: string, out: string) =>
      runLab(['load', '--target', `eventloop=127.0.0.1:${port}`, '--scenario', scenario, '--duration', '4500ms', '--out', out]);
    outputs = await Promise.all([load(servers[0]!.port, 'perf2', files.a), load(servers[1]!.port, heavier, files.b)]);
  });
  after(async () => {
    await Promise.all(servers.map((s) => s.stop()));
  });

  it('finds the known difference: fib(25) is slower and rarer than fib(1), the intervals far from 0', () => {
    for (const output of outputs) assert.equal(output.code, 0, output.stderr);
    const c = compareInputs(readCompareInput(files.a), readCompareInput(files.b));
    assert.deepEqual(
      c.rows.map((r) => r.group),
      Array(5).fill('eventloop/short'),
    );
    const rate = c.rows.find((r) => r.metric === 'req/s')!;
    const p50 = c.rows.find((r) => r.metric === 'p50')!;
    assert.equal(rate.verdict, 'B lower', `req/s A ${rate.a} B ${rate.b}, interval ${rate.interval}`);
    assert.equal(p50.verdict, 'B higher', `p50 A ${p50.a} B ${p50.b}, interval ${p50.interval}`);
    assert.ok(rate.interval![1] < 0 && p50.interval![0] > 0, `intervals ${rate.interval} and ${p50.interval}`);
    assert.deepEqual(c.recordDifferences, [], 'same lab, host and target figures');
  });

  it('finds no difference between a run and itself, and prints the table', async () => {
    const c = compareInputs(readCompareInput(files.a), readCompareInput(files.a));
    for (const metric of ['req/s', 'p50', 'p90', 'p99', 'p99.9'])
      assert.deepEqual(
        verdicts(c, metric),
        ['no difference'],
        `${metric}: ${JSON.stringify(c.rows.find((r) => r.metric === metric))}`,
      );
    const page = join(dir, 'self.html');
    const run = await runLab(['compare', files.a, files.a, '--out', page]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(
      run.stdout,
      /^eventloop\/short\s+req\/s\s+\d+\s+\d+\s+\+0\.0 \(\+0\.0%\)\s+-\d+ \.\. \+\d+\s+no difference$/m,
      run.stdout,
    );
    assert.match(run.stdout, /^eventloop\/short\s+p99\s+.*no difference$/m, run.stdout);
    assert.ok(existsSync(page));
  });

  it('draws the page in headless Chromium, offline, without an error', async (t) => {
    const page = join(dir, 'runs.html');
    const run = await runLab(['compare', files.a, files.b, '--out', page]);
    assert.equal(run.code, 0, run.stderr);
    const missing = chromiumMissing();
    if (missing && !process.env.CI) return t.skip(missing);
    const check = await checkReportPage(
      page,
      undefined,
      `[...document.querySelectorAll('#figures tbody tr')].map((tr) => tr.cells[6].textContent)`,
    );
    assert.deepEqual(check.consoleErrors, []);
    assert.deepEqual(check.requests, [], 'a self-contained page fetches nothing');
    assert.equal(check.expectedCharts, 1);
    assert.deepEqual(check.drawnCharts, ['chart-0']);
    assert.equal(check.blankCanvases, 0);
    assert.equal((check.probed as string[]).length, 5);
  });
});

describe('the run record', () => {
  it('takes the commit from LAB_COMMIT where the image was given it, else from git', () => {
    assert.deepEqual(labIdentity({ LAB_COMMIT: ' 0123abc ' }), {
      version: (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version,
      commit: '0123abc',
      commitSource: 'LAB_COMMIT',
      dirty: null,
    });
    let head: string | null = null;
    try {
      head = execFileSync('git', ['rev-parse', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {
      // not a clone: the record's commit is null, as below
    }
    const fromGit = labIdentity({ LAB_COMMIT: '' });
    assert.equal(fromGit.commit, head);
    assert.equal(fromGit.commitSource, head === null ? null : 'git');
  });
});

describe('lab compare of two sweeps', () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('compares per variant and quota, reads old files without a run record, and says what else differed', () => {
    const a = legitimateSweep();
    const b = legitimateSweep();
    b.points = b.points.filter((p) => p.cpus !== 2);
    for (const p of b.points) if (p.variant === 'threadpool') p.throughput *= 1.5;
    b.run = runRecord(new Date('2026-12-02T10:00:00Z'), [], { settings: b.settings });
    const c = compareInputs(readCompareInput(write('old.json', a)), readCompareInput(write('new.json', b)));
    const throughput = c.rows.filter((r) => r.metric === 'throughput');
    assert.equal(throughput.length, 9, 'three variants at 0.5, 1 and 1.5 cores');
    for (const r of throughput)
      assert.ok(Math.abs(r.relative! - (r.group.startsWith('threadpool') ? 0.5 : 0)) < 1e-9, `${r.group}: ${r.relative}`);
    assert.deepEqual(c.onlyIn.a, ['threadpool at 2 cores', 'eventloop at 2 cores', 'processpool at 2 cores']);
    assert.deepEqual(c.recordDifferences, ['only B has a run record']);
    const infinite = c.rows.find((r) => r.group === 'eventloop at 0.5 cores' && r.metric === 'collapse')!;
    assert.deepEqual(describeRow(infinite).slice(2, 5), ['∞', '∞', '-'], 'nothing answered beside the hog, in both');
    const others = c.rows.filter((r) => r.metric !== 'throughput');
    assert.ok(
      others.every((r) => r.verdict === null && r.note === 'collapse, p99 and workers are measured once per point: no interval'),
    );
    assert.ok(
      throughput.every((r) => r.verdict === 'no interval' && /needs 4 or more one-second samples/.test(r.note!)),
      'old files: no samples',
    );
  });

  it('gives throughput an interval from its one-second samples: no difference where they are the same', () => {
    const a = legitimateSweep();
    const seconds = [100, 112, 91, 104, 96];
    for (const p of a.points) p.throughputIntervals = seconds.map((ok) => ({ ms: 1000, ok }));
    const b = structuredClone(a);
    for (const p of b.points)
      if (p.variant === 'threadpool') p.throughputIntervals = seconds.map((ok) => ({ ms: 1000, ok: Math.round(ok * 1.5) }));
    const c = compareInputs(readCompareInput(write('samples-a.json', a)), readCompareInput(write('samples-b.json', b)));
    for (const r of c.rows.filter((row) => row.metric === 'throughput'))
      assert.equal(r.verdict, r.group.startsWith('threadpool') ? 'B higher' : 'no difference', `${r.group}: ${r.interval}`);
  });

  it('shows markup from the files as text in the page, never runs it', async (t) => {
    const a = legitimateSweep();
    a.run = runRecord(new Date(), [{ name: PAYLOAD, metrics: PAYLOAD, quotaCores: 1, quotaLimited: true, workers: 2 }], PAYLOAD);
    a.run.host.hostname = PAYLOAD;
    a.run.host.cpuModel = PAYLOAD;
    a.run.lab.commit = PAYLOAD;
    for (const p of a.points) p.variant = `${PAYLOAD}${p.variant}`;
    const b = structuredClone(a);
    b.run!.host.kernel = PAYLOAD;
    const page = join(dir, 'hostile.html');
    const run = await runLab(['compare', write('hostile-a.json', a), write('hostile-b.json', b), '--out', page]);
    assert.equal(run.code, 0, run.stderr);
    const missing = chromiumMissing();
    if (missing && !process.env.CI) return t.skip(missing);
    const check = await checkReportPage(
      page,
      undefined,
      `({ ran: window.__xss || 0, injected: document.querySelectorAll('img, [onerror]').length, text: document.body.textContent.includes(${JSON.stringify(PAYLOAD)}) })`,
    );
    assert.deepEqual(check.probed, { ran: 0, injected: 0, text: true });
    assert.equal(check.title, 'Concurrency lab: compare');
    assert.deepEqual(check.consoleErrors, []);
    assert.equal(check.drawnCharts.length, 3, 'a chart per variant');
    assert.equal(check.blankCanvases, 0);
  });

  it('refuses bad inputs with one line naming the file and the field, exit 2, no page', async () => {
    const sweep = legitimateSweep();
    const load = {
      startedAt: '2026-12-01T10:00:00.000Z',
      scenario: { name: 'perf2', description: '' },
      results: [
        {
          target: 'eventloop',
          scenario: 'perf2',
          probe: 'short',
          requests: 10,
          ok: 10,
          requestsPerSecond: 5,
          latencyMs: { p50: 1, p90: 1, p99: 1, p999: 1, max: 1, mean: 1 },
        },
      ],
    };
    const intervals = Array.from({ length: 4 }, () => ({ ms: 1000, requests: 1, ok: 1, latency: 'not a histogram' }));
    const cases: Array<[string, unknown, unknown, RegExp]> = [
      ['not JSON', '{', load, /: not JSON: /],
      ['a list', [1, 2], load, /: expected a lab load --json run or a sweep file, got \[1,2\]/],
      ['neither', { hello: 1 }, load, /: neither a lab load --json run \(no results\) nor a sweep file/],
      [
        'a spotlight',
        { spotlight: { turns: [] } },
        load,
        /: a --spotlight run: lab compare takes runs of a scenario and sweep files/,
      ],
      [
        'a rate of the wrong type',
        { ...load, results: [{ ...load.results[0], requestsPerSecond: 'fast' }] },
        load,
        /: results\[0\]\.requestsPerSecond: expected a number, got "fast"/,
      ],
      ['no results', { ...load, results: [] }, load, /: results: expected at least 1 item/],
      ['a run record of the wrong shape', { ...load, run: { lab: 1 } }, load, /: run\.lab: expected an object, got 1/],
      [
        'a broken histogram',
        load,
        { ...load, results: [{ ...load.results[0], intervals }] },
        /b\.json: results\[0\]\.intervals\[0\]\.latency: not an HDR histogram/,
      ],
      [
        'a duplicate',
        { ...load, results: [load.results[0], load.results[0]] },
        load,
        /: results\[1\]: target "eventloop" and probe "short" appear twice/,
      ],
      ['a sweep and a run', sweep, load, /b\.json: is a lab load run but \S+ is a sweep file: compare two of a kind/],
      [
        'nothing in common',
        load,
        { ...load, results: [{ ...load.results[0], target: 'threads' }] },
        /: nothing in common with \S+: no target and probe measured in both/,
      ],
      [
        'a sweep of the wrong shape',
        { ...sweep, points: [{ ...sweep.points[0], throughput: 'fast' }] },
        sweep,
        /: points\[0\]\.throughput: expected a number, got "fast"/,
      ],
    ];
    // In the process, each refusal's message; through the CLI, two of them: exit 2, one line, no page.
    for (const [name, a, b, pattern] of cases) {
      const slug = name.replace(/\W+/g, '-');
      const message = configErrorOf(() =>
        compareInputs(readCompareInput(write(`${slug}-a.json`, a)), readCompareInput(write(`${slug}-b.json`, b))),
      );
      assert.match(message, /^invalid \S+\.json: /, name);
      assert.match(message, pattern, name);
      assert.ok(!message.includes('\n'), `${name}: one line: ${message}`);
    }
    const cli = await Promise.all(
      ([cases[0]!, cases[9]!] as const).map(([name, a, b]) => {
        const slug = `cli-${name.replace(/\W+/g, '-')}`;
        const page = join(dir, `${slug}.html`);
        return runLab(['compare', write(`${slug}-a.json`, a), write(`${slug}-b.json`, b), '--out', page]).then((run) => ({
          ...run,
          page,
          name,
        }));
      }),
    );
    for (const run of cli) {
      assert.equal(run.code, 2, `${run.name}: exit ${run.code} ${run.stderr}`);
      assert.equal(run.stderr.trim().split('\n').length, 1, `${run.name}: ${run.stderr}`);
      assert.match(run.stderr, /^lab compare: invalid \S+\.json: /, run.name);
      assert.ok(!existsSync(run.page), `${run.name}: no page written`);
    }
    const wrongOut = await runLab(['compare', write('x.json', load), write('y.json', load), '--out', join(dir, 'page.txt')]);
    assert.equal(wrongOut.code, 2);
    assert.match(wrongOut.stderr, /^lab compare: invalid --out: expected a file name ending in \.html/);
    assert.ok(readFileSync(join(dir, 'x.json'), 'utf8').length > 0);
  });
});
