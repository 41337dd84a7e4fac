// eventloop: Node's default model, the talk's asyncio / coroutine / non-blocking-socket servers.
// One thread does all the I/O and computes fib inline, so one long fib stalls every client.

import { inlineExecutor, type VariantDefinition } from '../common/server.js';

export const eventloop: VariantDefinition = {
  name: 'eventloop',
  model: 'one thread, non-blocking I/O, fib inline on the event loop',
  shows: 'one long fib stalls every client',
  // A connection costs the event loop a few kilobytes.
  defaultMaxConnections: 10_000,
  createExecutor: async () => inlineExecutor(),
};
