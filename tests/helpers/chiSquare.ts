/** Chi-square goodness of fit for the sampling tests. */

/** Upper 0.1% points of the chi-square distribution, by degrees of freedom (1..12). */
const CRITICAL_0_001 = [10.828, 13.816, 16.266, 18.467, 20.515, 22.458, 24.322, 26.124, 27.877, 29.588, 31.264, 32.909];

export interface ChiSquare {
  statistic: number;
  df: number;
  /** The 0.1% critical value for `df`: a correct sampler exceeds it once in 1,000 seeds. */
  critical: number;
  /** Noncentrality N·Σ(alt − p)²/p of an alternative (when given): the test's power against it grows with it. */
  noncentrality: number;
}

/**
 * Pearson's statistic of `counts` (by category) against `expected` probabilities. Categories
 * expected fewer than 5 times are pooled into one.
 */
export function chiSquare(counts: Map<string, number>, expected: Map<string, number>, alternative?: Map<string, number>): ChiSquare {
  const n = [...counts.values()].reduce((a, b) => a + b, 0);
  const keys = new Set([...counts.keys(), ...expected.keys()]);
  let statistic = 0;
  let bins = 0;
  let pooledCount = 0;
  let pooledP = 0;
  let noncentrality = 0;
  let pooledAlt = 0;
  for (const key of keys) {
    const p = expected.get(key) ?? 0;
    const c = counts.get(key) ?? 0;
    const alt = alternative?.get(key) ?? 0;
    if (n * p < 5) {
      pooledCount += c;
      pooledP += p;
      pooledAlt += alt;
      continue;
    }
    statistic += (c - n * p) ** 2 / (n * p);
    if (alternative) noncentrality += (n * (alt - p) ** 2) / p;
    bins++;
  }
  if (pooledP > 0 || pooledCount > 0) {
    // A pooled bin expected (almost) never but observed is a failure by itself.
    statistic += pooledP > 0 ? (pooledCount - n * pooledP) ** 2 / Math.max(n * pooledP, 1e-9) : pooledCount > 0 ? Infinity : 0;
    if (alternative && pooledP > 0) noncentrality += (n * (pooledAlt - pooledP) ** 2) / pooledP;
    bins++;
  }
  const df = Math.max(1, bins - 1);
  return { statistic, df, critical: CRITICAL_0_001[Math.min(df, CRITICAL_0_001.length) - 1]!, noncentrality };
}
