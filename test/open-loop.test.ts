// The open loop's bookkeeping on an injected clock and a fake server, so every figure is exact:
// requests are sent on schedule whatever the server does; a due request that finds every
// connection busy waits in the generator's queue (the server's doing, never schedule lag); and
// its latency counts from when it was due (corrected for coordinated omission).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FibConnection } from '../services/loadgen/client.js';
import { runProbe, type Clock } from '../services/loadgen/drivers.js';
import { LOAD_LIMITS, MAX_QUEUED_REQUESTS } from '../services/loadgen/limits.js';
import { ProbeRecorder, ProbeTally } from '../services/loadgen/recorder.js';
import type { Probe } from '../services/loadgen/scenario.js';

/** A clock that moves only when the test advances it, running due timers in order. */
class ManualClock implements Clock {
  private time = 0;
  private timers: Array<{ at: number; fn: () => void; cancelled: boolean }> = [];
  now = () => this.time;
  setTimer = (fn: () => void, ms: number) => {
    const timer = { at: this.time + Math.max(0, ms), fn, cancelled: false };
    this.timers.push(timer);
    return () => void (timer.cancelled = true);
  };
  async advanceTo(target: number): Promise<void> {
    await new Promise((resolve) => setImmediate(resolve)); // what was started runs first (connections open)
    for (;;) {
      this.timers = this.timers.filter((t) => !t.cancelled);
      const next = this.timers.reduce<(typeof this.timers)[number] | null>((a, b) => (!a || b.at < a.at ? b : a), null);
      if (!next || next.at > target) break;
      this.time = Math.max(this.time, next.at);
      this.timers.splice(this.timers.indexOf(next), 1);
      next.fn();
      await new Promise((resolve) => setImmediate(resolve)); // let promise callbacks run
    }
    this.time = target;
  }

  /** The event loop was stalled until `target`: time jumps there, then every timer due by then runs, late. */
  async jumpTo(target: number): Promise<void> {
    this.time = Math.max(this.time, target);
    await this.advanceTo(target);
  }
}

/** A fake server connection: answers after `serviceMs(now)` of clock time, one request at a time. */
function startFakeStallingConnection(clock: ManualClock, serviceMs: (now: number) => number): FibConnection {
  let busyUntil = 0;
  return {
    isOpen: true,
    send: (_n, _timeoutMs, onAnswer) => {
      const start = Math.max(clock.now(), busyUntil);
      busyUntil = start + serviceMs(start);
      clock.setTimer(() => onAnswer('ok'), busyUntil - clock.now());
    },
    close() {},
    destroy() {},
  };
}

const probe: Probe & { scenario: string } = {
  scenario: 'test',
  name: 'short',
  n: 1,
  model: 'open',
  connections: 1,
  thinkMs: 0,
  rate: 100,
  arrival: 'fixed',
  depth: 1,
  startMs: 0,
  stopMs: null,
  staggerMs: 0,
};

/**
 * A clock that keeps no timer until it has started, `startAt` ms after it was made (as the pacer
 * thread, tens of ms after its first use): a timer due before then runs at the start, late.
 */
function lateStartingClock(clock: ManualClock, startAt: number): Clock {
  let started = false;
  const running = new Promise<void>((resolve) =>
    clock.setTimer(() => {
      started = true;
      resolve();
    }, startAt),
  );
  return {
    now: clock.now,
    setTimer: (fn, ms) => clock.setTimer(fn, started ? ms : Math.max(ms, startAt - clock.now())),
    ready: () => running,
  };
}

async function openLoopAgainst(serviceMs: (now: number) => number, runMs: number, startAt: number | null = null) {
  const manual = new ManualClock();
  const clock: Clock = startAt === null ? manual : lateStartingClock(manual, startAt);
  const recorder = new ProbeRecorder({ target: 'fake', scenario: 'test', probe: 'short' }, 1);
  const lags: number[] = [];
  const stopper = new AbortController();
  const connection = startFakeStallingConnection(manual, serviceMs);
  const done = runProbe({
    target: { name: 'fake', host: 'fake', port: 1, connectPerRequest: false, legacy: false },
    probe,
    recorder,
    timeoutMs: 30_000,
    periodMs: runMs,
    startedAt: 0,
    stopped: stopper.signal,
    clock,
    connect: async () => connection,
    onScheduleLag: (ms) => lags.push(ms),
  });
  await manual.advanceTo(runMs);
  stopper.abort();
  await manual.advanceTo(runMs + 10_000);
  await done;
  // What the sending thread hands over, merged as the main thread does.
  const tally = new ProbeTally(recorder.key, 1, null);
  const delta = recorder.takeDelta();
  if (delta) tally.apply(delta);
  return { recorder: tally, lags };
}

