// `processpool`: the parent and its pool processes.

import type { FibResult, FibTask } from '../../server/messages.js';

/** Parent -> a pool process (`processpool`): compute this task, and answer with its id. */
export interface PoolRequest {
  id: number;
  task: FibTask;
}

/** A pool process -> its parent. */
export type PoolReply = { type: 'ready' } | { type: 'result'; id: number; result: FibResult };
