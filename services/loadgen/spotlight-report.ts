// How the spotlight's turns are shown by `lab load --spotlight`: a small table per turn as each
// one ends (phase rows: perf2's requests per second, p50 and p99, the hogs' rate), a summary of
// the last turn per variant at the end, or every turn as JSON or CSV.

import type { ProbeFigures } from './measure.js';
import { formatMs, healthLine } from './report.js';
import { collapseGroups, jsonNumber, type LessonTurn } from './spotlight.js';

export function formatRatio(ratio: number): string {
  if (Number.isNaN(ratio)) return '-';
  if (!Number.isFinite(ratio)) return 'inf';
  return `${ratio.toFixed(ratio < 10 ? 2 : 1)}x`;
}

function formatRate(rate: number): string {
  return rate.toFixed(rate < 10 ? 1 : 0);
}

function aligned(rows: string[][], leftColumns: number): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  return rows.map((cells) =>
    cells
      .map((cell, i) => (i < leftColumns ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!)))
      .join('  ')
      .trimEnd(),
  );
}

/** A median with the lowest and highest round: `4.2x (3.9x-5.0x)`. */
export function formatSpread(median: string, low: string, high: string): string {
  return low === high ? median : `${median} (${low}-${high})`;
}

function collapseText(turn: LessonTurn): string {
  if (Number.isNaN(turn.collapseRatio)) return 'collapse -: no short request was answered alone';
  if (!Number.isFinite(turn.collapseRatio)) return 'collapse inf: no short request was answered beside one long request';
  const spread = formatSpread(formatRatio(turn.collapseRatio), formatRatio(turn.collapseLow), formatRatio(turn.collapseHigh));
  return `collapse ${spread} (perf2 alone / beside one long request; median of the rounds, lowest-highest)`;
}

/** One turn, as it ends. */
export function turnTable(turn: LessonTurn): string {
  const quota = turn.quotaCores === null ? 'quota unknown' : `quota ${turn.quotaCores} cores`;
  // For a thread or process per connection, fib_workers counts live connections: the quota says how many can run.
  const workers = turn.allWorkersHogs === null ? '' : `, ${turn.allWorkersHogs} worker${turn.allWorkersHogs === 1 ? '' : 's'}`;
  const showWorkers = turn.phases.some((p) => p.workersUsed !== null);
  const header = [
    '  phase',
    'hogs',
    'short/s (lowest-highest)',
    'p50',
    'p99',
    'long/s',
    ...(showWorkers ? ['workers used'] : []),
    'gen-bound',
  ];
  const rows = turn.phases.map((p) => [
    `  ${p.phase}`,
    String(p.hogs),
    formatSpread(formatRate(p.short.okPerSecond), formatRate(p.shortLow), formatRate(p.shortHigh)),
    formatMs(p.short.p50Ms),
    formatMs(p.short.p99Ms),
    p.long ? formatRate(p.long.okPerSecond) : '-',
    ...(showWorkers ? [p.workersUsed === null ? '-' : String(p.workersUsed)] : []),
    boundText(p),
  ]);
  const errors = turn.phases.flatMap((p) =>
    [p.short, p.long].flatMap((figures, i) =>
      figures && Object.keys(figures.errors).length > 0
        ? [
            `  ${p.phase} ${i === 0 ? 'short' : 'long'} errors: ${Object.entries(figures.errors)
              .map(([code, count]) => `${code}=${count}`)
              .join(', ')}`,
          ]
        : [],
    ),
  );
  // The phase that came closest to making the generator the bottleneck speaks for the turn.
  const busiest = turn.phases.reduce((a, b) =>
    b.generator.generatorBound > a.generator.generatorBound ||
    (b.generator.generatorBound === a.generator.generatorBound && b.generator.busy > a.generator.busy)
      ? b
      : a,
  );
  return [
    `spotlight ${turn.variant} (rotation ${turn.rotation}, ${turn.endedAt}, ${turn.phases[0]?.rounds.length ?? 0} rounds): ${quota}${workers}; ${collapseText(turn)}`,
    ...aligned([header, ...rows], 1),
    ...errors,
    ...turn.notes.map((note) => `  note: ${note}`),
    `  ${busiest.phase}: ${healthLine(busiest.generator)}`,
  ].join('\n');
}

