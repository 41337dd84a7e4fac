// The thread of one `gil` connection: like `threads`, but fib runs only while holding the GIL,
// and checks every CHECK_EVERY calls whether another thread asked for it (CPython checks its
// "eval breaker" every few bytecodes the same way). Waiting for messages (the I/O) holds no lock.

import { parentPort, threadId, workerData } from 'node:worker_threads';
import { computeFib } from '../../server/fib.js';
import type { FibTask } from '../../server/messages.js';
import { Gil } from './gil.js';

export interface GilThreadData {
  buffer: SharedArrayBuffer;
  switchMs: number;
}

const CHECK_EVERY = 1000;
const { buffer, switchMs } = workerData as GilThreadData;
const gil = new Gil(buffer, switchMs, threadId);

let budget = CHECK_EVERY;
/** The same call tree as fib(), with a lock check every CHECK_EVERY calls. */
function fibHoldingGil(n: number): number {
  if (--budget === 0) {
    budget = CHECK_EVERY;
    gil.check();
  }
  return n <= 2 ? 1 : fibHoldingGil(n - 1) + fibHoldingGil(n - 2);
}

parentPort!.on('message', (task: FibTask) => {
  gil.acquire(); // the time this takes is the request's queue wait: startedAt is after it
  try {
    parentPort!.postMessage(computeFib(task, fibHoldingGil));
  } finally {
    gil.release();
  }
});
