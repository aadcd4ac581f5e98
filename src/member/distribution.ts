/**
 * Distribution helpers that work on one logits row in place: no copy of the vocabulary,
 * one pass per call.
 * @module
 */

/** A logits row: a view into the model's output buffer. */
export type LogitsRow = Float32Array;

/** Largest value of a row (NaN if the row holds a NaN). Four lanes break the dependency chain. */
export function maxOf(row: LogitsRow): number {
  const n = row.length;
  let m0 = -Infinity;
  let m1 = -Infinity;
  let m2 = -Infinity;
  let m3 = -Infinity;
  let nan = 0;
  let i = 0;
  for (; i + 3 < n; i += 4) {
    const a = row[i]!;
    const b = row[i + 1]!;
    const c = row[i + 2]!;
    const d = row[i + 3]!;
    if (a > m0) m0 = a;
    if (b > m1) m1 = b;
    if (c > m2) m2 = c;
    if (d > m3) m3 = d;
    nan += (a !== a ? 1 : 0) + (b !== b ? 1 : 0) + (c !== c ? 1 : 0) + (d !== d ? 1 : 0);
  }
  for (; i < n; i++) {
    const a = row[i]!;
    if (a > m0) m0 = a;
    if (a !== a) nan++;
  }
  return nan > 0 ? NaN : Math.max(m0, m1, m2, m3);
}

/**
 * Terms more than this far below the maximum are skipped by {@link logSumExp}: each is below
 * e^-32 ≈ 1.3e-14 of the largest, so even a 262k vocabulary changes the sum by < 4e-9 relative.
 */
const LSE_CUTOFF = 32;

const LOG2E = Math.LOG2E;
const LN2 = Math.LN2;
/** 2^-k for k = 0..48: exponents of e^x for x in [-LSE_CUTOFF, 0]. */
const POW2_NEG = Float64Array.from({ length: 49 }, (_, k) => 2 ** -k);

/**
 * e^x for x in [-32, 0], to about 1.2e-7 relative error (degree-6 polynomial on a
 * power-of-two split): several times faster than Math.exp in the normalizer's hot loop.
 */
export function expNonPositive(x: number): number {
  const t = x * LOG2E;
  const k = t + 6755399441055744 - 6755399441055744; // round to nearest without a call
  const f = (t - k) * LN2;
  const p = 1 + f * (1 + f * (0.5 + f * (1 / 6 + f * (1 / 24 + f * (1 / 120 + f * (1 / 720))))));
  return p * POW2_NEG[-k | 0]!;
}

/** `log Σ exp(row)`, computed stably; only terms that can matter pay for an exponential. */
export function logSumExp(row: LogitsRow): number {
  return logSumExpFrom(row, maxOf(row));
}

/** {@link logSumExp} when the row's maximum is already known. */
export function logSumExpFrom(row: LogitsRow, max: number): number {
  if (!Number.isFinite(max)) return max;
  const floor = max - LSE_CUTOFF;
  let sum = 0;
  for (let i = 0; i < row.length; i++) {
    const v = row[i]!;
    if (v > floor) sum += expNonPositive(v - max);
  }
  return max + Math.log(sum);
}

/** Normalizer and greedy choice of a row in two passes over it. */
export function rowSummary(row: LogitsRow): { logNormalizer: number; argmax: number; max: number } {
  const max = maxOf(row);
  return { logNormalizer: logSumExpFrom(row, max), argmax: argmax(row), max };
}

/** Log-probability of one id; pass a precomputed normalizer to avoid a second pass. */
export function logProbOf(row: LogitsRow, id: number, normalizer = logSumExp(row)): number {
  return row[id]! - normalizer;
}

/** Probability of one id; pass a precomputed normalizer to avoid a second pass. */
export function probOf(row: LogitsRow, id: number, normalizer = logSumExp(row)): number {
  return Math.exp(row[id]! - normalizer);
}

/**
 * Index of the largest logit (the lowest index wins ties, so greedy decoding is
 * deterministic). NaN values are ignored; a row with no number above -Infinity gives 0.
 */
export function argmax(row: LogitsRow): number {
  const best = argmaxIfFinite(row);
  return best >= 0 ? best : argmaxOfAnyRow(row);
}

