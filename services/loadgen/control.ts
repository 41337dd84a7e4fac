// The load generator's live control, for the compose lab: GET /scenario shows what runs and how
// each target is doing; PUT /scenario switches the scenario, the rate, the connections or the
// think time, or narrows the load to some of the configured targets (by name: the API cannot
// aim the generator anywhere new). A switch stops the current run and starts the new one.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { ConfigError } from '../common/errors.js';
import type { LoadgenMetrics } from '../common/metrics.js';
import { applyOverrides, duration, type LoadOptions, type Overrides, type Target } from './options.js';
import { formatMs } from './report.js';
import { LoadRun } from './run.js';
import { loadScenario } from './scenario.js';

const updateSchema = z
  .object({
    scenario: z.string().min(1).optional(),
    connections: z.number().int().min(1).max(10_000).nullable().optional(),
    think: z.union([z.string(), z.number()]).nullable().optional(),
    rate: z.number().positive().nullable().optional(),
    targets: z.array(z.string()).min(1).optional(),
  })
  .strict();

export class Controller {
  private scenarioSpec: string;
  private overrides: Overrides;
  private targets: Target[];
  current: LoadRun;

  constructor(
    private readonly options: LoadOptions,
    private readonly metrics: LoadgenMetrics | null,
    private readonly onSwitch: (run: LoadRun) => void = () => {},
  ) {
    this.scenarioSpec = options.scenarioSpec;
    this.overrides = options.overrides;
    this.targets = options.targets;
    this.current = this.start();
  }

  private start(): LoadRun {
    const scenario = applyOverrides(loadScenario(this.scenarioSpec), this.overrides);
    const { durationMs, warmupMs, timeoutMs } = this.options;
    return new LoadRun(
      { scenario, targets: this.targets, durationMs: durationMs ?? scenario.durationMs, warmupMs, timeoutMs },
      this.metrics,
    );
  }

  /** PUT /scenario: validates the change (ConfigError naming the field), then switches runs. */
  update(body: unknown): object {
    const parsed = updateSchema.safeParse(body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new ConfigError(issue.path.join('.') || 'body', issue.message);
    }
    const change = parsed.data;
    const scenarioSpec = change.scenario ?? this.scenarioSpec;
    const overrides: Overrides = {
      connections: change.connections === undefined ? this.overrides.connections : change.connections,
      thinkMs:
        change.think === undefined
          ? this.overrides.thinkMs
          : change.think === null
            ? null
            : duration({ flag: 'think' }, change.think),
      rate: change.rate === undefined ? this.overrides.rate : change.rate,
    };
    let targets = this.targets;
    if (change.targets) {
      const known = new Map(this.options.targets.map((target) => [target.name, target]));
      targets = change.targets.map((name) => {
        const target = known.get(name);
        if (!target)
          throw new ConfigError(
            'targets',
            `unknown target ${JSON.stringify(name)}: expected some of ${[...known.keys()].join(', ')}`,
          );
        return target;
      });
    }
    loadScenario(scenarioSpec, 'scenario'); // throws before anything stops
    this.scenarioSpec = scenarioSpec;
    this.overrides = overrides;
    this.targets = targets;
    this.current.stop();
    this.current = this.start();
    this.onSwitch(this.current);
    return this.state();
  }

  /** GET /scenario. */
  state(): object {
    const run = this.current;
    const seconds = Math.max(1e-3, run.measuredMs() / 1000);
    return {
      scenario: { spec: this.scenarioSpec, name: run.config.scenario.name, description: run.config.scenario.description },
      overrides: {
        connections: this.overrides.connections,
        think: this.overrides.thinkMs === null ? null : formatMs(this.overrides.thinkMs),
        rate: this.overrides.rate,
      },
      targets: this.targets.map((t) => t.name),
      elapsedSeconds: Number((run.elapsedMs() / 1000).toFixed(1)),
      generator: run.health.report(),
      stats: run.recorders.map((recorder) => {
        const latency = recorder.summary();
        return {
          target: recorder.key.target,
          scenario: recorder.key.scenario,
          probe: recorder.key.probe,
          requests: recorder.requests,
          requestsPerSecond: Number((recorder.requests / seconds).toFixed(2)),
          errors: recorder.errors,
          p50Ms: latency.p50,
          p99Ms: latency.p99,
          fairness: recorder.fairness(),
        };
      }),
    };
  }

  /** The HTTP routes, next to /metrics and /healthz. */
  routes = (req: IncomingMessage, res: ServerResponse, path: string): boolean => {
    if (path !== '/scenario') return false;
    const reply = (status: number, body: object) =>
      res.writeHead(status, { 'content-type': 'application/json' }).end(`${JSON.stringify(body, null, 2)}\n`);
    if (req.method === 'GET') {
      reply(200, this.state());
    } else if (req.method === 'PUT') {
      let text = '';
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => (text += chunk.length + text.length < 65_536 ? chunk : ''));
      req.on('end', () => {
        try {
          reply(200, this.update(text.trim() === '' ? {} : JSON.parse(text)));
        } catch (error) {
          reply(400, { error: error instanceof Error ? error.message : String(error) });
        }
      });
    } else {
      res.writeHead(405, { allow: 'GET, PUT' }).end();
    }
    return true;
  };
}
