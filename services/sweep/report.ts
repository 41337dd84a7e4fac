// `lab report <sweep.json> --out report.html`: one self-contained HTML file from a sweep. The
// charts are drawn by uPlot, whose script and stylesheet are inlined from node_modules, so the
// page fetches nothing when it is viewed: throughput against quota per variant beside the ideal
// line (quota x 1 / t(fib(27))) and the USL fit, collapse against quota, the short requests' p99
// beside a hog against quota, then the fitted USL parameters and every point in tables.

import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { ConfigError } from '../lab/errors.js';
import { readSweepFile, type SweepFile, type SweepPoint } from './file.js';
import { dataBlock, join, page, runRecordLine, trusted } from './html.js';
import { fitUsl, usl, type UslResult } from './usl.js';

export interface ReportOptions {
  sweep: string;
  out: string;
}

export function resolveReportOptions(raw: { sweep?: string; out?: string }): ReportOptions {
  if (!raw.sweep) throw new ConfigError('<sweep.json>', 'give the sweep file lab sweep wrote');
  const out = raw.out ?? 'report.html';
  if (!out.endsWith('.html')) throw new ConfigError('--out', `expected a file name ending in .html, got ${JSON.stringify(out)}`);
  return { sweep: raw.sweep, out };
}

/** Checks the sweep file (a ConfigError, exit 2, naming its first wrong field), then writes the page. */
export function runReport(options: ReportOptions): void {
  const sweep = readSweepFile(options.sweep);
  if (sweep.points.length === 0) {
    throw new ConfigError(options.sweep, 'points: expected at least one point (the sweep has measured none yet)');
  }
  writeFileSync(options.out, renderReport(sweep));
  // Names on a terminal: no control character from the file reaches it.
  const fits = variantsOf(sweep).map((v) => `${v.replace(/\p{Cc}/gu, '?')}: ${describeFit(fitFor(sweep, v))}`);
  console.log(`wrote ${options.out} (${sweep.points.length} points)\n${fits.join('\n')}`);
}

export function variantsOf(sweep: SweepFile): string[] {
  return [...new Set(sweep.points.map((p) => p.variant))];
}

export function fitFor(sweep: SweepFile, variant: string): UslResult {
  const points = sweep.points.filter((p) => p.variant === variant);
  return fitUsl(
    points.map((p) => p.cpus * p.quotaHolders),
    points.map((p) => p.throughput),
  );
}

function describeFit(result: UslResult): string {
  if (!result.fit) return result.note;
  const { lambda, sigma, kappa, rmse, r2 } = result.fit;
  return `lambda ${lambda.toFixed(0)} req/s, sigma ${sigma.toFixed(3)}, kappa ${kappa.toFixed(4)}, RMSE ${rmse.toFixed(1)} req/s, R2 ${r2 === null ? '-' : r2.toFixed(3)}`;
}

const require = createRequire(import.meta.url);

/** The data the page's script draws, computed here so the page only plots. */
interface ChartData {
  variants: Array<{
    name: string;
    points: SweepPoint[];
    fit: { lambda: number; sigma: number; kappa: number } | null;
  }>;
  ideal: number;
  maxCpus: number;
}

