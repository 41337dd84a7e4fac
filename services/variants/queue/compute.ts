// The queue worker's computing thread (piscina calls the default export with each job): fib runs
// here so that the worker's event loop stays free to report on a long job to Redis, and so that
// a job whose front gave up can be stopped (piscina terminates and replaces the thread).

import { computeFib } from '../../server/fib.js';
import type { FibResult, FibTask } from '../../server/messages.js';

export default function run(task: FibTask): FibResult {
  return computeFib(task);
}
