// sync: the talk's first server. One connection at a time, one request at a time: the server
// serves a client until it disconnects and only then looks at the next one. Later connections
// are accepted by the kernel (and counted against the cap) but not read: their clients wait.
// A client that says nothing for IDLE_TIMEOUT_MS (30 s here, not 5 minutes) loses its turn.

import type { Socket } from 'node:net';
import { endAndDiscard, type LineConnection } from '../../server/connection.js';
import { defineVariant, type ConnectionOwner, type VariantContext } from '../../server/plugin.js';
import { SHUTTING_DOWN, formatError } from '../../server/protocol.js';
import { inlineExecutor, serveLines } from '../../server/server.js';

export const sync = defineVariant({
  name: 'sync',
  hostPort: 25001,
  group: 'sync',
  model: 'one connection at a time, one request at a time',
  shows: 'a second client waits until the first leaves',
  options: {},
  // A waiting connection costs only its socket.
  connectionCap: 1000,
  // A silent client holds everyone else back: it loses its turn sooner.
  idleTimeoutMs: 30_000,
  takesTurns: true,
  parallelism: 'single',
  interruptible: false,
  limits: { memory: '256m', pids: 64 },
  plugin: { level: 'owner', createOwner: async (ctx) => new OneAtATimeOwner(ctx) },
});

interface Waiting {
  socket: Socket;
  release: () => void;
}

class OneAtATimeOwner implements ConnectionOwner {
  private readonly executor = inlineExecutor();
  private readonly waiting: Waiting[] = [];
  private current: LineConnection | null = null;
  private draining = false;

  constructor(private readonly ctx: VariantContext) {}

  liveWorkers(): number {
    return 1;
  }

  adopt(socket: Socket, release: () => void): void {
    this.waiting.push({ socket, release });
    this.serveNext();
  }

  private serveNext(): void {
    if (this.current || this.draining) return;
    const next = this.waiting.shift();
    if (!next) return;
    const connection = serveLines(next.socket, this.executor.run, this.ctx);
    this.current = connection;
    void connection.done.then(() => {
      this.current = null;
      next.release();
      this.serveNext();
    });
  }

  async drain(): Promise<void> {
    this.draining = true;
    // Clients still waiting for their turn will not get one.
    const refused = this.waiting.splice(0).map(({ socket, release }) => {
      const closed = new Promise<void>((resolve) => (socket.closed ? resolve() : socket.once('close', () => resolve())));
      endAndDiscard(socket, formatError('unavailable', `${SHUTTING_DOWN} before this connection's turn`));
      return closed.then(release);
    });
    await Promise.all([this.current?.drain(), ...refused]);
  }

  abort(): void {
    this.current?.abort();
  }

  close(): Promise<void> {
    return this.executor.close();
  }
}
