// The hot path of the shared server against a bare Node server answering the same protocol
// (benchmarks/pingpong.ts `bare`: split lines, fib, write; no framing rules, no metrics, no
// drain, no caps). Same minimal closed-loop client (fib(1), 1 and 64 connections), same run,
// rounds alternating between the two servers, medians; the ratio is `lab serve eventloop` with
// its full metrics over the bare server. Then every other variant once per round against the same
// baseline (a ratio, not a goal: most hand each request to another thread or process).
//
//   npm run build && node dist/benchmarks/hotpath.js [seconds per measurement, default 5] [rounds, default 3]

import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startLocalVariant } from '../services/loadgen/local.js';
import { VARIANT_NAMES, findVariant } from '../services/variants/index.js';

const PINGPONG = fileURLToPath(new URL('./pingpong.js', import.meta.url));
const seconds = Number(process.argv[2] ?? 5);
const rounds = Number(process.argv[3] ?? 3);
const CONNECTIONS = [1, 64];
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

function client(port: number, connections: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [PINGPONG, 'client', String(port), String(connections), String(seconds)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.once('exit', (code) => (code === 0 ? resolve(Number(out.trim())) : reject(new Error(`client exited ${code}`))));
  });
}

async function startBare(): Promise<{ port: number; stop: () => void }> {
  const child: ChildProcess = spawn(process.execPath, [PINGPONG, 'bare'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve) =>
    child.stdout!.once('data', (chunk: Buffer) => resolve(Number(chunk.toString().trim()))),
  );
  return { port, stop: () => child.kill() };
}

async function measureLab(variant: string, connections: number): Promise<number> {
  // A client per request where clients take turns would measure connects, not the hot path.
  const server = await startLocalVariant(variant, { MAX_CONNECTIONS: '1000' });
  try {
    return await client(server.port, findVariant(variant)!.takesTurns ? 1 : connections);
  } finally {
    await server.stop();
  }
}

async function measureBare(connections: number): Promise<number> {
  const bare = await startBare();
  try {
    return await client(bare.port, connections);
  } finally {
    bare.stop();
  }
}

// A variant with a backend (queue: Redis and workers) is measured by its own benchmark (benchmarks/queue.ts).
const others = VARIANT_NAMES.filter((name) => name !== 'eventloop' && !findVariant(name)!.backend);
const results = new Map<string, number[]>();
const record = (key: string, value: number) => results.set(key, [...(results.get(key) ?? []), value]);
for (let round = 0; round < rounds; round++) {
  for (const connections of CONNECTIONS) {
    // Alternate which goes first, so a drift of the machine does not favour one side.
    const order = round % 2 === 0 ? ['bare', 'eventloop'] : ['eventloop', 'bare'];
    for (const who of order)
      record(
        `${who}@${connections}`,
        who === 'bare' ? await measureBare(connections) : await measureLab('eventloop', connections),
      );
    for (const variant of others) record(`${variant}@${connections}`, await measureLab(variant, connections));
    console.error(`round ${round + 1}/${rounds}, ${connections} connections done`);
  }
}

console.log(`hot path: closed-loop fib(1), ${seconds} s per measurement, ${rounds} alternating rounds, medians (req/s)`);
console.log(`command: node dist/benchmarks/hotpath.js ${seconds} ${rounds}\n`);
console.log('| server | connections | req/s | vs bare server | rounds |');
console.log('|---|---|---|---|---|');
for (const connections of CONNECTIONS) {
  const bare = median(results.get(`bare@${connections}`)!);
  for (const who of ['bare', 'eventloop', ...others]) {
    const values = results.get(`${who}@${connections}`)!;
    const note = who !== 'bare' && findVariant(who)!.takesTurns ? ' (1 connection: clients take turns)' : '';
    console.log(
      `| ${who === 'bare' ? 'bare net server' : who}${note} | ${connections} | ${median(values).toFixed(0)} | ${(median(values) / bare).toFixed(2)} | ${values.map((v) => v.toFixed(0)).join(' / ')} |`,
    );
  }
}
