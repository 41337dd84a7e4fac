// queue: scale-out across containers and hosts. The front (`lab serve queue`) speaks the protocol
// and adds each request to a Redis stream; workers (`lab worker`, one process each, each in its
// own container) read it through a consumer group, compute fib and reply to the front that owns
// the connection. See README.md for the design and its failure handling.

import type { VariantDefinition } from '../common/server.js';

export const queue: VariantDefinition = {
  name: 'queue',
  model: 'front service + worker containers on Redis (ioredis, Streams with consumer groups)',
  shows: 'scale-out across containers and hosts; no request lost when a worker dies',
  // A connection costs the front a few kilobytes; the queue is bounded per front by MAX_QUEUE.
  defaultMaxConnections: 10_000,
  // Loaded when the variant runs, so that other `lab` commands do not load ioredis.
  async createExecutor(ctx) {
    const { QueueFront } = await import('./front.js');
    return QueueFront.start(ctx);
  },
};
