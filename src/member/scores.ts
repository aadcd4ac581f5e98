/**
 * Reduced scoring: what a pass returns when the caller does not need whole logits rows, and
 * how the rows it did compute stay with the session for later reads. A scoring pass returns,
 * per row, the top-k ids with their logits and the logit of one id the caller asked about; the
 * full rows stay where the session runs (held by sequence position) until the caller crops the
 * sequence past them or says it needs them no more. Then one round trip reads what an ensemble
 * point needs: the logits of a few more ids, the normalizer, or the whole row.
 *
 * This is the member seam's currency: a worker computes it next to the session, and a remote
 * engine returns it from top-k and prompt log-probabilities.
 * @module
 */
import { InferenceError, InvalidArgumentError } from '../errors.js';
import { logSumExp, topK, topKIfFinite, type TopK } from './distribution.js';
import { truncateRow, type KeptSet, type TruncatedRow, type Truncation } from './truncation.js';

/** What a scoring pass returns (see {@link ScorePayload}). */
export interface ScoreRequest {
  /** How many rows: those that predict the last `rows` positions of the pass. */
  rows: number;
  /** Best ids to return per row (at least 1: the first is the row's argmax). */
  topK: number;
  /** Per row, an id whose logit to return, or -1 (the token that follows, typically). */
  asked: readonly number[] | null;
  /** Rows that predict positions before this one are no longer needed: the session drops them. */
  holdFrom: number;
  /** Return the full rows too (and hold none). */
  full: boolean;
}

/** The reduced result of a scoring pass; its buffers are transferable. */
export interface ScorePayload {
  /** The sequence position row 0 predicts (the pass's last position + 1 - rows + 1). */
  first: number;
  /** Number of rows. */
  rows: number;
  /** Width of a full row (the logits dimension). */
  width: number;
  /** Entries per row in `topIds` / `topLogits`. */
  k: number;
  /** Row-major `rows × k` best ids, best first (ties: lower id first). */
  topIds: Int32Array;
  /** Their logits. */
  topLogits: Float32Array;
  /** Per row, the logit of the asked id (NaN where none was asked). */
  asked: Float32Array;
  /** Per row, `log Σ exp(logits)` where already known (NaN otherwise; 0 for log-probabilities). */
  logNormalizers: Float64Array;
  /** The full rows, `rows × width`, when the request asked for them; otherwise null. */
  data: Float32Array | null;
  /** Identifies the pass: reads of its held rows name it, so a row recomputed since is never mixed up. */
  pass: number;
  /** Sequences in the onnxruntime run that computed the pass (1: alone; absent for remote members). */
  batch?: number;
  /** Whether `topIds` holds every entry a row can offer (a constrained row: the rest are disallowed), so a larger top-k returns just these. */
  exhaustive?: boolean;
}

/** A read of one held row. */
export interface RowQuery {
  /** The position the row predicts. */
  position: number;
  /** The pass that produced it ({@link ScorePayload.pass}). */
  pass: number;
  /** Ids whose logits to return. */
  ids?: readonly number[];
  /** Return the row's log-normalizer. */
  normalizer?: boolean;
  /** Return the whole row. */
  full?: boolean;
  /** Return the row's kept set under this temperature and cut (see truncation.ts). */
  truncation?: Truncation;
  /** With `truncation`: also draw a token with this uniform number in [0, 1). */
  uniform?: number;
}

/** The answer to a {@link RowQuery}. */
export interface RowAnswer {
  /** Logits of the asked ids, in order (empty when none were asked). */
  logits: Float32Array;
  /** `log Σ exp(row)`, or NaN when not asked. */
  logNormalizer: number;
  /** The whole row when asked, else null. */
  row: Float32Array | null;
  /** The kept set (and the drawn token) when `truncation` was asked. */
  truncated?: TruncatedRow;
}

interface HeldRow {
  row: Float32Array;
  pass: number;
  logNormalizer: number;
}

