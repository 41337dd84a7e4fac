// The thread of one `gil` connection: like `threads`, but fib runs only while holding the GIL
// (services/server/interpreter-lock.ts), checking every few calls whether another thread asked
// for it. Waiting for messages (the I/O) holds no lock.

import { parentPort, threadId, workerData } from 'node:worker_threads';
import type { FibTask } from '../../server/messages.js';
import { gilComputer, type GilThreadData } from '../../server/interpreter-lock.js';

const compute = gilComputer(workerData as GilThreadData, threadId);

parentPort!.on('message', (task: FibTask) => {
  parentPort!.postMessage(compute(task));
});
