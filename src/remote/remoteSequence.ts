/**
 * One token sequence of a served model: the ids it holds, its passes kept for reads, and what
 * its requests cost. A {@link RemoteMember} is one (its own); each generation running at once
 * opens another, so their requests travel concurrently and the server batches them.
 * @module
 */
import { ContextOverflowError, DisposedError, InvalidArgumentError, RemoteEngineError } from '../errors.js';
import type { MemberSequence, ScoreOptions } from '../member/member.js';
import { Scores, type RowAnswer, type RowQuery, type ScorePayload } from '../member/scores.js';
import { truncateTop } from '../member/truncation.js';
import type { TextTokenizer } from '../text/tokenizer.js';
import { RequestAborted } from './http.js';
import type { RemoteEngine, RemoteMemberStats, RemoteProtocol, RemoteRow, RequestScope } from './protocol.js';

/** What a sequence reads of the member it belongs to. */
export interface RemoteOwner {
  readonly name: string;
  readonly engine: RemoteEngine;
  readonly tokenizer: TextTokenizer;
  readonly maxPositions: number;
  readonly url: string;
  readonly disposed: boolean;
  readonly protocol: RemoteProtocol;
  /** The member's totals over all its sequences. */
  readonly totals: RemoteMemberStats;
}

/** A pass kept for later reads: the prefix each of its rows was computed from. */
interface PassRecord {
  seq: readonly number[];
  first: number;
  /** Per row, the k-th best log-probability (the bound for ids the engine cannot answer). */
  floor: Float64Array;
  /** The pass's payload: each row's best ids and log-probabilities (sampling reads them). */
  payload: ScorePayload;
}

/** Passes kept for reads: a cycle reads rows of its whole draft (one pass per token when sampling, ahead drafting included). */
const KEPT_PASSES = 160;

/** How far above 0 a served log-probability may be (float rounding); such values count as 0. */
const LOGPROB_TOLERANCE = 1e-3;

/**
 * A log-probability as a server sent it, checked: −∞ or a finite number at most
 * {@link LOGPROB_TOLERANCE} above 0 (clamped to 0); null when it is anything else.
 */
function checkedLogprob(v: number): number | null {
  if (v === -Infinity) return v;
  if (typeof v !== 'number' || !Number.isFinite(v) || v > LOGPROB_TOLERANCE) return null;
  return Math.min(v, 0);
}

/** A token sequence of a served model (see the module comment). */
export class RemoteSequence implements MemberSequence {
  readonly runsConcurrently = true;
  /** Rows are log-probabilities of some ids: whole rows cannot be read (GaC needs them). */
  readonly wholeRows = false;
  private history: number[] = [];
  private passes = 0;
  private readonly kept = new Map<number, PassRecord>();
  private closed = false;

  constructor(
    private readonly owner: RemoteOwner,
    /** This sequence's own counts (the member's totals for its default sequence). */
    readonly stats: RemoteMemberStats,
    /** Told once when the sequence closes. */
    private readonly onClose?: (sequence: RemoteSequence) => void,
  ) {}

  get name(): string {
    return this.owner.name;
  }

  get tokenizer(): TextTokenizer {
    return this.owner.tokenizer;
  }

  get maxPositions(): number {
    return this.owner.maxPositions;
  }

  get tokens(): readonly number[] {
    return this.history;
  }

  get length(): number {
    return this.history.length;
  }

  /** Counts also land in the member's totals (traffic through the client; these here). */
  private scope(signal: AbortSignal | undefined): RequestScope {
    return { signal, ...(this.stats !== this.owner.totals ? { stats: this.stats } : {}) };
  }

  private countBounded(): void {
    this.stats.boundedLogprobs++;
    if (this.stats !== this.owner.totals) this.owner.totals.boundedLogprobs++;
  }

