// processes: one child process per connection, like the talk's fork-per-client server. The
// parent accepts, forks a child and hands it the socket (Node passes the handle over IPC); the
// child owns the connection until it closes, then exits and is reaped. Parallel up to the CPU
// quota, at the price of a whole Node process (tens of megabytes and tens of milliseconds to
// start) per client. The parent keeps the metrics; children report their requests to it.

import { fork, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import type { ConnectionCommand, ObservationBatch } from './messages.js';
import { replay } from '../../server/metrics.js';
import { defineVariant, type ConnectionOwner, type VariantContext } from '../../server/plugin.js';

export const processes = defineVariant({
  name: 'processes',
  hostPort: 25006,
  group: 'processes',
  model: 'one child process per connection (fork per client)',
  shows: 'parallelism and its memory and start-up cost',
  options: {},
  // Each connection holds a whole Node process (about 45 MB).
  connectionCap: 32,
  idleTimeoutMs: 300_000,
  takesTurns: false,
  parallelism: 'per-connection',
  // The child computes on its own event loop: nothing stops a fib once it has started.
  interruptible: false,
  limits: { memory: '2g', pids: 768 },
  plugin: { level: 'owner', createOwner: async (ctx) => new ProcessPerConnectionOwner(ctx) },
});

const CHILD = new URL('./child.js', import.meta.url);
/** How long a child may take to finish after `abort` before it is killed. */
const ABORT_GRACE_MS = 2000;

class ProcessPerConnectionOwner implements ConnectionOwner {
  private readonly children = new Map<ChildProcess, Promise<void>>();

  constructor(private readonly ctx: VariantContext) {}

  liveWorkers(): number {
    return this.children.size;
  }

  adopt(socket: Socket, release: () => void): void {
    const { metrics, options } = this.ctx;
    const child = fork(CHILD, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    this.children.set(child, exited);
    child.on('message', (batch: ObservationBatch) => {
      if (batch.inflight !== 0) metrics.recorder.inflight(batch.inflight);
      for (const observation of batch.observations) replay(metrics.recorder, observation);
      for (const reason of batch.closed) metrics.recorder.closed(reason);
    });
    child.on('error', () => child.kill('SIGKILL'));
    void exited.then(() => {
      this.children.delete(child);
      socket.destroy(); // if the child never took it (fork failed)
      release();
    });
    // The handle moves to the child; the server accepted it paused, so no byte was read here.
    const serve: ConnectionCommand = {
      type: 'serve',
      fibMaxN: options.fibMaxN,
      maxPipeline: options.maxPipeline,
      idleTimeoutMs: options.idleTimeoutMs,
      lineTimeoutMs: options.lineTimeoutMs,
    };
    child.send(serve, socket, { keepOpen: false }, (error) => {
      if (error) child.kill('SIGKILL');
    });
  }

  async drain(): Promise<void> {
    this.command({ type: 'drain' });
    await Promise.all(this.children.values());
  }

  abort(): void {
    this.command({ type: 'abort' });
    setTimeout(() => {
      for (const child of this.children.keys()) child.kill('SIGKILL');
    }, ABORT_GRACE_MS).unref();
  }

  async close(): Promise<void> {
    for (const child of this.children.keys()) child.kill('SIGKILL');
    await Promise.all(this.children.values());
  }

  private command(command: ConnectionCommand): void {
    for (const child of this.children.keys()) if (child.connected) child.send(command);
  }
}
