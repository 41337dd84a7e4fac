// The variants `lab serve` can run, in the order of LAB-SPEC section 3, with the host port
// compose publishes each one's fib protocol on (section 5).

import type { VariantDefinition } from './common/server.js';
import { cluster } from './cluster/index.js';
import { eventloop } from './eventloop/index.js';
import { generators } from './generators/index.js';
import { gil } from './gil/index.js';
import { processes } from './processes/index.js';
import { processpool } from './processpool/index.js';
import { queue } from './queue/index.js';
import { sync } from './sync/index.js';
import { threadpool } from './threadpool/index.js';
import { threads } from './threads/index.js';

export interface RegisteredVariant {
  definition: VariantDefinition;
  /** The fib port compose publishes on 127.0.0.1. */
  hostPort: number;
}

export const VARIANTS: readonly RegisteredVariant[] = [
  { definition: sync, hostPort: 25001 },
  { definition: eventloop, hostPort: 25002 },
  { definition: generators, hostPort: 25003 },
  { definition: threads, hostPort: 25004 },
  { definition: threadpool, hostPort: 25005 },
  { definition: processes, hostPort: 25006 },
  { definition: processpool, hostPort: 25007 },
  { definition: cluster, hostPort: 25008 },
  { definition: gil, hostPort: 25009 },
  { definition: queue, hostPort: 25010 },
];

export const VARIANT_NAMES: readonly string[] = VARIANTS.map((v) => v.definition.name);

export function findVariant(name: string): VariantDefinition | undefined {
  return VARIANTS.find((v) => v.definition.name === name)?.definition;
}
