// The Universal Scalability Law fit: it recovers the parameters that generated synthetic
// throughput (exact, and with deterministic noise), and says when there are too few points.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fitUsl, usl } from '../services/sweep/usl.js';

/** A deterministic pseudo-random sequence in [-1, 1] (the noise must not change between runs). */
function noise(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return (state / 2 ** 31) * 2 - 1;
  };
}

describe('the USL fit', () => {
  const quotas = [0.5, 1, 1.5, 2, 3, 4, 6, 8, 12, 16];

  for (const [lambda, sigma, kappa] of [
    [1000, 0.05, 0.002],
    [750, 0.3, 0],
    [1200, 0, 0.02],
    [500, 0, 0],
  ] as const) {
    it(`recovers lambda ${lambda}, sigma ${sigma}, kappa ${kappa} from exact points`, () => {
      const x = quotas.map((n) => usl(lambda, sigma, kappa, n));
      const { fit } = fitUsl(quotas, x);
      assert.ok(fit, 'a fit');
      assert.ok(Math.abs(fit.lambda - lambda) / lambda < 1e-3, `lambda ${fit.lambda}, expected ${lambda}`);
      assert.ok(Math.abs(fit.sigma - sigma) < 1e-3, `sigma ${fit.sigma}, expected ${sigma}`);
      assert.ok(Math.abs(fit.kappa - kappa) < 1e-4, `kappa ${fit.kappa}, expected ${kappa}`);
      assert.ok(fit.rmse < lambda * 1e-3, `rmse ${fit.rmse}`);
      assert.equal(fit.degreesOfFreedom, quotas.length - 3);
    });
  }

  it('recovers them within the noise from points with 2% noise, and reports that error', () => {
    const [lambda, sigma, kappa] = [900, 0.1, 0.005];
    const next = noise(42);
    const x = quotas.map((n) => usl(lambda, sigma, kappa, n) * (1 + 0.02 * next()));
    const { fit } = fitUsl(quotas, x);
    assert.ok(fit);
    assert.ok(Math.abs(fit.lambda - lambda) / lambda < 0.05, `lambda ${fit.lambda}, expected ${lambda}`);
    assert.ok(Math.abs(fit.sigma - sigma) < 0.05, `sigma ${fit.sigma}, expected ${sigma}`);
    assert.ok(Math.abs(fit.kappa - kappa) < 0.003, `kappa ${fit.kappa}, expected ${kappa}`);
    assert.ok(fit.rmse > 0 && fit.rmse < 0.03 * lambda * 2, `rmse ${fit.rmse}`);
    assert.ok(fit.r2 !== null && fit.r2 > 0.95, `r2 ${fit.r2}`);
  });

  it('a flat variant (one core whatever the quota) comes out as contention near 1', () => {
    const x = [0.5, 1, 1.5, 2].map((n) => usl(800, 1, 0, n));
    const { fit } = fitUsl([0.5, 1, 1.5, 2], x);
    assert.ok(fit);
    assert.ok(fit.sigma > 0.95, `sigma ${fit.sigma}`);
  });

  it('says there are too few points below three quotas, and that three fit exactly', () => {
    const two = fitUsl([1, 2], [100, 200]);
    assert.equal(two.fit, null);
    assert.match(two.note, /too few points/);
    const three = fitUsl([1, 2, 3], [100, 190, 270]);
    assert.ok(three.fit);
    assert.equal(three.fit.degreesOfFreedom, 0);
    assert.match(three.note ?? '', /passes through every point/);
  });
});
