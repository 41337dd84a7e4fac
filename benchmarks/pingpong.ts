// The minimal sides of the benchmarks, as small as they can be:
//   node dist/benchmarks/pingpong.js server           answers every line with `fib: 1` (prints its port)
//   node dist/benchmarks/pingpong.js bare             a bare fib server: splits lines, computes fib(n)
//                                                     by the same recursion, writes `fib: <value>` (prints its port)
//   node dist/benchmarks/pingpong.js client PORT C S [W]
//                                                     C connections, each: send `1`, wait for the reply,
//                                                     repeat, for S seconds after W seconds of warm-up
//                                                     (default 0, not counted); prints the replies per second
//   node dist/benchmarks/pingpong.js paced PORT R C S W spin|sleep
//                                                     an open loop: `1` due every 1/R s, in turn on C
//                                                     connections, for S seconds after W of warm-up, and
//                                                     between requests either spinning (never asleep: a
//                                                     core's worth of CPU) or asleep on a futex until the
//                                                     next is due (Atomics.wait, fractional ms). How late
//                                                     it sends is the floor this machine sets under any
//                                                     client that runs, or that sleeps, that way: prints
//                                                     `<lag p99 ms> <lag max ms> <requests counted>`
// No framing library, no metrics, no timers: the most a Node client can send through one thread,
// and the least a Node server can do to answer the protocol (the baseline of benchmarks/hotpath.ts).

import { connect, createServer, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

const [mode, ...args] = process.argv.slice(2);

if (mode === 'server') {
  const server = createServer((socket) => {
    socket.setNoDelay(true);
    socket.on('data', (chunk) => {
      let lines = 0;
      for (const byte of chunk) if (byte === 10) lines += 1;
      if (lines > 0) socket.write('fib: 1\n'.repeat(lines));
    });
    socket.on('error', () => {});
  });
  server.listen(0, '127.0.0.1', () => console.log((server.address() as { port: number }).port));
} else if (mode === 'bare') {
  const fib = (n: number): number => (n <= 2 ? 1 : fib(n - 1) + fib(n - 2));
  const server = createServer((socket) => {
    socket.setNoDelay(true);
    let buffered = '';
    socket.on('data', (chunk) => {
      const lines = (buffered + chunk.toString('latin1')).split('\n');
      buffered = lines.pop()!;
      let out = '';
      for (const line of lines) out += `fib: ${fib(parseInt(line, 10))}\n`;
      if (out) socket.write(out);
    });
    socket.on('error', () => {});
  });
  server.listen(0, '127.0.0.1', () => console.log((server.address() as { port: number }).port));
} else if (mode === 'client') {
  const [port, connections, seconds, warmup = 0] = args.map(Number) as [number, number, number, number?];
  let replies = 0;
  const until = Date.now() + (warmup + seconds) * 1000;
  // The warm-up's replies are not counted: the count starts again when it ends.
  if (warmup > 0) setTimeout(() => (replies = 0), warmup * 1000);
  let open = connections;
  for (let i = 0; i < connections; i++) {
    const socket = connect({ port, host: '127.0.0.1' }, () => socket.write('1\n'));
    socket.setNoDelay(true);
    socket.on('data', (chunk) => {
      for (const byte of chunk) if (byte === 10) replies += 1;
      if (Date.now() < until) socket.write('1\n');
      else socket.end();
    });
    socket.on('close', () => {
      if (--open === 0) console.log(Math.round(replies / seconds));
    });
  }
} else if (mode === 'paced' && (args[5] === 'spin' || args[5] === 'sleep')) {
  const [port, rate, connections, seconds, warmup] = args.slice(0, 5).map(Number) as [number, number, number, number, number];
  const sleep = args[5] === 'sleep';
  const sockets = await Promise.all(
    Array.from(
      { length: connections },
      () =>
        new Promise<Socket>((resolve) => {
          const socket = connect({ port, host: '127.0.0.1' }, () => resolve(socket));
          socket.setNoDelay(true);
          socket.on('data', () => {});
        }),
    ),
  );
  const nap = new Int32Array(new SharedArrayBuffer(4));
  const periodMs = 1000 / rate;
  const start = performance.now();
  const countFrom = start + warmup * 1000;
  const end = countFrom + seconds * 1000;
  const lags = new Float64Array(Math.ceil(rate * seconds) + 1);
  let counted = 0;
  let sent = 0;
  // One turn of the event loop at a time (replies are read between turns, never waited for).
  const turn = () => {
    if (sleep) {
      const wait = start + sent * periodMs - performance.now();
      if (wait > 0) Atomics.wait(nap, 0, 0, wait);
    }
    const now = performance.now();
    for (let due = start + sent * periodMs; due <= now && due < end; due = start + sent * periodMs) {
      sockets[sent % connections]!.write('1\n');
      sent += 1;
      if (due >= countFrom && counted < lags.length) lags[counted++] = now - due;
    }
    if (now < end) return setImmediate(turn);
    const sorted = lags.subarray(0, counted).sort();
    console.log(`${sorted[Math.floor(counted * 0.99)]!.toFixed(3)} ${sorted[counted - 1]!.toFixed(3)} ${counted}`);
    for (const socket of sockets) socket.destroy();
  };
  turn();
} else {
  console.error(
    'usage: pingpong.js server | bare | client PORT CONNECTIONS SECONDS [WARMUP] | paced PORT RATE CONNECTIONS SECONDS WARMUP spin|sleep',
  );
  process.exit(2);
}
