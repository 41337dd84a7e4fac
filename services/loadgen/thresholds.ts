// Pass/fail thresholds on a `lab load` run, as k6 users write them: `--threshold 'p99<10ms'` (every
// probe), `'short:p99<10ms'` (one probe), `'errors<1%'`, `'rate>=1000'`, repeatable, and the same
// strings under `thresholds:` in a scenario file. Each is checked at the end of the run against
// every target's figures for the probes it names, printed pass or fail with the measured value,
// and one failure makes `lab load` exit 99 (k6's code for a failed threshold).
//
// Grammar: [probe:]metric op value. Latency metrics (p50, p90, p99, p99.9, max, mean: the
// corrected latency in an open loop) take a duration with its unit, read by the lab's duration
// parser (a bare number would be seconds there and milliseconds in k6, so it is refused); rate
// takes requests per second (`1000`, `1000/s`); errors a share (`1%`) or a count (`5`).

import { ConfigError } from '../lab/errors.js';
import { parseDuration } from '../lab/duration.js';
import type { LatencySummary } from './recorder.js';

export const THRESHOLD_METRICS = ['p50', 'p90', 'p99', 'p99.9', 'max', 'mean', 'rate', 'errors'] as const;
export type ThresholdMetric = (typeof THRESHOLD_METRICS)[number];
export const THRESHOLD_OPS = ['<', '<=', '>', '>='] as const;
export type ThresholdOp = (typeof THRESHOLD_OPS)[number];

export interface Threshold {
  /** As written (trimmed): how it is printed and reported. */
  text: string;
  /** null: every probe. */
  probe: string | null;
  metric: ThresholdMetric;
  op: ThresholdOp;
  /** ms for latency metrics, req/s for rate, a share (0..1) or a count for errors. */
  value: number;
  /** errors only: `%` (a share of the requests) or a count. */
  unit: 'ms' | 'req/s' | 'share' | 'count';
}

const FORM = /^([a-z][a-z0-9_-]*:)?([a-z0-9.]+)(<=|>=|<|>|==|=|!=)(.*)$/;
const LATENCY: Record<string, keyof LatencySummary> = {
  p50: 'p50',
  p90: 'p90',
  p99: 'p99',
  'p99.9': 'p999',
  max: 'max',
  mean: 'mean',
};
const GRAMMAR = `[probe:]metric op value, metric one of ${THRESHOLD_METRICS.join(', ')}, op one of ${THRESHOLD_OPS.join(' ')} (e.g. p99<10ms, short:p99.9<=50ms, errors<1%, rate>=1000)`;

/** One threshold string; throws a ConfigError naming `option` (one line) when it is not one. */
export function parseThreshold(raw: unknown, option: string): Threshold {
  if (typeof raw !== 'string' || raw.trim() === '')
    throw new ConfigError(option, `expected ${GRAMMAR}, got ${JSON.stringify(raw) ?? String(raw)}`);
  const text = raw.trim();
  const shown = JSON.stringify(text.length > 60 ? `${text.slice(0, 57)}...` : text);
  const match = FORM.exec(text.replace(/\s+/g, ''));
  if (!match) throw new ConfigError(option, `expected ${GRAMMAR}, got ${shown}`);
  const [, probePart, metric, op, valueText] = match as unknown as [string, string | undefined, string, string, string];
  if (!(THRESHOLD_METRICS as readonly string[]).includes(metric))
    throw new ConfigError(
      option,
      `unknown metric ${JSON.stringify(metric)} in ${shown}: expected one of ${THRESHOLD_METRICS.join(', ')}`,
    );
  if (!(THRESHOLD_OPS as readonly string[]).includes(op))
    throw new ConfigError(
      option,
      `unknown operator ${JSON.stringify(op)} in ${shown}: expected one of ${THRESHOLD_OPS.join(' ')}`,
    );
  const base = {
    text,
    probe: probePart ? probePart.slice(0, -1) : null,
    metric: metric as ThresholdMetric,
    op: op as ThresholdOp,
  };
  if (valueText === '') throw new ConfigError(option, `no value after ${JSON.stringify(op)} in ${shown}`);
  if (metric in LATENCY) {
    if (/^\d+(\.\d+)?$/.test(valueText))
      throw new ConfigError(option, `give ${metric}'s unit in ${shown}: e.g. ${valueText}ms or ${valueText}s`);
    const ms = parseDuration(valueText);
    if (ms === null)
      throw new ConfigError(option, `expected a duration with its unit (such as 250ms, 10s or 2m) after ${op} in ${shown}`);
    return { ...base, value: ms, unit: 'ms' };
  }
  if (metric === 'rate') {
    const rate = /^(\d+(?:\.\d+)?)(?:(?:req)?\/s)?$/.exec(valueText);
    if (!rate) throw new ConfigError(option, `expected requests per second (e.g. 1000 or 1000/s) after ${op} in ${shown}`);
    return { ...base, value: Number(rate[1]), unit: 'req/s' };
  }
  const share = /^(\d+(?:\.\d+)?)%$/.exec(valueText);
  if (share) {
    const percent = Number(share[1]);
    if (percent > 100) throw new ConfigError(option, `expected a share from 0% to 100% in ${shown}`);
    return { ...base, value: percent / 100, unit: 'share' };
  }
  if (/^\d+$/.test(valueText)) return { ...base, value: Number(valueText), unit: 'count' };
  throw new ConfigError(option, `expected a share (1%) or a count of failed requests (5) after ${op} in ${shown}`);
}

