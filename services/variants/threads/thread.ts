// The thread of one `threads` connection: computes each request it is sent, in order.

import { parentPort } from 'node:worker_threads';
import { computeFib } from '../../server/fib.js';
import type { FibTask } from '../../server/messages.js';

parentPort!.on('message', (task: FibTask) => parentPort!.postMessage(computeFib(task)));
