/**
 * A decoder-only language model stepped token by token, with a KV cache that can be rolled
 * back. Knows nothing about ensembling.
 * @module
 */
import { ContextOverflowError, DisposedError, InferenceError, InvalidArgumentError } from '../errors.js';
import type { TextTokenizer } from '../text/tokenizer.js';
import { argmax, argmaxIfFinite, float16ToFloat32, type LogitsRow } from './distribution.js';
import type { GraphContract } from './graph.js';
import { ort, releaseSession, type InferenceSession, type Tensor } from './ort.js';
import type { ResolvedProviders } from './providers.js';

/** What was loaded, for inspection and error messages. */
export interface ModelInfo {
  /** The source as the caller gave it (folder or Hub id). */
  source: string;
  /** Local folder the files were read from. */
  dir: string;
  /** Path of the ONNX file the session runs. */
  onnxFile: string;
  /** Parsed config.json. */
  config: Record<string, unknown>;
  /** Parsed generation_config.json, or null. */
  generationConfig: Record<string, unknown> | null;
  /** Layers with KV cache (0 when the graph has no cache). */
  numLayers: number;
  /** Key/value heads per layer. */
  numKeyValueHeads: number;
  /** Size of one head. */
  headDim: number;
  /** Width of a logits row. */
  vocabSize: number;
  /** Longest sequence (prompt + generated) the model accepts. */
  maxPositions: number;
  /** Execution providers in effect. */
  providers: ResolvedProviders;
  /** The graph contract discovered from the session. */
  graph: GraphContract;
}

/** Options of {@link CausalLM.forward}. */
export interface ForwardOptions {
  /**
   * Which logits rows to return: `'all'` new positions (default), `'last'`, or the last N.
   * Graphs with `num_logits_to_keep` compute only those rows.
   */
  logits?: 'all' | 'last' | number;
}

/** Logits rows returned by {@link CausalLM.forward}; rows are views, not copies. */
export class Logits {
  private readonly best: Int32Array;

  constructor(
    /** Row-major data, `rows × vocabSize`. */
    readonly data: Float32Array,
    /** Number of rows. */
    readonly rows: number,
    /** Width of a row. */
    readonly vocabSize: number,
  ) {
    this.best = new Int32Array(rows).fill(-1);
  }

  /** Greedy choice of row `i` (computed once per row; forward() fills it while checking rows). */
  argmax(i: number): number {
    const r = i < 0 ? this.rows + i : i;
    if (this.best[r]! < 0) this.best[r] = argmax(this.row(r));
    return this.best[r]!;
  }

  /** Checks row `r` is finite and records its argmax, in one pass; false when it is not finite. */
  checkRow(r: number): boolean {
    const best = argmaxIfFinite(this.row(r));
    this.best[r] = best;
    return best >= 0;
  }

  /** Row `i` (0-based; negative counts from the end) as a view into `data`. */
  row(i: number): LogitsRow {
    const r = i < 0 ? this.rows + i : i;
    if (r < 0 || r >= this.rows) throw new InvalidArgumentError('row', `logits row ${i} is out of range (0..${this.rows - 1}).`);
    return this.data.subarray(r * this.vocabSize, (r + 1) * this.vocabSize);
  }
}

type CacheData = Float32Array | Uint16Array;

/** Default most bytes of logits per onnxruntime run: 64 MiB (about 110 rows of a 152k vocabulary). */
export const DEFAULT_LOGITS_BUDGET_BYTES = 64 * 1024 * 1024;

/** Per-layer past key/value tensors of one sequence (batch 1). */
class KVCache {
  private tensors: Tensor[] = [];
  length = 0;

  constructor(
    private readonly layers: number,
    private readonly heads: number,
    private readonly headDim: number,
    private readonly dtype: 'float32' | 'float16',
  ) {
    this.clear();
  }

  clear(): void {
    const empty = this.dtype === 'float16' ? new Uint16Array(0) : new Float32Array(0);
    const t = new ort.Tensor(this.dtype, empty, [1, this.heads, 0, this.headDim]);
    this.tensors = Array.from({ length: this.layers * 2 }, () => t);
    this.length = 0;
  }

  /** Feeds for the next run, in [key0, value0, key1, ...] order. */
  pastTensors(): readonly Tensor[] {
    return this.tensors;
  }

  /** Adopts the present tensors of a run. */
  replace(present: Tensor[], length: number): void {
    this.tensors = present;
    this.length = length;
  }