export function renderReport(sweep: SweepFile): string {
  const uplotJs = readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js'), 'utf8');
  const uplotCss = readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8');
  const variants = variantsOf(sweep);
  const fits = new Map(variants.map((v) => [v, fitFor(sweep, v)]));
  const baseline = sweep.baseline;
  const ideal = baseline ? baseline.requestsPerSecondPerCore : 0;
  const data: ChartData = {
    variants: variants.map((name) => {
      const fit = fits.get(name)!.fit;
      return {
        name,
        points: sweep.points.filter((p) => p.variant === name).sort((a, b) => a.cpus - b.cpus),
        fit: fit && { lambda: fit.lambda, sigma: fit.sigma, kappa: fit.kappa },
      };
    }),
    ideal,
    maxCpus: Math.max(1, ...sweep.points.map((p) => p.cpus * p.quotaHolders)),
  };
  const fitRows = variants.map((name) => {
    const result = fits.get(name)!;
    if (!result.fit) return page`<tr><td>${name}</td><td colspan="6" class="note">${result.note}</td></tr>`;
    const f = result.fit;
    return page`<tr><td>${name}</td><td>${f.lambda.toFixed(0)}</td><td>${ideal ? (f.lambda / ideal).toFixed(2) : '-'}</td><td>${f.sigma.toFixed(3)}</td><td>${f.kappa.toFixed(4)}</td><td>${f.rmse.toFixed(1)} req/s${f.r2 === null ? '' : `, R² ${f.r2.toFixed(3)}`}</td><td class="note">${result.note ?? peakNote(f.sigma, f.kappa)}</td></tr>`;
  });
  const pointRows = sweep.points.map((p) => {
    const cells = [
      p.variant,
      String(p.cpus),
      p.workers === null ? '-' : String(p.workers),
      p.throughput.toFixed(0),
      p.ideal.toFixed(0),
      (p.throughput / p.ideal).toFixed(2),
      p.coresUsed === null ? '-' : p.coresUsed.toFixed(2),
      p.throttledShare === null ? '-' : `${(p.throttledShare * 100).toFixed(0)}%`,
      p.generatorCores === undefined ? '-' : p.generatorCores.toFixed(2),
      p.hostBusyCores === undefined || p.hostBusyCores === null ? '-' : p.hostBusyCores.toFixed(2),
      p.collapse.aloneRps.toFixed(0),
      p.collapse.besideRps.toFixed(0),
      p.collapse.ratio === null ? '∞' : `${p.collapse.ratio.toFixed(1)}×`,
      p.shortP99Ms === null ? '-' : p.shortP99Ms.toFixed(2),
      p.generatorBound ? 'yes' : 'no',
    ];
    const why = p.generatorBound ? page` title="${p.generatorReasons.join('; ')}"` : '';
    return page`<tr${why}>${cells.map((c) => page`<td>${c}</td>`)}</tr>`;
  });
  const infinite = sweep.points.filter((p) => p.collapse.infinite).map((p) => `${p.variant} at ${p.cpus}`);
  const s = sweep.settings;
  const baselineText = baseline
    ? page`t(fib(${baseline.n})) = ${(baseline.secondsPerRequest * 1000).toFixed(3)} ms, one connection to <code>${baseline.variant}</code> with all the host's CPUs: the ideal line is quota × ${ideal.toFixed(0)} req/s`
    : 'no baseline was measured';
  // Every value below goes through page``, which escapes it (html.ts); the only markup written as
  // it is comes from this module or from uPlot's files. The data the charts draw is JSON in a
  // script block the browser never runs, every `<` in it escaped, so no string in it can end the block.
  return page`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Concurrency lab: CPU quota sweep</title>
<style>${trusted(uplotCss)}</style>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1240px; padding: 0 16px; color: #1d1d1f; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; }
.meta { color: #555; } .note { color: #666; font-size: 12px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(380px, 1fr)); gap: 12px 20px; }
.chart h3 { font-size: 14px; margin: 8px 0 2px; }
table { border-collapse: collapse; margin: 8px 0; font-size: 13px; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: right; } th:first-child, td:first-child { text-align: left; }
code { background: #f3f3f3; padding: 0 3px; }
</style>
</head>
<body>
<h1>Concurrency lab: throughput, collapse and latency against the CPU quota</h1>
<p class="meta">${sweep.mode} on ${sweep.host.cpus} CPUs (${sweep.isolation}); ${sweep.points.length} points, measured ${sweep.startedAt.slice(0, 16).replace('T', ' ')} to ${sweep.updatedAt.slice(0, 16).replace('T', ' ')} UTC. Baseline: ${baselineText}.
Run record: ${runRecordLine(sweep.run)}.
Each point: throughput of fib(${s.cpuN}) on ${s.connectionsPerCore} connections per core of quota (${s.throughputMs / 1000} s after ${s.warmupMs / 1000} s of warm-up); fib(${s.shortN}) on one connection alone, then beside one fib(${s.longN}) hog (${s.collapseMs / 1000} s each).</p>

<h2>Throughput against quota</h2>
<p class="note">Dots: fib(${s.cpuN}) answered per second. Grey: the ideal line, every core of quota turned into fib(${s.cpuN}) at the baseline's pace. Dashed: the Universal Scalability Law fitted to the dots.</p>
<div class="grid" id="throughput"></div>

<h2>Collapse against quota</h2>
<p class="note">The talk's perf2: short requests per second alone divided by short requests per second beside one long request (1× means the long request costs the short ones nothing). Log scale.${infinite.length ? page` Not drawn, because no short request was answered beside the hog (collapse ∞): ${infinite.join(', ')}.` : ''}</p>
<div class="chart" id="collapse"></div>

<h2>Short-request p99 beside one hog, against quota</h2>
<p class="note">The 99th percentile latency of fib(${s.shortN}) while one fib(${s.longN}) runs on another connection, ms, log scale: what head-of-line blocking does to a client.</p>
<div class="chart" id="p99"></div>

<h2>Universal Scalability Law per variant</h2>
<p class="note">X(N) = λN / (1 + σ(N−1) + κN(N−1)) over the quota N. λ: throughput of one core; σ (contention): the share of the work that serializes, so extra cores add less and less (σ = 1: one core's worth at most); κ (coherency): a cost paid for every pair of cores, which makes throughput peak and then fall. σ = κ = 0 is the ideal line. Fitted by least squares (Levenberg-Marquardt).</p>
<table><thead><tr><th>variant</th><th>λ req/s</th><th>λ / ideal</th><th>σ contention</th><th>κ coherency</th><th>fit error</th><th></th></tr></thead>
<tbody>${join(fitRows, '\n')}</tbody></table>

<h2>Every point</h2>
<table><thead><tr><th>variant</th><th>cpus</th><th>workers</th><th>req/s</th><th>ideal</th><th>ratio</th><th>cores used</th><th>throttled</th><th>generator cores</th><th>host busy cores</th><th>alone/s</th><th>beside/s</th><th>collapse</th><th>p99 beside, ms</th><th>generator-bound (hover: why)</th></tr></thead>
<tbody>${join(pointRows, '\n')}</tbody></table>

<script>${trusted(uplotJs)}</script>
<script type="application/json" id="sweep-data">${dataBlock(data)}</script>
<script>
${trusted(PAGE_SCRIPT)}
</script>
</body>
</html>
`.text;
}

