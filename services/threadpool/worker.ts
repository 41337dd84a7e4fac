// The threadpool variant's worker thread: piscina calls the default export with each task.

import { computeFib } from '../common/fib.js';
import type { FibResult, FibTask } from '../common/messages.js';

export default function run(task: FibTask): FibResult {
  return computeFib(task);
}
