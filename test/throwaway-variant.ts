// A throwaway variant, for the tests that check that a variant is one folder plus one row: a row
// that exists only here, in a temporary table (the lab's rows and this one), with a trivial
// plug-in built from the shared inline executor, an option, a metric, dashboard panels and a
// companion of its own, each through its row's hooks. test/throwaway-variant.test.ts checks that
// the generated files (compose, Prometheus, .env, the Makefile's list, the dashboards) and the
// spotlight pick it up; test/conformance.test.ts runs the shared suite on it. No shared code names it.

import { Counter } from 'prom-client';
import { rate, ONE, V, type VariantDashboards } from '../services/lab/dashboards.js';
import { intOption, resolveOptions, type OptionSpec } from '../services/lab/options.js';
import { resolveServeOptions, serveOptions } from '../services/server/options.js';
import { defineVariant, type Variant } from '../services/server/plugin.js';
import { inlineExecutor, startServer } from '../services/server/server.js';
import { VARIANTS } from '../services/variants/index.js';

export const THROWAWAY_NAME = 'throwaway';
/** Its own series: registered by its plug-in into the server's registry. */
export const THROWAWAY_METRIC = 'throwaway_tally_total';

interface ThrowawayOptions {
  /** What each answered request adds to its tally. */
  tallyStep: number;
}

const dashboards: VariantDashboards = {
  overviewRows: [
    {
      title: 'The throwaway variant',
      panels: [
        {
          title: 'Throwaway tally per second',
          description: 'What the throwaway variant adds up per second: TALLY_STEP per answered request.',
          unit: 'ops',
          queries: [{ expr: `sum by (variant) (${rate(THROWAWAY_METRIC, V)})`, legend: '{{variant}}' }],
        },
      ],
    },
  ],
  variantPanels: [
    {
      title: 'Throwaway tally',
      description: 'The throwaway variant’s tally so far.',
      unit: 'none',
      queries: [{ expr: `sum(${THROWAWAY_METRIC}{${ONE}})`, legend: 'tally' }],
    },
  ],
};

export const throwaway: Variant = defineVariant<ThrowawayOptions>({
  name: THROWAWAY_NAME,
  hostPort: 25099,
  group: 'throwaway',
  model: 'fib inline on the event loop, tallied',
  shows: 'that a variant is one folder plus one row',
  options: {
    tallyStep: intOption({
      flag: '--tally-step',
      env: 'TALLY_STEP',
      description: 'what each answered request adds to the tally',
      default: 1,
      min: 1,
      max: 1000,
    }),
  },
  connectionCap: 1000,
  idleTimeoutMs: 300_000,
  takesTurns: false,
  parallelism: 'single',
  interruptible: false,
  limits: { memory: '128m', pids: 32 },
  dashboards,
  companions: {
    dependsOn: ['throwaway-peer'],
    services: `  # throwaway-peer: a companion of the throwaway variant (a test's row; never started).
  throwaway-peer:
    image: \${THROWAWAY_PEER_IMAGE:-busybox:1.36}
    command: ["sleep", "infinity"]
    cpus: 0.1
    mem_limit: 16m
`,
    scrape: `  - job_name: throwaway-peer
    static_configs:
      - targets: ["throwaway-peer:9100"]
`,
    env: [['THROWAWAY_PEER_IMAGE', 'busybox:1.36', "the throwaway variant's companion image"]],
  },
  plugin: {
    level: 'executor',
    createExecutor: async (ctx) => {
      const tally = new Counter({
        name: THROWAWAY_METRIC,
        help: 'What the throwaway variant tallied.',
        registers: [ctx.metrics.registry],
      });
      const inline = inlineExecutor();
      return {
        ...inline,
        run: async (n, signal) => {
          const result = await inline.run(n, signal);
          tally.inc(ctx.own.tallyStep);
          return result;
        },
      };
    },
  },
});

/** The temporary table: the lab's rows, then the throwaway one. */
export const THROWAWAY_TABLE: readonly Variant[] = [...VARIANTS, throwaway];

/** A variant served by this process (the shared server, started in-process), as the tests use one run by `lab serve`. */
export interface InProcessVariant {
  variant: string;
  port: number;
  metricsPort: number;
  /** The process it runs in: this one. */
  child: { pid: number };
  /** What `lab serve` would have written to stderr (the drain's note). */
  stderr(): string;
  /**
   * SIGTERM (or SIGINT): drains as `lab serve` does on the signal and resolves with the exit code
   * it would exit with (0 drained, 1 the shutdown failed); SIGKILL: ends what is left at once (null, as a killed process).
   */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Starts `row` with the shared server in this process on free ports, its options read from `env`
 * by their variables (PORT, MAX_CONNECTIONS, TALLY_STEP, ...) as `lab serve` reads them.
 */
export async function serveInProcess(row: Variant, env: Record<string, string> = {}): Promise<InProcessVariant> {
  const fromEnv = (specs: Readonly<Record<string, OptionSpec<unknown>>>) =>
    Object.fromEntries(Object.entries(specs).map(([key, spec]) => [key, spec.env === undefined ? undefined : env[spec.env]]));
  const options = resolveServeOptions({ ...fromEnv(serveOptions), host: '127.0.0.1', port: 0, metricsPort: 0 });
  const own = resolveOptions(row.options, fromEnv(row.options));
  const server = await startServer(row, options, own);
  let log = '';
  let exit: Promise<number> | null = null;
  return {
    variant: row.name,
    port: server.fib.port,
    metricsPort: server.http!.port,
    child: { pid: process.pid },
    stderr: () => log,
    stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (exit === null) {
        log += `${row.name}: ${signal}: draining (up to ${options.drainTimeoutMs} ms)\n`;
        exit = server.shutdown().then(
          () => 0,
          (error: Error) => {
            log += `${row.name}: shutdown failed: ${error.message}\n`;
            return 1;
          },
        );
      }
      if (signal !== 'SIGKILL') return exit;
      server.abort(); // what is left is answered `unavailable` now, as a killed process's clients would lose it
      return exit.then(() => null);
    },
  };
}
