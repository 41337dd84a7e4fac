// The threadpool variant's worker thread: piscina calls the default export with each task.

import { threadId } from 'node:worker_threads';
import { computeFibAsWorker } from '../../server/fib.js';
import type { FibResult, FibTask } from '../../server/messages.js';

export default function run(task: FibTask): FibResult {
  return computeFibAsWorker(task, threadId);
}
