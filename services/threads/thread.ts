// The thread of one `threads` connection: computes each request it is sent, in order.

import { parentPort } from 'node:worker_threads';
import { computeFib } from '../common/fib.js';
import type { FibTask } from '../common/messages.js';

parentPort!.on('message', (task: FibTask) => parentPort!.postMessage(computeFib(task)));
