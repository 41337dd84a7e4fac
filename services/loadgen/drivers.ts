// How a probe's requests go out. A closed loop gives each connection one request at a time:
// send, wait for the reply, think, repeat; its latency is measured from the send. An open loop
// sends on an arrival schedule, whatever the replies do (as wrk2): a request that is due goes
// out on a free connection at once (how late it left is the generator's schedule lag); when
// every connection is busy it waits in the generator's queue (that wait is the server's doing),
// and its latency is still measured from when it was due, so a stalled server cannot hide
// behind the requests it kept from being sent (coordinated omission).
// Either loop may be paused against its target (pause.ts): a paused closed loop hangs up and
// waits; a paused open loop skips what falls due meanwhile and closes its idle connections.

import { performance } from 'node:perf_hooks';
import { ClientConnection, ClientFailure, type FibConnection } from './client.js';
import type { Outcome } from '../lab/errors.js';
import type { Target } from './options.js';
import type { ConnectionRecorder, ProbeRecorder } from './recorder.js';
import { arrivals } from './arrivals.js';
import { MAX_QUEUED_REQUESTS } from './limits.js';
import type { PauseGate } from './pause.js';
import type { Probe } from './scenario.js';
import { connectionActive, isScheduled, pickN, rateAt } from './schedule.js';

export interface Clock {
  /** Milliseconds, monotonic. */
  now(): number;
  /** Calls `fn` after `ms`; returns a function that cancels it. */
  setTimer(fn: () => void, ms: number): () => void;
  /** Resolves once the clock keeps its timers (a clock with a thread of its own starts it); none: at once. */
  ready?(): Promise<void>;
}

export const realClock: Clock = {
  now: () => performance.now(),
  setTimer(fn, ms) {
    const timer = setTimeout(fn, Math.max(0, ms));
    return () => clearTimeout(timer);
  },
};

/** Opens a connection to a target (a seam for tests). */
export type Connect = (target: Target, timeoutMs: number) => Promise<FibConnection>;

export const connectTo: Connect = (target, timeoutMs) =>
  ClientConnection.open(target.host, target.port, timeoutMs, target.legacy);

export interface ProbeRun {
  target: Target;
  probe: Probe;
  recorder: ProbeRecorder;
  /** The probe's connection indexes this loop runs (a sending thread's share); default: all of them. */
  connections?: number[];
  /** An open loop's share of the probe's rate (its share of the connections); default 1. */
  rateScale?: number;
  timeoutMs: number;
  /** The scenario's length: the probe's schedule (start, stop, ramp) repeats with this period. */
  periodMs: number;
  /** When the run started, on `clock`. */
  startedAt: number;
  stopped: AbortSignal;
  clock: Clock;
  connect: Connect;
  /** The generator sent a due request `ms` late although a connection was free. */
  onScheduleLag(ms: number): void;
  random?: () => number;
  /** Asked before each request: the load against this target may be paused. */
  gate?: PauseGate | null;
  /** Leave out replies that come back after the run was stopped (figures over exactly the run's time). */
  dropLateReplies?: boolean;
}

/** How long a stopped run waits for requests already sent before it drops them. */
export const STOP_GRACE_MS = 5000;
/** Pause before reconnecting after a connection could not be opened. */
const RECONNECT_DELAY_MS = 500;
/** Due requests an open loop handles in one go before the event loop gets a turn. */
const MAX_DUE_PER_TICK = 1000;

export function runProbe(run: ProbeRun): Promise<void> {
  if (run.probe.model === 'closed') {
    const indexes = run.connections ?? Array.from({ length: run.probe.connections }, (_, i) => i);
    return Promise.all(indexes.map((i) => closedLoop(run, i))).then(() => {});
  }
  // The schedule begins once the clock can keep it: the pacer thread takes 25-35 ms to start, and
  // every request due meanwhile left that late (the maximum schedule lag of every run).
  const ready = run.clock.ready?.() ?? Promise.resolve();
  return ready.then(() => (run.stopped.aborted ? undefined : new OpenLoop(run).done));
}

/** Where the run is within the scenario's (repeating) schedule, ms. */
function scenarioTime(run: ProbeRun, at = run.clock.now()): number {
  const elapsed = at - run.startedAt;
  return run.periodMs > 0 ? elapsed % run.periodMs : elapsed;
}

