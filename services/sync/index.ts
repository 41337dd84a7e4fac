// sync: the talk's first server. One connection at a time, one request at a time: the server
// serves a client until it disconnects and only then looks at the next one. Later connections
// are accepted by the kernel (and counted against the cap) but not read: their clients wait.

import type { Socket } from 'node:net';
import type { LineConnection } from '../common/connection.js';
import { formatError } from '../common/protocol.js';
import {
  inlineExecutor,
  serveLines,
  type ConnectionOwner,
  type VariantContext,
  type VariantDefinition,
} from '../common/server.js';

export const sync: VariantDefinition = {
  name: 'sync',
  model: 'one connection at a time, one request at a time',
  shows: 'a second client waits until the first leaves',
  // A waiting connection costs only its socket.
  defaultMaxConnections: 1000,
  createOwner: async (ctx) => new OneAtATimeOwner(ctx),
};

interface Waiting {
  socket: Socket;
  release: () => void;
}

class OneAtATimeOwner implements ConnectionOwner {
  private readonly executor = inlineExecutor();
  private readonly waiting: Waiting[] = [];
  private current: LineConnection | null = null;
  private draining = false;

  constructor(private readonly ctx: VariantContext) {
    ctx.metrics.workers.set(1);
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
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve(release())));
      socket.end(formatError('unavailable', "server shutting down before this connection's turn"), () => socket.destroy());
      return closed;
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
