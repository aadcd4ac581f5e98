/**
 * The part of a model that touches onnxruntime: one session and the sequences it holds, each
 * with its own KV cache (sequence 0 is the model's own; generations running at once open more).
 * It runs where the session lives — on the caller's thread (`execution: 'inline'`) or inside a
 * member worker — and returns logits as plain typed arrays that can cross threads. Passes of
 * different sequences that wait at the same time run as one batched onnxruntime run where the
 * graph allows it (batchedPass.ts); otherwise one after another.
 * @module
 */
import { InferenceError } from '../errors.js';
import { argmaxIfFinite } from '../member/distribution.js';
import type { GraphContract } from './graph.js';
import type { IncrementalCacheNames } from './cacheRewrite.js';
import { ort, type InferenceSession, type Tensor } from './ort.js';
import { HeldRows, summarizeRows, type RowAnswer, type RowQuery, type ScorePayload, type ScoreRequest } from '../member/scores.js';
import { IN_GRAPH_SCORES_PREFIX, type InGraphScoreNames } from './topKRewrite.js';
import { IncrementalKVCache, KVCache } from './kvCache.js';
import { batchRefusal, runBatched, type BatchJob } from './batchedPass.js';
import { PassScheduler } from './passScheduler.js';
import { rowsPiece, type RowsPiece, type RunnerSlot } from './runRows.js';

export { PADDING_LOGIT, type RowsPiece, type RunnerSlot } from './runRows.js';

/** Logits rows of one forward, as they cross a thread boundary (the buffers are transferable). */
export interface LogitsPayload {
  /** Row-major float32 logits, `rows × width`. */
  data: Float32Array;
  /** Number of rows. */
  rows: number;
  /** Width of a row (the logits dimension). */
  width: number;
  /** Greedy choice of each row, or -1 where it was not computed (logits checking off). */
  best: Int32Array;
  /** Sequences in the onnxruntime run that computed the rows (1: alone). */
  batch: number;
}

/** What a runner needs beyond the session and its graph contract. */
export interface RunnerSettings {
  /** Label for error messages. */
  name: string;
  /** Key/value heads per cache layer. */
  numKeyValueHeads: number;
  /** Size of one head. */
  headDim: number;
  /** Ids the tokenizer can produce: a narrower logits row means model and tokenizer do not match. */
  tokenizerIds: number;
  /** Ids the tokenizer has, special tokens included: logits columns from here on are padding (see PADDING_LOGIT). */
  tokenCount: number;
  /** Check every returned row for NaN/Inf. */
  checkLogits: boolean;
  /** Most bytes of logits one onnxruntime run may return. */
  logitsBudgetBytes: number;
  /** Whether passes of concurrent sequences may share one batched run (default true, where the graph allows). */
  batchPasses?: boolean;
  /** An op of the graph that couples the sequences of a batch (see batchedPass.ts), found when the graph was read; such graphs take turns. */
  batchCouplingOp?: string | null;
}

/**
 * The seam between {@link index!CausalLM} and wherever its session runs. Every call names a
 * sequence (`seq`; 0 is the model's own, others come from {@link openSequence}). Calls for one
 * sequence arrive in order and one at a time; `crop` takes effect before its next pass.
 * Passes of different sequences may be in flight together.
 */
export interface ModelBackend {
  /** Appends `ids` and returns the last `wanted` rows; on error the cache is as it was. */
  forward(ids: readonly number[], wanted: number, seq?: number): Promise<LogitsPayload>;
  /** Appends `ids` and returns reduced rows, holding the full ones for {@link read}; on error the cache is as it was. */
  score(ids: readonly number[], request: ScoreRequest, seq?: number): Promise<ScorePayload>;
  /** Reads rows held by earlier scoring passes. */
  read(queries: readonly RowQuery[], seq?: number): Promise<RowAnswer[]>;
  /** Drops positions from `length` on. */
  crop(length: number, seq?: number): void;
  /** A new, empty sequence's number. */
  openSequence(): number;
  /** Frees a sequence's cache and held rows. */
  closeSequence(seq: number): void;
  /** Frees the session (and the worker, if any). Idempotent. */
  release(): Promise<void>;
  /** Set by the owner; called when the cache was lost (a restarted worker starts empty). */
  onCacheLost?: () => void;
}

