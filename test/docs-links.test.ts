// The documentation's links stay true when files move: every relative link (and image) in the
// repository's markdown (README.md, docs/, each variant's README, ...) names a file or folder that
// exists, and every #anchor names a heading of the file it points into (GitHub's slugs).

import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SKIP = new Set(['node_modules', 'dist', '.git']);
/**
 * Pages linked before they are written (the index names them "a page to come"). A page here must
 * not exist yet: once it does, the test fails until it is taken off this list and checked like any.
 */
const TO_COME = new Set<string>([]);

function markdownFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    if (SKIP.has(name)) return [];
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return markdownFiles(path);
    return name.endsWith('.md') ? [path] : [];
  });
}

/** The file's text without fenced code blocks and inline code (links there are not links). */
function prose(text: string): string {
  return text.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '').replace(/`[^`\n]*`/g, '``');
}

/** GitHub's anchor for a heading: its rendered text, lower-cased, punctuation dropped, spaces as hyphens. */
export function slug(heading: string): string {
  const text = heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1') // a link's text
    .replace(/[`*]/g, '')
    .trim()
    .toLowerCase();
  return text.replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '').replace(/ /g, '-');
}

/** Every anchor a markdown file defines: its headings' slugs (repeats numbered as GitHub does) and explicit ids. */
function anchorsOf(file: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  const text = readFileSync(file, 'utf8').replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '');
  for (const [, heading] of text.matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const base = slug(heading!);
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    anchors.add(count === 0 ? base : `${base}-${count}`);
  }
  for (const [, id] of text.matchAll(/<a\s+(?:name|id)="([^"]+)"/g)) anchors.add(id!);
  return anchors;
}

/** Every link target in a file's prose: inline links and images, and reference definitions. */
function linksOf(file: string): string[] {
  const text = prose(readFileSync(file, 'utf8'));
  const inline = [...text.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map((m) => m[1]!);
  const references = [...text.matchAll(/^\s*\[[^\]]+\]:\s*(\S+)/gm)].map((m) => m[1]!);
  return [...inline, ...references];
}

const FILES = markdownFiles(ROOT);

describe('documentation links', () => {
  it('finds the markdown to check', () => {
    const names = FILES.map((f) => relative(ROOT, f));
    for (const expected of ['README.md', 'docs/README.md', 'docs/protocol.md', 'services/variants/eventloop/README.md'])
      assert.ok(names.includes(expected), `${expected} among ${names.join(', ')}`);
  });

  it('lists as "to come" only pages that do not exist yet', () => {
    for (const page of TO_COME) assert.ok(!existsSync(join(ROOT, page)), `${page} exists: take it off TO_COME`);
  });

  it('computes anchors as GitHub does', () => {
    assert.equal(slug('The load generator'), 'the-load-generator');
    assert.equal(
      slug('CPU quotas as the experiment axis: `lab cpus`, `lab sweep`'),
      'cpu-quotas-as-the-experiment-axis-lab-cpus-lab-sweep',
    );
    assert.equal(slug("The load generator's limits"), 'the-load-generators-limits');
    assert.equal(slug('[`queue`](x.md): scale-out'), 'queue-scale-out');
    assert.equal(slug('loadgen_lesson_collapse_ratio, 1.5x'), 'loadgen_lesson_collapse_ratio-15x');
  });

  for (const file of FILES) {
    const name = relative(ROOT, file);
    it(`${name}: every relative link points to a file and anchor that exist`, () => {
      const broken: string[] = [];
      for (const link of linksOf(file)) {
        if (/^[a-z][a-z0-9+.-]*:/i.test(link)) continue; // http:, https:, mailto:
        const [path, anchor] = link.split('#', 2) as [string, string | undefined];
        const target = path === '' ? file : join(dirname(file), decodeURIComponent(path));
        if (TO_COME.has(relative(ROOT, target)) && !existsSync(target)) continue;
        if (!existsSync(target)) {
          broken.push(`${link}: no ${relative(ROOT, target)}`);
          continue;
        }
        if (anchor === undefined || anchor === '') continue;
        if (!target.endsWith('.md')) {
          broken.push(`${link}: an anchor into a file that is not markdown`);
          continue;
        }
        if (!anchorsOf(target).has(decodeURIComponent(anchor)))
          broken.push(`${link}: no heading #${anchor} in ${relative(ROOT, target)}`);
      }
      assert.deepEqual(broken, [], `${name} has broken links`);
    });
  }
});
