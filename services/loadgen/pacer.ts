// A clock whose timers fire at most about a quarter of a millisecond after they are due (the
// OS's scheduling aside), for the open loop's arrival schedule. Node's timers count whole milliseconds (libuv's loop time and the
// poll timeout are in ms), so at 10,000 requests/s a request due 0.1 ms from now leaves up to
// a millisecond late. Spinning would cost a core. Instead a pacer thread sleeps on a futex
// (Atomics.wait takes fractional milliseconds) until the earliest timer is due and then wakes
// this thread's event loop with a message; the event loop keeps reading replies meanwhile.
// Timers further away than COARSE_MS sleep on a Node timer first, and hand over to the pacer
// for their last stretch; timers due close together share a wake-up (MIN_WAKE_GAP_MS).

import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import type { Clock } from './drivers.js';

/** Beyond this, a timer sleeps on Node's own timer until this close to its time. */
const COARSE_MS = 4;

/**
 * The least time between two wake-ups of the owner, ms: a timer due sooner after the last one
 * waits for the next, at most this late. A wake-up (the pacer's message, a turn of the owner's
 * event loop) costs the owner tens of microseconds; at 10,000 requests/s, due 0.1 ms apart, one
 * per request took 0.57-0.73 cores, against 0.37-0.45 with this, for a schedule lag p99 of
 * 0.36-0.69 ms instead of 0.13-0.59 (benchmarks/README.md).
 */
export const MIN_WAKE_GAP_MS = 0.25;

/** Slots of the shared control block: a sequence number bumped on every change (what the pacer waits on), and the due time. */
const SEQ = 0;

/** What the pacer thread posts: it runs (once, first), or the earliest timer is due. */
export type FromPacer = 'ready' | 'due';

interface Timer {
  at: number;
  fn: () => void;
  cancelled: boolean;
}

/** The pacer's shared state: [seq] in an Int32Array, the due time (epoch microseconds, 0 for none) in a BigInt64Array. */
export interface PacerShared {
  control: SharedArrayBuffer;
  due: SharedArrayBuffer;
}

/** Microseconds on a clock every thread shares (performance.now() starts at each thread's own origin). */
export function epochMicros(): bigint {
  return BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000));
}

export class PreciseClock implements Clock {
  /** How many times the pacer has woken this thread for a due timer. */
  wakeUps = 0;
  private readonly timers: Timer[] = [];
  private lastWakeUp = -Infinity;
  private readonly control = new Int32Array(new SharedArrayBuffer(4));
  private readonly due = new BigInt64Array(new SharedArrayBuffer(8));
  private worker: Worker | null = null;
  private armedAt = Infinity;
  private running: Promise<void> | null = null;

  now(): number {
    return performance.now();
  }

  /** Starts the pacer thread; resolves once it runs (before then no timer can fire on time). */
  ready(): Promise<void> {
    this.start();
    return this.running!;
  }

  setTimer(fn: () => void, ms: number): () => void {
    if (ms >= COARSE_MS) {
      // Most of the way on Node's timer, the rest on the pacer.
      let cancelFine: (() => void) | null = null;
      const at = this.now() + ms;
      const coarse = setTimeout(() => (cancelFine = this.setTimer(fn, at - this.now())), ms - COARSE_MS / 2);
      return () => {
        clearTimeout(coarse);
        cancelFine?.();
      };
    }
    const timer: Timer = { at: this.now() + Math.max(0, ms), fn, cancelled: false };
    let i = this.timers.length;
    while (i > 0 && this.timers[i - 1]!.at > timer.at) i -= 1;
    this.timers.splice(i, 0, timer);
    this.arm();
    return () => {
      timer.cancelled = true;
    };
  }

  /** Stops the pacer thread (its timers no longer fire). */
  async close(): Promise<void> {
    for (const timer of this.timers) timer.cancelled = true;
    await this.worker?.terminate();
  }

  /** Tells the pacer when the earliest timer is due (if that changed). */
  private arm(): void {
    while (this.timers.length > 0 && this.timers[0]!.cancelled) this.timers.shift();
    const first = this.timers[0];
    if (!first) {
      if (this.armedAt !== Infinity) this.set(0n, Infinity);
      // The pacer has just woken this thread for the last timer: nothing waits, nothing keeps the process alive.
      else this.worker?.unref();
      return;
    }
    const at = Math.max(first.at, this.lastWakeUp + MIN_WAKE_GAP_MS);
    if (at === this.armedAt) return;
    this.set(BigInt(Math.round((performance.timeOrigin + at) * 1000)), at);
  }

  private set(dueMicros: bigint, at: number): void {
    this.armedAt = at;
    this.start();
    // Referenced while a timer waits, like a Node timer; never otherwise.
    if (at === Infinity) this.worker!.unref();
    else this.worker!.ref();
    Atomics.store(this.due, 0, dueMicros);
    Atomics.add(this.control, SEQ, 1);
    Atomics.notify(this.control, SEQ);
  }

  /** The pacer said the earliest timer is due: run every timer due now. */
  private fire(): void {
    this.armedAt = Infinity;
    const now = this.now();
    this.wakeUps += 1;
    this.lastWakeUp = now;
    while (this.timers.length > 0 && (this.timers[0]!.cancelled || this.timers[0]!.at <= now)) {
      const timer = this.timers.shift()!;
      if (!timer.cancelled) timer.fn();
    }
    this.arm();
  }

  private start(): void {
    if (this.worker) return;
    const shared: PacerShared = { control: this.control.buffer, due: this.due.buffer };
    const worker = new Worker(new URL('./pacer-thread.js', import.meta.url), { workerData: shared });
    this.worker = worker;
    this.running = new Promise((resolve) => {
      worker.on('message', (message: FromPacer) => {
        if (message === 'due') return this.fire();
        // Running: referenced only while a timer waits, like a Node timer.
        if (this.armedAt === Infinity) worker.unref();
        resolve();
      });
    });
  }
}

let clock: PreciseClock | null = null;

/** This thread's precise clock (one pacer thread per thread that uses it, started on first use). */
export function preciseClock(): Clock {
  return (clock ??= new PreciseClock());
}