/** Default most bytes of logits per onnxruntime run: 64 MiB (about 110 rows of a 152k vocabulary). */
export const DEFAULT_LOGITS_BUDGET_BYTES = 64 * 1024 * 1024;

/** Runs one onnxruntime session over croppable sequences, batching their passes where it can. */
export class SessionRunner implements ModelBackend {
  /** Output names to fetch, when the graph was rewritten (else everything it outputs). */
  private readonly fetches: string[] | undefined;
  /** The same plus the in-graph scores, for scoring passes of a graph that has them. */
  private readonly scoreFetches: string[] | undefined;
  private readonly slots = new Map<number, RunnerSlot>();
  private nextSeq = 1;
  private ones = new BigInt64Array(0);
  private steps = 0;
  private session: InferenceSession | null;
  private readonly scheduler: PassScheduler;
  /** Set where the runner lives in a worker: marks a run in progress, refuses new ones at exit. */
  guard: { before(): void; after(): void } | null = null;

  constructor(
    session: InferenceSession,
    private readonly graph: GraphContract,
    private readonly settings: RunnerSettings,
    private readonly release_: (session: InferenceSession) => Promise<void>,
    /** Cache names of a graph rewritten by rewriteForIncrementalCache, else null. */
    private readonly incremental: IncrementalCacheNames | null = null,
    /** Names of the in-graph scores added by addInGraphScores, else null. */
    private readonly inGraph: InGraphScoreNames | null = null,
    onWarning: (message: string) => void = () => undefined,
  ) {
    this.session = session;
    // Unfetched outputs are not computed: forward() leaves the in-graph scores out.
    if (incremental) this.fetches = ['logits', ...incremental.newOutputs.flat()];
    else if (inGraph) this.fetches = session.outputNames.filter((n) => !n.startsWith(IN_GRAPH_SCORES_PREFIX));
    this.scoreFetches = inGraph ? [...this.fetches!, inGraph.topLogits, inGraph.topIds, inGraph.rowSums] : undefined;
    const refusal = settings.batchPasses === false ? null : batchRefusal(graph, incremental !== null, settings.batchCouplingOp ?? null);
    const canBatch = settings.batchPasses !== false && refusal === null;
    this.scheduler = new PassScheduler({
      canBatch,
      maxRowsBytes: settings.logitsBudgetBytes,
      width: () => graph.logitsVocabSize ?? settings.tokenizerIds,
      openSequences: () => this.slots.size,
      runOne: (job) => this.guarded(() => this.run(job.slot, job.ids, job.wanted, job.topK)),
      runMany: (jobs) => this.guarded(() => this.runBatch(jobs)),
      crop: (job, length) => this.crop(length, job.slot.seq),
      onFirstConcurrency: () => {
        if (refusal) onWarning(`${settings.name}: passes of generations running at once take turns (one onnxruntime run each): ${refusal}.`);
      },
      onWarning,
      name: settings.name,
    });
  }

  /** Whether scoring passes rank rows inside the graph (see topKRewrite.ts). */
  get inGraphScores(): boolean {
    return this.inGraph !== null;
  }

  /** Whether the cache is kept incrementally (see rewriteForIncrementalCache). */
  get incrementalCache(): boolean {
    return this.incremental !== null;
  }

  /** Tokens sequence 0 holds. */
  get length(): number {
    return this.slots.get(0)?.history.length ?? 0;
  }

  /** Batched runs so far and the sequences they carried (for statistics and tests). */
  get batchStats(): PassScheduler['stats'] {
    return this.scheduler.stats;
  }

