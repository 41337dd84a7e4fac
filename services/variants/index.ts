// The variant table: one row per concurrency model, from the simplest model to the most
// distributed, each CPython reference (runtime `python`) right after the Node variants it is
// compared with: the home dashboard lists variants side by side in this order. Each row
// (defined in the variant's own folder, services/variants/<name>/index.ts) is the one source of what the lab knows about a variant:
// its port, model, plug-in level, its own options, connection cap, idle timeout, parallelism,
// container limits, and what only it has (companions in compose, dashboard panels, commands).
// Everything else reads it: `lab serve` and `lab variants` at run time; the load generator's and
// the tests' variant lists; and, through `make generate` (tools/generate.ts), the committed
// docker-compose.yml, prometheus.yml, the .env defaults, the Makefile's list and the dashboards,
// each with a test that fails when it drifts. Adding a variant is one folder and one line here.
// The py-* rows are CPython servers: the real GIL beside `gil`'s emulation, the talk's pool and
// coroutine servers beside `processpool` and `coroutines`.

import { cluster } from './cluster/index.js';
import { coroutines } from './coroutines/index.js';
import type { Variant } from '../server/plugin.js';
import { eventloop } from './eventloop/index.js';
import { generators } from './generators/index.js';
import { gil } from './gil/index.js';
import { gilpool } from './gilpool/index.js';
import { processes } from './processes/index.js';
import { processpool } from './processpool/index.js';
import { pyCoroutines } from './py-coroutines/index.js';
import { pyPool } from './py-pool/index.js';
import { pyThreads } from './py-threads/index.js';
import { queue } from './queue/index.js';
import { sync } from './sync/index.js';
import { threadpool } from './threadpool/index.js';
import { threads } from './threads/index.js';

export const VARIANTS: readonly Variant[] = [
  sync,
  eventloop,
  generators,
  coroutines,
  pyCoroutines,
  threads,
  gil,
  pyThreads,
  threadpool,
  gilpool,
  processes,
  processpool,
  pyPool,
  cluster,
  queue,
];

export const VARIANT_NAMES: readonly string[] = VARIANTS.map((v) => v.name);

export function findVariant(name: string): Variant | undefined {
  return VARIANTS.find((v) => v.name === name);
}
