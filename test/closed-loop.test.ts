// The closed loop's steady state on real sockets: each reply sends the next request from its own
// callback (no Promise per request: the generator's ceiling), and that stretch still hands back to
// the loop for everything else. A server that hangs up gets a new connection, a paused target is
// left alone with no connection held, a silent one times out, and every request is accounted for.

import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import { connectTo, realClock, runProbe } from '../services/loadgen/drivers.js';
import { PauseGate } from '../services/loadgen/pause.js';
import { ProbeRecorder, ProbeTally } from '../services/loadgen/recorder.js';
import type { Probe } from '../services/loadgen/scenario.js';
import { listenOnFreePort, waitFor } from './helpers.js';

const probe: Probe & { scenario: string } = {
  scenario: 'test',
  name: 'steady',
  n: 1,
  model: 'closed',
  connections: 2,
  thinkMs: 0,
  rate: 0,
  arrival: 'fixed',
  depth: 1,
  startMs: 0,
  stopMs: null,
  staggerMs: 0,
};

/**
 * A fib(1) server that hangs up each connection right after its `repliesPerConnection`th reply
 * (every reply it wrote reaches the client before the close), and, where `silentConnections` says
 * so, never answers on its first connections. Counts what it did.
 */
async function startHangingUpServer({ repliesPerConnection = Infinity, silentConnections = 0 } = {}) {
  const open = new Set<Socket>();
  const counts = { connections: 0, lines: 0, replies: 0 };
  const server = createServer((socket) => {
    counts.connections += 1;
    const silent = counts.connections <= silentConnections;
    open.add(socket);
    socket.setNoDelay(true);
    let replies = 0;
    socket.on('data', (chunk) => {
      for (const byte of chunk) {
        if (byte !== 10) continue;
        counts.lines += 1;
        if (silent || replies >= repliesPerConnection) continue;
        replies += 1;
        counts.replies += 1;
        socket.write('fib: 1\n');
        if (replies === repliesPerConnection) socket.end();
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => open.delete(socket));
  });
  const listening = await listenOnFreePort(server);
  return {
    ...listening,
    counts,
    /** Connections the server still has open. */
    openConnections: () => open.size,
    close: () => {
      for (const socket of open) socket.destroy();
      return listening.close();
    },
  };
}

type Server = Awaited<ReturnType<typeof startHangingUpServer>>;

function startClosedLoop(server: Server, { timeoutMs = 10_000, gate }: { timeoutMs?: number; gate?: PauseGate } = {}) {
  const recorder = new ProbeRecorder({ target: 'fake', scenario: 'test', probe: 'steady' }, probe.connections);
  const stopper = new AbortController();
  const done = runProbe({
    target: { name: 'fake', host: '127.0.0.1', port: server.port, connectPerRequest: false, legacy: false },
    probe,
    recorder,
    timeoutMs,
    periodMs: 0,
    startedAt: realClock.now(),
    stopped: stopper.signal,
    clock: realClock,
    connect: connectTo,
    onScheduleLag: () => {},
    gate,
  });
  return {
    /** Stops the loop, waits until it has finished, and returns what it recorded. */
    async stop(): Promise<ProbeTally> {
      stopper.abort();
      await done;
      const tally = new ProbeTally(recorder.key, probe.connections, null);
      tally.apply(recorder.takeDelta());
      return tally;
    },
  };
}

describe('closed loop (real sockets)', () => {
  const servers: Server[] = [];
  after(() => Promise.all(servers.map((server) => server.close())));

  it('reconnects when the server hangs up, and accounts for every reply and every request cut off', async () => {
    const server = await startHangingUpServer({ repliesPerConnection: 50 });
    servers.push(server);
    const loop = startClosedLoop(server);
    await waitFor(
      'the loop has gone through 10 connections',
      () => server.counts.connections >= 10,
      () => JSON.stringify(server.counts),
    );
    const tally = await loop.stop();
    const ok = tally.outcomes.get('ok') ?? 0;
    const closed = tally.outcomes.get('closed') ?? 0;
    const seen = `recorded ${JSON.stringify(Object.fromEntries(tally.outcomes))}, server ${JSON.stringify(server.counts)}`;
    assert.equal(ok, server.counts.replies, `every reply the server wrote is recorded ok: ${seen}`);
    assert.equal(tally.requests, ok + closed, `nothing but replies and requests cut off by a hang-up: ${seen}`);
    // At most one request is in flight on a connection when the server hangs up after a reply.
    assert.ok(closed <= server.counts.connections, `at most one request cut off per connection: ${seen}`);
    assert.ok(server.counts.lines >= ok, seen);
  });

  it('hangs up on a paused target and holds no connection to it, then sends again once resumed', async () => {
    const server = await startHangingUpServer();
    servers.push(server);
    const gate = new PauseGate();
    const loop = startClosedLoop(server, { gate });
    await waitFor(
      'the loop sends',
      () => server.counts.replies >= 100,
      () => JSON.stringify(server.counts),
    );
    gate.pause('fake');
    assert.ok(await gate.quiet('fake', 10_000), `paused: the loop still holds ${gate.connections('fake')} connections`);
    await waitFor(
      'the server sees every connection closed',
      () => server.openConnections() === 0,
      () => `${server.openConnections()} open`,
    );
    const whilePaused = { ...server.counts };
    gate.resume('fake');
    await waitFor(
      'the loop sends again on new connections',
      () => server.counts.replies >= whilePaused.replies + 100 && server.counts.connections > whilePaused.connections,
      () => JSON.stringify({ whilePaused, now: server.counts }),
    );
    const tally = await loop.stop();
    assert.equal(tally.outcomes.get('ok'), server.counts.replies, `every reply recorded: ${JSON.stringify(server.counts)}`);
    assert.equal(tally.requests, server.counts.replies, 'a pause cuts off no request: the loop waits for its answer first');
  });

  it('times out a request on a silent connection, hangs up and goes on with a new one', async () => {
    const server = await startHangingUpServer({ silentConnections: 2 });
    servers.push(server);
    // Long enough that an answering connection never times out on a busy machine: only the silent ones do.
    const loop = startClosedLoop(server, { timeoutMs: 2000 });
    await waitFor(
      'replies on the new connections',
      () => server.counts.replies >= 100,
      () => JSON.stringify(server.counts),
    );
    const tally = await loop.stop();
    const outcomes = Object.fromEntries(tally.outcomes);
    assert.equal(tally.outcomes.get('timeout'), 2, `one timeout per silent connection: ${JSON.stringify(outcomes)}`);
    assert.equal(tally.outcomes.get('ok'), server.counts.replies, `every reply recorded: ${JSON.stringify(outcomes)}`);
  });
});
