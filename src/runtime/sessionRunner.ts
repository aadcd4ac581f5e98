/**
 * The part of a model that touches onnxruntime: one session, its KV cache and the sequence
 * it holds. It runs where the session lives — on the caller's thread (`execution: 'inline'`) or
 * inside a member worker — and returns logits as plain typed arrays that can cross threads.
 * @module
 */
import { InferenceError } from '../errors.js';
import { argmaxIfFinite, float16ToFloat32 } from '../member/distribution.js';
import type { GraphContract } from './graph.js';
import type { IncrementalCacheNames } from './cacheRewrite.js';
import { ort, type InferenceSession, type Tensor } from './ort.js';
import { HeldRows, summarizeRows, type InGraphTop, type RowAnswer, type RowQuery, type ScorePayload, type ScoreRequest } from '../member/scores.js';
import { IN_GRAPH_SCORES_PREFIX, type InGraphScoreNames } from './topKRewrite.js';
import { IncrementalKVCache, KVCache } from './kvCache.js';

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
}

/**
 * The seam between {@link index!CausalLM} and wherever its session runs. Calls arrive in order and
 * one at a time; `crop` takes effect before the next `forward`.
 */
export interface ModelBackend {
  /** Appends `ids` and returns the last `wanted` rows; on error the cache is as it was. */
  forward(ids: readonly number[], wanted: number): Promise<LogitsPayload>;
  /** Appends `ids` and returns reduced rows, holding the full ones for {@link read}; on error the cache is as it was. */
  score(ids: readonly number[], request: ScoreRequest): Promise<ScorePayload>;
  /** Reads rows held by earlier scoring passes. */
  read(queries: readonly RowQuery[]): Promise<RowAnswer[]>;
  /** Drops positions from `length` on. */
  crop(length: number): void;
  /** Frees the session (and the worker, if any). Idempotent. */
  release(): Promise<void>;
  /** Set by the owner; called when the cache was lost (a restarted worker starts empty). */
  onCacheLost?: () => void;
}

/** Rows of one onnxruntime run (a view into its output where possible). */
interface RowsPiece {
  data: Float32Array;
  rows: number;
  width: number;
  /** The in-graph summary of the same rows, when the pass asked for one (see topKRewrite.ts). */
  top: InGraphTop | null;
}

/** Default most bytes of logits per onnxruntime run: 64 MiB (about 110 rows of a 152k vocabulary). */
export const DEFAULT_LOGITS_BUDGET_BYTES = 64 * 1024 * 1024;

/** Runs one onnxruntime session over one growing, croppable sequence. */
export class SessionRunner implements ModelBackend {
  private readonly cache: KVCache | IncrementalKVCache | null;
  /** Output names to fetch, when the graph was rewritten (else everything it outputs). */
  private readonly fetches: string[] | undefined;
  /** The same plus the in-graph scores, for scoring passes of a graph that has them. */
  private readonly scoreFetches: string[] | undefined;
  private readonly history: number[] = [];
  private ones = new BigInt64Array(0);
  private steps = 0;
  private passes = 0;
  private session: InferenceSession | null;
  /** Full rows of scoring passes, for later reads. */
  private readonly held: HeldRows;

  constructor(
    session: InferenceSession,
    private readonly graph: GraphContract,
    private readonly settings: RunnerSettings,
    private readonly release_: (session: InferenceSession) => Promise<void>,
    /** Cache names of a graph rewritten by rewriteForIncrementalCache, else null. */
    private readonly incremental: IncrementalCacheNames | null = null,
    /** Names of the in-graph scores added by addInGraphScores, else null. */
    private readonly inGraph: InGraphScoreNames | null = null,
  ) {
    this.session = session;
    this.held = new HeldRows(settings.name);
    const { numKeyValueHeads: heads, headDim } = settings;
    if (graph.numCacheLayers === 0) this.cache = null;
    else if (incremental) this.cache = new IncrementalKVCache(graph.numCacheLayers, heads, headDim, graph.cacheDType);
    else this.cache = new KVCache(graph.numCacheLayers, heads, headDim, graph.cacheDType);
    // Unfetched outputs are not computed: forward() leaves the in-graph scores out.
    if (incremental) this.fetches = ['logits', ...incremental.newOutputs.flat()];
    else if (inGraph) this.fetches = session.outputNames.filter((n) => !n.startsWith(IN_GRAPH_SCORES_PREFIX));
    this.scoreFetches = inGraph ? [...this.fetches!, inGraph.topLogits, inGraph.topIds, inGraph.rowSums] : undefined;
  }