  async score(ids: readonly number[], options: ScoreOptions & { signal?: AbortSignal } = {}): Promise<Scores> {
    if (this.owner.disposed || this.closed) throw new DisposedError(`Model "${this.name}"`);
    if (ids.length === 0) throw new InvalidArgumentError('ids', `${this.name}: score() needs at least one token id.`);
    this.checkIds(ids);
    const total = this.history.length + ids.length;
    // Every request also asks the engine for one generated token, which needs a position too.
    if (total >= this.owner.maxPositions) {
      throw new ContextOverflowError(`${this.name}: ${total} tokens and the one token each request generates exceed the model's context of ${this.owner.maxPositions}. Shorten the prompt or lower maxNewTokens.`);
    }
    const rowsOption = options.rows;
    const rows = rowsOption === undefined || rowsOption === 'all' ? ids.length : rowsOption === 'last' ? 1 : rowsOption;
    if (!Number.isInteger(rows) || rows < 1 || rows > ids.length) throw new InvalidArgumentError('rows', `${this.name}: score() can return 1..${ids.length} rows, not ${String(rowsOption)}.`);
    const k = options.topK ?? 1;
    if (!Number.isInteger(k) || k < 1) throw new InvalidArgumentError('topK', `${this.name}: score() needs topK >= 1, got ${String(options.topK)}.`);
    const asked = options.asked ?? null;
    if (asked && asked.length !== rows) throw new InvalidArgumentError('asked', `${this.name}: score() needs one asked id per row (${rows}), got ${asked.length}.`);
    const seq = this.history.concat(ids);
    const first = seq.length - rows + 1;
    const answer = await unaborted(this.owner.protocol.score(seq, first, k, asked ?? new Array<number>(rows).fill(-1), this.scope(options.signal)));
    if (answer.length !== rows) throw this.protocolError(`returned ${answer.length} rows where ${rows} were asked`);
    const scores = this.scores(seq, first, answer, k, asked, options.signal);
    this.history = seq;
    return scores;
  }

  /**
   * Appends `ids` and lets the server draft up to `n` tokens greedily in one request (it stops
   * after an end-of-sequence token): row `i` predicts drafted token `i` (its `best`), and the
   * sequence then holds the drafted tokens too. The engine drafts a chunk this way instead of
   * one request per token.
   */
  async draft(ids: readonly number[], n: number, options: { topK?: number; signal?: AbortSignal } = {}): Promise<Scores> {
    if (this.owner.disposed || this.closed) throw new DisposedError(`Model "${this.name}"`);
    this.checkIds(ids);
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('n', `${this.name}: draft() needs n >= 1, got ${String(n)}.`);
    const k = options.topK ?? 1;
    if (!Number.isInteger(k) || k < 1) throw new InvalidArgumentError('topK', `${this.name}: draft() needs topK >= 1, got ${String(options.topK)}.`);
    const seq = this.history.concat(ids);
    const room = this.owner.maxPositions - seq.length;
    if (room < 1) throw new ContextOverflowError(`${this.name}: ${seq.length} tokens fill the model's context of ${this.owner.maxPositions}. Shorten the prompt or lower maxNewTokens.`);
    const drafted = await unaborted(this.owner.protocol.generate(seq, Math.min(n, room), k, this.scope(options.signal)));
    if (drafted.length === 0 || drafted.length > n) throw this.protocolError(`drafted ${drafted.length} tokens where 1..${n} were asked`);
    const ids_ = drafted.map((d) => d.id);
    const full = seq.concat(ids_);
    // Row i predicts drafted token i; the token itself is the asked id (its log-probability came with it).
    const scores = this.scores(full, seq.length, drafted.map((d) => d.row), k, ids_, options.signal, ids_);
    this.history = full;
    return scores;
  }

