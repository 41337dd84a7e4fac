// Runs `make test`'s first tier (test/*.test.ts, test/queue/) in two parts, to fit CI's time on a
// 2-core machine: the files that only wait for states two at a time (each starts its own servers
// on port 0, so they cannot meet), then, one at a time on a quiet machine, the files that measure
// time or CPU (a rate, a latency bound, the generator judging itself, a drain within a second).
// A new test file that measures belongs in MEASURING. Both parts run even when the first fails;
// the exit code is the worse of the two.
//
//   npm run build && node dist/test/unit-tier.js [--only measuring|waiting]

import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
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

function run(files: string[], concurrency: number): number {
  if (files.length === 0) return 0;
  const result = spawnSync(
    process.execPath,
    ['--test', `--test-concurrency=${concurrency}`, ...files.map((file) => join(HERE, file))],
    { stdio: 'inherit' },
  );
  return result.status ?? 1;
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
const codes = [only === 'measuring' ? 0 : run(waiting, 2), only === 'waiting' ? 0 : run(measuring, 1)];
process.exit(Math.max(...codes));