  /** Drops positions >= `length` (copies each head's first `length` rows). */
  crop(length: number): void {
    if (length >= this.length) return;
    if (length === 0) return this.clear();
    const { heads, headDim } = this;
    const from = this.length;
    this.tensors = this.tensors.map((t) => {
      const src = t.data as CacheData;
      const dst = new (src.constructor as { new (n: number): CacheData })(heads * length * headDim);
      for (let h = 0; h < heads; h++) {
        const at = h * from * headDim;
        dst.set(src.subarray(at, at + length * headDim), h * length * headDim);
      }
      return new ort.Tensor(this.dtype, dst, [1, heads, length, headDim]);
    });
    this.length = length;
  }
}

/**
 * A causal LM session with a croppable KV cache. Create it with {@link loadModel}.
 *
 * @example
 * ```ts
 * const lm = await loadModel('./models/qwen-tiny');
 * const ids = lm.tokenizer.encode('The answer is');
 * let logits = await lm.forward(ids, { logits: 'last' });
 * const next = argmax(logits.row(-1));
 * logits = await lm.forward([next], { logits: 'last' });
 * lm.crop(ids.length);          // roll back the generated token
 * await lm.dispose();
 * ```
 */
export class CausalLM {
  private readonly cache: KVCache | null;
  private history: number[] = [];
  private session: InferenceSession | null;
  private ones = new BigInt64Array(0);
  private busy = false;
  private steps = 0;

  constructor(
    session: InferenceSession,
    /** The model's tokenizer. */
    readonly tokenizer: TextTokenizer,
    /** What was loaded. */
    readonly info: ModelInfo,
    private readonly checkLogits = true,
    /** Most bytes of logits one onnxruntime run may return (see LoadModelOptions.logitsBudgetBytes). */
    private readonly logitsBudgetBytes = DEFAULT_LOGITS_BUDGET_BYTES,
  ) {
    this.session = session;
    const g = info.graph;
    this.cache = g.numCacheLayers > 0 ? new KVCache(g.numCacheLayers, info.numKeyValueHeads, info.headDim, g.cacheDType) : null;
  }

  /** A short label for messages: the source folder or Hub id. */
  get name(): string {
    return this.info.source;
  }

  /** Number of tokens in the cache (the sequence the next forward continues). */
  get length(): number {
    return this.history.length;
  }

  /** The ids in the cache, oldest first. */
  get tokens(): readonly number[] {
    return this.history;
  }

  /** Whether {@link dispose} has run. */
  get disposed(): boolean {
    return this.session === null;
  }

  /** Whether the graph keeps a KV cache (otherwise every forward recomputes the whole sequence). */
  get hasKVCache(): boolean {
    return this.cache !== null;
  }

