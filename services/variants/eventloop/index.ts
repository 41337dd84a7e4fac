// eventloop: Node's default model, the talk's asyncio / coroutine / non-blocking-socket servers.
// One thread does all the I/O and computes fib inline, so one long fib stalls every client.

import { defineVariant } from '../../server/plugin.js';
import { inlineExecutor } from '../../server/server.js';

export const eventloop = defineVariant({
  name: 'eventloop',
  hostPort: 25002,
  group: 'eventloop',
  model: 'one thread, non-blocking I/O, fib inline on the event loop',
  shows: 'one long fib stalls every client',
  options: {},
  // A connection costs the event loop a few kilobytes.
  connectionCap: 10_000,
  idleTimeoutMs: 300_000,
  takesTurns: false,
  parallelism: 'single',
  interruptible: false,
  limits: { memory: '256m', pids: 64 },
  plugin: { level: 'executor', createExecutor: async () => inlineExecutor() },
});
