/**
 * A decoder-only language model stepped token by token, with a KV cache that can be rolled
 * back. Knows nothing about ensembling.
 * @module
 */
import { ContextOverflowError, DisposedError, InferenceError, InvalidArgumentError, WorkerError } from '../errors.js';
import type { ScoreOptions } from '../member/member.js';
import type { TextTokenizer } from '../text/tokenizer.js';
import { argmax, type LogitsRow } from '../member/distribution.js';
import type { GraphContract } from './graph.js';
import type { ResolvedProviders } from './providers.js';
import { Scores, type RowAnswer, type RowQuery, type ScorePayload, type ScoreRequest } from '../member/scores.js';
import type { ModelBackend } from './sessionRunner.js';

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
  /** The graph contract discovered from the session (names as exported). */
  graph: GraphContract;
  /** Whether the graph runs rewritten for an incremental KV cache (see LoadModelOptions.incrementalCache). */
  incrementalCache: boolean;
  /** Whether scoring passes rank rows inside the graph (see LoadModelOptions.inGraphTopK). */
  inGraphTopK: boolean;
  /** Whether the graph's `logits_to_keep` input was added at load (see LoadModelOptions.logitsToKeep); false when the file has it. */
  logitsToKeepAdded: boolean;
}

/** Options of {@link CausalLM.forward}. */
export interface ForwardOptions {
  /**
   * Which logits rows to return: `'all'` new positions (default), `'last'`, or the last N.
   * Graphs with `num_logits_to_keep` compute only those rows.
   */
  logits?: 'all' | 'last' | number;
}

/** Options of {@link CausalLM.score}. */

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
    /** Greedy choice per row where already known (-1 where not). */
    best?: Int32Array,
  ) {
    this.best = best ?? new Int32Array(rows).fill(-1);
  }

  /** Greedy choice of row `i` (computed once per row; forward() finds it while checking rows). */
  argmax(i: number): number {
    const r = i < 0 ? this.rows + i : i;
    if (this.best[r]! < 0) this.best[r] = argmax(this.row(r));
    return this.best[r]!;
  }

  /** Row `i` (0-based; negative counts from the end) as a view into `data`. */
  row(i: number): LogitsRow {
    const r = i < 0 ? this.rows + i : i;
    if (r < 0 || r >= this.rows) throw new InvalidArgumentError('row', `logits row ${i} is out of range (0..${this.rows - 1}).`);
    return this.data.subarray(r * this.vocabSize, (r + 1) * this.vocabSize);
  }
}

/** What crossed the member seam from where the session runs (a worker: the bytes it sent). */
export interface SeamTraffic {
  /** Passes run ({@link CausalLM.forward} and {@link CausalLM.score}). */
  passes: number;
  /** Bytes the passes returned (logits rows, or top-k and asked logits). */
  passBytes: number;
  /** Reads of held rows (RowScore methods that went to the session). */
  reads: number;
  /** Bytes the reads returned (logits of asked ids, whole rows). */
  readBytes: number;
}

