/**
 * Distribution helpers that work on one logits row in place: no copy of the vocabulary,
 * one pass per call.
 * @module
 */

/** A logits row: a view into the model's output buffer. */
export type LogitsRow = Float32Array;

/** `log Σ exp(row)`, computed stably. Probabilities are `exp(row[i] - logSumExp(row))`. */
export function logSumExp(row: LogitsRow): number {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i]! > max) max = row[i]!;
  if (max === -Infinity || !Number.isFinite(max)) return max;
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i]! - max);
  return max + Math.log(sum);
}

/** Log-probability of one id; pass a precomputed normalizer to avoid a second pass. */
export function logProbOf(row: LogitsRow, id: number, normalizer = logSumExp(row)): number {
  return row[id]! - normalizer;
}

/** Probability of one id; pass a precomputed normalizer to avoid a second pass. */
export function probOf(row: LogitsRow, id: number, normalizer = logSumExp(row)): number {
  return Math.exp(row[id]! - normalizer);
}

/** Index of the largest logit (the lowest index wins ties, so greedy decoding is deterministic). */
export function argmax(row: LogitsRow): number {
  let best = 0;
  let bestValue = row[0]!;
  for (let i = 1; i < row.length; i++) {
    if (row[i]! > bestValue) {
      bestValue = row[i]!;
      best = i;
    }
  }
  return best;
}

/** The k best ids of a row, highest logit first (ties: lower id first). */
export interface TopK {
  /** Token ids, best first. */
  ids: Int32Array;
  /** Their logits. */
  logits: Float32Array;
}

/** Top-k without sorting the vocabulary: one pass with a k-sized insertion buffer. */
export function topK(row: LogitsRow, k: number): TopK {
  const n = Math.max(0, Math.min(k, row.length));
  const ids = new Int32Array(n);
  const logits = new Float32Array(n).fill(-Infinity);
  let filled = 0;
  for (let i = 0; i < row.length; i++) {
    const v = row[i]!;
    if (filled === n && !(v > logits[n - 1]!)) continue;
    let j = filled < n ? filled++ : n - 1;
    while (j > 0 && v > logits[j - 1]!) {
      logits[j] = logits[j - 1]!;
      ids[j] = ids[j - 1]!;
      j--;
    }
    logits[j] = v;
    ids[j] = i;
  }
  return { ids, logits };
}

/** True when every value of the row is finite. */
export function isFiniteRow(row: LogitsRow): boolean {
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += row[i]!;
  return Number.isFinite(sum) || checkEach(row);
}

function checkEach(row: LogitsRow): boolean {
  // A finite row can still overflow the sum; confirm element by element.
  for (let i = 0; i < row.length; i++) if (!Number.isFinite(row[i]!)) return false;
  return true;
}

/** IEEE half → single precision, for graphs that emit float16 logits. */
export function float16ToFloat32(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const h = src[i]!;
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    out[i] = exp === 0 ? sign * 2 ** -14 * (frac / 1024) : exp === 31 ? (frac ? NaN : sign * Infinity) : sign * 2 ** (exp - 15) * (1 + frac / 1024);
  }
  return out;
}
