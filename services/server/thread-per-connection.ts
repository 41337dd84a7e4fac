// Gives every connection a worker_thread of its own, started when the connection is adopted
// and terminated when it closes (`threads`, and `gil` with its global lock). The serving thread
// keeps the socket (Node cannot hand a socket to a thread) and the shared LineConnection; the
// connection's thread computes its requests, one at a time, in order. A thread that dies takes
// its connection with it, as when a thread owns its socket.

import { Worker } from 'node:worker_threads';
import type { Socket } from 'node:net';
import type { FibResult, FibTask } from './messages.js';
import type { VariantContext } from './plugin.js';
import { LineServingOwner } from './server.js';

/** What the thread-per-connection variants' rows of the variant table have in common. */
export const threadPerConnectionTraits = {
  // Each connection holds a thread with its own V8 heap (about 9 MB).
  connectionCap: 128,
  idleTimeoutMs: 300_000,
  takesTurns: false,
  parallelism: 'per-connection',
  // A client that leaves takes its thread, terminated mid-fib.
  interruptible: true,
  limits: { memory: '1536m', pids: 256 },
} as const;

export class ThreadPerConnectionOwner extends LineServingOwner {
  private live = 0;

  /**
   * @param script the thread's module: answers each FibTask message with a FibResult message
   * @param threads what every thread is started with, and what to do when one has exited
   */
  constructor(
    ctx: VariantContext,
    private readonly script: URL,
    private readonly threads: { workerData?: unknown; onExit?: (threadId: number) => void } = {},
  ) {
    super(ctx);
  }

  liveWorkers(): number {
    return this.live;
  }

  adopt(socket: Socket, release: () => void): void {
    const thread = new Worker(this.script, { workerData: this.threads.workerData });
    const { threadId } = thread; // reads -1 once the thread has exited
    this.live += 1;
    const waiting: Array<(result: FibResult) => void> = [];
    thread.on('message', (result: FibResult) => waiting.shift()?.(result));
    thread.once('error', () => socket.destroy());
    thread.once('exit', () => {
      this.live -= 1;
      this.threads.onExit?.(threadId);
      socket.destroy();
    });
    const handler = (n: number) =>
      new Promise<FibResult>((resolve) => {
        waiting.push(resolve);
        thread.postMessage({ n } satisfies FibTask);
      });
    // Terminating stops a computation nobody waits for any more.
    this.serve(socket, handler, release, () => thread.terminate());
  }

  async close(): Promise<void> {}
}
