// The variants `lab serve` can run, in the order of LAB-SPEC section 3, with the host port
// compose publishes each one's fib protocol on (section 5).

import type { VariantDefinition } from './common/server.js';
import { eventloop } from './eventloop/index.js';
import { threadpool } from './threadpool/index.js';

export interface RegisteredVariant {
  definition: VariantDefinition;
  /** The fib port compose publishes on 127.0.0.1. */
  hostPort: number;
}

export const VARIANTS: readonly RegisteredVariant[] = [
  { definition: eventloop, hostPort: 25002 },
  { definition: threadpool, hostPort: 25005 },
];

export const VARIANT_NAMES: readonly string[] = VARIANTS.map((v) => v.definition.name);

export function findVariant(name: string): VariantDefinition | undefined {
  return VARIANTS.find((v) => v.definition.name === name)?.definition;
}