/** Most bytes of rows a session holds; beyond it the rows of the earliest positions go first. */
const HOLD_LIMIT_BYTES = 256 * 1024 * 1024;

/**
 * The rows of scoring passes, by the position they predict. A row is valid while the sequence
 * still holds every token before that position; cropping drops the rest.
 */
export class HeldRows {
  private readonly byPosition = new Map<number, HeldRow>();
  private bytes = 0;

  constructor(private readonly name: string) {}

  /** Holds `row` (a view, not copied) as the prediction of `position`. */
  hold(position: number, row: Float32Array, pass: number): void {
    this.drop(position);
    this.byPosition.set(position, { row, pass, logNormalizer: NaN });
    this.bytes += row.byteLength;
    if (this.bytes > HOLD_LIMIT_BYTES) {
      const oldest = [...this.byPosition.keys()].sort((a, b) => a - b);
      for (const q of oldest) {
        if (this.bytes <= HOLD_LIMIT_BYTES || q === position) break;
        this.drop(q);
      }
    }
  }

  /** The sequence was cropped to `length` tokens: rows predicting later positions are stale. */
  cropTo(length: number): void {
    for (const q of [...this.byPosition.keys()]) if (q > length) this.drop(q);
  }

  /** Rows predicting positions before `position` are no longer needed. */
  dropBefore(position: number): void {
    for (const q of [...this.byPosition.keys()]) if (q < position) this.drop(q);
  }

  clear(): void {
    this.byPosition.clear();
    this.bytes = 0;
  }

  /** Number of rows held. */
  get size(): number {
    return this.byPosition.size;
  }

  /** Reads a held row. */
  read(query: RowQuery): RowAnswer {
    const held = this.byPosition.get(query.position);
    if (!held || held.pass !== query.pass) {
      throw new InferenceError(`${this.name}: the logits row predicting position ${query.position} (pass ${query.pass}) is no longer held: the sequence was cropped or re-fed since, or a later pass said it was not needed. Read rows before changing the sequence.`);
    }
    const { row } = held;
    const ids = query.ids ?? [];
    const logits = new Float32Array(ids.length);
    ids.forEach((id, i) => {
      if (!Number.isInteger(id) || id < 0 || id >= row.length) throw new InferenceError(`${this.name}: token id ${id} is outside the logits row (0..${row.length - 1}).`);
      logits[i] = row[id]!;
    });
    if (query.normalizer && Number.isNaN(held.logNormalizer)) held.logNormalizer = logSumExp(row);
    const answer: RowAnswer = { logits, logNormalizer: query.normalizer ? held.logNormalizer : NaN, row: query.full ? row : null };
    if (query.truncation) answer.truncated = truncateRow(row, query.truncation, query.uniform ?? NaN);
    return answer;
  }

  private drop(position: number): void {
    const held = this.byPosition.get(position);
    if (!held) return;
    this.byPosition.delete(position);
    this.bytes -= held.row.byteLength;
  }
}

/** Top-k and row sums a graph computed itself (see topKRewrite.ts), for the rows of one run. */
export interface InGraphTop {
  /** Entries per row. */
  k: number;
  /** Row-major `rows × k` logits, largest first. */
  logits: Float32Array;
  /** Their ids. */
  ids: BigInt64Array;
  /** Per row, the sum of its logits: non-finite when a logit is (or the sum overflows). */
  sums: Float32Array;
}

/**
 * Summarizes `rows` rows of `data` (row-major, `width` wide) for a {@link ScoreRequest}: top-k
 * and the asked logit per row, checking finiteness in the same pass when `check` is set.
 * Returns the index of the first non-finite row instead when one is found. With `inGraph` (the
 * graph's own top-k of these rows, at the request's k) only the rows whose sum is not finite
 * are looked at here. Ids from `columns` on are padding (masked in `data`), never ranked.
 */