function peakNote(sigma: number, kappa: number): string {
  if (kappa <= 1e-9) return sigma < 0.02 ? 'close to linear' : 'levels off, no peak';
  const peak = Math.sqrt((1 - sigma) / kappa);
  return `would peak near ${peak.toFixed(1)} cores`;
}

// Runs in the page: reads DATA from the JSON block, draws the charts from it and counts them in
// window.labCharts (the browser test waits for every chart to be drawn). The same USL formula as
// usl.ts, for the fitted curve.
const PAGE_SCRIPT = `
const DATA = JSON.parse(document.getElementById('sweep-data').textContent);
const COLORS = ['#1f77b4','#d62728','#2ca02c','#ff7f0e','#9467bd','#8c564b','#e377c2','#17becf','#bcbd22','#7f7f7f'];
const usl = ${usl.toString()};
window.labCharts = { expected: 0, drawn: new Set() };
function chart(el, id, opts, data) {
  window.labCharts.expected++;
  opts.hooks = { draw: [() => window.labCharts.drawn.add(id)] };
  return new uPlot(opts, data, el);
}
const quotas = [...new Set(DATA.variants.flatMap((v) => v.points.map((p) => p.cpus * p.quotaHolders)))].sort((a, b) => a - b);
// Ticks at the quotas measured (and at 0 on the throughput charts).
const xAxis = (zero) => ({ label: 'CPU quota (cores)', splits: () => (zero ? [0, ...quotas] : quotas), values: (u, v) => v.map((x) => String(+x.toFixed(2))) });
const points = (color) => ({ show: true, size: 9, fill: color, stroke: color });
// Throughput: one chart per variant.
const grid = document.getElementById('throughput');
const maxX = DATA.maxCpus * 1.05;
DATA.variants.forEach((v, i) => {
  const color = COLORS[i % COLORS.length];
  const measured = new Map(v.points.map((p) => [p.cpus * p.quotaHolders, p.throughput]));
  const xs = [...new Set([...Array.from({ length: 41 }, (_, k) => (k * maxX) / 40), ...measured.keys()])].sort((a, b) => a - b);
  const box = document.createElement('div');
  box.className = 'chart';
  box.innerHTML = '<h3></h3>';
  box.querySelector('h3').textContent = v.name;
  grid.appendChild(box);
  const series = [{ label: 'quota' }, { label: 'measured', stroke: color, width: 0, paths: () => null, points: points(color) },
    { label: 'ideal', stroke: '#999', width: 1.5 }];
  const data = [xs, xs.map((x) => (measured.has(x) ? measured.get(x) : null)), xs.map((x) => x * DATA.ideal)];
  if (v.fit) {
    series.push({ label: 'USL fit', stroke: color, width: 1.5, dash: [6, 4], points: { show: false } });
    data.push(xs.map((x) => (x === 0 ? 0 : usl(v.fit.lambda, v.fit.sigma, v.fit.kappa, x))));
  }
  chart(box, 'throughput-' + v.name, {
    width: 390, height: 240, legend: { live: false },
    scales: { x: { time: false, range: [0, maxX] }, y: { range: (u, lo, hi) => [0, Math.max(hi, DATA.ideal * maxX) * 1.05] } },
    axes: [xAxis(true), { label: 'req/s', size: 60 }],
    series,
  }, data);
});
// Collapse and p99: every variant on one chart each.
const allX = quotas;
function byVariant(el, id, label, value) {
  const series = [{ label: 'quota' }];
  const data = [allX];
  DATA.variants.forEach((v, i) => {
    const color = COLORS[i % COLORS.length];
    const at = new Map(v.points.map((p) => [p.cpus * p.quotaHolders, value(p)]));
    series.push({ label: v.name, stroke: color, width: 2, spanGaps: true, points: points(color) });
    data.push(allX.map((x) => { const y = at.get(x); return y == null || !(y > 0) ? null : y; }));
  });
  chart(el, id, {
    width: Math.min(1200, el.parentElement.clientWidth - 10), height: 340, legend: { live: false },
    scales: { x: { time: false }, y: { distr: 3 } },
    axes: [xAxis(false), { label: label, size: 70 }],
    series,
  }, data);
}
byVariant(document.getElementById('collapse'), 'collapse', 'alone / beside a hog (×)', (p) => p.collapse.ratio);
byVariant(document.getElementById('p99'), 'p99', 'short p99 beside a hog (ms)', (p) => p.shortP99Ms);
`;