/** In how many rounds the generator was the bottleneck, and why: `no`, or `2/3 cpu`. */
function boundText(p: LessonTurn['phases'][number]): string {
  const causes = Object.entries(p.boundRounds);
  if (causes.length === 0) return 'no';
  return causes.map(([cause, count]) => `${count}/${p.rounds.length} ${cause}`).join(', ');
}

/** The last turn of each variant, one row each. */
export function spotlightSummary(turns: LessonTurn[]): string {
  const last = new Map<string, LessonTurn>();
  for (const turn of turns) last.set(turn.variant, turn);
  if (last.size === 0) return 'spotlight: no turn completed';
  const groups = collapseGroups([...last.values()]);
  const short = (turn: LessonTurn, phase: string) => {
    const p = turn.phases.find((x) => x.phase === phase);
    return p ? formatRate(p.short.okPerSecond) : '-';
  };
  const rows = [...last.values()].map((turn) => [
    turn.variant,
    turn.quotaCores === null ? '-' : String(turn.quotaCores),
    short(turn, 'alone'),
    short(turn, 'beside_one_long'),
    short(turn, 'beside_all_workers_long'),
    formatSpread(formatRatio(turn.collapseRatio), formatRatio(turn.collapseLow), formatRatio(turn.collapseHigh)),
    String(groups.get(turn.variant) ?? '-'),
    turn.generatorBound ? 'YES' : 'no',
  ]);
  const header = [
    'variant',
    'quota',
    'alone/s',
    'beside 1 long/s',
    'beside all workers/s',
    'collapse (lowest-highest)',
    'group',
    'gen-bound',
  ];
  return [
    'spotlight: perf2 (fib(1)) requests per second, last turn of each variant (medians of the rounds)',
    ...aligned([header, ...rows], 1),
    'group: variants in the same group cannot be told apart by their collapse (their rounds overlap)',
  ].join('\n');
}

/** Every turn as plain data for --json (Infinity as the string "Infinity", NaN as null). */
export function spotlightJson(turns: LessonTurn[]) {
  const figures = (f: ProbeFigures) => ({
    ...f,
    p50Ms: jsonNumber(f.p50Ms),
    p99Ms: jsonNumber(f.p99Ms),
    maxMs: jsonNumber(f.maxMs),
  });
  return turns.map((turn) => ({
    ...turn,
    collapseRatio: jsonNumber(turn.collapseRatio),
    collapseLow: jsonNumber(turn.collapseLow),
    collapseHigh: jsonNumber(turn.collapseHigh),
    phases: turn.phases.map((p) => ({
      ...p,
      short: figures(p.short),
      long: p.long && figures(p.long),
      rounds: p.rounds.map((r) => ({ ...r, short: figures(r.short), long: r.long && figures(r.long) })),
    })),
  }));
}

const CSV_COLUMNS = [
  'variant',
  'rotation',
  'ended_at',
  'quota_cores',
  'phase',
  'hogs',
  'seconds',
  'short_per_second',
  'short_per_second_low',
  'short_per_second_high',
  'short_p50_ms',
  'short_p99_ms',
  'long_per_second',
  'workers_used',
  'collapse_ratio',
  'collapse_ratio_low',
  'collapse_ratio_high',
  'generator_bound',
];

/** One row per phase of every turn. */
export function spotlightCsv(turns: LessonTurn[]): string {
  const cell = (value: string | number | boolean | null | undefined) =>
    value === null || value === undefined || (typeof value === 'number' && Number.isNaN(value)) ? '' : String(value);
  const rows = turns.flatMap((turn) =>
    turn.phases.map((p) =>
      [
        turn.variant,
        turn.rotation,
        turn.endedAt,
        turn.quotaCores,
        p.phase,
        p.hogs,
        p.seconds.toFixed(3),
        p.short.okPerSecond.toFixed(2),
        p.shortLow.toFixed(2),
        p.shortHigh.toFixed(2),
        p.short.p50Ms,
        p.short.p99Ms,
        p.long?.okPerSecond.toFixed(2),
        p.workersUsed,
        turn.collapseRatio,
        turn.collapseLow,
        turn.collapseHigh,
        p.generator.generatorBound,
      ]
        .map(cell)
        .join(','),
    ),
  );
  return [CSV_COLUMNS.join(','), ...rows].join('\n');
}