export function summarizeRows(
  data: Float32Array,
  rows: number,
  width: number,
  request: ScoreRequest,
  check: boolean,
  into: { topIds: Int32Array; topLogits: Float32Array; asked: Float32Array; at: number },
  inGraph: InGraphTop | null = null,
  columns = width,
): number {
  const k = Math.max(1, Math.min(request.topK, width));
  if (inGraph && inGraph.k !== k) throw new InferenceError(`in-graph top-k has ${inGraph.k} entries per row where ${k} were asked.`);
  for (let r = 0; r < rows; r++) {
    const row = data.subarray(r * width, (r + 1) * width);
    const out = into.at + r;
    const id = request.asked?.[out] ?? -1;
    into.asked[out] = id >= 0 && id < width ? row[id]! : NaN;
    // A finite sum means every logit is finite; otherwise the row decides (a sum can overflow).
    // The graph ranks padding columns too (see PADDING_LOGIT): a row where one made its top-k is ranked here.
    if (inGraph && Number.isFinite(inGraph.sums[r]!) && !topHasPadding(inGraph, r, k, columns)) {
      for (let e = 0; e < k; e++) {
        into.topIds[out * k + e] = Number(inGraph.ids[r * k + e]!);
        into.topLogits[out * k + e] = inGraph.logits[r * k + e]!;
      }
      continue;
    }
    const top: TopK | null = topKIfFinite(row, k);
    if (!top) {
      if (check) return r;
      // An unchecked row with NaN/Inf still gets a summary (the model is broken; the caller chose not to know).
      writeTop(into, out, k, topK(row, k));
    } else writeTop(into, out, k, top);
  }
  return -1;
}

function topHasPadding(inGraph: InGraphTop, r: number, k: number, columns: number): boolean {
  for (let e = 0; e < k; e++) if (Number(inGraph.ids[r * k + e]!) >= columns) return true;
  return false;
}

function writeTop(into: { topIds: Int32Array; topLogits: Float32Array }, r: number, k: number, top: TopK): void {
  into.topIds.set(top.ids.subarray(0, k), r * k);
  into.topLogits.set(top.logits.subarray(0, k), r * k);
}

/**
 * One scored position as the caller reads it: the summary that came back with the pass, and
 * reads of the row held where the session runs (one round trip each, answers kept).
 */
export class RowScore {
  private normalizer: number;
  private full: Float32Array | null;

  constructor(
    private readonly payload: ScorePayload,
    private readonly r: number,
    private readonly reader: (query: RowQuery) => Promise<RowAnswer>,
    /** The id asked for with the pass, or -1. */
    readonly askedId: number = -1,
  ) {
    this.normalizer = payload.logNormalizers[r]!;
    this.full = payload.data ? payload.data.subarray(r * payload.width, (r + 1) * payload.width) : null;
  }

  /** The sequence position this row predicts. */
  get position(): number {
    return this.payload.first + this.r;
  }

  /** Width of the full row. */
  get width(): number {
    return this.payload.width;
  }

  /** The greedy choice (lowest id among equal maxima). */
  get best(): number {
    return this.payload.topIds[this.r * this.payload.k]!;
  }

  /** The largest logit. */
  get max(): number {
    return this.payload.topLogits[this.r * this.payload.k]!;
  }

  /** The logit of the id asked for with the pass (NaN when none was). */
  get askedLogit(): number {
    return this.payload.asked[this.r]!;
  }

  /** The `k` best ids and their logits (views), `k` up to the pass's topK. */
  top(k: number = this.payload.k): TopK {
    const { k: have } = this.payload;
    const n = Math.min(k, have, this.payload.width);
    if (k > have && have < this.payload.width && !this.payload.exhaustive) throw new InvalidArgumentError('topK', `top-${k} asked of a row scored with topK ${have}; score with a larger topK.`);
    const at = this.r * have;
    return { ids: this.payload.topIds.subarray(at, at + n), logits: this.payload.topLogits.subarray(at, at + n) };
  }