/**
 * {@link argmax} that also checks, in the same pass, that every value is finite; returns -1
 * when the row holds a NaN or ±Infinity. Two lanes break the dependency chain.
 */
export function argmaxIfFinite(row: LogitsRow): number {
  const n = row.length;
  if (n === 0) return 0;
  let v0 = -Infinity;
  let v1 = -Infinity;
  let i0 = 0;
  let i1 = 1;
  // x - x is 0 for finite x and NaN for NaN/±Inf.
  let nonFinite = 0;
  let i = 0;
  for (; i + 1 < n; i += 2) {
    const a = row[i]!;
    const b = row[i + 1]!;
    nonFinite += a - a + (b - b);
    if (a > v0) { v0 = a; i0 = i; }
    if (b > v1) { v1 = b; i1 = i + 1; }
  }
  for (; i < n; i++) {
    const a = row[i]!;
    nonFinite += a - a;
    if (a > v0) { v0 = a; i0 = i; }
  }
  if (nonFinite !== 0) return -1;
  return v1 > v0 || (v1 === v0 && i1 < i0) ? i1 : i0;
}

/** The slow path of {@link argmax} for rows with NaN or infinite values. */
function argmaxOfAnyRow(row: LogitsRow): number {
  let best = 0;
  let value = -Infinity;
  for (let i = 0; i < row.length; i++) {
    if (row[i]! > value) {
      value = row[i]!;
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
  return selectTop(row, Math.max(0, Math.min(k, row.length))).top;
}

/**
 * {@link topK} that also checks, in the same pass, that every value is finite; null when the
 * row holds a NaN or ±Infinity. Its first id is the row's {@link argmax}.
 */
export function topKIfFinite(row: LogitsRow, k: number): TopK | null {
  const { top, finite } = selectTop(row, Math.max(1, Math.min(k, row.length)));
  return finite && row.length > 0 ? top : null;
}

/** The `n` best entries of a row (ties: lower id first) and whether every value was finite. */
function selectTop(row: LogitsRow, n: number): { top: TopK; finite: boolean } {
  const ids = new Int32Array(n);
  const logits = new Float32Array(n).fill(-Infinity);
  let filled = 0;
  let last = -Infinity;
  // x - x is 0 for finite x and NaN for NaN/±Inf.
  let nonFinite = 0;
  for (let i = 0; i < row.length; i++) {
    const v = row[i]!;
    nonFinite += v - v;
    if (n === 0 || (filled === n && !(v > last))) continue;
    let j = filled < n ? filled++ : n - 1;
    while (j > 0 && v > logits[j - 1]!) {
      logits[j] = logits[j - 1]!;
      ids[j] = ids[j - 1]!;
      j--;
    }
    logits[j] = v;
    ids[j] = i;
    last = logits[n - 1]!;
  }
  return { top: { ids, logits }, finite: nonFinite === 0 };
}

/** True when every value of the row is finite. */
export function isFiniteRow(row: LogitsRow): boolean {
  const n = row.length;
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let i = 0;
  // x * 0 is 0 for finite x and NaN for NaN/±Inf, and cannot overflow.
  for (; i + 3 < n; i += 4) {
    s0 += row[i]! * 0;
    s1 += row[i + 1]! * 0;
    s2 += row[i + 2]! * 0;
    s3 += row[i + 3]! * 0;
  }
  for (; i < n; i++) s0 += row[i]! * 0;
  return s0 + s1 + s2 + s3 === 0;
}

/** Single-precision value of every half-precision bit pattern (256 KiB, built on first use). */
let halfTable: Float32Array | null = null;

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  return exp === 0 ? sign * 2 ** -14 * (frac / 1024) : exp === 31 ? (frac ? NaN : sign * Infinity) : sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

/**
 * IEEE half → single precision, for graphs that emit float16 logits: one table lookup per value
 * (every half converts exactly to a single, so the table holds the exact results).
 */
export function float16ToFloat32(src: Uint16Array): Float32Array {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halfTable[h] = halfToFloat(h);
  }
  const table = halfTable;
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = table[src[i]!]!;
  return out;
}
