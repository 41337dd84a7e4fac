// Durations as users write them, the lab's one reading: `250ms`, `10s`, `2m`, `1h`, or a bare
// number of seconds. The flags of `lab load` and `lab sweep`, the scenario files, the sweep file
// and the load generator's control API all read them here, and refusals say the range the same way.

import { ConfigError } from './errors.js';
import { optionLabel, type OptionName, type OptionSpec } from './options.js';

/** A closed range of numbers: what a limit allows. */
export interface Limit {
  min: number;
  max: number;
}

const HOUR_MS = 3_600_000;
const DURATION = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/;
const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: HOUR_MS };

/** `250ms`, `10s`, `2m`, `1h`, or a bare number of seconds (a string or a number), in ms; null when it is none of those. */
export function parseDuration(value: unknown): number | null {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value * 1000 : null;
  const match = typeof value === 'string' ? DURATION.exec(value) : null;
  return match ? Number(match[1]) * UNITS[match[2] ?? 's']! : null;
}

/** A duration as a user would write it: 250ms, 10s, 2m, 168h. */
export function durationText(ms: number): string {
  if (ms === 0) return '0';
  if (ms % HOUR_MS === 0) return `${ms / HOUR_MS}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/** A duration limit as words: `from 100ms to 1h`. */
export function durationRange({ min, max }: Limit): string {
  return `from ${durationText(min)} to ${durationText(max)}`;
}

/**
 * A duration option's value in ms, within `limit` when one is given (the message names the option
 * and the range). A string is read by parseDuration (a bare number: seconds); a number is already
 * ms (typed values from tests, the control API and the resolvers).
 */
export function duration(name: OptionName, value: unknown, limit?: Limit): number {
  const ms = typeof value === 'number' ? value : parseDuration(value);
  if (ms === null || !Number.isFinite(ms) || ms < (limit?.min ?? 0) || ms > (limit?.max ?? Infinity)) {
    throw new ConfigError(
      optionLabel(name),
      `expected a duration ${limit ? `${durationRange(limit)} ` : ''}such as 250ms, 10s or 2m, got ${JSON.stringify(value)}`,
    );
  }
  return ms;
}

/** A duration option, in ms (within `limit` when one is given); its default may be null (unset: the resolver decides). */
export function durationOption<D extends number | null>(spell: {
  flag: string;
  env?: string;
  description: string;
  /** Absent: any duration from 0. */
  limit?: Limit;
  default: D;
  defaultText?: string;
}): OptionSpec<number | D> & { argument: string } {
  const { limit, ...rest } = spell;
  const shown = rest.defaultText ?? (typeof rest.default === 'number' ? durationText(rest.default) : undefined);
  return {
    argument: 'duration',
    ...rest,
    ...(shown === undefined ? {} : { defaultText: shown }),
    parse: (value) => duration(spell, value, limit),
  };
}
