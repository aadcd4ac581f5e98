/**
 * Tempered, truncated next-token distributions (temperature, top-k, top-p) computed where a
 * row is held, and draws from them with a caller-given uniform number: no randomness here, so
 * the same row and number give the same token on any thread. The kept set is always a prefix
 * of the row in rank order (logit high to low, lower id first among equal logits), so it is
 * described by its last entry, not copied.
 * @module
 */
import { expNonPositive, maxOf, topK, type LogitsRow, type TopK } from './distribution.js';

/** How a distribution is tempered and cut before sampling. */
export interface Truncation {
  /** Logits are divided by this (> 0). */
  temperature: number;
  /** Keep only the `topK` best tokens; 0 keeps all. Applied before `topP`. */
  topK: number;
  /** Keep the smallest set of best tokens whose probability (after top-k) reaches `topP`; 1 keeps all. */
  topP: number;
}

/** The kept set of a row under a {@link Truncation}, and its normalizer. */
export interface KeptSet {
  /** Temperature the set was computed at. */
  temperature: number;
  /** Whether every token of the row is kept (no cut). */
  all: boolean;
  /** Number of tokens kept. */
  count: number;
  /** Logit and id of the last kept token in rank order (a token ranks inside when its logit is higher, or equal with an id not above). */
  cutoffLogit: number;
  /** See {@link cutoffLogit}. */
  cutoffId: number;
  /**
   * The kept ids, where the row is known only through some of its entries (a served model's
   * top log-probabilities): membership is then this list, not rank. Null for whole rows.
   */
  ids: Int32Array | null;
  /** `log Σ_kept exp(logit / temperature)`. */
  logNormalizer: number;
}

/** Terms this far (in tempered logits) below the best are left out of sums: each is < 1.3e-14 of it. */
const NEGLIGIBLE = 32;

/** Whether token `id` with logit `logit` is in the kept set. */
export function isKept(kept: KeptSet, id: number, logit: number): boolean {
  if (kept.all) return logit > -Infinity;
  if (kept.ids) return kept.ids.includes(id);
  return logit > kept.cutoffLogit || (logit === kept.cutoffLogit && id <= kept.cutoffId);
}

/** Probability of token `id` (logit `logit`) under the tempered, truncated distribution. */
export function keptProbability(kept: KeptSet, id: number, logit: number): number {
  if (!isKept(kept, id, logit)) return 0;
  return Math.exp(logit / kept.temperature - kept.logNormalizer);
}

/** `log Σ exp(v / t)` over `values` (NaN-free), with negligible terms skipped. */
function temperedLogSumExp(values: ArrayLike<number>, max: number, invT: number): number {
  if (!(max > -Infinity)) return -Infinity;
  let sum = 0;
  for (let i = 0; i < values.length; i++) {
    const x = (values[i]! - max) * invT;
    if (x > -NEGLIGIBLE) sum += expNonPositive(x);
  }
  return max * invT + Math.log(sum);
}

/** The result of truncating a row: its kept set and, when asked, a drawn token. */
export interface TruncatedRow {
  /** The kept set. */
  kept: KeptSet;
  /** The drawn token, or -1 when no uniform number was given. */
  drawn: number;
  /** Its logit (NaN when nothing was drawn). */
  drawnLogit: number;
}

function checkTruncation(t: Truncation): void {
  if (!(t.temperature > 0) || !Number.isFinite(t.temperature)) throw new RangeError(`temperature must be a finite number > 0, got ${t.temperature}`);
  if (!Number.isInteger(t.topK) || t.topK < 0) throw new RangeError(`topK must be an integer >= 0, got ${t.topK}`);
  if (!(t.topP > 0 && t.topP <= 1)) throw new RangeError(`topP must be in (0, 1], got ${t.topP}`);
}

/**
 * The kept set of a whole logits row under `t` and, when `uniform` (in [0, 1)) is given, the
 * token it draws by inverse CDF. Cost: one pass over the row for an uncut distribution; a
 * top-k selection (growing for a top-p cut without top-k) otherwise.
 */