  openSequence(): number {
    const seq = this.nextSeq++;
    this.slot(seq);
    return seq;
  }

  closeSequence(seq: number): void {
    const slot = this.slots.get(seq);
    if (!slot) return;
    slot.cache?.clear();
    slot.held.clear();
    this.slots.delete(seq);
  }

  /** The slot of `seq`, created empty on first use (a restarted worker learns them that way). */
  private slot(seq: number): RunnerSlot {
    let slot = this.slots.get(seq);
    if (!slot) {
      const { numKeyValueHeads: heads, headDim } = this.settings;
      const g = this.graph;
      const cache = g.numCacheLayers === 0 ? null : this.incremental ? new IncrementalKVCache(g.numCacheLayers, heads, headDim, g.cacheDType) : new KVCache(g.numCacheLayers, heads, headDim, g.cacheDType);
      slot = { seq, history: [], cache, held: new HeldRows(this.settings.name), passes: 0 };
      this.slots.set(seq, slot);
    }
    return slot;
  }

  async forward(ids: readonly number[], wanted: number, seq = 0): Promise<LogitsPayload> {
    const slot = this.slot(seq);
    const before = slot.history.length;
    const pieces = await this.runRows(slot, ids, wanted);
    const width = pieces[0]!.width;
    let data = pieces[0]!.data;
    if (pieces.length > 1) {
      data = new Float32Array(wanted * width);
      let at = 0;
      for (const p of pieces) {
        data.set(p.data, at);
        at += p.data.length;
      }
    }
    const best = new Int32Array(wanted).fill(-1);
    if (this.settings.checkLogits) {
      for (let r = 0; r < wanted; r++) {
        best[r] = argmaxIfFinite(data.subarray(r * width, (r + 1) * width));
        if (best[r]! < 0) {
          this.crop(before, seq);
          throw this.nonFinite(before + ids.length - wanted + r);
        }
      }
    }
    return { data, rows: wanted, width, best, batch: Math.max(...pieces.map((p) => p.batch)) };
  }

  /**
   * Appends `ids` and returns reduced rows (see scores.ts); the full rows stay held here for
   * {@link read} unless the request asks for them. On error the cache is as it was.
   */
  async score(ids: readonly number[], request: ScoreRequest, seq = 0): Promise<ScorePayload> {
    const slot = this.slot(seq);
    const before = slot.history.length;
    const wanted = request.rows;
    // k must not exceed the row width, which the tokenizer's size bounds from below.
    const inGraphK = this.inGraph && request.topK <= this.settings.tokenizerIds ? Math.max(1, request.topK) : 0;
    const pieces = await this.runRows(slot, ids, wanted, inGraphK);
    const width = pieces[0]!.width;
    const k = Math.max(1, Math.min(request.topK, width));
    const into = { topIds: new Int32Array(wanted * k), topLogits: new Float32Array(wanted * k), asked: new Float32Array(wanted), at: 0 };
    const first = before + ids.length - wanted + 1;
    const pass = ++slot.passes;
    for (const p of pieces) {
      const bad = summarizeRows(p.data, p.rows, width, request, this.settings.checkLogits, into, p.top, this.settings.tokenCount);
      if (bad >= 0) {
        this.crop(before, seq);
        throw this.nonFinite(first - 1 + into.at + bad);
      }
      into.at += p.rows;
    }
    slot.held.dropBefore(request.holdFrom);
    let data: Float32Array | null = null;
    if (request.full) {
      data = pieces.length === 1 ? pieces[0]!.data : new Float32Array(wanted * width);
      if (pieces.length > 1) pieces.reduce((at, p) => (data!.set(p.data, at), at + p.data.length), 0);
    } else {
      let r = 0;
      for (const p of pieces) for (let i = 0; i < p.rows; i++, r++) slot.held.hold(first + r, p.data.subarray(i * width, (i + 1) * width), pass);
    }
    const { topIds, topLogits, asked } = into;
    return { first, rows: wanted, width, k, topIds, topLogits, asked, logNormalizers: new Float64Array(wanted).fill(NaN), data, pass, batch: Math.max(...pieces.map((p) => p.batch)) };
  }