  /**
   * Appends `ids` to the sequence and returns the logits of the new positions (or of the
   * rows asked for). On error the cache is left exactly as it was.
   */
  async forward(ids: readonly number[], options: ForwardOptions = {}): Promise<Logits> {
    const session = this.requireSession();
    if (ids.length === 0) throw new InvalidArgumentError('ids', `${this.name}: forward() needs at least one token id.`);
    const vocab = this.tokenizer.vocabSize;
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.info.vocabSize || id >= Math.max(vocab, 1)) {
        throw new InvalidArgumentError('ids', `${this.name}: token id ${id} is outside the vocabulary (0..${Math.min(vocab, this.info.vocabSize) - 1}).`);
      }
    }
    const past = this.history.length;
    const total = past + ids.length;
    if (total > this.info.maxPositions) {
      throw new ContextOverflowError(`${this.name}: ${total} tokens exceed the model's context of ${this.info.maxPositions} (max_position_embeddings). Shorten the prompt or lower maxNewTokens.`);
    }
    const wanted = options.logits === undefined || options.logits === 'all' ? ids.length : options.logits === 'last' ? 1 : options.logits;
    if (!Number.isInteger(wanted) || wanted < 1 || wanted > ids.length) {
      throw new InvalidArgumentError('logits', `${this.name}: forward() can return 1..${ids.length} logits rows, not ${String(options.logits)}.`);
    }
    if (this.busy) throw new InvalidArgumentError('forward', `${this.name}: forward() called while another forward() on the same model is running; await it first.`);
    this.busy = true;
    try {
      // Graphs without a logits_to_keep input return a row per fed token: feed long inputs in
      // pieces of at most `maxRows` tokens, so one run never returns more than the budget.
      const maxRows = this.info.graph.logitsToKeepInput || !this.cache ? Infinity : Math.max(1, Math.floor(this.logitsBudgetBytes / (4 * this.info.vocabSize)));
      if (ids.length <= maxRows) return await this.run(session, ids, wanted);
      const before = this.history.length;
      try {
        const width = this.info.vocabSize;
        const rows = new Float32Array(wanted * width);
        const firstWanted = ids.length - wanted;
        let filled = 0;
        for (let at = 0; at < ids.length; at += maxRows) {
          const piece = ids.slice(at, at + maxRows);
          const keep = Math.max(0, at + piece.length - Math.max(at, firstWanted));
          const logits = await this.run(session, piece, Math.max(1, keep));
          if (keep > 0) {
            rows.set(logits.data.subarray((logits.rows - keep) * width), filled * width);
            filled += keep;
          }
        }
        return new Logits(rows, wanted, width);
      } catch (error) {
        this.dropAfter(before);
        throw error;
      }
    } finally {
      this.busy = false;
    }
  }

  /** One onnxruntime run over `ids` (the cache holds everything before them). */
  private async run(session: InferenceSession, ids: readonly number[], wanted: number): Promise<Logits> {
    const vocab = this.tokenizer.vocabSize;
    const past = this.history.length;
    const total = past + ids.length;
    {
      const g = this.info.graph;
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
      if (this.cache) {
        const pastTensors = this.cache.pastTensors();
        g.pastNames.forEach(([k, v], layer) => {
          feeds[k] = pastTensors[layer * 2]!;
          feeds[v] = pastTensors[layer * 2 + 1]!;
        });
        if (g.hasUseCacheBranch) feeds.use_cache_branch = new ort.Tensor('bool', Uint8Array.of(past > 0 ? 1 : 0), [1]);
      }
      let out: Record<string, Tensor>;
      try {
        out = (await session.run(feeds)) as Record<string, Tensor>;
      } catch (cause) {
        throw new InferenceError(`${this.name}: onnxruntime failed at step ${this.steps} (sequence length ${total}): ${(cause as Error).message}`, { cause });
      }
      const logitsTensor = out.logits!;
      const width = logitsTensor.dims[logitsTensor.dims.length - 1]!;
      const rowsReturned = logitsTensor.dims[logitsTensor.dims.length - 2]!;
      if (width < vocab) {
        throw new InferenceError(`${this.name}: logits have ${width} columns but the tokenizer has ${vocab} ids; the model and tokenizer do not belong together.`);
      }
      const raw = logitsTensor.data as Float32Array | Uint16Array;
      const first = rowsReturned - wanted;
      // Much fewer rows than the run returned (a prefill): copy them, so a view does not keep the
      // whole buffer alive. A few dropped rows (a verifier pass) stay a view: no per-pass copy.
      let data = first > wanted && raw instanceof Float32Array ? raw.slice(first * width, rowsReturned * width) : raw.subarray(first * width, rowsReturned * width);
      if (!(data instanceof Float32Array)) data = data instanceof Uint16Array ? float16ToFloat32(data) : Float32Array.from(data as ArrayLike<number>);
      const logits = new Logits(data as Float32Array, wanted, width);
      if (this.checkLogits) {
        for (let r = 0; r < wanted; r++) {
          if (!logits.checkRow(r)) {
            throw new InferenceError(`${this.name}: non-finite logits (NaN/Inf) at position ${total - wanted + r} (step ${this.steps}). The model weights or its fp16 export are broken; try the fp32 file.`);
          }
        }
      }
      if (this.cache) {
        this.cache.replace(g.presentNames.flatMap(([k, v]) => [out[k]!, out[v]!]), total);
      }
      this.history.push(...ids);
      this.steps++;
      return logits;
    }
  }

  /** Drops positions from `length` on (a failed multi-run forward leaves the cache as it was). */
  private dropAfter(length: number): void {
    this.history.length = length;
    this.cache?.crop(length);
  }

  /** Rolls the sequence back to its first `length` tokens. */
  crop(length: number): void {
    this.requireSession();
    if (!Number.isInteger(length) || length < 0) throw new InvalidArgumentError('length', `${this.name}: crop() needs a non-negative integer, got ${length}.`);
    if (length >= this.history.length) return;
    if (this.busy) throw new InvalidArgumentError('crop', `${this.name}: crop() called while forward() is running; await it first.`);
    this.history.length = length;
    this.cache?.crop(length);
  }

  /** Empties the sequence. */
  reset(): void {
    this.crop(0);
  }

  /** Frees the onnxruntime session. Further use throws {@link DisposedError}. Idempotent. */
  async dispose(): Promise<void> {
    const session = this.session;
    if (!session) return;
    this.session = null;
    this.history = [];
    this.cache?.clear();
    await releaseSession(session);
  }

  private requireSession(): InferenceSession {
    if (!this.session) throw new DisposedError(`Model "${this.name}"`);
    return this.session;
  }

  private onesOf(n: number): BigInt64Array {
    if (this.ones.length < n) this.ones = new BigInt64Array(Math.max(n, this.ones.length * 2, 64)).fill(1n);
    return this.ones.subarray(0, n);
  }
}
