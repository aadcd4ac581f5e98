/**
 * An ensemble member served by an inference engine. It keeps the token sequence here (the
 * server keeps none between requests: its prefix cache only makes resending cheap), scores
 * through the engine's log-probability API and answers reads of a row (the logits of more ids)
 * with another request for that row's prefix. Rows come back as log-probabilities, so each
 * row's normalizer is known (0) and whole rows never are: GaC cannot use a remote member.
 * The engine-specific protocol lives in subclasses (sglang.ts, vllm.ts).
 * @module
 */
import { ContextOverflowError, DisposedError, InvalidArgumentError, RemoteEngineError } from '../errors.js';
import type { ScoreOptions } from '../member/member.js';
import { Scores, type RowAnswer, type RowQuery, type ScorePayload } from '../member/scores.js';
import { truncateTop } from '../member/truncation.js';
import type { TextTokenizer } from '../text/tokenizer.js';
import type { EnsembleMember } from '../member/member.js';
import { RemoteClient, RequestAborted, type RemoteConnectionOptions, type RemoteTraffic } from './http.js';

/** The engines a remote member can be served by. */
export type RemoteEngine = 'sglang' | 'vllm';

/** One scored row as an engine returned it: log-probabilities of some ids. */
export interface RemoteRow {
  /** Best ids with their log-probabilities (at least the k asked for, unless the vocabulary is smaller). */
  top: Array<[id: number, logprob: number]>;
  /** The log-probability of the asked id, where the answer included it (else NaN). */
  asked: number;
}

/** What the protocol of one engine must provide. */
export interface RemoteProtocol {
  /**
   * Rows of `seq` predicting positions `first..seq.length` (a row predicts the token at that
   * position from the ones before it), each with its top `k` and the log-probability of `asked[i]`.
   */
  score(seq: readonly number[], first: number, k: number, asked: readonly number[], signal?: AbortSignal): Promise<RemoteRow[]>;
  /** Log-probabilities of `ids` at the row predicting position `prefix.length`; NaN where the engine cannot say. */
  logprobsOf(prefix: readonly number[], ids: readonly number[], signal?: AbortSignal): Promise<Float64Array>;
  /**
   * Greedy generation after `seq`: up to `n` tokens (fewer when one ends the sequence), each
   * with the top `k` of the row that chose it.
   */
  generate(seq: readonly number[], n: number, k: number, signal?: AbortSignal): Promise<Array<{ id: number; row: RemoteRow }>>;
}

/** Counts of a remote member, added to the ensemble's statistics. */
export interface RemoteMemberStats extends RemoteTraffic {
  /** Fill-in ids whose log-probability the engine could not give: the row's k-th best was used (an upper bound). */
  boundedLogprobs: number;
  /** Prompt tokens the server said it served from its prefix cache (SGLang `cached_tokens`), where it says. */
  cachedTokens: number;
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

/** A member whose model is served by an inference engine (see `loadRemoteModel`). */
export class RemoteMember implements EnsembleMember {
  readonly runsConcurrently = true;
  /** Rows are log-probabilities of some ids: whole rows cannot be read (GaC needs them). */
  readonly wholeRows = false;
  readonly stats: RemoteMemberStats;
  private history: number[] = [];
  private passes = 0;
  private readonly kept = new Map<number, PassRecord>();
  private closed = false;

  /** @internal Members are created by `loadRemoteModel`, which checks the server first. */
  constructor(
    /** Label for messages and traces (`engine:url`). */
    readonly name: string,
    /** Which engine serves it. */
    readonly engine: RemoteEngine,
    readonly tokenizer: TextTokenizer,
    readonly maxPositions: number,
    private readonly client: RemoteClient,
    private readonly protocol: RemoteProtocol,
  ) {
    // One object: the client counts requests, the protocol and this member the rest.
    this.stats = Object.assign(client.traffic, { boundedLogprobs: 0, cachedTokens: 0, ...(client.traffic as Partial<RemoteMemberStats>) }) as RemoteMemberStats;
  }

  /** The server's base URL. */
  get url(): string {
    return this.client.base.toString();
  }

  get tokens(): readonly number[] {
    return this.history;
  }

  get length(): number {
    return this.history.length;
  }

