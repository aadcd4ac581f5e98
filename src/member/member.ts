/**
 * The seam between the SAFE engine and the models it ensembles: what a member must do, whatever
 * runs it (an onnxruntime session on this thread or in a worker — {@link CausalLM} — or a model
 * served by SGLang or vLLM — {@link RemoteMember}). The engine feeds token ids, reads reduced
 * rows ({@link Scores}: top-k, the logits of asked ids, the normalizer and whole rows on demand)
 * and rolls the sequence back; it never touches a session or a socket.
 *
 * Rows are logits (local members: normalizer computed on demand) or log-probabilities (remote
 * members: normalizer 0); the gates and UniTE only compare within a row, so both work alike.
 * @module
 */
import type { Scores } from './scores.js';
import type { TextTokenizer } from '../text/tokenizer.js';

/**
 * A model as one generation sees it: the model's facts and one croppable scored sequence.
 * A member is one (its own default sequence); {@link EnsembleMember.openSequence} gives more.
 */
export interface SequenceModel {
  /** A short label for messages and traces. */
  readonly name: string;
  /** The member's tokenizer (local: it renders prompts and maps tokens to bytes). */
  readonly tokenizer: TextTokenizer;
  /** Longest sequence (prompt + generated) the member accepts. */
  readonly maxPositions: number;
  /** Whether its passes run off this thread, so that passes of several members overlap. */
  readonly runsConcurrently: boolean;
  /** The ids of the sequence it holds, oldest first. */
  readonly tokens: readonly number[];
  /** Number of ids it holds. */
  readonly length: number;
  /** Whether whole rows can be read ({@link research!RowScore.row}); GaC needs them. */
  readonly wholeRows: boolean;
  /**
   * Appends `ids` and scores the rows asked for; on error the sequence is as it was. A member
   * that waits on I/O stops waiting when `signal` fires (and rejects).
   */
  score(ids: readonly number[], options: ScoreOptions & { signal?: AbortSignal }): Promise<Scores>;
  /**
   * Optional: appends `ids` and drafts up to `n` tokens greedily at once (a remote member: one
   * request instead of one per token). Row `i` predicts drafted token `i`, its `best`; the
   * sequence then holds the drafted tokens as well. Members without it draft through `score`.
   */
  draft?(ids: readonly number[], n: number, options: { topK?: number; signal?: AbortSignal }): Promise<Scores>;
  /** Rolls the sequence back to its first `length` ids. */
  crop(length: number): void;
  /** Running totals of a remote member's requests (absent for local members). */
  readonly stats?: MemberNetworkStats;
}

/**
 * One more sequence of a member, independent of its others: generations running at once each
 * hold their own, and the member runs their passes together (a batched onnxruntime run, or
 * requests in flight at once). {@link close} frees what it holds; its statistics start at 0.
 */
export interface MemberSequence extends SequenceModel {
  /** Frees the sequence (its cache rows, held rows). Idempotent; the member stays usable. */
  close(): void;
}

/** A model as the engine sees it: a tokenizer and a croppable scored sequence. */
export interface EnsembleMember extends SequenceModel {
  /** Whether {@link dispose} has run. */
  readonly disposed: boolean;
  /** Frees what the member holds. Idempotent. */
  dispose(): Promise<void>;
  /**
   * Optional: opens an independent sequence, so that several generations use the member at
   * once. Members without it take part in one generation at a time (the others wait).
   */
  openSequence?(): MemberSequence;
}

export interface ScoreOptions {
  /** Which rows: `'all'` new positions (default), `'last'`, or the last N. */
  rows?: 'all' | 'last' | number;
  /** Best ids returned per row (default 1: the argmax). */
  topK?: number;
  /** Per row, an id whose logit to return, or -1 (e.g. the token that follows each position). */
  asked?: readonly number[];
  /** Rows of earlier passes that predict positions before this one may be dropped (default 0: keep). */
  holdFrom?: number;
  /** Return the full rows too, holding none (default false). */
  full?: boolean;
}

/** One remote model's requests during a generation. */
export interface MemberNetworkStats {
  /** Requests sent (retries included). */
  requests: number;
  /** Bytes of request bodies sent. */
  bytesSent: number;
  /** Bytes of response bodies received. */
  bytesReceived: number;
  /** Milliseconds spent waiting on the network and the server. */
  waitMs: number;
  /** Retries after a refused connection, 429 or 503. */
  retries: number;
  /** UniTE fill-in ids the engine could not score: the row's k-th log-probability stood in (an upper bound). */
  boundedLogprobs: number;
  /** Prompt tokens the server reported serving from its prefix cache (SGLang), else 0. */
  cachedTokens: number;
}
