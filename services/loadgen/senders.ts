// Where a load run's send loops execute: in sending threads (worker_threads), so that the main
// thread only merges what they measured and serves /metrics and the control API. A scrape that
// renders a few hundred series, a control request or the main heap's garbage collection can then
// never delay a request going out or a reply being timed. The threads are started once per
// process and shared by every run; `threads: 0` runs the loops in the main thread instead (the
// tests' fake clocks and connections need that).
//
// Messages are typed (ToSender, FromSender). The background load's pause gate (pause.ts) lives
// in the main thread; each sending thread keeps a mirror of it, told of every change, and tells
// the main thread about every connection it opens or closes to a gated target, so that the
// spotlight can wait until a variant is really left alone.

import { setFlagsFromString } from 'node:v8';
import { Worker } from 'node:worker_threads';
import type { PauseGate } from './pause.js';
import { RunPart, type PartFlush, type PartSpec } from './part.js';

// V8's memory reducer, off for the threads started from here on (the sending threads and their
// pacers), wherever `lab load` runs; the lab's image turns it off for the whole process (its
// ENTRYPOINT), which a plain `node` cannot do this late for its main thread. Once a thread's
// compiling is over and it allocates little, V8 takes it for idle and shrinks its heap with a
// compacting mark-compact: 10-11 ms in a sending thread, about 8 s into every run, and the open
// loop's maximum schedule lag read 12-18 ms in 10 s runs. The heap still grows and is collected
// as usual.
setFlagsFromString('--no-memory-reducer');

export type ToSender =
  | { type: 'start'; spec: PartSpec; gateId: number | null }
  | { type: 'stop'; runId: number }
  | { type: 'gate'; gateId: number; paused: string[]; all: boolean };

export type FromSender =
  | { type: 'flush'; flush: PartFlush }
  | { type: 'held'; gateId: number; target: string; delta: number }
  | { type: 'failed'; runId: number; message: string };

/** What a run sees of one of its parts, wherever it executes. */
export interface PartHandle {
  stop(): void;
}

export interface PartCallbacks {
  flush(flush: PartFlush): void;
  failed(message: string): void;
}

/** Runs parts: in sending threads, or in this thread. */
export interface PartHost {
  /** How many parts a run is cut into. */
  readonly parts: number;
  start(spec: PartSpec, gate: PauseGate | null, callbacks: PartCallbacks): PartHandle;
}

/** Runs every part in the calling thread (one part). */
export const inThisThread: PartHost = {
  parts: 1,
  start(spec, gate, callbacks) {
    const part = new RunPart(spec, (flush) => callbacks.flush(flush), gate);
    part.finished.catch((error: Error) => callbacks.failed(error.message));
    return { stop: () => part.stop() };
  },
};

const SENDER_SCRIPT = new URL('./sender.js', import.meta.url);

/** The process's sending threads; see the header. */
export class SenderPool implements PartHost {
  private readonly workers: Worker[];
  private readonly running = new Map<number, { callbacks: PartCallbacks; thread: number }>();
  /** Parts running per thread: a thread keeps the process alive only while it has some. */
  private readonly busy: number[];
  private readonly gates = new Map<PauseGate, number>();
  private readonly gatesById = new Map<number, PauseGate>();

  constructor(threads: number) {
    this.busy = new Array<number>(threads).fill(0);
    this.workers = Array.from({ length: threads }, (_, thread) => {
      const worker = new Worker(SENDER_SCRIPT);
      worker.unref();
      worker.on('message', (message: FromSender) => this.receive(message));
      worker.on('error', (error) => {
        for (const [runId, part] of this.running)
          if (part.thread === thread) {
            this.running.delete(runId);
            part.callbacks.failed(`sending thread ${thread} failed: ${error.message}`);
          }
      });
      return worker;
    });
  }

  get parts(): number {
    return this.workers.length;
  }

  start(spec: PartSpec, gate: PauseGate | null, callbacks: PartCallbacks): PartHandle {
    const thread = spec.index % this.workers.length;
    const worker = this.workers[thread]!;
    const key = partKey(spec.runId, spec.index);
    this.running.set(key, { callbacks, thread });
    if (this.busy[thread]!++ === 0) worker.ref();
    const gateId = gate ? this.mirror(gate) : null;
    this.post(worker, { type: 'start', spec, gateId });
    return { stop: () => this.post(worker, { type: 'stop', runId: spec.runId }) };
  }

  /** Closes the threads (at exit, and in tests). */
  async close(): Promise<void> {
    await Promise.all(this.workers.map((worker) => worker.terminate()));
  }

  private receive(message: FromSender): void {
    if (message.type === 'held') {
      this.gatesById.get(message.gateId)?.adjustHeld(message.target, message.delta);
      return;
    }
    if (message.type === 'failed') {
      for (const [key, part] of this.running)
        if (Math.floor(key / PARTS_PER_RUN) === message.runId) {
          this.running.delete(key);
          this.idle(part.thread);
          part.callbacks.failed(message.message);
        }
      return;
    }
    const { flush } = message;
    const key = partKey(flush.runId, flush.index);
    const part = this.running.get(key);
    if (!part) return;
    if (flush.final) {
      this.running.delete(key);
      this.idle(part.thread);
    }
    part.callbacks.flush(flush);
  }

  private idle(thread: number): void {
    if (--this.busy[thread]! === 0) this.workers[thread]!.unref();
  }

  /** Mirrors `gate` in every thread, from now on. */
  private mirror(gate: PauseGate): number {
    let id = this.gates.get(gate);
    if (id !== undefined) return id;
    id = this.gates.size + 1;
    this.gates.set(gate, id);
    this.gatesById.set(id, gate);
    const gateId = id;
    const send = () => {
      for (const worker of this.workers)
        this.post(worker, { type: 'gate', gateId, paused: gate.pausedNames, all: gate.allPaused });
    };
    gate.subscribe(send);
    send();
    return id;
  }

  private post(worker: Worker, message: ToSender): void {
    worker.postMessage(message);
  }
}

/** Parts of one run are told apart by index; a run never has more parts than this. */
const PARTS_PER_RUN = 1024;
const partKey = (runId: number, index: number) => runId * PARTS_PER_RUN + index;

let shared: { threads: number; host: PartHost } | null = null;

/** How many sending threads runs use from now on (0: the main thread). `lab load --send-threads`. */
export function useSendThreads(threads: number): void {
  if (shared?.threads === threads) return;
  if (shared?.host instanceof SenderPool) void shared.host.close();
  shared = { threads, host: threads === 0 ? inThisThread : new SenderPool(threads) };
}

/** The process's host for runs (one sending thread unless useSendThreads said otherwise). */
export function sendHost(): PartHost {
  if (!shared) useSendThreads(DEFAULT_SEND_THREADS);
  return shared!.host;
}

/** One sending thread: the send loops leave the main thread, and the generator uses at most one more core. */
export const DEFAULT_SEND_THREADS = 1;
