// A global interpreter lock for worker_threads, following CPython's "new GIL" (3.2+): a thread
// must hold the lock to compute; a thread that wants it waits one switch interval, and if no
// other thread took the lock meanwhile, sets a drop request; the holder checks for that request
// every few calls, drops the lock, and waits until another thread has taken it before asking
// again (FORCE_SWITCHING). Written by hand because it is the lesson: this is how a GIL turns
// a thread that just did I/O into one that waits a whole switch interval (the convoy effect).
//
// The state lives in a SharedArrayBuffer so every thread sees it; waits are Atomics.wait, so a
// waiting thread sleeps in the kernel and uses no CPU. Shared by the variants whose threads
// compute under the lock (a thread per connection, or a pool); `computeHoldingGil` is what such
// a thread runs for each task.

import { intOption } from '../lab/options.js';
import { computeFib } from './fib.js';
import type { FibResult, FibTask } from './messages.js';

const HOLDER = 0; // threadId of the holder, 0 when free
const DROP_REQUEST = 1; // 1 when a waiter has waited a whole interval in vain
const SWITCHES = 2; // how many times the lock changed hands
const WAITERS = 3; // threads waiting for the lock
const SLOTS = 4;

/** The switch interval, for every variant whose threads compute under the lock. */
export const gilSwitchMsOption = intOption({
  flag: '--gil-switch-ms',
  env: 'GIL_SWITCH_MS',
  argument: 'ms',
  description: "switch interval: how long a thread may keep the lock while another waits (CPython's sys.getswitchinterval())",
  default: 5,
  min: 1,
  max: 10_000,
});

export function createGilBuffer(): SharedArrayBuffer {
  return new SharedArrayBuffer(SLOTS * Int32Array.BYTES_PER_ELEMENT);
}

export class Gil {
  private readonly state: Int32Array;

  /**
   * @param buffer the shared state, from createGilBuffer()
   * @param intervalMs the switch interval (CPython's sys.getswitchinterval(), 5 ms)
   * @param me this thread's id (a worker's threadId: never 0)
   */
  constructor(
    buffer: SharedArrayBuffer,
    private readonly intervalMs: number,
    private readonly me: number,
  ) {
    this.state = new Int32Array(buffer);
  }

  acquire(): void {
    const s = this.state;
    // Back from "I/O" (a request answered, the next one arrived) while another thread waits for
    // the lock it just left: let that thread take it first. In CPython the waiter gets the GIL
    // while this thread is in its blocking I/O, which takes far longer than a thread's wake-up;
    // here the I/O happens on another thread and the next request can arrive before the waiter
    // has woken, so without this the I/O thread would take the lock straight back.
    if (Atomics.load(s, WAITERS) > 0 && Atomics.load(s, HOLDER) === 0) {
      const switches = Atomics.load(s, SWITCHES);
      Atomics.wait(s, SWITCHES, switches, this.intervalMs);
    }
    if (Atomics.compareExchange(s, HOLDER, 0, this.me) === 0) return this.took();
    Atomics.add(s, WAITERS, 1);
    for (;;) {
      const switches = Atomics.load(s, SWITCHES);
      const holder = Atomics.load(s, HOLDER);
      const waited = holder === 0 ? 'not-equal' : Atomics.wait(s, HOLDER, holder, this.intervalMs);
      if (Atomics.compareExchange(s, HOLDER, 0, this.me) === 0) break;
      // A whole interval passed and the lock did not change hands: ask the holder to drop it.
      if (waited === 'timed-out' && Atomics.load(s, SWITCHES) === switches) Atomics.store(s, DROP_REQUEST, 1);
    }
    Atomics.sub(s, WAITERS, 1);
    this.took();
  }

  release(): void {
    if (Atomics.compareExchange(this.state, HOLDER, this.me, 0) === this.me) Atomics.notify(this.state, HOLDER, 1);
  }

  /** The running computation calls this every few calls: drops the lock when a waiter asked. */
  check(): void {
    const s = this.state;
    if (Atomics.load(s, DROP_REQUEST) === 0) return;
    const switches = Atomics.load(s, SWITCHES);
    this.release();
    // FORCE_SWITCHING: let a waiter take it before competing again.
    while (Atomics.load(s, SWITCHES) === switches && Atomics.load(s, WAITERS) > 0) {
      Atomics.wait(s, SWITCHES, switches, this.intervalMs);
    }
    this.acquire();
  }

  /** For the parent: frees the lock if a thread that exited (terminated) still held it. */
  static releaseIfHeldBy(buffer: SharedArrayBuffer, threadId: number): void {
    const s = new Int32Array(buffer);
    if (Atomics.compareExchange(s, HOLDER, threadId, 0) === threadId) Atomics.notify(s, HOLDER, 1);
  }

  private took(): void {
    Atomics.store(this.state, DROP_REQUEST, 0);
    Atomics.add(this.state, SWITCHES, 1);
    Atomics.notify(this.state, SWITCHES);
  }
}

/** What a thread computing under the lock is given (its workerData). */
export interface GilThreadData {
  buffer: SharedArrayBuffer;
  switchMs: number;
}

/** How many fib calls a thread makes between two looks at the drop request (CPython checks its "eval breaker" every few bytecodes). */
const CHECK_EVERY = 1000;

/**
 * For a thread computing under the lock: runs one task holding it, checking every CHECK_EVERY
 * calls whether another thread asked for it. The time spent waiting for the lock is the
 * request's queue wait: computeFib's startedAt is after it. Waiting for messages (the I/O)
 * holds no lock.
 */
export function gilComputer({ buffer, switchMs }: GilThreadData, threadId: number): (task: FibTask) => FibResult {
  const gil = new Gil(buffer, switchMs, threadId);
  let budget = CHECK_EVERY;
  /** The same call tree as fib(), with a lock check every CHECK_EVERY calls. */
  function fibHoldingGil(n: number): number {
    if (--budget === 0) {
      budget = CHECK_EVERY;
      gil.check();
    }
    return n <= 2 ? 1 : fibHoldingGil(n - 1) + fibHoldingGil(n - 2);
  }
  return (task) => {
    gil.acquire();
    try {
      return computeFib(task, fibHoldingGil);
    } finally {
      gil.release();
    }
  };
}