  /** Reads rows held by earlier {@link score} passes. */
  async read(queries: readonly RowQuery[], seq = 0): Promise<RowAnswer[]> {
    const slot = this.slot(seq);
    return queries.map((q) => slot.held.read(q));
  }

  private nonFinite(position: number): InferenceError {
    return new InferenceError(`${this.settings.name}: non-finite logits (NaN/Inf) at position ${position} (step ${this.steps}). The model weights or its fp16 export are broken; try the fp32 file.`);
  }

  /**
   * Runs `ids` and returns the last `wanted` rows, in pieces: graphs without a logits_to_keep
   * input return a row per fed token, so long inputs are fed in pieces of at most `maxRows`
   * tokens and one run never returns more than the budget. On error the cache is as it was.
   * Every run goes through the scheduler, which may batch a one-piece pass with other sequences'.
   */
  private async runRows(slot: RunnerSlot, ids: readonly number[], wanted: number, topK = 0): Promise<RowsPiece[]> {
    const width = this.graph.logitsVocabSize ?? this.settings.tokenizerIds;
    const maxRows = this.graph.logitsToKeepInput || !slot.cache ? Infinity : Math.max(1, Math.floor(this.settings.logitsBudgetBytes / (4 * width)));
    if (ids.length <= maxRows) return [await this.scheduler.submit({ slot, ids, wanted, topK, solo: false })];
    const before = slot.history.length;
    try {
      const pieces: RowsPiece[] = [];
      const firstWanted = ids.length - wanted;
      for (let at = 0; at < ids.length; at += maxRows) {
        const piece = ids.slice(at, at + maxRows);
        const keep = Math.max(0, at + piece.length - Math.max(at, firstWanted));
        const out = await this.scheduler.submit({ slot, ids: piece, wanted: Math.max(1, keep), topK, solo: true });
        if (keep > 0) pieces.push(out);
      }
      return pieces;
    } catch (error) {
      this.crop(before, slot.seq);
      throw error;
    }
  }

  private async guarded<T>(run: () => Promise<T>): Promise<T> {
    if (!this.session) throw new InferenceError(`${this.settings.name}: the session was released.`);
    this.guard?.before();
    try {
      return await run();
    } finally {
      this.guard?.after();
    }
  }