/** The figures of one target and probe a threshold is checked against (a ProbeResult has them all). */
export interface Measured {
  target: string;
  probe: string;
  requests: number;
  ok: number;
  requestsPerSecond: number;
  latencyMs: LatencySummary;
}

export interface ThresholdCheck {
  threshold: string;
  target: string;
  probe: string;
  /** In the threshold's unit (ms, req/s, a share or a count); null when nothing was measured (no reply: a latency threshold fails). */
  measured: number | null;
  passed: boolean;
}

function compare(measured: number, op: ThresholdOp, value: number): boolean {
  switch (op) {
    case '<':
      return measured < value;
    case '<=':
      return measured <= value;
    case '>':
      return measured > value;
    case '>=':
      return measured >= value;
  }
}

function measure(threshold: Threshold, result: Measured): number | null {
  if (threshold.metric === 'rate') return result.requestsPerSecond;
  if (threshold.metric === 'errors') {
    const failed = result.requests - result.ok;
    if (threshold.unit === 'count') return failed;
    return result.requests === 0 ? null : failed / result.requests;
  }
  const value = result.latencyMs[LATENCY[threshold.metric]!];
  return Number.isFinite(value) ? value : null;
}

/**
 * Every threshold against every result it names (every target; one probe, or all). A threshold
 * that names no measured probe fails once, with nothing measured: a threshold never passes unseen.
 */
export function checkThresholds(thresholds: Threshold[], results: Measured[]): ThresholdCheck[] {
  const checks: ThresholdCheck[] = [];
  for (const threshold of thresholds) {
    const matching = results.filter((r) => threshold.probe === null || r.probe === threshold.probe);
    if (matching.length === 0)
      checks.push({ threshold: threshold.text, target: '-', probe: threshold.probe ?? '-', measured: null, passed: false });
    for (const result of matching) {
      const measured = measure(threshold, result);
      checks.push({
        threshold: threshold.text,
        target: result.target,
        probe: result.probe,
        measured,
        passed: measured !== null && compare(measured, threshold.op, threshold.value),
      });
    }
  }
  return checks;
}

/** A measured value in the threshold's own unit. */
export function formatMeasured(threshold: Pick<Threshold, 'metric' | 'unit'>, measured: number | null): string {
  if (measured === null) return 'nothing measured';
  switch (threshold.unit) {
    case 'ms':
      return measured < 1 ? `${(measured * 1000).toFixed(0)}us` : `${measured.toFixed(measured < 10 ? 3 : 1)}ms`;
    case 'req/s':
      return `${measured.toFixed(1)} req/s`;
    case 'share':
      return `${(measured * 100).toFixed(3)}%`;
    case 'count':
      return `${measured} failed`;
  }
}

/** One line per check: `threshold p99<10ms  eventloop/short  PASS  p99 = 0.21ms`. */
export function thresholdLines(thresholds: Threshold[], checks: ThresholdCheck[]): string[] {
  const byText = new Map(thresholds.map((t) => [t.text, t]));
  return checks.map((check) => {
    const threshold = byText.get(check.threshold)!;
    return `threshold ${check.threshold}: ${check.target}/${check.probe}: ${check.passed ? 'PASS' : 'FAIL'} (${threshold.metric} = ${formatMeasured(threshold, check.measured)})`;
  });
}