/** Waits `ms`; wakes early when the run stops or the load against the target is paused. */
function sleep(run: ProbeRun, ms: number): Promise<void> {
  return new Promise((resolve) => {
    if (run.stopped.aborted || paused(run)) return resolve();
    const done = () => {
      cancel();
      unsubscribe();
      run.stopped.removeEventListener('abort', done);
      resolve();
    };
    const cancel = run.clock.setTimer(done, ms);
    const unsubscribe =
      run.gate?.subscribe(() => {
        if (paused(run)) done();
      }) ?? (() => {});
    run.stopped.addEventListener('abort', done, { once: true });
  });
}

function paused(run: ProbeRun): boolean {
  return run.gate?.isPaused(run.target.name) ?? false;
}

/** Whether an answer is recorded: after a stop, replies still come in (failures are the stop's doing). */
function recorded(run: ProbeRun, gotReply: boolean): boolean {
  return run.stopped.aborted ? gotReply && !run.dropLateReplies : true;
}

/** Records a closed loop's answer to a request sent at `sentAt` (its latency, when a reply came). */
function recordAnswer(
  run: ProbeRun,
  recorder: ConnectionRecorder,
  outcome: Outcome,
  sentAt: number,
  phase: string | undefined,
): void {
  const gotReply = outcome !== 'timeout' && outcome !== 'closed';
  if (recorded(run, gotReply)) recorder.record({ outcome, latencyMs: gotReply ? run.clock.now() - sentAt : null, phase });
}

async function closedLoop(run: ProbeRun, index: number): Promise<void> {
  const { target, probe, clock, stopped } = run;
  const recorder: ConnectionRecorder = run.recorder.forConnection(index);
  const random = run.random ?? Math.random;
  const perRequest = probe.connectPerRequest ?? target.connectPerRequest;
  let connection: FibConnection | null = null;
  let release = () => {};
  const hangUp = () => {
    connection?.close();
    connection = null;
    release();
  };
  let activeSince: number | null = null;
  const inactive = () => {
    if (activeSince !== null) recorder.active(clock.now() - activeSince);
    activeSince = null;
  };
  // A stopped run cuts what is still in flight after a grace period.
  let cancelCut = () => {};
  const cut = () => (cancelCut = clock.setTimer(() => connection?.destroy(), STOP_GRACE_MS));
  stopped.addEventListener('abort', cut, { once: true });
  // Most probes run throughout: skip the schedule check on the hot path.
  const scheduled = isScheduled(probe);
  // ... and most send again as soon as a reply comes, on the same connection: see steadyStretch.
  const steady = !scheduled && !perRequest && !(probe.thinkMs > 0);
  try {
    // Start at a random point of one think time, so connections do not march in lockstep.
    if (probe.thinkMs > 0) await sleep(run, random() * probe.thinkMs);
    while (!stopped.aborted) {
      if (run.gate?.isPaused(target.name)) {
        // Paused against this target: leave it alone entirely (its connection too) until resumed.
        inactive();
        hangUp();
        await run.gate.whenResumed(target.name, stopped);
        continue;
      }
      const t = scheduled ? scenarioTime(run) : 0;
      if (scheduled && !connectionActive(probe, index, t, run.periodMs)) {
        // Not this connection's turn (a hog that has not joined yet, or has left): hang up and wait.
        inactive();
        hangUp();
        await sleep(run, Math.max(1, untilActive(probe, index, t, run.periodMs)));
        continue;
      }
      const start = clock.now();
      activeSince ??= start;
      if (!connection || !connection.isOpen) {
        hangUp();
        release = run.gate?.hold(target.name) ?? release;
        try {
          connection = await run.connect(target, run.timeoutMs);
        } catch (error) {
          release();
          if (stopped.aborted) break;
          recorder.record({ outcome: error instanceof ClientFailure ? error.code : 'connect_error', latencyMs: null });
          await sleep(run, RECONNECT_DELAY_MS);
          continue;
        }
      }
      if (steady) {
        await steadyStretch(run, connection, recorder, random);
        continue;
      }
      // Connect-per-request targets count the wait to be accepted: it is part of what the client sees.
      const sentAt = perRequest ? start : clock.now();
      const phase = run.recorder.currentPhase();
      const outcome = await new Promise<Outcome>((resolve) => connection!.send(pickN(probe, random), run.timeoutMs, resolve));
      recordAnswer(run, recorder, outcome, sentAt, phase);
      if (perRequest) hangUp();
      // Think times vary uniformly by ±50% around the setting, for the same reason.
      if (probe.thinkMs > 0) await sleep(run, probe.thinkMs * (0.5 + random()));
    }
  } finally {
    inactive();
    stopped.removeEventListener('abort', cut);
    cancelCut();
    hangUp();
  }
}

/**
 * A closed loop's steady state, without a Promise per request (the generator's ceiling is its
 * hot path): each reply sends the next request from its own callback, for as long as the
 * connection stays open and the run goes on unpaused. Resolves when that ends; the loop above
 * handles what comes next (reconnecting, waiting for a resume, finishing).
 */
