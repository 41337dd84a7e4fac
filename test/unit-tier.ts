// Runs `make test`'s first tier (test/*.test.ts, test/queue/) in two parts, to fit CI's time on a
// 2-core machine: the files that only wait for states two at a time, the longest first (each
// starts its own servers on port 0, so they cannot meet), then, one at a time on a quiet machine,
// the files that measure time or CPU (a rate, a latency bound, the generator judging itself, a
// drain within a second). A new test file that measures belongs in MEASURING. Both parts run even when the first fails;
// the exit code is the worse of the two.
//
//   npm run build && node dist/test/unit-tier.js [--only measuring|waiting]

import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { run as runTests } from 'node:test';
import { spec, tap } from 'node:test/reporters';
import { fileURLToPath } from 'node:url';

/** The files (relative to dist/test, without .test.js) whose assertions a busy second core would skew. */
export const MEASURING = new Set(['loadgen', 'spotlight', 'sweep', 'thresholds', 'idle', 'fuzz', 'open-loop']);

/**
 * The waiting part's longest files, longest first (seconds, two at a time, 2026-12-05): each
 * starts before the short ones, so that the two lanes end together instead of one running a
 * long file alone at the end (in alphabetical order the last file, queue/workers, ran alone).
 * The rest follow in alphabetical order.
 */
export const LONGEST_FIRST = [
  'hardening', // 95
  'hardening-second-pass', // 81
  'conformance', // 58
  'queue/workers', // 33
  'pool-quota', // 25
  'queue/redis', // 24
  'queue/scale', // 15
  'config', // 15
];

const HERE = fileURLToPath(new URL('.', import.meta.url));

function testFiles(): string[] {
  const inDir = (dir: string) =>
    readdirSync(join(HERE, dir))
      .filter((name) => name.endsWith('.test.js'))
      .sort()
      .map((name) => join(dir, name));
  return [...inDir('.'), ...inDir('queue')];
}

const key = (file: string) => file.replace(/^\.\//, '').replace(/\.test\.js$/, '');

/**
 * Runs the files in the order given, `concurrency` at a time, each in its own process, and
 * reports as `node --test` does (TAP unless on a terminal); 1 when a test failed. Not `node
 * --test <files>`: it sorts its arguments, which would undo LONGEST_FIRST.
 */
async function run(files: string[], concurrency: number): Promise<number> {
  if (files.length === 0) return 0;
  let failed = false;
  const events = runTests({ files: files.map((file) => join(HERE, file)), concurrency });
  events.on('test:fail', () => (failed = true));
  // compose() is typed `any` here (@types/node): a Readable of the reporter's text.
  const report = events.compose(process.stdout.isTTY ? new spec() : tap) as Readable;
  report.pipe(process.stdout, { end: false });
  await finished(report);
  return failed ? 1 : 0;
}

const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : undefined;
if (only !== undefined && only !== 'measuring' && only !== 'waiting') {
  console.error(`unit-tier: --only: expected measuring or waiting, got ${only}`);
  process.exit(2);
}
const files = testFiles();
const unknown = [...MEASURING, ...LONGEST_FIRST].filter((name) => !files.some((file) => key(file) === name));
if (unknown.length > 0) {
  console.error(`unit-tier: MEASURING or LONGEST_FIRST names files that do not exist: ${unknown.join(', ')}`);
  process.exit(2);
}
const measuring = files.filter((file) => MEASURING.has(key(file)));
const rank = (file: string) => {
  const index = LONGEST_FIRST.indexOf(key(file));
  return index === -1 ? LONGEST_FIRST.length : index;
};
// A stable sort: the files LONGEST_FIRST leaves out keep their alphabetical order.
const waiting = files.filter((file) => !MEASURING.has(key(file))).sort((a, b) => rank(a) - rank(b));
const codes = [only === 'measuring' ? 0 : await run(waiting, 2), only === 'waiting' ? 0 : await run(measuring, 1)];
process.exit(Math.max(...codes));
