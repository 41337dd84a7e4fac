// The pages `lab report` and `lab compare` write: one way to put values into markup. Every value
// goes through page``, which escapes it; the only markup written as it is comes from the page
// modules or from uPlot's files (trusted). The data a page's script draws is JSON in a script
// block the browser never runs, every `<` in it escaped (dataBlock), so no string in it can end
// the block. Both pages are made to be shared, from files the reader may not have written.

import type { RunRecord } from '../lab/run-record.js';

/** Markup this module made: written into the page as it is. */
export class Html {
  constructor(readonly text: string) {}
}

/** Markup from the page modules' constants or uPlot's own files, never from an input file. */
export function trusted(text: string): Html {
  return new Html(text);
}

/**
 * A template for the page whose every value is escaped unless it is markup made here (Html);
 * an array's items are written one after the other. Anything else (an object, undefined) is a
 * mistake in this module and throws rather than writing `[object Object]` into the page. (Not
 * named html: prettier would reformat the page's text inside an html`` template.)
 */
export function page(strings: TemplateStringsArray, ...values: unknown[]): Html {
  let text = strings[0]!;
  values.forEach((value, i) => (text += render(value) + strings[i + 1]!));
  return new Html(text);
}

export function join(items: Html[], separator: string): Html {
  return new Html(items.map((item) => item.text).join(separator));
}

function render(value: unknown): string {
  if (value instanceof Html) return value.text;
  if (Array.isArray(value)) return value.map(render).join('');
  if (typeof value === 'string') return esc(value);
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  throw new TypeError(`lab report/compare: cannot write ${typeof value === 'number' ? value : typeof value} into the page`);
}

function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/** JSON for a `<script type="application/json">` block: every `<` escaped. */
export function dataBlock(data: unknown): Html {
  return trusted(JSON.stringify(data).replace(/</g, '\\u003c'));
}

/** A run record in one line of a page: lab version and commit, Node, host, kernel, cgroup. */
export function runRecordLine(run: RunRecord | undefined): Html {
  if (!run) return page`no run record (written before lab recorded them)`;
  const commit =
    run.lab.commit === null
      ? 'commit unknown'
      : `commit ${run.lab.commit.slice(0, 12)}${run.lab.dirty ? ' (with local changes)' : ''} (from ${run.lab.commitSource})`;
  const quota = run.host.ownQuotaCores === null ? '' : `, its own quota ${run.host.ownQuotaCores} cores`;
  return page`lab ${run.lab.version}, ${commit}; Node ${run.node}; ${run.host.hostname}: ${run.host.cpus} × ${run.host.cpuModel}, ${run.host.kernel}, cgroup ${run.host.cgroup ?? 'none'}${quota}; started ${run.startedAt.slice(0, 19).replace('T', ' ')} UTC`;
}
