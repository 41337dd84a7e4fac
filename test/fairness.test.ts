import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { jainIndex } from '../services/loadgen/fairness.js';

describe("Jain's fairness index", () => {
  it('is 1 for equal shares, 1/n when one connection gets everything, in between otherwise', () => {
    assert.equal(jainIndex([5, 5, 5, 5]), 1);
    assert.equal(jainIndex([7]), 1);
    assert.equal(jainIndex([10, 0, 0, 0]), 0.25);
    assert.equal(jainIndex([3, 1]), 16 / 20); // (3 + 1)^2 / (2 * (9 + 1))
    assert.equal(jainIndex([0, 0]), null);
  });
});
