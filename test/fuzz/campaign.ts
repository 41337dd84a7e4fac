// One fuzz campaign against one variant: a fresh `lab serve` process, a few concurrent clients
// playing generated sessions for a bounded time, then the checks every variant must pass after
// any abuse: no connection held (fib_connections_active back to 0), nothing in flight, a fresh
// client still answered, and an idle drain on SIGTERM that exits 0 within a second.

import { performance } from 'node:perf_hooks';
import { startServing } from '../backends.js';
import { TestClient, type RunningVariant } from '../helpers.js';
import { killServerTree, replyOrFate, terminateWithin, waitForActiveConnections, waitForSample } from '../hardening-helpers.js';
import { generateSession, type Session } from './frames.js';
import { Prng, deriveSeed } from './prng.js';
import { describeWrites, runSession } from './session.js';

export interface CampaignOptions {
  seed: number;
  /** How long clients keep starting sessions; sessions under way then finish. */
  seconds: number;
  /** Concurrent clients, each playing one session after another. */
  clients: number;
  /** Only this session (`client.index`), alone, instead of a timed run. */
  session?: string;
  /** Extra environment of the server. */
  env?: Record<string, string>;
  /** Per awaited reply or close. */
  replyTimeoutMs?: number;
  /** How long an idle server may take to exit after SIGTERM. */
  idleDrainMs?: number;
}

export interface CampaignReport {
  variant: string;
  seed: number;
  sessions: number;
  /** Request frames written (lines and legacy chunks, valid or not). */
  frames: number;
  replies: number;
  /** One line per failed session or check (the first few), each naming the seed and session to reproduce it. */
  failures: string[];
  /** Every failure, listed or not. */
  failureCount: number;
  /** Sessions by kind, for the report. */
  kinds: Record<string, number>;
  idleDrainMs: number | null;
}

const FIB_MAX_N = 40; // the servers' default; fuzzed valid requests stay far below it
/**
 * The servers' line deadline under fuzzing: short, so that sessions leaving a line unfinished
 * see `line_timeout` soon; far above the pauses of sessions that finish their lines.
 */
export const FUZZ_LINE_TIMEOUT_MS = 2000;
/** Failures listed in full per variant; the rest are counted. */
const LISTED_FAILURES = 10;

/** Generates session `client.index` of a run: the same bytes for every variant and every replay. */
export function sessionOf(seed: number, client: number, index: number): Session {
  return generateSession(new Prng(deriveSeed(seed, client, index)), `${client}.${index}`);
}

export async function fuzzVariant(variant: string, options: CampaignOptions): Promise<CampaignReport> {
  const { seed, seconds, clients, replyTimeoutMs = 10_000, idleDrainMs = 1000 } = options;
  const report: CampaignReport = {
    variant,
    seed,
    sessions: 0,
    frames: 0,
    replies: 0,
    failures: [],
    failureCount: 0,
    kinds: {},
    idleDrainMs: null,
  };
  const rerun = `node dist/test/fuzz/run.js --seed ${seed} --variants ${variant}`;
  const reproduce = (id: string) => `${rerun} --session ${id}`;
  const fail = (line: string) => {
    report.failureCount += 1;
    if (report.failures.length < LISTED_FAILURES) report.failures.push(line);
  };

  const server = await startServing(variant, { LINE_TIMEOUT_MS: String(FUZZ_LINE_TIMEOUT_MS), ...options.env });
  let exitedEarly: number | null | undefined;
  void server.exited.then((code) => (exitedEarly = code));
  try {
    const play = async (session: Session) => {
      report.sessions += 1;
      report.frames += session.frames;
      report.kinds[session.kind] = (report.kinds[session.kind] ?? 0) + 1;
      const outcome = await runSession(server.port, session, { fibMaxN: FIB_MAX_N, replyTimeoutMs });
      report.replies += outcome.replies;
      if (outcome.failure) {
        fail(
          `${variant} session ${session.id} (${session.kind}): ${outcome.failure}; writes ${describeWrites(session)}; reproduce: ${reproduce(session.id)}`,
        );
      }
    };
    if (options.session) {
      const [client, index] = options.session.split('.').map(Number);
      await play(sessionOf(seed, client!, index!));
    } else {
      const until = performance.now() + seconds * 1000;
      await Promise.all(
        Array.from({ length: clients }, async (_, client) => {
          for (let index = 0; performance.now() < until && exitedEarly === undefined; index++) {
            await play(sessionOf(seed, client, index));
          }
        }),
      );
    }
    if (exitedEarly !== undefined) {
      fail(
        `${variant}: the server exited (code ${exitedEarly}) during the run: ${lastLine(server)}; rerun: ${rerun} --seconds ${seconds}`,
      );
      return report;
    }
    await checkAfterwards(server, replyTimeoutMs, idleDrainMs, report, (line) => fail(`${variant}: ${line} (seed ${seed})`));
  } finally {
    killServerTree(server);
    await server.exited;
  }
  return report;
}

/** What must hold once every client has gone, whatever they did. */
async function checkAfterwards(
  server: RunningVariant,
  replyTimeoutMs: number,
  idleDrainMs: number,
  report: CampaignReport,
  fail: (line: string) => void,
): Promise<void> {
  const active = await waitForActiveConnections(server, 0);
  if (!active.met) fail(`fib_connections_active read ${active.seen.join(' -> ')} with every client gone, not 0`);
  const inflight = await waitForSample(server, 'fib_inflight_requests', (value) => value === 0);
  if (!inflight.met) fail(`fib_inflight_requests read ${inflight.seen.join(' -> ')} with every client gone, not 0`);
  const client = await TestClient.connect(server.port);
  const reply = await replyOrFate(client, '6', replyTimeoutMs);
  client.close();
  if (reply !== 'fib: 8') fail(`a fresh client asked 6 and got ${reply}`);
  const stopped = await terminateWithin(server, idleDrainMs);
  report.idleDrainMs = stopped.code === null ? null : Math.round(stopped.ms);
  if (stopped.code !== 0) {
    fail(
      stopped.code === null
        ? `an idle server did not exit within ${idleDrainMs} ms of SIGTERM`
        : `an idle server exited with ${stopped.code} on SIGTERM: ${lastLine(server)}`,
    );
  }
}

function lastLine(server: RunningVariant): string {
  return server.stderr().trim().split('\n').at(-1) ?? '(no stderr)';
}

/** One line per variant: what was sent and checked, and how it went. */
export function summarize(report: CampaignReport): string {
  const kinds = Object.entries(report.kinds)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([kind, count]) => `${kind} ${count}`)
    .join(', ');
  const drain = report.idleDrainMs === null ? 'not measured' : `${report.idleDrainMs} ms`;
  return (
    `${report.variant.padEnd(12)} ${report.frames} frames, ${report.sessions} connections (${kinds}), ` +
    `${report.replies} replies checked, idle drain ${drain}, ${report.failureCount === 0 ? 'no failures' : `FAILURES: ${report.failureCount}`}`
  );
}