  /** `log Σ exp(row)`: read from the held row the first time. */
  async logNormalizer(): Promise<number> {
    if (Number.isNaN(this.normalizer)) {
      this.normalizer = this.full ? logSumExp(this.full) : (await this.read({ normalizer: true })).logNormalizer;
    }
    return this.normalizer;
  }

  /** The logit of one id: from the summary when it holds it, else read from the row. */
  async logitOf(id: number): Promise<number> {
    if (id === this.best) return this.max;
    if (id === this.askedId && !Number.isNaN(this.askedLogit)) return this.askedLogit;
    const top = this.top();
    for (let i = 0; i < top.ids.length; i++) if (top.ids[i] === id) return top.logits[i]!;
    return (await this.logitsOf([id]))[0]!;
  }

  /** Logits of `ids`, in order. */
  async logitsOf(ids: readonly number[]): Promise<Float32Array> {
    const full = this.full;
    if (full) return Float32Array.from(ids, (id) => full[id]!);
    if (ids.length === 0) return new Float32Array(0);
    return (await this.read({ ids })).logits;
  }

  /** The whole row (read once from the session when the pass did not return it). */
  async row(): Promise<Float32Array> {
    if (!this.full) {
      const answer = await this.read({ full: true, normalizer: Number.isNaN(this.normalizer) });
      this.full = answer.row!;
      if (!Number.isNaN(answer.logNormalizer)) this.normalizer = answer.logNormalizer;
    }
    return this.full;
  }

  /**
   * The kept set under `t` (temperature and cut), computed where the row is held; the answer is
   * kept, so later calls with the same settings cost nothing.
   */
  async truncated(t: Truncation): Promise<KeptSet> {
    if (this.kept && sameTruncation(this.kept.t, t)) return this.kept.set;
    const answer = this.full ? truncateRow(this.full, t) : (await this.read({ truncation: t })).truncated!;
    this.kept = { t, set: answer.kept };
    return answer.kept;
  }

  /** Draws a token from the tempered, truncated distribution with `uniform` in [0, 1): its id and logit. */
  async draw(t: Truncation, uniform: number): Promise<{ id: number; logit: number; kept: KeptSet }> {
    const answer = this.full ? truncateRow(this.full, t, uniform) : (await this.read({ truncation: t, uniform })).truncated!;
    this.kept = { t, set: answer.kept };
    return { id: answer.drawn, logit: answer.drawnLogit, kept: answer.kept };
  }

  private kept: { t: Truncation; set: KeptSet } | null = null;

  private read(query: Omit<RowQuery, 'position' | 'pass'>): Promise<RowAnswer> {
    return this.reader({ ...query, position: this.position, pass: this.payload.pass });
  }
}

function sameTruncation(a: Truncation, b: Truncation): boolean {
  return a.temperature === b.temperature && a.topK === b.topK && a.topP === b.topP;
}

/** The rows of one scoring pass. */
export class Scores {
  constructor(
    private readonly payload: ScorePayload,
    private readonly reader: (query: RowQuery) => Promise<RowAnswer>,
    private readonly asked: readonly number[] | null = null,
  ) {}

  /** Number of rows. */
  get rows(): number {
    return this.payload.rows;
  }

  /** Row `i` (negative counts from the end); the same object each time, so what it read stays read. */
  at(i: number): RowScore {
    const r = i < 0 ? this.payload.rows + i : i;
    if (r < 0 || r >= this.payload.rows) throw new InferenceError(`scored row ${i} is out of range (0..${this.payload.rows - 1}).`);
    let row = this.made.get(r);
    if (!row) {
      row = new RowScore(this.payload, r, this.reader, this.asked?.[r] ?? -1);
      this.made.set(r, row);
    }
    return row;
  }

  private readonly made = new Map<number, RowScore>();
}