export function truncateRow(row: LogitsRow, t: Truncation, uniform = NaN): TruncatedRow {
  checkTruncation(t);
  const invT = 1 / t.temperature;
  const width = row.length;
  const max = maxOf(row);
  const k = t.topK > 0 ? Math.min(t.topK, width) : width;
  if (k >= width && t.topP >= 1) {
    const logNormalizer = temperedLogSumExp(row, max, invT);
    const kept: KeptSet = { temperature: t.temperature, all: true, count: width, cutoffLogit: -Infinity, cutoffId: width - 1, ids: null, logNormalizer };
    if (Number.isNaN(uniform)) return { kept, drawn: -1, drawnLogit: NaN };
    // Inverse CDF in id order: one pass, the same terms as the normalizer.
    let acc = 0;
    let last = -1;
    const offset = max * invT - logNormalizer;
    for (let id = 0; id < width; id++) {
      const x = (row[id]! - max) * invT;
      if (!(x > -NEGLIGIBLE)) continue;
      acc += expNonPositive(x + offset);
      last = id;
      if (acc > uniform) return { kept, drawn: id, drawnLogit: row[id]! };
    }
    return { kept, drawn: last, drawnLogit: row[last]! };
  }
  // A top-p cut alone needs the mass of the whole row and enough of its best tokens.
  const wholeNormalizer = k >= width ? temperedLogSumExp(row, max, invT) : NaN;
  let m = k < width ? k : Math.min(width, 64);
  for (;;) {
    const top = bestOf(row, m);
    const cut = cutSorted(top, t, invT, k < width ? NaN : wholeNormalizer, m >= width);
    if (cut !== null) return finishSorted(top, cut, t, invT, false, uniform);
    // Past the insertion buffer's range one sort of the whole row answers every nucleus.
    m = m * 4 > 256 ? width : m * 4;
  }
}

/** Largest id {@link sortedBest} can order (ids are packed into 20 bits). */
const MAX_PACKED_WIDTH = 1 << 20;

/**
 * The `m` best entries of a row in rank order: a k-sized insertion buffer for small `m` (one
 * pass), a native sort of packed (rank key, id) numbers for large ones, where the buffer would
 * cost `m` per entry (a flat, hot distribution has a nucleus of thousands).
 */
function bestOf(row: LogitsRow, m: number): TopK {
  if (m <= 256 || row.length > MAX_PACKED_WIDTH) return topK(row, m);
  const bits = new Uint32Array(new Float32Array(row).buffer);
  const keys = new Float64Array(row.length);
  for (let id = 0; id < row.length; id++) {
    const u = bits[id]!;
    // Order-preserving map of the float's bits (negative floats reversed), then reversed again
    // so that higher logits sort first; ties fall to the lower id.
    const ordered = u & 0x80000000 ? ~u >>> 0 : (u | 0x80000000) >>> 0;
    keys[id] = (0xffffffff - ordered) * MAX_PACKED_WIDTH + id;
  }
  keys.sort();
  const n = Math.min(m, row.length);
  const ids = new Int32Array(n);
  const logits = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const id = keys[i]! % MAX_PACKED_WIDTH;
    ids[i] = id;
    logits[i] = row[id]!;
  }
  return { ids, logits };
}

/**
 * {@link truncateRow} for a row known only through its best entries (`top`, sorted best
 * first): those entries are taken as the whole distribution.
 */
export function truncateTop(top: TopK, t: Truncation, uniform = NaN): TruncatedRow {
  checkTruncation(t);
  const invT = 1 / t.temperature;
  const n = top.ids.length;
  const k = t.topK > 0 ? Math.min(t.topK, n) : n;
  const head: TopK = { ids: top.ids.subarray(0, k), logits: top.logits.subarray(0, k) };
  const cut = cutSorted(head, t, invT, NaN, true)!;
  return finishSorted(head, cut, t, invT, true, uniform);
}

/**
 * How many of the sorted entries `top` the top-p cut keeps (all of them when `topP` is 1), or
 * null when the entries seen do not reach `topP` and more exist (`complete` false). The
 * probabilities are over `normalizer` when given (the whole row), else over `top` itself.
 */
function cutSorted(top: TopK, t: Truncation, invT: number, normalizer: number, complete: boolean): number | null {
  const n = top.ids.length;
  if (t.topP >= 1 || n === 0) return n;
  const lse = Number.isNaN(normalizer) ? temperedLogSumExp(top.logits, top.logits[0]!, invT) : normalizer;
  let acc = 0;
  for (let i = 0; i < n; i++) {
    acc += Math.exp(top.logits[i]! * invT - lse);
    if (acc >= t.topP) return i + 1;
  }
  return complete ? n : null;
}

function finishSorted(top: TopK, count: number, t: Truncation, invT: number, listed: boolean, uniform: number): TruncatedRow {
  const logits = top.logits.subarray(0, count);
  const logNormalizer = temperedLogSumExp(logits, logits[0]!, invT);
  const kept: KeptSet = {
    temperature: t.temperature,
    all: false,
    count,
    cutoffLogit: logits[count - 1]!,
    cutoffId: top.ids[count - 1]!,
    ids: listed ? Int32Array.from(top.ids.subarray(0, count)) : null,
    logNormalizer,
  };
  if (Number.isNaN(uniform)) return { kept, drawn: -1, drawnLogit: NaN };
  let acc = 0;
  let last = 0;
  for (let i = 0; i < count; i++) {
    const p = Math.exp(logits[i]! * invT - logNormalizer);
    if (!(p > 0)) continue;
    acc += p;
    last = i;
    if (acc > uniform) return { kept, drawn: top.ids[i]!, drawnLogit: logits[i]! };
  }
  return { kept, drawn: top.ids[last]!, drawnLogit: logits[last]! };
}
