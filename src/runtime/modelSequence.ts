/**
 * One croppable sequence of a local model: its ids, the check that passes on it run one at a
 * time, and the rows its passes hold (where the session runs). {@link CausalLM} is one (its
 * own, sequence 0); each generation running at once opens another, and passes of different
 * sequences batch where the session runs.
 * @module
 */
import { ContextOverflowError, InferenceError, InvalidArgumentError, WorkerError } from '../errors.js';
import type { MemberSequence, ScoreOptions } from '../member/member.js';
import { Scores, type RowAnswer, type RowQuery, type ScorePayload, type ScoreRequest } from '../member/scores.js';
import type { TextTokenizer } from '../text/tokenizer.js';
import type { ModelBackend } from './sessionRunner.js';
import { Logits, type ForwardOptions, type ModelInfo, type SeamTraffic } from './logits.js';

/** What a sequence reads of its model. */
export interface SequenceOwner {
  readonly name: string;
  readonly tokenizer: TextTokenizer;
  readonly info: ModelInfo;
  readonly traffic: SeamTraffic;
  readonly runsConcurrently: boolean;
  requireBackend(): ModelBackend;
}

/** A sequence of a local model (see the module comment). */
export class ModelSequence implements MemberSequence {
  private history: number[] = [];
  private busy = false;
  /** The worker died since the last pass: rows scored before it are gone with it. */
  cacheLost = false;
  private closed = false;

  constructor(
    private readonly owner: SequenceOwner,
    /** The backend's number of this sequence. */
    readonly seq: number,
    private readonly onClose?: (sequence: ModelSequence) => void,
  ) {}

  get name(): string {
    return this.owner.name;
  }

  get tokenizer(): TextTokenizer {
    return this.owner.tokenizer;
  }

  get maxPositions(): number {
    return this.owner.info.maxPositions;
  }

  get runsConcurrently(): boolean {
    return this.owner.runsConcurrently;
  }

  /** Whole logits rows can be read (they stay where the session runs). */
  get wholeRows(): boolean {
    return true;
  }

  get length(): number {
    return this.history.length;
  }

  get tokens(): readonly number[] {
    return this.history;
  }

  /** The backend lost every cache (a restarted worker): the sequence starts over. */
  lost(): void {
    this.history = [];
    this.cacheLost = true;
  }

  /**
   * Appends `ids` to the sequence and returns the logits of the new positions (or of the
   * rows asked for). On error the cache is left exactly as it was.
   */
  async forward(ids: readonly number[], options: ForwardOptions = {}): Promise<Logits> {
    const wanted = this.checkPass(ids, options.logits);
    const out = await this.pass((backend) => backend.forward(ids, wanted, this.seq), ids);
    this.owner.traffic.passBytes += out.data.byteLength + out.best.byteLength;
    if (out.batch > 1) this.owner.traffic.batchedPasses++;
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
    if (asked && asked.length !== wanted) throw new InvalidArgumentError('asked', `${this.owner.name}: score() needs one asked id per row (${wanted}), got ${asked.length}.`);
    const topK = options.topK ?? 1;
    if (!Number.isInteger(topK) || topK < 1) throw new InvalidArgumentError('topK', `${this.owner.name}: score() needs topK >= 1, got ${String(options.topK)}.`);
    const request: ScoreRequest = { rows: wanted, topK, asked: asked ? [...asked] : null, holdFrom: options.holdFrom ?? 0, full: options.full ?? false };
    const out = await this.pass((backend) => backend.score(ids, request, this.seq), ids);
    if ((out.batch ?? 1) > 1) this.owner.traffic.batchedPasses++;
    this.owner.traffic.passBytes += out.topIds.byteLength + out.topLogits.byteLength + out.asked.byteLength + out.logNormalizers.byteLength + (out.data?.byteLength ?? 0);
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
    if (this.closed) throw new InvalidArgumentError('sequence', `${this.owner.name}: this sequence was closed; open another with openSequence().`);
    this.owner.requireBackend();
    if (ids.length === 0) throw new InvalidArgumentError('ids', `${this.owner.name}: forward() needs at least one token id.`);
    const vocab = this.owner.tokenizer.vocabSize;
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.owner.info.vocabSize || id >= Math.max(vocab, 1)) {
        throw new InvalidArgumentError('ids', `${this.owner.name}: token id ${id} is outside the vocabulary (0..${Math.min(vocab, this.owner.info.vocabSize) - 1}).`);
      }
    }
    const total = this.history.length + ids.length;
    if (total > this.owner.info.maxPositions) {
      throw new ContextOverflowError(`${this.owner.name}: ${total} tokens exceed the model's context of ${this.owner.info.maxPositions} (max_position_embeddings). Shorten the prompt or lower maxNewTokens.`);
    }
    const wanted = rows === undefined || rows === 'all' ? ids.length : rows === 'last' ? 1 : rows;
    if (!Number.isInteger(wanted) || wanted < 1 || wanted > ids.length) {
      throw new InvalidArgumentError('logits', `${this.owner.name}: forward() can return 1..${ids.length} logits rows, not ${String(rows)}.`);
    }
    if (this.busy) throw new InvalidArgumentError('forward', `${this.owner.name}: forward() called while another forward() on the same model is running; await it first.`);
    return wanted;
  }

  /** Runs one pass on the backend, one at a time; the ids join the sequence when it succeeds. */
  private async pass<T>(run: (backend: ModelBackend) => Promise<T>, ids: readonly number[]): Promise<T> {
    const backend = this.owner.requireBackend();
    this.busy = true;
    this.cacheLost = false;
    try {
      const out = await run(backend);
      this.owner.traffic.passes++;
      this.history.push(...ids);
      return out;
    } finally {
      this.busy = false;
    }
  }

  private async readRow(query: RowQuery): Promise<RowAnswer> {
    const backend = this.owner.requireBackend();
    // The same error the pass in flight got, whichever the caller saw first.
    if (this.cacheLost) throw new WorkerError(`${this.owner.name}: the model's worker thread exited; the rows it had scored are gone. The next call starts a new one with an empty cache.`);
    if (query.position > this.history.length) {
      throw new InferenceError(`${this.owner.name}: the logits row predicting position ${query.position} is gone: the sequence was cropped to ${this.history.length} tokens since. Read rows before cropping.`);
    }
    if (this.busy) throw new InvalidArgumentError('read', `${this.owner.name}: a scored row was read while forward() is running; await it first.`);
    const [answer] = await backend.read([query], this.seq);
    const a = answer!;
    this.owner.traffic.reads++;
    this.owner.traffic.readBytes += a.logits.byteLength + (a.row?.byteLength ?? 0);
    return {
      logits: new Float32Array(a.logits.buffer, a.logits.byteOffset, a.logits.length),
      logNormalizer: a.logNormalizer,
      row: a.row ? new Float32Array(a.row.buffer, a.row.byteOffset, a.row.length) : null,
      ...(a.truncated ? { truncated: a.truncated } : {}),
    };
  }

  /** Rolls the sequence back to its first `length` tokens. */
  crop(length: number): void {
    const backend = this.owner.requireBackend();
    if (!Number.isInteger(length) || length < 0) throw new InvalidArgumentError('length', `${this.owner.name}: crop() needs a non-negative integer, got ${length}.`);
    if (length >= this.history.length) return;
    if (this.busy) throw new InvalidArgumentError('crop', `${this.owner.name}: crop() called while forward() is running; await it first.`);
    this.history.length = length;
    backend.crop(length, this.seq);
  }

  /** Frees the sequence's cache where the session runs; the model stays usable. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.history = [];
    this.onClose?.(this);
  }
}
