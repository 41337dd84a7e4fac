// A module hook for tests that check what a command loads: `node --import
// dist/test/module-trace.js ...` prints `resolve <specifier>` on stderr for every package (a bare
// specifier) any module of the process imports. It registers itself from the main thread; the
// loader thread runs its `resolve`, and writes synchronously so that nothing is lost at exit.

import { writeSync } from 'node:fs';
import { register } from 'node:module';
import { isMainThread } from 'node:worker_threads';

if (isMainThread) register(import.meta.url);

type NextResolve = (specifier: string, context: unknown) => Promise<unknown>;

export async function resolve(specifier: string, context: unknown, nextResolve: NextResolve): Promise<unknown> {
  if (!/^(\.|\/|node:|file:|data:)/.test(specifier)) writeSync(2, `resolve ${specifier}\n`);
  return nextResolve(specifier, context);
}
