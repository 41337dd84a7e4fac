// Jain's fairness index, J = (sum x)^2 / (n * sum x^2), over what each of n connections got:
// 1 when all got the same, 1/n when one got everything. Undefined (null) when none got anything.

export function jainIndex(shares: readonly number[]): number | null {
  let sum = 0;
  let squares = 0;
  for (const x of shares) {
    sum += x;
    squares += x * x;
  }
  return squares === 0 ? null : (sum * sum) / (shares.length * squares);
}
