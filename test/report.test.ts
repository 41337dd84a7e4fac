// `lab report` on sweep files it did not write: markup in every field (a report is made to be
// shared, so a crafted sweep file must not run a script in whoever opens it) and files of the
// wrong shape (one line naming the field, exit 2, no page). The pages are opened in Debian's
// headless Chromium, offline.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ConfigError } from '../services/lab/errors.js';
import { readSweepFile, type SweepFile } from '../services/sweep/file.js';
import { runLab } from './helpers.js';
import { checkReportPage, chromiumMissing } from './report-browser.js';
import { legitimateSweep } from './sweep-fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'lab-report-'));
const TITLE = 'Concurrency lab: CPU quota sweep';

// Each payload, if it ever runs, counts itself in window.__xss and changes the title. No quote
// inside RAN, so it fits in the payloads' quoted attributes.
const RAN = 'window.__xss=(window.__xss||0)+1;document.title=document.URL';
const PAYLOADS = [
  `<script>${RAN}</script>`,
  `</script><img src=x onerror="${RAN}">`,
  `</code></td></p><svg onload="${RAN}"></svg>`,
  `" autofocus tabindex=1 onfocus="${RAN}" x="`,
  `' autofocus tabindex=1 onfocus='${RAN}' x='`,
  `</script><script>${RAN}</script><!--<script>`,
];
const payload = (i: number) => PAYLOADS[i % PAYLOADS.length]!;

type Path = Array<string | number>;

/** Every leaf of a JSON value with its path (`['points', 3, 'throughput']`). */
function leaves(value: unknown, path: Path = []): Array<{ path: Path; value: unknown }> {
  if (Array.isArray(value)) return value.flatMap((item, i) => leaves(item, [...path, i]));
  if (value !== null && typeof value === 'object') return Object.entries(value).flatMap(([k, v]) => leaves(v, [...path, k]));
  return [{ path, value }];
}

function setAt(root: unknown, path: Path, value: unknown): void {
  let node = root as Record<string | number, unknown>;
  for (const key of path.slice(0, -1)) node = node[key] as Record<string | number, unknown>;
  node[path.at(-1)!] = value;
}

/** `points[3].throughput`, as the error line names it. */
function named(path: Path): string {
  return path.map((k, i) => (typeof k === 'number' ? `[${k}]` : i === 0 ? k : `.${k}`)).join('');
}

/** Fields the schema holds to a form (an enum, a date): markup cannot be valid there. */
const FORMED = /^(mode|startedAt|updatedAt|baseline\.measuredAt|points\[\d+\]\.measuredAt)$/;

/** The legitimate sweep with markup in every string the file may hold as free text. */
function markupInStrings(): SweepFile {
  const sweep = legitimateSweep();
  sweep.isolation = PAYLOADS.join(' ');
  sweep.host.node = payload(1);
  sweep.host.platform = payload(2);
  sweep.baseline!.variant = payload(3);
  const names = new Map([...new Set(sweep.points.map((p) => p.variant))].map((v, i) => [v, `${payload(i)} ${v}`]));
  sweep.points.forEach((p, i) => {
    p.variant = names.get(p.variant)!;
    p.generatorBound = i % 2 === 0;
    p.generatorReasons = [payload(i), payload(i + 3)];
    p.errors = { [payload(i + 1)]: 1 };
  });
  return sweep;
}

function write(name: string, content: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  return path;
}