function steadyStretch(
  run: ProbeRun,
  connection: FibConnection,
  recorder: ConnectionRecorder,
  random: () => number,
): Promise<void> {
  const { clock, probe, stopped, gate, target, timeoutMs } = run;
  return new Promise((resolve, reject) => {
    let sentAt = 0;
    let phase: string | undefined;
    const sendNext = () => {
      if (stopped.aborted || !connection.isOpen || gate?.isPaused(target.name)) return resolve();
      sentAt = clock.now();
      phase = run.recorder.currentPhase();
      connection.send(pickN(probe, random), timeoutMs, onAnswer);
    };
    const onAnswer = (outcome: Outcome) => {
      // Called from the socket's 'data' handler: a failure here fails the loop (as an await
      // would), not the process.
      try {
        recordAnswer(run, recorder, outcome, sentAt, phase);
        sendNext();
      } catch (error) {
        reject(error instanceof Error ? error : new Error(String(error)));
      }
    };
    sendNext();
  });
}

/** ms from scenario time `t` until connection `index` is active again. */
function untilActive(probe: Probe, index: number, t: number, periodMs: number): number {
  const start = probe.startMs + index * probe.staggerMs;
  if (t < start) return start - t;
  return periodMs > 0 ? periodMs - t + start : 1000;
}

/** One of an open loop's connections, and how many of its requests are in flight. */
interface OpenConnection {
  index: number;
  connection: FibConnection | null;
  /** Tells the pause gate this slot's connection is closed. */
  release: () => void;
  opening: boolean;
  inFlight: number;
}

class OpenLoop {
  readonly done: Promise<void>;
  private readonly slots: OpenConnection[];
  /** Intended send times of due requests waiting for a free connection. */
  private readonly queue: number[] = [];
  private readonly schedule: Generator<number, void, undefined>;
  private nextDue: number | undefined;
  private cancelTimer: () => void = () => {};
  private cancelCut: () => void = () => {};
  private finish!: () => void;
  private readonly depth: number;
  private unsubscribe: () => void = () => {};

  constructor(private readonly run: ProbeRun) {
    const { probe } = run;
    // The talk's own servers take one request at a time: no pipelining on a legacy target.
    this.depth = run.target.legacy ? 1 : probe.depth;
    const indexes = run.connections ?? Array.from({ length: probe.connections }, (_, i) => i);
    this.slots = indexes.map((index) => ({
      index,
      connection: null,
      release: () => {},
      opening: false,
      inFlight: 0,
    }));
    const activeMs = (probe.stopMs ?? run.periodMs) - probe.startMs;
    const scale = run.rateScale ?? 1;
    const rate = (at: number) => scale * rateAt(probe, scenarioTime(run, at) - probe.startMs, activeMs);
    this.schedule = arrivals(probe.arrival, rate, run.clock.now(), run.random);
    this.done = new Promise((resolve) => (this.finish = resolve));
    for (const slot of this.slots) void this.open(slot);
    run.stopped.addEventListener('abort', () => this.stop(), { once: true });
    if (run.gate) this.unsubscribe = run.gate.subscribe(() => this.pauseChanged());
    this.nextDue = this.schedule.next().value ?? undefined;
    this.tick();
  }

  private get paused(): boolean {
    return paused(this.run);
  }

  private tick(): void {
    const { clock } = this.run;
    if (this.run.stopped.aborted || this.nextDue === undefined) return;
    const now = clock.now();
    // A bounded batch, then the event loop's turn: at a rate the generator cannot keep up with,
    // its schedule falls behind (and the run is flagged) instead of blocking /metrics and the API.
    for (let batch = MAX_DUE_PER_TICK; batch > 0 && this.nextDue !== undefined && this.nextDue <= now; batch--) {
      // A request that falls due while paused is skipped: not sent, not an error.
      if (this.active(this.nextDue) && !this.paused) this.due(this.nextDue);
      this.nextDue = this.schedule.next().value ?? undefined;
    }
    this.expireQueue(now);
    if (this.nextDue !== undefined) this.cancelTimer = clock.setTimer(() => this.tick(), this.nextDue - clock.now());
  }

  /** Paused: forget the waiting requests and hang up the idle connections; resumed: reconnect. */
  private pauseChanged(): void {
    if (this.run.stopped.aborted) return;
    if (this.paused) {
      this.queue.length = 0;
      for (const slot of this.slots) if (slot.inFlight === 0) this.hangUp(slot);
    } else {
      for (const slot of this.slots) if (!slot.connection) void this.open(slot);
    }
  }

