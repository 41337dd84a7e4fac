// The pacer (see pacer.ts): sleeps on a futex until the time its owner asked for, then wakes the
// owner's event loop with a message. Wakes early whenever the owner changes the time.

import { parentPort, workerData } from 'node:worker_threads';
import { epochMicros, type FromPacer, type PacerShared } from './pacer.js';

const shared = workerData as PacerShared;
const control = new Int32Array(shared.control);
const due = new BigInt64Array(shared.due);
const port = parentPort!;
const post = (message: FromPacer) => port.postMessage(message);

post('ready');

for (;;) {
  const seq = Atomics.load(control, 0);
  const at = Atomics.load(due, 0);
  if (at === 0n) {
    Atomics.wait(control, 0, seq); // nothing to wait for until the owner sets a time
    continue;
  }
  const waitMs = Number(at - epochMicros()) / 1000;
  if (waitMs > 0) {
    Atomics.wait(control, 0, seq, waitMs); // returns early when the owner changes the time
    continue;
  }
  // Due: wake the owner once for this time (unless it changed it meanwhile).
  if (Atomics.compareExchange(due, 0, at, 0n) === at) post('due');
}