  private checkIds(ids: readonly number[]): void {
    const vocab = this.owner.tokenizer.vocabSize;
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= vocab) throw new InvalidArgumentError('ids', `${this.name}: token id ${id} is outside the vocabulary (0..${vocab - 1}).`);
    }
  }

  /** The Scores of rows predicting positions `first..` of `seq` (kept for later reads). */
  private scores(seq: readonly number[], first: number, answer: RemoteRow[], k: number, asked: readonly number[] | null, signal: AbortSignal | undefined, chosen?: readonly number[]): Scores {
    const vocab = this.owner.tokenizer.vocabSize;
    const rows = answer.length;
    const width = Math.min(k, vocab);
    const payload: ScorePayload = {
      first,
      rows,
      width: vocab,
      k: width,
      topIds: new Int32Array(rows * width),
      topLogits: new Float32Array(rows * width),
      asked: new Float32Array(rows),
      logNormalizers: new Float64Array(rows), // log-probabilities: normalized already
      data: null,
      pass: ++this.passes,
    };
    const floor = new Float64Array(rows);
    answer.forEach((row, r) => {
      const top = [...row.top].sort((a, b) => b[1] - a[1] || a[0] - b[0]);
      // A drafted token is the row's best (`best` reads it); among equal log-probabilities the
      // server's pick stands.
      if (chosen) {
        const at = top.findIndex(([id]) => id === chosen[r]);
        if (at < 0 || top[at]![1] !== top[0]![1]) throw this.protocolError(`drafted token ${chosen[r]} which is not the best of its row (temperature 0 should draft greedily)`);
        top.unshift(...top.splice(at, 1));
      }
      if (top.length < width) throw this.protocolError(`returned ${top.length} log-probabilities for a row where ${width} were asked`);
      for (let e = 0; e < width; e++) {
        const [id, value] = top[e]!;
        if (!Number.isInteger(id) || id < 0 || id >= vocab) throw this.protocolError(`returned token id ${id}, outside the tokenizer's vocabulary (0..${vocab - 1}): the server serves another model`);
        const logprob = checkedLogprob(value);
        if (logprob === null || (e === 0 && logprob === -Infinity)) throw this.badLogprob(value, `the row predicting position ${first + r}`);
        payload.topIds[r * width + e] = id;
        payload.topLogits[r * width + e] = logprob;
      }
      const asked = Number.isNaN(row.asked) ? NaN : checkedLogprob(row.asked);
      if (asked === null) throw this.badLogprob(row.asked, `the asked id of the row predicting position ${first + r}`);
      payload.asked[r] = asked;
      floor[r] = payload.topLogits[r * width + width - 1]!;
    });
    this.kept.set(payload.pass, { seq, first, floor, payload });
    if (this.kept.size > KEPT_PASSES) this.kept.delete(this.kept.keys().next().value!);
    return new Scores(payload, (query) => this.read(query, signal), asked ? [...asked] : null);
  }

  crop(length: number): void {
    if (!Number.isInteger(length) || length < 0) throw new InvalidArgumentError('length', `${this.name}: crop() needs a non-negative integer, got ${length}.`);
    if (length < this.history.length) this.history = this.history.slice(0, length);
  }

  close(): void {
    if (!this.closed) this.onClose?.(this);
    this.closed = true;
    this.history = [];
    this.kept.clear();
  }

  /** A read of a row: another request for its prefix (the pass remembers it). */
  private async read(query: RowQuery, signal: AbortSignal | undefined): Promise<RowAnswer> {
    if (this.owner.disposed || this.closed) throw new DisposedError(`Model "${this.name}"`);
    if (query.full) {
      throw new InvalidArgumentError('baseEnsembler', `${this.name}: a model served by ${this.owner.engine} returns top-k log-probabilities, not whole logits rows; GaC and whole-row reads need local models. Use baseEnsembler 'unite'.`);
    }
    const pass = this.kept.get(query.pass);
    if (!pass) throw new InvalidArgumentError('read', `${this.name}: the row predicting position ${query.position} (pass ${query.pass}) is no longer kept; read rows right after their pass.`);
    const ids = query.ids ?? [];
    let logits = new Float32Array(ids.length);
    if (ids.length > 0) {
      const values = await unaborted(this.owner.protocol.logprobsOf(pass.seq.slice(0, query.position), ids, this.scope(signal)));
      const bound = pass.floor[query.position - pass.first]!;
      logits = Float32Array.from(values, (v) => {
        if (Number.isNaN(v)) {
          this.countBounded();
          return bound;
        }
        const checked = checkedLogprob(v);
        if (checked === null) throw this.badLogprob(v, `a fill-in at position ${query.position}`);
        return checked;
      });
    }
    const answer: RowAnswer = { logits, logNormalizer: query.normalizer ? 0 : NaN, row: null };
    if (query.truncation) {
      // Sampling sees the row through the log-probabilities the engine returned: those entries
      // are the member's whole distribution (an implicit top-k), so nothing is asked again.
      const { payload } = pass;
      const r = query.position - pass.first;
      const top = { ids: payload.topIds.subarray(r * payload.k, (r + 1) * payload.k), logits: payload.topLogits.subarray(r * payload.k, (r + 1) * payload.k) };
      answer.truncated = truncateTop(top, query.truncation, query.uniform ?? NaN);
    }
    return answer;
  }

  private badLogprob(value: number, where: string): RemoteEngineError {
    return this.protocolError(`returned the log-probability ${value} for ${where}; a log-probability is at most 0 (the best of a row finite): the server's answer cannot be used`);
  }

  private protocolError(what: string): RemoteEngineError {
    return new RemoteEngineError('malformed', this.owner.url, `${this.name}: the ${this.owner.engine} server at ${this.owner.url} ${what}.`);
  }
}

/** Rethrows a request cut short by the caller's signal as the signal's reason. */
async function unaborted<T>(request: Promise<T>): Promise<T> {
  try {
    return await request;
  } catch (error) {
    if (error instanceof RequestAborted) throw error.reason instanceof Error ? error.reason : new Error(String(error.reason ?? 'aborted'));
    throw error;
  }
}

