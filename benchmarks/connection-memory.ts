// Memory per idle connection of a variant: starts `lab serve <variant>`, opens N connections
// (each answers one request, so its thread or process exists), and compares the resident
// memory of the whole process tree (the server and its threads, children or workers) before
// and after. Prints one line per variant.
//
//   npm run build && node dist/benchmarks/connection-memory.js threads 100
//   node dist/benchmarks/connection-memory.js            # every variant, at its README's count

import { readFileSync, readdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { VARIANT_NAMES, findVariant } from '../services/variants/index.js';
import { TestClient, startVariant } from '../test/helpers.js';

/** A thread or a process per connection is measured at 100 connections, the rest at 1000. */
const heavy = (name: string) => findVariant(name)?.parallelism === 'per-connection';

function treeRss(root: number): number {
  const parents = new Map<number, number>();
  const rss = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const vmRss = /^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${entry}/status`, 'utf8'));
      parents.set(Number(entry), ppid);
      rss.set(Number(entry), vmRss ? Number(vmRss[1]) * 1024 : 0);
    } catch {
      // gone meanwhile
    }
  }
  const inTree = (pid: number): boolean => pid === root || (parents.has(pid) && pid > 1 && inTree(parents.get(pid)!));
  let total = 0;
  for (const [pid, bytes] of rss) if (inTree(pid)) total += bytes;
  return total;
}

async function measure(variant: string, count: number): Promise<string> {
  const server = await startVariant(variant, { MAX_CONNECTIONS: String(count + 10) });
  const pid = server.child.pid!;
  const clients: TestClient[] = [];
  try {
    await sleep(500);
    const before = treeRss(pid);
    for (let i = 0; i < count; i++) {
      const client = await TestClient.connect(server.port);
      clients.push(client);
      // A variant whose clients take turns serves one connection at a time: the others wait, idle, unread.
      if (!findVariant(variant)!.takesTurns || i === 0) await client.ask('1');
    }
    await sleep(1000);
    const after = treeRss(pid);
    const per = (after - before) / count;
    return `${variant.padEnd(12)} ${String(count).padStart(5)} idle connections: ${(before / 2 ** 20).toFixed(1)} MB -> ${(after / 2 ** 20).toFixed(1)} MB, ${per >= 2 ** 20 ? `${(per / 2 ** 20).toFixed(2)} MB` : `${(per / 1024).toFixed(1)} KB`} per connection`;
  } finally {
    for (const client of clients) client.close();
    await server.stop();
  }
}

const [variant, count] = process.argv.slice(2);
const variants = variant ? [variant] : VARIANT_NAMES;
for (const name of variants) {
  console.log(await measure(name, count ? Number(count) : heavy(name) ? 100 : 1000));
}
