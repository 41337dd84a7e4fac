// Neil Gunther's Universal Scalability Law, fitted to a variant's throughput against its CPU
// quota: X(N) = lambda N / (1 + sigma (N - 1) + kappa N (N - 1)). lambda is the throughput of
// one core, sigma the contention (the share of work that serializes: a lock, one event loop),
// kappa the coherency cost (work that grows with every pair of cores keeping each other up to
// date). sigma = kappa = 0 is the ideal line; kappa > 0 makes throughput peak and then fall.
// The least squares come from ml-levenberg-marquardt, with the model's exact Jacobian.

import { levenbergMarquardt } from 'ml-levenberg-marquardt';

export interface UslFit {
  lambda: number;
  sigma: number;
  kappa: number;
  /** Root-mean-square error of the fit, in the throughput's unit. */
  rmse: number;
  /** Coefficient of determination (1 is a perfect fit); null when every point has the same throughput. */
  r2: number | null;
  points: number;
  /** Points minus parameters: 0 means the fit passes through every point and its error says nothing. */
  degreesOfFreedom: number;
}

export type UslResult = { fit: UslFit; note: string | null } | { fit: null; note: string };

export const MIN_USL_POINTS = 3;

export function usl(lambda: number, sigma: number, kappa: number, n: number): number {
  return (lambda * n) / (1 + sigma * (n - 1) + kappa * n * (n - 1));
}

/** Fits the USL to (quota, throughput) points; says why not when there are too few distinct quotas. */
export function fitUsl(n: readonly number[], x: readonly number[]): UslResult {
  const distinct = new Set(n).size;
  if (distinct < MIN_USL_POINTS) {
    return {
      fit: null,
      note: `too few points to fit: ${distinct} quota${distinct === 1 ? '' : 's'}, the fit needs ${MIN_USL_POINTS}`,
    };
  }
  // Fitted on throughput scaled to about 1, so the three parameters have like magnitudes.
  const scale = Math.max(...x.map((v, i) => v / n[i]!)) || 1;
  const y = x.map((v) => v / scale);
  const model =
    ([l, s, k]: number[]) =>
    (q: number) =>
      usl(l!, s!, k!, q);
  const jacobian =
    ([l, s, k]: number[]) =>
    (q: number) => {
      const d = 1 + s! * (q - 1) + k! * q * (q - 1);
      return [q / d, (-l! * q * (q - 1)) / (d * d), (-l! * q * q * (q - 1)) / (d * d)];
    };
  let best: { values: number[]; sse: number } | null = null;
  for (const start of [
    [1, 0.05, 0.001],
    [1, 0.5, 0.01],
    [0.8, 0, 0],
    [1.2, 0.9, 0.1],
  ]) {
    const result = levenbergMarquardt({ x: n, y }, model, {
      initialValues: start,
      minValues: [0, 0, 0],
      maxValues: [100, 1, 10],
      jacobianFunction: jacobian,
      damping: 1e-2,
      maxIterations: 500,
      errorTolerance: 1e-12,
      improvementThreshold: 1e-6,
    });
    const values = result.parameterValues;
    const sse = n.reduce((sum, q, i) => sum + (model(values)(q) - y[i]!) ** 2, 0);
    if (Number.isFinite(sse) && (!best || sse < best.sse)) best = { values, sse };
  }
  const [lambdaScaled, sigma, kappa] = best!.values as [number, number, number];
  const lambda = lambdaScaled * scale;
  const residuals = n.map((q, i) => x[i]! - usl(lambda, sigma, kappa, q));
  const sse = residuals.reduce((sum, r) => sum + r * r, 0);
  const mean = x.reduce((a, b) => a + b, 0) / x.length;
  const sst = x.reduce((sum, v) => sum + (v - mean) ** 2, 0);
  const degreesOfFreedom = n.length - 3;
  return {
    fit: {
      lambda,
      sigma,
      kappa,
      rmse: Math.sqrt(sse / n.length),
      r2: sst > 0 ? 1 - sse / sst : null,
      points: n.length,
      degreesOfFreedom,
    },
    note:
      degreesOfFreedom === 0
        ? 'three points, three parameters: the curve passes through every point, its error says nothing'
        : null,
  };
}
