// A thread of the shared thread pool (thread-pool.ts): piscina calls the default export with each task.

import { threadId } from 'node:worker_threads';
import { computeFibAsWorker } from './fib.js';
import type { FibResult, FibTask } from './messages.js';

export default function run(task: FibTask): FibResult {
  return computeFibAsWorker(task, threadId);
}
