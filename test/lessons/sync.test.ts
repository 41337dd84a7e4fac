// sync's lesson, on reply order: while a first client stays connected, a second client's request
// gets no reply, however many requests the first one makes; it is answered once the first leaves.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TestClient, startVariant } from '../helpers.js';

describe('lesson: sync', () => {
  it('answers a second client only after the first has left', async () => {
    const server = await startVariant('sync');
    const first = await TestClient.connect(server.port);
    const second = await TestClient.connect(server.port);
    try {
      const order: string[] = [];
      assert.equal(await first.ask('1'), 'fib: 1');
      order.push('first: fib(1)');
      await second.write('6\n');
      const answered = second.line().then((reply) => order.push(`second: ${reply}`));
      for (let i = 0; i < 5; i++) {
        assert.equal(await first.ask('25'), 'fib: 75025');
        order.push('first: fib(25)');
      }
      order.push('first leaves');
      first.close();
      await answered;
      assert.deepEqual(
        order,
        ['first: fib(1)', ...Array<string>(5).fill('first: fib(25)'), 'first leaves', 'second: fib: 8'],
        order.join(', '),
      );
    } finally {
      first.close();
      second.close();
      await server.stop();
    }
  });
});
