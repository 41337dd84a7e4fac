// What a run asks of its scenario while it sends: the n of the next request, the rate now, which
// connections are active, the phase. Apart from scenario.ts, which reads and checks scenarios
// (zod, yaml: 0.1 s to load), so that the sending threads, which only run them, start without it.

import type { Probe, Scenario } from './scenario.js';

/** The n of one request of a probe (draws from the weights with `random`). */
export function pickN(probe: Pick<Probe, 'n'>, random: () => number = Math.random): number {
  if (typeof probe.n === 'number') return probe.n;
  const total = probe.n.reduce((sum, { weight }) => sum + weight, 0);
  let draw = random() * total;
  for (const { n, weight } of probe.n) {
    draw -= weight;
    if (draw < 0) return n;
  }
  return probe.n[probe.n.length - 1]!.n;
}

/** The probe's rate at `elapsedMs` into its active time (a ramp steps evenly from..to). */
export function rateAt(probe: Pick<Probe, 'rate'>, elapsedMs: number, activeMs: number): number {
  if (typeof probe.rate === 'number') return probe.rate;
  const { from, to, steps } = probe.rate;
  if (steps === 1) return from;
  const step = Math.min(steps - 1, Math.floor((elapsedMs / Math.max(1, activeMs)) * steps));
  return from + ((to - from) * step) / (steps - 1);
}

/** Whether connection `index` of a probe is active at `t` ms into the scenario. */
export function connectionActive(
  probe: Pick<Probe, 'startMs' | 'stopMs' | 'staggerMs'>,
  index: number,
  t: number,
  scenarioMs: number,
): boolean {
  const start = probe.startMs + index * probe.staggerMs;
  const stop = (probe.stopMs ?? scenarioMs) - index * probe.staggerMs;
  return t >= start && t < stop;
}

/** Whether a probe's connections join or leave during the scenario. */
export function isScheduled(probe: Pick<Probe, 'startMs' | 'stopMs' | 'staggerMs'>): boolean {
  return probe.startMs > 0 || probe.stopMs !== null || probe.staggerMs > 0;
}

/**
 * The scenario's phase at `t` ms into it: how many connections of each scheduled probe are
 * active ("1 long"), so results can be split by what else was running (the talk's demo: short
 * requests with 0, 1 and 2 long ones). Empty when no probe is scheduled.
 */
export function phaseAt(scenario: Scenario, t: number): string {
  const parts: string[] = [];
  for (const probe of scenario.probes) {
    if (!isScheduled(probe)) continue;
    let active = 0;
    for (let i = 0; i < probe.connections; i++) if (connectionActive(probe, i, t, scenario.durationMs)) active += 1;
    parts.push(`${active} ${probe.name}`);
  }
  return parts.join(', ');
}