  private hangUp(slot: OpenConnection): void {
    slot.connection?.close();
    slot.connection = null;
    slot.release();
  }

  private active(at: number): boolean {
    const { probe, periodMs } = this.run;
    const t = scenarioTime(this.run, at);
    return t >= probe.startMs && t < (probe.stopMs ?? (periodMs || Infinity));
  }

  private due(intended: number): void {
    const slot = this.freeSlot();
    if (slot) {
      const lag = this.run.clock.now() - intended;
      this.run.onScheduleLag(lag);
      this.send(slot, intended, 0);
    } else if (this.queue.length < MAX_QUEUED_REQUESTS) {
      this.queue.push(intended);
    } else {
      // The queue is full: counted as a request that waited past the timeout, unsent.
      this.run.recorder.record(0, { outcome: 'timeout', latencyMs: null });
    }
  }

  private freeSlot(): OpenConnection | undefined {
    let best: OpenConnection | undefined;
    for (const slot of this.slots) {
      if (!slot.connection?.isOpen || slot.inFlight >= this.depth) continue;
      if (!best || slot.inFlight < best.inFlight) best = slot;
    }
    return best;
  }

  private send(slot: OpenConnection, intended: number, queueWaitMs: number): void {
    const { clock, recorder, probe } = this.run;
    const connection = slot.connection!;
    slot.inFlight += 1;
    const sentAt = clock.now();
    const phase = recorder.currentPhase();
    connection.send(pickN(probe, this.run.random), this.run.timeoutMs, (outcome) => {
      const now = clock.now();
      slot.inFlight -= 1;
      const gotReply = outcome !== 'timeout' && outcome !== 'closed';
      if (recorded(this.run, gotReply)) {
        recorder.record(slot.index, {
          outcome,
          latencyMs: gotReply ? now - intended : null,
          uncorrectedMs: gotReply ? now - sentAt : undefined,
          queueWaitMs: gotReply ? queueWaitMs : undefined,
          phase,
        });
      }
      if (slot.connection === connection && (!connection.isOpen || (this.paused && slot.inFlight === 0))) {
        this.hangUp(slot);
        void this.open(slot);
      }
      this.drainQueue();
      this.finishIfIdle();
    });
  }

  /** A connection came free: the oldest waiting request goes out on it (late: the server's doing). */
  private drainQueue(): void {
    if (this.run.stopped.aborted) return;
    const now = this.run.clock.now();
    this.expireQueue(now);
    for (let slot = this.freeSlot(); slot && this.queue.length > 0; slot = this.freeSlot()) {
      const intended = this.queue.shift()!;
      this.send(slot, intended, now - intended);
    }
  }

  /** A request that waited longer than the timeout for a connection has timed out, unsent. */
  private expireQueue(now: number): void {
    while (this.queue.length > 0 && now - this.queue[0]! > this.run.timeoutMs) {
      this.queue.shift();
      this.run.recorder.record(0, { outcome: 'timeout', latencyMs: null });
    }
  }

  private async open(slot: OpenConnection): Promise<void> {
    if (slot.opening || this.run.stopped.aborted || this.paused) return;
    slot.opening = true;
    slot.release = this.run.gate?.hold(this.run.target.name) ?? slot.release;
    try {
      slot.connection = await this.run.connect(this.run.target, this.run.timeoutMs);
    } catch (error) {
      slot.release();
      if (!this.run.stopped.aborted && !this.paused) {
        this.run.recorder.record(slot.index, {
          outcome: error instanceof ClientFailure ? error.code : 'connect_error',
          latencyMs: null,
        });
        this.run.clock.setTimer(() => void this.open(slot), RECONNECT_DELAY_MS);
      }
      return;
    } finally {
      slot.opening = false;
    }
    if (this.run.stopped.aborted || this.paused) return this.hangUp(slot);
    this.drainQueue();
  }

  /** Stopped: nothing more is sent; what is in flight gets STOP_GRACE_MS to come back. */
  private stop(): void {
    this.cancelTimer();
    this.unsubscribe();
    this.queue.length = 0;
    this.cancelCut = this.run.clock.setTimer(() => this.close(), STOP_GRACE_MS);
    this.finishIfIdle();
  }

  private finishIfIdle(): void {
    if (this.run.stopped.aborted && this.slots.every((slot) => slot.inFlight === 0)) this.close();
  }

  private close(): void {
    this.cancelCut();
    for (const slot of this.slots) {
      slot.connection?.destroy();
      slot.connection = null;
      slot.release();
    }
    this.finish();
  }
}