/** Where a model's onnxruntime session runs. */
export type ExecutionMode = 'worker' | 'inline';

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
  private history: number[] = [];
  private backend: ModelBackend | null;
  private busy = false;
  /** The worker died since the last pass: rows scored before it are gone with it. */
  private cacheLost = false;
  /** What came back through the seam so far (see {@link SeamTraffic}); counters only grow. */
  readonly traffic: SeamTraffic = { passes: 0, passBytes: 0, reads: 0, readBytes: 0 };

  /** Use {@link loadModel}; this wraps a backend that already holds an open session. */
  constructor(
    backend: ModelBackend,
    /** The model's tokenizer. */
    readonly tokenizer: TextTokenizer,
    /** What was loaded. */
    readonly info: ModelInfo,
    /** Where the session runs. */
    readonly execution: ExecutionMode = 'inline',
  ) {
    this.backend = backend;
    // A worker that died and was restarted holds an empty cache: the sequence starts over.
    backend.onCacheLost = () => {
      this.history = [];
      this.cacheLost = true;
    };
  }

  /** A short label for messages: the source folder or Hub id. */
  get name(): string {
    return this.info.source;
  }

  /** Longest sequence (prompt + generated) the model accepts (`info.maxPositions`). */
  get maxPositions(): number {
    return this.info.maxPositions;
  }

  /** Whether passes run in a worker thread, so that passes of several models overlap. */
  get runsConcurrently(): boolean {
    return this.execution === 'worker';
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
  /** Whole logits rows can be read (they stay where the session runs). */
  get wholeRows(): boolean {
    return true;
  }

  get disposed(): boolean {
    return this.backend === null;
  }

  /** Whether the graph keeps a KV cache (otherwise every forward recomputes the whole sequence). */
  get hasKVCache(): boolean {
    return this.info.graph.numCacheLayers > 0;
  }

  /**
   * Appends `ids` to the sequence and returns the logits of the new positions (or of the
   * rows asked for). On error the cache is left exactly as it was.
   */
  async forward(ids: readonly number[], options: ForwardOptions = {}): Promise<Logits> {
    const wanted = this.checkPass(ids, options.logits);
    const out = await this.pass((backend) => backend.forward(ids, wanted), ids);
    this.traffic.passBytes += out.data.byteLength + out.best.byteLength;
    // Views of this realm's types over the buffers (no copy): onnxruntime's outputs and worker
    // messages may come in another V8 realm's types (e.g. under Jest's stock environment).
    const data = new Float32Array(out.data.buffer, out.data.byteOffset, out.data.length);
    const best = new Int32Array(out.best.buffer, out.best.byteOffset, out.best.length);
    return new Logits(data, out.rows, out.width, best);
  }

  /**
   * Appends `ids` and returns reduced rows: per row the top-k and the logit of an asked id.
   * The full rows stay with the session (in its worker) until the sequence is cropped before
   * them or a later pass's `holdFrom` passes them; {@link research!RowScore} reads them on demand. This
   * is what the ensemble engine uses: full rows cross threads only at ensemble points.
   *
   * @example
   * ```ts
   * const scores = await lm.score(ids, { rows: 1, topK: 10 });
   * const row = scores.at(-1);
   * const pBest = Math.exp(row.max - (await row.logNormalizer()));
   * ```
   */
  async score(ids: readonly number[], options: ScoreOptions = {}): Promise<Scores> {
    const wanted = this.checkPass(ids, options.rows);
    const asked = options.asked ?? null;
    if (asked && asked.length !== wanted) throw new InvalidArgumentError('asked', `${this.name}: score() needs one asked id per row (${wanted}), got ${asked.length}.`);
    const topK = options.topK ?? 1;
    if (!Number.isInteger(topK) || topK < 1) throw new InvalidArgumentError('topK', `${this.name}: score() needs topK >= 1, got ${String(options.topK)}.`);
    const request: ScoreRequest = { rows: wanted, topK, asked: asked ? [...asked] : null, holdFrom: options.holdFrom ?? 0, full: options.full ?? false };
    const out = await this.pass((backend) => backend.score(ids, request), ids);
    this.traffic.passBytes += out.topIds.byteLength + out.topLogits.byteLength + out.asked.byteLength + out.logNormalizers.byteLength + (out.data?.byteLength ?? 0);
    const payload: ScorePayload = {
      ...out,
      topIds: new Int32Array(out.topIds.buffer, out.topIds.byteOffset, out.topIds.length),
      topLogits: new Float32Array(out.topLogits.buffer, out.topLogits.byteOffset, out.topLogits.length),
      asked: new Float32Array(out.asked.buffer, out.asked.byteOffset, out.asked.length),
      logNormalizers: new Float64Array(out.logNormalizers.buffer, out.logNormalizers.byteOffset, out.logNormalizers.length),
      data: out.data ? new Float32Array(out.data.buffer, out.data.byteOffset, out.data.length) : null,
    };
    return new Scores(payload, (query) => this.readRow(query), request.asked);
  }

  /** Validates a pass's ids and rows; returns how many rows it returns. */
  private checkPass(ids: readonly number[], rows: ForwardOptions['logits']): number {
    this.requireBackend();
    if (ids.length === 0) throw new InvalidArgumentError('ids', `${this.name}: forward() needs at least one token id.`);
    const vocab = this.tokenizer.vocabSize;
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.info.vocabSize || id >= Math.max(vocab, 1)) {
        throw new InvalidArgumentError('ids', `${this.name}: token id ${id} is outside the vocabulary (0..${Math.min(vocab, this.info.vocabSize) - 1}).`);
      }
    }
    const total = this.history.length + ids.length;
    if (total > this.info.maxPositions) {
      throw new ContextOverflowError(`${this.name}: ${total} tokens exceed the model's context of ${this.info.maxPositions} (max_position_embeddings). Shorten the prompt or lower maxNewTokens.`);
    }
    const wanted = rows === undefined || rows === 'all' ? ids.length : rows === 'last' ? 1 : rows;
    if (!Number.isInteger(wanted) || wanted < 1 || wanted > ids.length) {
      throw new InvalidArgumentError('logits', `${this.name}: forward() can return 1..${ids.length} logits rows, not ${String(rows)}.`);
    }
    if (this.busy) throw new InvalidArgumentError('forward', `${this.name}: forward() called while another forward() on the same model is running; await it first.`);
    return wanted;
  }

  /** Runs one pass on the backend, one at a time; the ids join the sequence when it succeeds. */
  private async pass<T>(run: (backend: ModelBackend) => Promise<T>, ids: readonly number[]): Promise<T> {
    const backend = this.requireBackend();
    this.busy = true;
    this.cacheLost = false;
    try {
      const out = await run(backend);
      this.traffic.passes++;
      this.history.push(...ids);
      return out;
    } finally {
      this.busy = false;
    }
  }

  private async readRow(query: RowQuery): Promise<RowAnswer> {
    const backend = this.requireBackend();
    // The same error the pass in flight got, whichever the caller saw first.
    if (this.cacheLost) throw new WorkerError(`${this.name}: the model's worker thread exited; the rows it had scored are gone. The next call starts a new one with an empty cache.`);
    if (query.position > this.history.length) {
      throw new InferenceError(`${this.name}: the logits row predicting position ${query.position} is gone: the sequence was cropped to ${this.history.length} tokens since. Read rows before cropping.`);
    }
    if (this.busy) throw new InvalidArgumentError('read', `${this.name}: a scored row was read while forward() is running; await it first.`);
    const [answer] = await backend.read([query]);
    const a = answer!;
    this.traffic.reads++;
    this.traffic.readBytes += a.logits.byteLength + (a.row?.byteLength ?? 0);
    return {
      logits: new Float32Array(a.logits.buffer, a.logits.byteOffset, a.logits.length),
      logNormalizer: a.logNormalizer,
      row: a.row ? new Float32Array(a.row.buffer, a.row.byteOffset, a.row.length) : null,
      ...(a.truncated ? { truncated: a.truncated } : {}),
    };
  }

  /** Rolls the sequence back to its first `length` tokens. */
  crop(length: number): void {
    const backend = this.requireBackend();
    if (!Number.isInteger(length) || length < 0) throw new InvalidArgumentError('length', `${this.name}: crop() needs a non-negative integer, got ${length}.`);
    if (length >= this.history.length) return;
    if (this.busy) throw new InvalidArgumentError('crop', `${this.name}: crop() called while forward() is running; await it first.`);
    this.history.length = length;
    backend.crop(length);
  }

  /** Empties the sequence. */
  reset(): void {
    this.crop(0);
  }

  /** Frees the onnxruntime session (and its worker thread). Further use throws {@link DisposedError}. Idempotent. */
  async dispose(): Promise<void> {
    const backend = this.backend;
    if (!backend) return;
    this.backend = null;
    this.history = [];
    await backend.release();
  }

  private requireBackend(): ModelBackend {
    if (!this.backend) throw new DisposedError(`Model "${this.name}"`);
    return this.backend;
  }
}