describe('lab report on sweep files it did not write', () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('markup in every field: refused where a number belongs, shown as text where a string does, never run', async (t) => {
    // Markup where a number belongs: the fields the page used to print as they were (the bug's
    // exploit: its script ran when the page was opened), then every field at once. Refused, one
    // line naming the first field, no page written.
    const printed = markupInStrings() as unknown as Record<string, unknown>;
    const PRINTED = /^(host\.cpus|settings\.\w+|baseline\.n)$/;
    const everywhere = markupInStrings() as unknown as Record<string, unknown>;
    let count = 0;
    for (const { path, value } of leaves(everywhere)) {
      const where = named(path);
      if (where === 'version') continue; // a file must claim its version to be read at all
      if (PRINTED.test(where)) setAt(printed, path, payload(count));
      if (typeof value === 'number' || typeof value === 'boolean' || value === null || FORMED.test(where)) {
        setAt(everywhere, path, payload(count++));
      }
    }
    for (const [name, file, first] of [
      ['printed', printed, 'host\\.cpus: expected a number, got "'],
      ['everywhere', everywhere, 'mode: expected "docker" or '],
    ] as const) {
      const hostilePage = join(dir, `${name}.html`);
      const refused = await runLab(['report', write(`${name}.json`, file), '--out', hostilePage]);
      if (refused.code === 0) {
        const missing = chromiumMissing();
        const page = missing ? null : await checkReportPage(hostilePage, undefined, 'window.__xss || 0');
        assert.fail(
          `lab report wrote a page from markup in the ${name} numeric fields: ` +
            (page ? `in Chromium ${String(page.probed)} injected script(s) ran, title ${JSON.stringify(page.title)}` : missing!),
        );
      }
      assert.equal(refused.code, 2, refused.stderr);
      assert.equal(refused.stderr.trim().split('\n').length, 1, refused.stderr);
      assert.match(refused.stderr, new RegExp(`^lab report: invalid \\S+${name}\\.json: ${first}`));
      assert.ok(!existsSync(hostilePage), 'no page written');
    }

    // Markup in every string a sweep may hold as free text, every number legitimate: the page is
    // written and shows the markup as text.
    const strings = markupInStrings();
    const free = leaves(strings).filter(({ path, value }) => typeof value === 'string' && !FORMED.test(named(path)));
    assert.ok(
      free.every(({ value }) => PAYLOADS.some((p) => (value as string).includes(p))),
      'the fixture holds markup in every free-text string',
    );
    const page = join(dir, 'strings.html');
    const written = await runLab(['report', write('strings.json', strings), '--out', page]);
    assert.equal(written.code, 0, written.stderr);
    const missing = chromiumMissing();
    if (missing && !process.env.CI) return t.skip(missing);
    const check = await checkReportPage(
      page,
      undefined,
      `(() => ({
        ran: window.__xss || 0,
        scripts: document.scripts.length,
        injected: document.querySelectorAll('img, svg, iframe, [onerror], [onload], [onfocus], [autofocus]').length,
        charts: [...document.querySelectorAll('#throughput h3')].map((h) => h.textContent),
        variants: [...document.querySelectorAll('body > table')[1].querySelectorAll('tbody tr')].map((tr) => tr.cells[0].textContent),
        reasons: [...document.querySelectorAll('tr[title]')].map((tr) => tr.getAttribute('title')),
        meta: document.querySelector('.meta').textContent,
        baseline: document.querySelector('.meta code').textContent,
      }))()`,
    );
    const seen = check.probed as {
      ran: number;
      scripts: number;
      injected: number;
      charts: string[];
      variants: string[];
      reasons: string[];
      meta: string;
      baseline: string;
    };
    const summary = JSON.stringify({ ...check, probed: { ...seen, meta: undefined } });
    assert.equal(seen.ran, 0, `no injected script ran: ${summary}`);
    assert.equal(check.title, TITLE, summary);
    assert.equal(seen.scripts, 3, `uPlot, the data block, the page's script: ${summary}`);
    assert.equal(seen.injected, 0, summary);
    assert.deepEqual(check.consoleErrors, []);
    assert.deepEqual(check.requests, [], 'nothing fetched at view time');
    // The legitimate parts: every chart drawn, the markup shown as the text it is.
    assert.equal(check.expectedCharts, 5, 'one throughput chart per variant, collapse, p99');
    assert.equal(check.drawnCharts.length, check.expectedCharts, summary);
    assert.equal(check.blankCanvases, 0, summary);
    assert.deepEqual(seen.charts, [...new Set(strings.points.map((p) => p.variant))]);
    assert.deepEqual(
      seen.variants,
      strings.points.map((p) => p.variant),
    );
    assert.deepEqual(
      seen.reasons,
      strings.points.filter((p) => p.generatorBound).map((p) => p.generatorReasons.join('; ')),
    );
    assert.ok(seen.meta.includes(strings.isolation), seen.meta);
    assert.equal(seen.baseline, strings.baseline!.variant);
  });

  it('the reader names every numeric field that holds markup', () => {
    const fields = leaves(legitimateSweep()).filter(
      ({ path, value }) => (typeof value === 'number' || value === null) && named(path) !== 'version',
    );
    assert.ok(fields.length > 200, `${fields.length} numeric fields`);
    const file = join(dir, 'one-field.json');
    const unnamed: string[] = [];
    for (const { path } of fields) {
      const sweep = legitimateSweep();
      setAt(sweep, path, payload(path.length));
      writeFileSync(file, JSON.stringify(sweep));
      try {
        readSweepFile(file, 'sweep.json');
        unnamed.push(`${named(path)}: accepted`);
      } catch (error) {
        assert.ok(error instanceof ConfigError, String(error));
        if (!error.message.startsWith(`invalid sweep.json: ${named(path)}: expected a number, got "`))
          unnamed.push(error.message);
      }
    }
    assert.deepEqual(unnamed, []);
  });

  it('a file of the wrong shape: one line naming the field, exit 2, no page', async () => {
    /** The legitimate sweep, changed by `edit` (typed loosely: it breaks what the type promises). */
    const without = (edit: (sweep: Record<string, unknown> & Omit<SweepFile, 'settings' | 'version'>) => void) => {
      const sweep = legitimateSweep() as unknown as Record<string, unknown> & Omit<SweepFile, 'settings' | 'version'>;
      edit(sweep);
      return sweep;
    };
    const cases: Array<[string, unknown, RegExp]> = [
      ['empty points', without((s) => (s.points = [])), /: points: expected at least one point/],
      [
        'a point missing fields',
        without((s) => {
          const p = s.points[3] as Partial<SweepFile['points'][0]>;
          delete p.throughput;
          delete p.collapse;
        }),
        /: points\[3\]\.throughput: missing \(expected a number\) \(and 1 more\)$/,
      ],
      [
        'throughput "fast"',
        without((s) => ((s.points[3] as unknown as Record<string, unknown>).throughput = 'fast')),
        /: points\[3\]\.throughput: expected a number, got "fast"$/,
      ],
      ['no settings', without((s) => delete s.settings), /: settings: missing \(expected an object\)$/],
      ['not JSON', '{"version": 1, "points": [', /: not JSON: /],
      ['wrong version', without((s) => (s.version = 2)), /: version: expected 1, got 2 /],
      ['a list', [legitimateSweep()], /: not a sweep file \(no version field/],
      [
        'a collapse ratio missing where it is not infinite',
        without((s) => (s.points[1]!.collapse.ratio = null)),
        /: points\[1\]\.collapse\.ratio: expected a number when infinite is false/,
      ],
    ];
    const wrong: string[] = [];
    for (const [what, content, expected] of cases) {
      const page = join(dir, 'wrong.html');
      const { code, stderr } = await runLab(['report', write('wrong.json', content), '--out', page]);
      const lines = stderr.trim().split('\n');
      const ok =
        code === 2 && lines.length === 1 && /^lab report: invalid \S+wrong\.json: /.test(stderr) && expected.test(lines[0]!);
      if (!ok || existsSync(page)) wrong.push(`${what}: exit ${code}, page ${existsSync(page)}: ${stderr.trim()}`);
      rmSync(page, { force: true });
    }
    assert.deepEqual(wrong, []);
  });
});
