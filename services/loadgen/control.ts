// The load generator's live control, for the compose lab:
// - GET /scenario shows what runs and how each target is doing; PUT /scenario switches the
//   scenario, the rate, the connections or the think time, or narrows the load to some of the
//   configured targets (by name: the API cannot aim the generator anywhere new). Options left
//   out keep their current value; null clears an override. A switch stops the current run and
//   starts the new one, and the fairness series of what was switched off are removed.
// - PUT /pause {"seconds": N} pauses all load (background and spotlight) for N seconds from
//   now, answering once it has stopped: a lease, renewed by the next PUT, so a crashed client
//   (the quota sweep) never leaves the lab paused; DELETE /pause resumes at once.
// - GET /spotlight shows the rotation and each variant's last figures; PUT /spotlight
//   {"variants": [...]} changes the rotation.
// - POST /measure runs one measured stretch (measure.ts) against a configured target, while all
//   load is paused: how `lab sweep` measures the compose lab from inside its network, on the
//   generator's own cores, rather than from the host through Docker's port forwarding.
// Bodies are JSON of at most MAX_BODY_BYTES; a longer one is refused with 413.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { ConfigError } from '../common/errors.js';
import type { LoadgenMetrics } from '../common/metrics.js';
import { applyOverrides, duration, type LoadOptions, type Overrides, type Target } from './options.js';
import type { PauseGate } from './pause.js';
import { formatMs } from './report.js';
import { LoadRun } from './run.js';
import { loadScenario } from './scenario.js';
import { measure } from './measure.js';
import { FIB_MAX_N_LIMIT } from '../common/protocol.js';
import type { Spotlight } from './spotlight.js';

/** Connections one probe of POST /measure may open. */
export const MAX_MEASURE_CONNECTIONS = 256;

/** The largest request body the control API reads. */
export const MAX_BODY_BYTES = 64 * 1024;
/** The longest lease PUT /pause grants, s. */
export const MAX_PAUSE_SECONDS = 3600;
/** How long PUT /pause waits for the load to stop before it answers anyway. */
const QUIET_TIMEOUT_MS = 10_000;

const updateSchema = z
  .object({
    scenario: z.string().min(1).optional(),
    connections: z.number().int().min(1).max(10_000).nullable().optional(),
    think: z.union([z.string(), z.number()]).nullable().optional(),
    rate: z.number().positive().nullable().optional(),
    targets: z.array(z.string()).min(1).optional(),
  })
  .strict();

const pauseSchema = z.object({ seconds: z.number().min(1).max(MAX_PAUSE_SECONDS) }).strict();

const spotlightSchema = z.object({ variants: z.array(z.string()).min(1) }).strict();

const measureSchema = z
  .object({
    target: z.string().min(1),
    probes: z
      .array(
        z
          .object({
            name: z.string().regex(/^[a-z][a-z0-9_]*$/),
            n: z.number().int().min(0).max(FIB_MAX_N_LIMIT),
            connections: z.number().int().min(1).max(MAX_MEASURE_CONNECTIONS),
            thinkMs: z.number().min(0).max(60_000).optional(),
            connectPerRequest: z.boolean().optional(),
          })
          .strict(),
      )
      .min(1)
      .max(4),
    durationMs: z.number().min(100).max(600_000),
    warmupMs: z.number().min(0).max(60_000).optional(),
    dropLateReplies: z.boolean().optional(),
  })
  .strict();

/** A request the API refuses: the status and one line saying why. */
class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function parsed<T>(schema: z.ZodType<T>, body: unknown): T {
  const result = schema.safeParse(body);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new ConfigError(issue.path.join('.') || 'body', issue.message);
  }
  return result.data;
}