describe('open loop (injected clock)', () => {
  it('sends on schedule and measures from the intended send time when the server keeps up', async () => {
    const { recorder, lags } = await openLoopAgainst(() => 1, 2000);
    assert.equal(recorder.requests, 200, 'one request every 10 ms for 2 s'); // due at 10, 20 .. 2000 ms
    assert.equal(recorder.summary().max, 1);
    assert.equal(lags.length, 200);
    assert.ok(
      lags.every((lag) => lag === 0),
      'timers fire on time: no schedule lag',
    );
  });

  it('begins its schedule once its clock keeps timers: none of its requests left late for the clock starting', async () => {
    // The clock starts 35 ms in (the pacer thread's start, measured 25-35 ms): a schedule begun at
    // once would send the requests due at 10, 20 and 30 ms at 35 ms, 25, 15 and 5 ms late.
    const { recorder, lags } = await openLoopAgainst(() => 1, 2000, 35);
    assert.ok(lags.length > 0, 'requests were sent');
    assert.deepEqual(
      lags.filter((lag) => lag !== 0),
      [],
      `schedule lags other than 0 ms (${lags.length} requests, ${recorder.requests} recorded)`,
    );
    assert.equal(recorder.requests, 196, 'one request every 10 ms from 35 ms: due at 45, 55 .. 1995 ms');
  });

  it('queues due requests behind a stalled server without calling it schedule lag, and corrects their latency', async () => {
    // The server stalls once for 500 ms at t = 1000 ms, else answers in 1 ms.
    const { recorder, lags } = await openLoopAgainst((now) => (now >= 1000 && now < 1010 ? 500 : 1), 4000);
    const corrected = recorder.summary();
    const { uncorrected, queueWait } = recorder.openLoopSummary()!;
    assert.equal(recorder.requests, 400, 'the schedule did not slow down for the stall');
    // ~50 requests fell due during the stall: they waited up to 500 ms, and that is their latency.
    assert.ok(corrected.p99 >= 400, `corrected p99 ${corrected.p99} ms should show the 500 ms stall`);
    assert.ok(corrected.max >= 500 && corrected.max < 502, `corrected max ${corrected.max}`);
    // Sent only when the connection came free, each of them took 1 ms: a naive client sees one slow request.
    assert.ok(uncorrected.p99 <= 1.01, `uncorrected p99 ${uncorrected.p99} ms`);
    assert.ok(uncorrected.max >= 500, 'only the request in flight during the stall was slow');
    assert.ok(queueWait.max >= 480, `the wait for the connection is recorded as queue wait: ${queueWait.max}`);
    assert.ok(lags.length < 400 - 40, `requests that waited for the busy connection are not schedule lag (${lags.length} lags)`);
    assert.ok(lags.every((lag) => lag === 0));
  });

  it(`keeps at most ${MAX_QUEUED_REQUESTS} due requests waiting (past it: timeout, unsent), and works off a backlog in batches`, async () => {
    // The maximum rate against one connection that never answers, after the event loop stalled
    // for a second: a million requests fall due at once.
    const clock = new ManualClock();
    let recordsInCallback = 0;
    let mostInOneCallback = 0;
    let callbacks = 0;
    const timed: Clock = {
      now: clock.now,
      setTimer: (fn, ms) =>
        clock.setTimer(() => {
          recordsInCallback = 0;
          callbacks += 1;
          fn();
          mostInOneCallback = Math.max(mostInOneCallback, recordsInCallback);
        }, ms),
    };
    const recorder = new ProbeRecorder({ target: 'fake', scenario: 'test', probe: 'short' }, 1);
    const record = recorder.record.bind(recorder);
    recorder.record = (connection, observation) => {
      recordsInCallback += 1;
      record(connection, observation);
    };
    let sent = 0;
    const silent: FibConnection = {
      isOpen: true,
      send: () => {
        sent += 1;
      },
      close() {},
      destroy() {},
    };
    const stopper = new AbortController();
    const done = runProbe({
      target: { name: 'fake', host: 'fake', port: 1, connectPerRequest: false, legacy: false },
      probe: { ...probe, rate: LOAD_LIMITS.rate.max },
      recorder,
      timeoutMs: 30_000,
      periodMs: 0,
      startedAt: 0,
      stopped: stopper.signal,
      clock: timed,
      connect: async () => silent,
      onScheduleLag: () => {},
    });
    await clock.advanceTo(0);
    await clock.jumpTo(1000);
    const due = 1000 * (LOAD_LIMITS.rate.max / 1000); // 1 000 000 in the stalled second
    const tally = new ProbeTally(recorder.key, 1, null);
    tally.apply(recorder.takeDelta());
    const timeouts = tally.outcomes.get('timeout') ?? 0;
    assert.equal(sent, 1, 'one request in flight on the one connection');
    assert.ok(
      Math.abs(timeouts - (due - 1 - MAX_QUEUED_REQUESTS)) <= 2,
      `${timeouts} counted as timeout: all but the one sent and the ${MAX_QUEUED_REQUESTS} kept waiting`,
    );
    assert.ok(mostInOneCallback <= 1000, `at most 1000 due requests at a time, not ${mostInOneCallback}`);
    assert.ok(callbacks >= due / 1000, `the backlog was worked off in ${callbacks} turns of the event loop`);
    stopper.abort();
    await clock.advanceTo(1000 + 10_000);
    await done;
  });
});