  get disposed(): boolean {
    return this.closed;
  }

  async score(ids: readonly number[], options: ScoreOptions & { signal?: AbortSignal } = {}): Promise<Scores> {
    if (this.closed) throw new DisposedError(`Model "${this.name}"`);
    if (ids.length === 0) throw new InvalidArgumentError('ids', `${this.name}: score() needs at least one token id.`);
    this.checkIds(ids);
    const total = this.history.length + ids.length;
    // Every request also asks the engine for one generated token, which needs a position too.
    if (total >= this.maxPositions) {
      throw new ContextOverflowError(`${this.name}: ${total} tokens and the one token each request generates exceed the model's context of ${this.maxPositions}. Shorten the prompt or lower maxNewTokens.`);
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
    const answer = await unaborted(this.protocol.score(seq, first, k, asked ?? new Array<number>(rows).fill(-1), options.signal));
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
    if (this.closed) throw new DisposedError(`Model "${this.name}"`);
    this.checkIds(ids);
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('n', `${this.name}: draft() needs n >= 1, got ${String(n)}.`);
    const k = options.topK ?? 1;
    if (!Number.isInteger(k) || k < 1) throw new InvalidArgumentError('topK', `${this.name}: draft() needs topK >= 1, got ${String(options.topK)}.`);
    const seq = this.history.concat(ids);
    const room = this.maxPositions - seq.length;
    if (room < 1) throw new ContextOverflowError(`${this.name}: ${seq.length} tokens fill the model's context of ${this.maxPositions}. Shorten the prompt or lower maxNewTokens.`);
    const drafted = await unaborted(this.protocol.generate(seq, Math.min(n, room), k, options.signal));
    if (drafted.length === 0 || drafted.length > n) throw this.protocolError(`drafted ${drafted.length} tokens where 1..${n} were asked`);
    const ids_ = drafted.map((d) => d.id);
    const full = seq.concat(ids_);
    // Row i predicts drafted token i; the token itself is the asked id (its log-probability came with it).
    const scores = this.scores(full, seq.length, drafted.map((d) => d.row), k, ids_, options.signal, ids_);
    this.history = full;
    return scores;
  }

  private checkIds(ids: readonly number[]): void {
    const vocab = this.tokenizer.vocabSize;
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= vocab) throw new InvalidArgumentError('ids', `${this.name}: token id ${id} is outside the vocabulary (0..${vocab - 1}).`);
    }
  }

  /** The Scores of rows predicting positions `first..` of `seq` (kept for later reads). */
  private scores(seq: readonly number[], first: number, answer: RemoteRow[], k: number, asked: readonly number[] | null, signal: AbortSignal | undefined, chosen?: readonly number[]): Scores {
    const vocab = this.tokenizer.vocabSize;
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

  async dispose(): Promise<void> {
    this.closed = true;
    this.history = [];
    this.kept.clear();
  }

  /** A read of a row: another request for its prefix (the pass remembers it). */
  private async read(query: RowQuery, signal: AbortSignal | undefined): Promise<RowAnswer> {
    if (this.closed) throw new DisposedError(`Model "${this.name}"`);
    if (query.full) {
      throw new InvalidArgumentError('baseEnsembler', `${this.name}: a model served by ${this.engine} returns top-k log-probabilities, not whole logits rows; GaC and whole-row reads need local models. Use baseEnsembler 'unite'.`);
    }
    const pass = this.kept.get(query.pass);
    if (!pass) throw new InvalidArgumentError('read', `${this.name}: the row predicting position ${query.position} (pass ${query.pass}) is no longer kept; read rows right after their pass.`);
    const ids = query.ids ?? [];
    let logits = new Float32Array(ids.length);
    if (ids.length > 0) {
      const values = await unaborted(this.protocol.logprobsOf(pass.seq.slice(0, query.position), ids, signal));
      const bound = pass.floor[query.position - pass.first]!;
      logits = Float32Array.from(values, (v) => {
        if (Number.isNaN(v)) {
          this.stats.boundedLogprobs++;
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
    return new RemoteEngineError('malformed', this.url, `${this.name}: the ${this.engine} server at ${this.url} ${what}.`);
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

export type { RemoteConnectionOptions };
