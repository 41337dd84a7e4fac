// How the spotlight's turns are shown by `lab load --spotlight`: a small table per turn as each
// one ends (phase rows: perf2's requests per second, p50 and p99, the hogs' rate), a summary of
// the last turn per variant at the end, or every turn as JSON or CSV.

import { formatMs, healthLine } from './report.js';
import { jsonNumber, type LessonTurn } from './spotlight.js';

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

function collapseText(turn: LessonTurn): string {
  if (Number.isNaN(turn.collapseRatio)) return 'collapse -: no short request was answered alone';
  if (!Number.isFinite(turn.collapseRatio)) return 'collapse inf: no short request was answered beside one long request';
  return `collapse ${formatRatio(turn.collapseRatio)} (perf2 alone / beside one long request)`;
}

/** One turn, as it ends. */
export function turnTable(turn: LessonTurn): string {
  const quota = turn.quotaCores === null ? 'quota unknown' : `quota ${turn.quotaCores} cores`;
  // For a thread or process per connection, fib_workers counts live connections: the quota says how many can run.
  const workers = turn.allWorkersHogs === null ? '' : `, ${turn.allWorkersHogs} worker${turn.allWorkersHogs === 1 ? '' : 's'}`;
  const showWorkers = turn.phases.some((p) => p.workersUsed !== null);
  const header = ['  phase', 'hogs', 'short/s', 'p50', 'p99', 'long/s', ...(showWorkers ? ['workers used'] : [])];
  const rows = turn.phases.map((p) => [
    `  ${p.phase}`,
    String(p.hogs),
    formatRate(p.short.okPerSecond),
    formatMs(p.short.p50Ms),
    formatMs(p.short.p99Ms),
    p.long ? formatRate(p.long.okPerSecond) : '-',
    ...(showWorkers ? [p.workersUsed === null ? '-' : String(p.workersUsed)] : []),
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
    (b.generator.generatorBound === a.generator.generatorBound && b.generator.cpuCores > a.generator.cpuCores)
      ? b
      : a,
  );
  return [
    `spotlight ${turn.variant} (rotation ${turn.rotation}, ${turn.endedAt}): ${quota}${workers}; ${collapseText(turn)}`,
    ...aligned([header, ...rows], 1),
    ...errors,
    ...turn.notes.map((note) => `  note: ${note}`),
    `  ${busiest.phase}: ${healthLine(busiest.generator)}`,
  ].join('\n');
}

/** The last turn of each variant, one row each. */
export function spotlightSummary(turns: LessonTurn[]): string {
  const last = new Map<string, LessonTurn>();
  for (const turn of turns) last.set(turn.variant, turn);
  if (last.size === 0) return 'spotlight: no turn completed';
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
    formatRatio(turn.collapseRatio),
    turn.generatorBound ? 'YES' : 'no',
  ]);
  const header = ['variant', 'quota', 'alone/s', 'beside 1 long/s', 'beside all workers/s', 'collapse', 'gen-bound'];
  return ['spotlight: perf2 (fib(1)) requests per second, last turn of each variant', ...aligned([header, ...rows], 1)].join(
    '\n',
  );
}

/** Every turn as plain data for --json (Infinity as the string "Infinity", NaN as null). */
export function spotlightJson(turns: LessonTurn[]) {
  return turns.map((turn) => ({
    ...turn,
    collapseRatio: jsonNumber(turn.collapseRatio),
    phases: turn.phases.map((p) => ({
      ...p,
      short: { ...p.short, p50Ms: jsonNumber(p.short.p50Ms), p99Ms: jsonNumber(p.short.p99Ms), maxMs: jsonNumber(p.short.maxMs) },
      long: p.long && {
        ...p.long,
        p50Ms: jsonNumber(p.long.p50Ms),
        p99Ms: jsonNumber(p.long.p99Ms),
        maxMs: jsonNumber(p.long.maxMs),
      },
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
  'short_p50_ms',
  'short_p99_ms',
  'long_per_second',
  'workers_used',
  'collapse_ratio',
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
        p.short.p50Ms,
        p.short.p99Ms,
        p.long?.okPerSecond.toFixed(2),
        p.workersUsed,
        turn.collapseRatio,
        p.generator.generatorBound,
      ]
        .map(cell)
        .join(','),
    ),
  );
  return [CSV_COLUMNS.join(','), ...rows].join('\n');
}
