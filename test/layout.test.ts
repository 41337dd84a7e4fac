// The layout tells the story, and the imports keep it true: services/ is layered, each folder
// importing only from those below it, and a variant never imports another variant.
//
//   lab        lab-wide utilities (errors, options, cgroup, metrics' building blocks, ...)
//   server     the shared server runtime every variant plugs into
//   variants   one folder per concurrency model, and the table that lists them
//   loadgen    the load generator
//   quota      lab cpus, lab ps
//   sweep      lab sweep, lab report
//   cli        the `lab` command
//
// Read from the sources, so it holds for whatever is added.

import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SERVICES = join(ROOT, 'services');
const LAYERS = ['lab', 'server', 'variants', 'loadgen', 'quota', 'sweep', 'cli'] as const;

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return name.endsWith('.ts') ? [path] : [];
  });
}

/** Every relative module a source file imports (static, dynamic, type-only, re-exports). */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specifiers = [...text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)].map((m) => m[1]!);
  return specifiers.map((spec) => normalize(join(dirname(file), spec)));
}

/** services/<top>/...: the folder (layer) of a path under services/, or null outside it. */
function layerOf(path: string): { layer: string; variant: string | null } | null {
  const rel = relative(SERVICES, path);
  if (rel.startsWith('..')) return null;
  const [top, second] = rel.split('/');
  return {
    layer: top!,
    variant: top === 'variants' && second && !second.endsWith('.ts') && !second.endsWith('.js') ? second : null,
  };
}

describe('the layout of services/', () => {
  const files = sources(SERVICES);

  it('has only the known folders, each a layer', () => {
    const tops = new Set(files.map((f) => relative(SERVICES, f).split('/')[0]!));
    assert.deepEqual([...tops].sort(), [...LAYERS].sort(), 'every source sits in one of the layers');
  });

  it('imports only downward: each folder from itself and the folders below it', () => {
    const wrong: string[] = [];
    for (const file of files) {
      const from = layerOf(file)!;
      for (const target of importsOf(file)) {
        const to = layerOf(target);
        if (!to) continue;
        if (LAYERS.indexOf(to.layer as (typeof LAYERS)[number]) > LAYERS.indexOf(from.layer as (typeof LAYERS)[number]))
          wrong.push(`${relative(ROOT, file)} imports ${relative(ROOT, target)} (${from.layer} -> ${to.layer})`);
      }
    }
    assert.deepEqual(wrong, []);
  });

  it('never has a variant import another variant, nor the table', () => {
    const wrong: string[] = [];
    for (const file of files) {
      const from = layerOf(file)!;
      if (from.variant === null) continue;
      for (const target of importsOf(file)) {
        const to = layerOf(target);
        if (to?.layer !== 'variants' || to.variant === from.variant) continue;
        wrong.push(`${relative(ROOT, file)} imports ${relative(ROOT, target)}`);
      }
    }
    assert.deepEqual(wrong, []);
  });

  it('keeps the names of variants out of the shared code', () => {
    // The table is the one place that lists them; shared code reads it, it never names one.
    const names = readdirSync(join(SERVICES, 'variants')).filter((name) =>
      statSync(join(SERVICES, 'variants', name)).isDirectory(),
    );
    const shared = files.filter((f) => ['lab', 'server'].includes(layerOf(f)!.layer));
    const wrong: string[] = [];
    for (const file of shared) {
      // Code only: comments may give an example.
      const code = readFileSync(file, 'utf8')
        .replace(/\/\*[\s\S]*?\*\//g, '')
        .replace(/\/\/.*$/gm, '');
      for (const name of names) if (new RegExp(`['"\`]${name}['"\`/]`).test(code)) wrong.push(`${relative(ROOT, file)}: ${name}`);
    }
    assert.deepEqual(wrong, []);
  });
});
