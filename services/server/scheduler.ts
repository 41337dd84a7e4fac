// The talk's hand-written scheduler, in TypeScript: a run queue of generator tasks. A task
// yields what it waits for (a readable socket, a writable socket, a future, or nothing: it used
// up its CPU slice); the scheduler parks it until that happens, and runs the ready tasks
// round-robin, one step each per round. Where the talk calls `select`, this returns to Node's
// event loop after every round (setImmediate) and takes events as they come: a task waiting to
// read is woken by 'readable', one waiting to write by 'drain', one waiting on a future by the
// future's completion.
//
// Written by hand because it is the lesson: cooperative multitasking on one thread, where a
// long computation shares the CPU only because it yields, or because it is handed elsewhere and
// the task waits on its future (the talk's last server). Shared by the variants that schedule
// generator tasks; it knows nothing of fib.

import type { Socket } from 'node:net';

export type Wait =
  /** Until the socket has data, has ended or has closed. */
  | { kind: 'read'; socket: Socket }
  /** Until the socket's write buffer has drained (or it closed). */
  | { kind: 'write'; socket: Socket }
  /** Until the future has completed (its result or error is then read with future.result()). */
  | { kind: 'future'; future: Future<unknown> }
  /** Nothing: the task used its slice and goes to the back of the run queue. */
  | { kind: 'cpu' };

export const CPU: Wait = { kind: 'cpu' };

export type Task = Generator<Wait, void, undefined>;

/**
 * The result of work done elsewhere (another thread or process), as concurrent.futures has it: a
 * task yields `{ kind: 'future', future }` and, once resumed, reads `future.result()`, which
 * returns the value or throws the error. Completion callbacks run on this thread's event loop.
 */
export class Future<T> {
  private outcome: { ok: true; value: T } | { ok: false; error: unknown } | null = null;
  private callbacks: Array<() => void> = [];

  /** Starts `work` now; a synchronous throw completes the future with that error. */
  static start<T>(work: () => T | Promise<T>): Future<T> {
    const future = new Future<T>();
    let promise: Promise<T>;
    try {
      promise = Promise.resolve(work());
    } catch (error) {
      future.complete({ ok: false, error });
      return future;
    }
    promise.then(
      (value) => future.complete({ ok: true, value }),
      (error: unknown) => future.complete({ ok: false, error }),
    );
    return future;
  }

  get done(): boolean {
    return this.outcome !== null;
  }

  /** The value, or throws the error; only once done. */
  result(): T {
    if (this.outcome === null) throw new Error('Future.result() called before the future completed');
    if (!this.outcome.ok) throw this.outcome.error;
    return this.outcome.value;
  }

  /** Calls `callback` once done (at once if it is); returns a function that forgets it. */
  whenDone(callback: () => void): () => void {
    if (this.outcome !== null) {
      callback();
      return () => {};
    }
    this.callbacks.push(callback);
    return () => {
      this.callbacks = this.callbacks.filter((c) => c !== callback);
    };
  }

  private complete(outcome: NonNullable<Future<T>['outcome']>): void {
    this.outcome = outcome;
    const callbacks = this.callbacks;
    this.callbacks = [];
    for (const callback of callbacks) callback();
  }
}

interface Entry {
  task: Task;
  /** Set when the task must stop: thrown into it at its next step. */
  interrupt?: Error;
  done: boolean;
  /** Removes the listeners of a parked task. */
  unpark?: () => void;
  onExit?: (error?: unknown) => void;
}

export class Scheduler {
  private readonly ready: Entry[] = [];
  private readonly entries = new Map<Task, Entry>();
  private scheduled = false;

  constructor(private readonly onSlice: () => void = () => {}) {}

  /** Adds a task to the back of the run queue; `onExit` runs when it returns or throws. */
  spawn(task: Task, onExit?: (error?: unknown) => void): void {
    const entry: Entry = { task, done: false, onExit };
    this.entries.set(task, entry);
    this.makeReady(entry);
  }

  /** Wakes a parked task now (it re-checks what it waited for). */
  wake(task: Task): void {
    const entry = this.entries.get(task);
    if (entry?.unpark) this.makeReady(entry);
  }

  /** Throws `error` into the task at its next step (waking it if parked). */
  interrupt(task: Task, error: Error): void {
    const entry = this.entries.get(task);
    if (!entry || entry.done) return;
    entry.interrupt = error;
    if (entry.unpark) this.makeReady(entry);
  }

  /** Stops a task for good: its `finally` blocks run, it never runs again. */
  cancel(task: Task): void {
    const entry = this.entries.get(task);
    if (!entry || entry.done) return;
    entry.unpark?.();
    this.finish(entry);
    try {
      task.return(undefined);
    } catch {
      // a finally block that threw: the task is gone either way
    }
  }

  private makeReady(entry: Entry): void {
    entry.unpark?.();
    entry.unpark = undefined;
    this.ready.push(entry);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.round());
    }
  }

  /** Every task that is ready now runs one step; then Node's event loop polls for I/O. */
  private round(): void {
    this.scheduled = false;
    for (let count = this.ready.length; count > 0; count--) {
      const entry = this.ready.shift()!;
      if (!entry.done) this.step(entry);
    }
    if (this.ready.length > 0 && !this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.round());
    }
  }

  private step(entry: Entry): void {
    let result: IteratorResult<Wait, void>;
    try {
      const error = entry.interrupt;
      entry.interrupt = undefined;
      result = error ? entry.task.throw(error) : entry.task.next();
    } catch (error) {
      this.finish(entry, error);
      return;
    }
    if (result.done) return this.finish(entry);
    const wait = result.value;
    if (wait.kind === 'cpu') {
      this.onSlice();
      this.ready.push(entry);
      return;
    }
    if (wait.kind === 'future') {
      if (wait.future.done) return void this.ready.push(entry);
      entry.unpark = wait.future.whenDone(() => this.makeReady(entry));
      return;
    }
    const { socket } = wait;
    const events = wait.kind === 'read' ? ['readable', 'end', 'close'] : ['drain', 'close'];
    const wakeUp = () => this.makeReady(entry);
    for (const event of events) socket.once(event, wakeUp);
    entry.unpark = () => {
      for (const event of events) socket.off(event, wakeUp);
    };
  }

  private finish(entry: Entry, error?: unknown): void {
    entry.done = true;
    this.entries.delete(entry.task);
    entry.onExit?.(error);
  }
}
