// The load generator against a live variant: its JSON and table output, its /metrics, the
// connect-per-request mode, and a target that refuses connections.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { CLI, fetchText, runLab, startVariant, type RunningVariant } from './helpers.js';

describe('lab load', () => {
  let server: RunningVariant;
  before(async () => {
    server = await startVariant('eventloop');
  });
  after(async () => {
    await server?.stop();
  });

  it('runs perf1 and perf2 together and reports each probe as JSON', async () => {
    const { code, stdout, stderr } = await runLab([
      'load', '--target', `ev=127.0.0.1:${server.port}`, '--scenario', 'perf1,perf2', '--duration', '2s', '--json',
    ]);
    assert.equal(code, 0, stderr);
    const run = JSON.parse(stdout);
    assert.ok(run.durationSeconds >= 1.9 && run.durationSeconds < 3, `durationSeconds ${run.durationSeconds}`);
    assert.deepEqual(run.results.map((r: { scenario: string; probe: string; n: number }) => [r.scenario, r.probe, r.n]), [
      ['perf1', 'long', 30],
      ['perf2', 'short', 1],
    ]);
    for (const r of run.results) {
      assert.equal(r.target, 'ev');
      assert.ok(r.requests > 0 && r.ok === r.requests, `${r.probe}: ${r.ok} ok of ${r.requests}`);
      assert.deepEqual(r.errors, {});
      const { p50, p90, p99, max } = r.latencyMs;
      assert.ok(p50 > 0 && p50 <= p90 && p90 <= p99 && p99 <= max, `${r.probe} percentiles ${JSON.stringify(r.latencyMs)}`);
      assert.ok(Math.abs(r.requestsPerSecond - r.requests / run.durationSeconds) < 1);
      assert.match(r.histogram, /^[A-Za-z0-9+/=]{20,}$/);
      assert.equal(r.fairness, 1, 'one connection per probe is trivially fair');
    }
    assert.match(stderr, /^\[\s+1s\] ev\/long [\d.]+\/s p50 /m, 'a live line per second on stderr');
  });

  it('prints a final table by default', async () => {
    const { code, stdout } = await runLab(['load', '--target', `ev=127.0.0.1:${server.port}`, '--duration', '1s']);
    assert.equal(code, 0);
    const lines = stdout.trim().split('\n');
    assert.match(lines[1]!, /^target\s+scenario\s+probe\s+n\s+requests\s+req\/s\s+p50\s+p90\s+p99\s+max\s+fairness\s+errors$/);
    assert.match(lines[2]!, /^ev\s+perf2\s+short\s+1\s+\d+\s+[\d.]+\s+\S+\s+\S+\s+\S+\s+\S+\s+1\.00\s+0$/);
  });

  it("reports Jain's fairness over a probe's connections", async () => {
    const { code, stdout, stderr } = await runLab(['load', '--target', `ev=127.0.0.1:${server.port}`, '--connections', '4', '--duration', '1s', '--json']);
    assert.equal(code, 0, stderr);
    const [result] = JSON.parse(stdout).results;
    // The event loop answers four identical closed loops in turn: each gets a fair share.
    assert.ok(result.fairness > 0.9 && result.fairness <= 1, `fairness ${result.fairness}`);
  });

  it('opens a connection per request when the target asks for it', async () => {
    const { code, stdout, stderr } = await runLab([
      'load', '--target', `ev=127.0.0.1:${server.port}?connect=per-request`, '--duration', '1s', '--json',
    ]);
    assert.equal(code, 0, stderr);
    const [result] = JSON.parse(stdout).results;
    assert.ok(result.requests > 10 && result.ok === result.requests, JSON.stringify(result.errors));
  });

  it('counts connect_error for a target that refuses connections, and still finishes', async () => {
    const refusing = await startVariant('eventloop');
    const port = refusing.port;
    await refusing.stop();
    const { code, stdout } = await runLab(['load', '--target', `gone=127.0.0.1:${port}`, '--duration', '1s', '--json']);
    assert.equal(code, 0);
    const [result] = JSON.parse(stdout).results;
    assert.ok(result.errors.connect_error >= 1, JSON.stringify(result));
    assert.equal(result.ok, 0);
  });

  it('exports client-side latency histograms on /metrics, labelled by variant, scenario and probe', async () => {
    const child = spawn(process.execPath, [
      CLI, 'load', '--target', `ev=127.0.0.1:${server.port}`, '--scenario', 'perf2', '--duration', '20s', '--metrics-port', '0',
    ]);
    try {
      const port = await new Promise<number>((resolve, reject) => {
        let stderr = '';
        child.stderr.on('data', (chunk: Buffer) => {
          stderr += chunk.toString();
          const match = /metrics on http:\/\/[^:]+:(\d+)\/metrics/.exec(stderr);
          if (match) resolve(Number(match[1]));
        });
        child.once('exit', () => reject(new Error(`lab load exited: ${stderr}`)));
      });
      let body = '';
      for (let attempt = 0; attempt < 50; attempt++) {
        body = (await fetchText(`http://127.0.0.1:${port}/metrics`)).body;
        if (/^loadgen_request_duration_seconds_count\{[^}]*\} [1-9]/m.test(body)) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const count = /^loadgen_request_duration_seconds_count\{([^}]*)\} (\d+)/m.exec(body);
      assert.ok(count, 'loadgen_request_duration_seconds_count present');
      assert.match(count[1]!, /variant="ev"/);
      assert.match(count[1]!, /scenario="perf2"/);
      assert.match(count[1]!, /probe="short"/);
      assert.ok(Number(count[2]) > 0);
      assert.match(body, /^loadgen_requests_total\{variant="ev",scenario="perf2",probe="short",outcome="ok"\} [1-9]/m);
      assert.match(body, /^loadgen_fairness_index\{variant="ev",scenario="perf2",probe="short"\} 1$/m);
      assert.equal((await fetchText(`http://127.0.0.1:${port}/healthz`)).status, 200);
    } finally {
      child.kill('SIGTERM');
    }
  });
});