  /**
   * One onnxruntime run over `ids` of one sequence (its cache holds everything before them);
   * `topK` > 0 also fetches the in-graph top-k and row sums.
   */
  private async run(slot: RunnerSlot, ids: readonly number[], wanted: number, topK = 0): Promise<RowsPiece> {
    const session = this.session;
    if (!session) throw new InferenceError(`${this.settings.name}: the session was released.`);
    const g = this.graph;
    const past = slot.history.length;
    const total = past + ids.length;
    const fed = slot.cache ? ids : [...slot.history, ...ids];
    const start = slot.cache ? past : 0;
    const feeds: Record<string, Tensor> = {};
    feeds.input_ids = g.idsDType === 'int32'
      ? new ort.Tensor('int32', Int32Array.from(fed), [1, fed.length])
      : new ort.Tensor('int64', BigInt64Array.from(fed, (v) => BigInt(v)), [1, fed.length]);
    if (g.hasAttentionMask) feeds.attention_mask = new ort.Tensor('int64', this.onesOf(total), [1, total]);
    if (g.hasPositionIds) {
      const pos = new BigInt64Array(fed.length);
      for (let i = 0; i < fed.length; i++) pos[i] = BigInt(start + i);
      feeds.position_ids = new ort.Tensor('int64', pos, [1, fed.length]);
    }
    if (g.logitsToKeepInput) feeds[g.logitsToKeepInput] = new ort.Tensor('int64', BigInt64Array.of(BigInt(wanted)), []);
    const inGraph = topK > 0 ? this.inGraph : null;
    // Every input must be fed, even when nothing fetched needs it.
    if (this.inGraph) feeds[this.inGraph.k] = new ort.Tensor('int64', BigInt64Array.of(BigInt(Math.max(1, topK))), [1]);
    if (slot.cache) {
      const pastTensors = slot.cache.pastTensors();
      (this.incremental?.pastInputs ?? g.pastNames).forEach(([k, v], layer) => {
        feeds[k] = pastTensors[layer * 2]!;
        feeds[v] = pastTensors[layer * 2 + 1]!;
      });
      if (g.hasUseCacheBranch) feeds.use_cache_branch = new ort.Tensor('bool', Uint8Array.of(past > 0 ? 1 : 0), [1]);
    }
    const out = await this.runSession(session, feeds, inGraph !== null, total);
    const logitsTensor = out.logits!;
    const rowsReturned = logitsTensor.dims[logitsTensor.dims.length - 2]!;
    const piece = rowsPiece(out, 0, rowsReturned, wanted, inGraph, topK, this.settings);
    if (slot.cache instanceof IncrementalKVCache) slot.cache.append(this.incremental!.newOutputs.flatMap(([k, v]) => [out[k]!, out[v]!]), total);
    else if (slot.cache) slot.cache.replace(g.presentNames.flatMap(([k, v]) => [out[k]!, out[v]!]), total);
    slot.history.push(...ids);
    this.steps++;
    return piece;
  }

  /** One batched run over the jobs of several sequences (see batchedPass.ts). */
  private async runBatch(jobs: readonly BatchJob[]): Promise<RowsPiece[]> {
    const session = this.session;
    if (!session) throw new InferenceError(`${this.settings.name}: the session was released.`);
    const pieces = await runBatched(jobs, {
      graph: this.graph,
      incremental: this.incremental!,
      inGraph: this.inGraph,
      heads: this.settings.numKeyValueHeads,
      headDim: this.settings.headDim,
      run: (feeds, withScores, total) => this.runSession(session, feeds, withScores, total),
      piece: (out, batchRow, rowsReturned, wanted, topK, skip) => rowsPiece(out, batchRow, rowsReturned, wanted, topK > 0 ? this.inGraph : null, topK, this.settings, skip),
    });
    for (const job of jobs) job.slot.history.push(...job.ids);
    this.steps++;
    return pieces;
  }

  private async runSession(session: InferenceSession, feeds: Record<string, Tensor>, withScores: boolean, total: number): Promise<Record<string, Tensor>> {
    try {
      const fetches = withScores ? this.scoreFetches : this.fetches;
      return (await (fetches ? session.run(feeds, fetches) : session.run(feeds))) as Record<string, Tensor>;
    } catch (cause) {
      throw new InferenceError(`${this.settings.name}: onnxruntime failed at step ${this.steps} (sequence length ${total}): ${(cause as Error).message}`, { cause });
    }
  }

  crop(length: number, seq = 0): void {
    const slot = this.slots.get(seq);
    if (!slot || length >= slot.history.length) return;
    slot.history.length = length;
    slot.cache?.crop(length);
    slot.held.cropTo(length);
  }

  async release(): Promise<void> {
    const session = this.session;
    if (!session) return;
    this.session = null;
    await this.scheduler.idle();
    for (const seq of [...this.slots.keys()]) this.closeSequence(seq);
    await this.release_(session);
  }

  private onesOf(n: number): BigInt64Array {
    if (this.ones.length < n) this.ones = new BigInt64Array(Math.max(n, this.ones.length * 2, 64)).fill(1n);
    return this.ones.subarray(0, n);
  }
}
