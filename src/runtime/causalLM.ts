/**
 * A decoder-only language model stepped token by token, with a KV cache that can be rolled
 * back. Knows nothing about ensembling.
 * @module
 */
import { DisposedError } from '../errors.js';
import type { ScoreOptions } from '../member/member.js';
import type { TextTokenizer } from '../text/tokenizer.js';
import type { Scores } from '../member/scores.js';
import type { ModelBackend } from './sessionRunner.js';
import type { ExecutionMode, ForwardOptions, Logits, ModelInfo, SeamTraffic } from './logits.js';
import { ModelSequence } from './modelSequence.js';

export { Logits, type ExecutionMode, type ForwardOptions, type ModelInfo, type SeamTraffic } from './logits.js';

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
  private backend: ModelBackend | null;
  /** The model's own sequence (what {@link forward}, {@link score} and {@link crop} use). */
  private readonly own: ModelSequence;
  private readonly open = new Set<ModelSequence>();
  /** What came back through the seam so far (see {@link SeamTraffic}); counters only grow. */
  readonly traffic: SeamTraffic = { passes: 0, passBytes: 0, reads: 0, readBytes: 0, batchedPasses: 0 };

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
    this.own = new ModelSequence(this, 0);
    // A worker that died and was restarted holds an empty cache: every sequence starts over.
    backend.onCacheLost = () => {
      this.own.lost();
      for (const s of this.open) s.lost();
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
    return this.own.length;
  }

  /** The ids in the cache, oldest first. */
  get tokens(): readonly number[] {
    return this.own.tokens;
  }

  /** Whole logits rows can be read (they stay where the session runs). */
  get wholeRows(): boolean {
    return true;
  }

  /** Whether {@link dispose} has run. */
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
  forward(ids: readonly number[], options: ForwardOptions = {}): Promise<Logits> {
    return this.own.forward(ids, options);
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
  score(ids: readonly number[], options: ScoreOptions = {}): Promise<Scores> {
    return this.own.score(ids, options);
  }

  /** Rolls the sequence back to its first `length` tokens. */
  crop(length: number): void {
    this.requireBackend();
    this.own.crop(length);
  }

  /** Empties the sequence. */
  reset(): void {
    this.crop(0);
  }

  /**
   * Another sequence with a cache of its own, for one more generation at once: passes of
   * sequences that wait at the same time run as one batched onnxruntime run where the graph
   * allows it (see the README's "Many generations at once"). `close()` frees its cache.
   *
   * @example
   * ```ts
   * const [a, b] = [lm.openSequence(), lm.openSequence()];
   * const [ra, rb] = await Promise.all([a.score(idsA, { rows: 1 }), b.score(idsB, { rows: 1 })]);
   * a.close();
   * b.close();
   * ```
   */
  openSequence(): ModelSequence {
    const backend = this.requireBackend();
    const sequence = new ModelSequence(this, backend.openSequence(), (s) => {
      this.open.delete(s);
      this.backend?.closeSequence(s.seq);
    });
    this.open.add(sequence);
    return sequence;
  }

  /** Sequences opened and not closed yet. */
  get openSequences(): number {
    return this.open.size;
  }

  /** Frees the onnxruntime session (and its worker thread). Further use throws {@link DisposedError}. Idempotent. */
  async dispose(): Promise<void> {
    const backend = this.backend;
    if (!backend) return;
    for (const s of [...this.open]) s.close();
    this.own.lost();
    this.own.cacheLost = false;
    this.backend = null;
    await backend.release();
  }

  /** @internal The backend, or DisposedError once disposed. */
  requireBackend(): ModelBackend {
    if (!this.backend) throw new DisposedError(`Model "${this.name}"`);
    return this.backend;
  }
}