  /** Whether scoring passes rank rows inside the graph (see topKRewrite.ts). */
  get inGraphScores(): boolean {
    return this.inGraph !== null;
  }

  /** Whether the cache is kept incrementally (see rewriteForIncrementalCache). */
  get incrementalCache(): boolean {
    return this.incremental !== null;
  }

  /** Tokens the cache holds. */
  get length(): number {
    return this.history.length;
  }

  async forward(ids: readonly number[], wanted: number): Promise<LogitsPayload> {
    const before = this.history.length;
    const pieces = await this.runRows(ids, wanted);
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
          this.crop(before);
          throw this.nonFinite(before + ids.length - wanted + r);
        }
      }
    }
    return { data, rows: wanted, width, best };
  }

  /**
   * Appends `ids` and returns reduced rows (see scores.ts); the full rows stay held here for
   * {@link read} unless the request asks for them. On error the cache is as it was.
   */
  async score(ids: readonly number[], request: ScoreRequest): Promise<ScorePayload> {
    const before = this.history.length;
    const wanted = request.rows;
    // k must not exceed the row width, which the tokenizer's size bounds from below.
    const inGraphK = this.inGraph && request.topK <= this.settings.tokenizerIds ? Math.max(1, request.topK) : 0;
    const pieces = await this.runRows(ids, wanted, inGraphK);
    const width = pieces[0]!.width;
    const k = Math.max(1, Math.min(request.topK, width));
    const into = { topIds: new Int32Array(wanted * k), topLogits: new Float32Array(wanted * k), asked: new Float32Array(wanted), at: 0 };
    const first = before + ids.length - wanted + 1;
    const pass = ++this.passes;
    for (const p of pieces) {
      const bad = summarizeRows(p.data, p.rows, width, request, this.settings.checkLogits, into, p.top, this.settings.tokenCount);
      if (bad >= 0) {
        this.crop(before);
        throw this.nonFinite(first - 1 + into.at + bad);
      }
      into.at += p.rows;
    }
    this.held.dropBefore(request.holdFrom);
    let data: Float32Array | null = null;
    if (request.full) {
      data = pieces.length === 1 ? pieces[0]!.data : new Float32Array(wanted * width);
      if (pieces.length > 1) pieces.reduce((at, p) => (data!.set(p.data, at), at + p.data.length), 0);
    } else {
      let r = 0;
      for (const p of pieces) for (let i = 0; i < p.rows; i++, r++) this.held.hold(first + r, p.data.subarray(i * width, (i + 1) * width), pass);
    }
    const { topIds, topLogits, asked } = into;
    return { first, rows: wanted, width, k, topIds, topLogits, asked, logNormalizers: new Float64Array(wanted).fill(NaN), data, pass };
  }

  /** Reads rows held by earlier {@link score} passes. */
  async read(queries: readonly RowQuery[]): Promise<RowAnswer[]> {
    return queries.map((q) => this.held.read(q));
  }

  private nonFinite(position: number): InferenceError {
    return new InferenceError(`${this.settings.name}: non-finite logits (NaN/Inf) at position ${position} (step ${this.steps}). The model weights or its fp16 export are broken; try the fp32 file.`);
  }

  /**
   * Runs `ids` and returns the last `wanted` rows, in pieces: graphs without a logits_to_keep
   * input return a row per fed token, so long inputs are fed in pieces of at most `maxRows`
   * tokens and one run never returns more than the budget. On error the cache is as it was.
   */
  private async runRows(ids: readonly number[], wanted: number, topK = 0): Promise<RowsPiece[]> {
    const width = this.graph.logitsVocabSize ?? this.settings.tokenizerIds;
    const maxRows = this.graph.logitsToKeepInput || !this.cache ? Infinity : Math.max(1, Math.floor(this.settings.logitsBudgetBytes / (4 * width)));
    if (ids.length <= maxRows) return [await this.run(ids, wanted, topK)];
    const before = this.history.length;
    try {
      const pieces: RowsPiece[] = [];
      const firstWanted = ids.length - wanted;
      for (let at = 0; at < ids.length; at += maxRows) {
        const piece = ids.slice(at, at + maxRows);
        const keep = Math.max(0, at + piece.length - Math.max(at, firstWanted));
        const out = await this.run(piece, Math.max(1, keep), topK);
        if (keep > 0) pieces.push(out);
      }
      return pieces;
    } catch (error) {
      this.crop(before);
      throw error;
    }
  }

  /**
   * One onnxruntime run over `ids` (the cache holds everything before them); `topK` > 0 also
   * fetches the in-graph top-k and row sums.
   */
  private async run(ids: readonly number[], wanted: number, topK = 0): Promise<RowsPiece> {
    const session = this.session;
    if (!session) throw new InferenceError(`${this.settings.name}: the session was released.`);
    const g = this.graph;
    const past = this.history.length;
    const total = past + ids.length;
    const fed = this.cache ? ids : [...this.history, ...ids];
    const start = this.cache ? past : 0;
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
    if (this.cache) {
      const pastTensors = this.cache.pastTensors();
      (this.incremental?.pastInputs ?? g.pastNames).forEach(([k, v], layer) => {
        feeds[k] = pastTensors[layer * 2]!;
        feeds[v] = pastTensors[layer * 2 + 1]!;
      });
      if (g.hasUseCacheBranch) feeds.use_cache_branch = new ort.Tensor('bool', Uint8Array.of(past > 0 ? 1 : 0), [1]);
    }
    let out: Record<string, Tensor>;
    try {
      const fetches = inGraph ? this.scoreFetches : this.fetches;
      out = (await (fetches ? session.run(feeds, fetches) : session.run(feeds))) as Record<string, Tensor>;
    } catch (cause) {
      throw new InferenceError(`${this.settings.name}: onnxruntime failed at step ${this.steps} (sequence length ${total}): ${(cause as Error).message}`, { cause });
    }
    const logitsTensor = out.logits!;
    const width = logitsTensor.dims[logitsTensor.dims.length - 1]!;
    const rowsReturned = logitsTensor.dims[logitsTensor.dims.length - 2]!;
    if (width < this.settings.tokenizerIds) {
      throw new InferenceError(`${this.settings.name}: logits have ${width} columns but the tokenizer has ${this.settings.tokenizerIds} ids; the model and tokenizer do not belong together.`);
    }
    const raw = logitsTensor.data as Float32Array | Uint16Array;
    const first = rowsReturned - wanted;
    // Much fewer rows than the run returned (a prefill without logits_to_keep): copy them, so a
    // view does not keep the whole buffer alive. A few dropped rows stay a view: no per-pass copy.
    let data: Float32Array;
    if (logitsTensor.type === 'float16') data = float16ToFloat32(raw.subarray(first * width, rowsReturned * width) as Uint16Array);
    else data = first > wanted ? (raw as Float32Array).slice(first * width, rowsReturned * width) : (raw as Float32Array).subarray(first * width, rowsReturned * width);
    if (width > this.settings.tokenCount) maskPadding(data, wanted, width, this.settings.tokenCount);
    if (this.cache instanceof IncrementalKVCache) this.cache.append(this.incremental!.newOutputs.flatMap(([k, v]) => [out[k]!, out[v]!]), total);
    else if (this.cache) this.cache.replace(g.presentNames.flatMap(([k, v]) => [out[k]!, out[v]!]), total);
    let top: InGraphTop | null = null;
    if (inGraph) {
      top = {
        k: topK,
        logits: (out[inGraph.topLogits]!.data as Float32Array).subarray(first * topK, rowsReturned * topK),
        ids: (out[inGraph.topIds]!.data as BigInt64Array).subarray(first * topK, rowsReturned * topK),
        sums: (out[inGraph.rowSums]!.data as Float32Array).subarray(first, rowsReturned),
      };
    }
    this.history.push(...ids);
    this.steps++;
    return { data, rows: wanted, width, top };
  }

  crop(length: number): void {
    if (length >= this.history.length) return;
    this.history.length = length;
    this.cache?.crop(length);
    this.held.cropTo(length);
  }

  async release(): Promise<void> {
    const session = this.session;
    if (!session) return;
    this.session = null;
    this.history.length = 0;
    this.cache?.clear();
    this.held.clear();
    await this.release_(session);
  }

  private onesOf(n: number): BigInt64Array {
    if (this.ones.length < n) this.ones = new BigInt64Array(Math.max(n, this.ones.length * 2, 64)).fill(1n);
    return this.ones.subarray(0, n);
  }
}

/**
 * The logit padding columns get: columns past the tokenizer's ids (a vocabulary padded to a
 * multiple of 64 or 128, as Qwen and Phi-3 exports are) have no token, so they must never be
 * drafted, drawn or ranked. Finite, so that the finiteness checks still catch broken rows, and
 * far below any real logit (exp underflows to 0 whatever the temperature); exact in float32.
 */
export const PADDING_LOGIT = -(2 ** 100);

function maskPadding(data: Float32Array, rows: number, width: number, columns: number): void {
  for (let r = 0; r < rows; r++) data.fill(PADDING_LOGIT, r * width + columns, (r + 1) * width);
}
