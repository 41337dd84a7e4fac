// threads: one worker_thread per connection, like the talk's threaded server but without a
// GIL. Connections compute in parallel up to the CPU quota; each one costs a whole thread (a V8
// isolate: megabytes) and a thread start before its first reply.

import { defineVariant } from '../../server/plugin.js';
import { ThreadPerConnectionOwner, threadPerConnectionTraits } from '../../server/thread-per-connection.js';

export const threads = defineVariant({
  name: 'threads',
  hostPort: 25004,
  group: 'threads',
  model: 'one worker_thread per connection',
  shows: 'parallelism up to the CPU quota, no GIL; memory per connection',
  options: {},
  ...threadPerConnectionTraits,
  plugin: {
    level: 'owner',
    createOwner: async (ctx) => new ThreadPerConnectionOwner(ctx, new URL('./thread.js', import.meta.url)),
  },
});
