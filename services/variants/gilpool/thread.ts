// A `gilpool` pool thread: piscina calls the default export with each task, which is computed
// holding the emulated GIL (services/server/interpreter-lock.ts). Waiting for the next task (the
// I/O) holds no lock.

import { threadId, workerData } from 'node:worker_threads';
import { computeFibAsWorker } from '../../server/fib.js';
import { gilComputer, type GilThreadData } from '../../server/interpreter-lock.js';
import type { FibResult, FibTask } from '../../server/messages.js';

const computeHoldingGil = gilComputer(workerData as GilThreadData, threadId);

export default function run(task: FibTask): FibResult {
  return computeFibAsWorker(task, threadId, computeHoldingGil);
}
