// A process of the shared process pool (process-pool.ts): computes each task its parent sends, one at a time.

import { computeFibAsWorker } from './fib.js';
import type { PoolReply, PoolRequest } from './messages.js';

const reply = (message: PoolReply) => process.send!(message);

process.on('message', ({ id, task }: PoolRequest) => {
  reply({ type: 'result', id, result: computeFibAsWorker(task, process.pid) });
});
// The parent is gone: nobody would read our answers.
process.on('disconnect', () => process.exit(0));
reply({ type: 'ready' });