export class Controller {
  private scenarioSpec: string;
  private overrides: Overrides;
  private targets: Target[];
  /** The background load; null while none runs (a spotlight alone). */
  current: LoadRun | null;
  /** The spotlight, when one runs: GET and PUT /spotlight reach it. */
  spotlight: Spotlight | null = null;
  private stopped = false;
  private pausedUntil: number | null = null;
  private leaseTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly options: LoadOptions,
    private readonly metrics: LoadgenMetrics | null,
    readonly gate: PauseGate,
    private readonly onSwitch: (run: LoadRun) => void = () => {},
  ) {
    this.scenarioSpec = options.scenarioSpec;
    this.overrides = options.overrides;
    this.targets = options.targets;
    this.current = options.background ? this.start() : null;
    metrics?.paused.set(0);
  }

  private start(): LoadRun {
    const scenario = applyOverrides(loadScenario(this.scenarioSpec), this.overrides);
    const { durationMs, warmupMs, timeoutMs } = this.options;
    return new LoadRun(
      {
        scenario,
        targets: this.targets,
        durationMs: durationMs ?? scenario.durationMs,
        warmupMs,
        timeoutMs,
        gate: this.gate,
      },
      this.metrics,
    );
  }

  /** Stops the background load for good (and ends a lease). */
  stop(): void {
    this.stopped = true;
    this.current?.stop();
    this.resume();
  }

  /** Resolves once the background run that is current at the end has finished. */
  async finished(): Promise<void> {
    let run: LoadRun | null;
    do {
      run = this.current;
      await run?.finished;
    } while (run !== this.current);
  }

  /** PUT /scenario: validates the change (ConfigError naming the field), then switches runs. */
  update(body: unknown): object {
    const change = parsed(updateSchema, body);
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
    if (this.stopped) throw new HttpError(503, 'the load generator is stopping');
    this.scenarioSpec = scenarioSpec;
    this.overrides = overrides;
    this.targets = targets;
    const previous = this.current;
    previous?.stop();
    this.current = this.start();
    this.removeStaleFairness(previous);
    this.onSwitch(this.current);
    return this.state();
  }

  /** The fairness series of the previous run that the new one does not have: gone, not left stale. */
  private removeStaleFairness(previous: LoadRun | null): void {
    if (!previous || !this.metrics) return;
    const key = (l: { variant: string; scenario: string; probe: string }) => `${l.variant}\0${l.scenario}\0${l.probe}`;
    const kept = new Set((this.current?.fairnessLabels() ?? []).map(key));
    for (const labels of previous.fairnessLabels()) if (!kept.has(key(labels))) this.metrics.fairness.remove(labels);
  }

  /**
   * PUT /pause: all load pauses until `seconds` from now (a renewable lease). Answers once the
   * load has stopped (requests in flight back, connections closed, the spotlight's turn over),
   * or after QUIET_TIMEOUT_MS with `quiet: false`, so the client measures a lab left alone.
   */
  async pause(seconds: number): Promise<object> {
    if (this.leaseTimer) clearTimeout(this.leaseTimer);
    this.pausedUntil = Date.now() + seconds * 1000;
    this.leaseTimer = setTimeout(() => this.resume(), seconds * 1000);
    this.gate.setAll(true);
    this.metrics?.paused.set(1);
    const started = Date.now();
    const spotlightIdle = (await this.spotlight?.idle(QUIET_TIMEOUT_MS)) ?? true;
    const backgroundQuiet = await this.gate.quiet(null, Math.max(1, QUIET_TIMEOUT_MS - (Date.now() - started)));
    return { ...this.pauseState(), quiet: spotlightIdle && backgroundQuiet };
  }

  /** DELETE /pause, or the lease ran out. */
  resume(): object {
    if (this.leaseTimer) clearTimeout(this.leaseTimer);
    this.leaseTimer = null;
    this.pausedUntil = null;
    this.gate.setAll(false);
    this.metrics?.paused.set(0);
    return this.pauseState();
  }

  private pauseState() {
    return { pausedUntil: this.pausedUntil === null ? null : new Date(this.pausedUntil).toISOString() };
  }

  /** GET /scenario. */
  state(): object {
    const run = this.current;
    const seconds = Math.max(1e-3, (run?.measuredMs() ?? 0) / 1000);
    return {
      scenario: run
        ? { spec: this.scenarioSpec, name: run.config.scenario.name, description: run.config.scenario.description }
        : null,
      overrides: {
        connections: this.overrides.connections,
        think: this.overrides.thinkMs === null ? null : formatMs(this.overrides.thinkMs),
        rate: this.overrides.rate,
      },
      targets: this.targets.map((t) => t.name),
      ...this.pauseState(),
      spotlight: this.spotlight ? { variants: this.spotlight.variants, now: this.spotlight.state().now } : null,
      elapsedSeconds: run ? Number((run.elapsedMs() / 1000).toFixed(1)) : 0,
      generator: run?.health.report() ?? null,
      stats: (run?.tallies ?? []).map((recorder) => {
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

  /** POST /measure: one stretch against a configured target, only while all load is paused (the caller holds the lease). */
  private async measure(body: unknown): Promise<object> {
    const request = parsed(measureSchema, body);
    const target = this.options.targets.find((t) => t.name === request.target);
    if (!target)
      throw new ConfigError(
        'target',
        `unknown target ${JSON.stringify(request.target)}: expected one of ${this.options.targets.map((t) => t.name).join(', ')}`,
      );
    if (!this.gate.allPaused) throw new HttpError(409, 'pause all load first (PUT /pause): a stretch is measured alone');
    const result = await measure(target, request.probes, {
      durationMs: request.durationMs,
      warmupMs: request.warmupMs ?? 0,
      dropLateReplies: request.dropLateReplies ?? false,
      scenario: 'measure',
    });
    return result;
  }

  /** PUT /spotlight. */
  private updateSpotlight(body: unknown): object {
    const spotlight = this.spotlight;
    if (!spotlight) throw new HttpError(404, 'no spotlight runs (start lab load with --spotlight, LOAD_SPOTLIGHT=1)');
    const { variants } = parsed(spotlightSchema, body);
    const known = this.options.targets.map((t) => t.name);
    for (const name of variants)
      if (!known.includes(name))
        throw new ConfigError('variants', `unknown target ${JSON.stringify(name)}: expected some of ${known.join(', ')}`);
    spotlight.setVariants([...new Set(variants)]);
    return spotlight.state();
  }

  /** The HTTP routes, next to /metrics and /healthz. */
  routes = (req: IncomingMessage, res: ServerResponse, path: string): boolean => {
    const reply = (status: number, body: object) =>
      res.writeHead(status, { 'content-type': 'application/json' }).end(`${JSON.stringify(body, null, 2)}\n`);
    const withBody = (handle: (body: unknown) => object | Promise<object>) =>
      void readJson(req)
        .then(handle)
        .then(
          (result) => reply(200, result),
          (error: unknown) => {
            const status = error instanceof HttpError ? error.status : 400;
            reply(status, { error: error instanceof Error ? error.message : String(error) });
          },
        );
    const methods: Record<string, Record<string, () => void>> = {
      '/scenario': {
        GET: () => reply(200, this.state()),
        PUT: () => withBody((body) => this.update(body)),
      },
      '/pause': {
        GET: () => reply(200, this.pauseState()),
        PUT: () => withBody((body) => this.pause(parsed(pauseSchema, body).seconds)),
        DELETE: () => reply(200, this.resume()),
      },
      '/measure': {
        POST: () => withBody((body) => this.measure(body)),
      },
      '/spotlight': {
        GET: () =>
          this.spotlight
            ? reply(200, this.spotlight.state())
            : reply(404, { error: 'no spotlight runs (start lab load with --spotlight, LOAD_SPOTLIGHT=1)' }),
        PUT: () => withBody((body) => this.updateSpotlight(body)),
      },
    };
    const route = methods[path];
    if (!route) return false;
    const handle = route[req.method ?? 'GET'];
    if (handle) handle();
    else res.writeHead(405, { allow: Object.keys(route).join(', ') }).end();
    return true;
  };
}

/**
 * The request's JSON body (an empty body is `{}`). Past MAX_BODY_BYTES it is refused with 413 at
 * once; the rest is read and thrown away, never kept (closing with unread data would reset the
 * connection and lose the 413 on its way to the client).
 */
function readJson(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const tooLarge = () =>
      new HttpError(413, `request body over ${MAX_BODY_BYTES} bytes (the control API takes small JSON objects)`);
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > MAX_BODY_BYTES) {
      req.resume();
      return reject(tooLarge());
    }
    let chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) chunks.push(chunk);
      else if (size - chunk.length <= MAX_BODY_BYTES) {
        // The chunk that crossed the limit: answer now, drop what was kept.
        chunks = [];
        reject(tooLarge());
      }
    });
    req.on('end', () => {
      if (size > MAX_BODY_BYTES) return;
      const text = Buffer.concat(chunks).toString('utf8');
      try {
        resolve(text.trim() === '' ? {} : JSON.parse(text));
      } catch (error) {
        reject(new HttpError(400, `the body is not JSON: ${(error as Error).message}`));
      }
    });
    req.on('error', reject);
  });
}
