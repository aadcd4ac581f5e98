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
import type { ScoreOptions } from '../runtime/causalLM.js';
import type { Scores } from '../runtime/scores.js';
import type { TextTokenizer } from '../text/tokenizer.js';
import type { MemberNetworkStats } from './types.js';

/** A model as the engine sees it: a tokenizer and a croppable scored sequence. */
export interface EnsembleMember {
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
  /** Whether whole rows can be read ({@link RowScore.row}); GaC needs them. */
  readonly wholeRows: boolean;
  /** Whether {@link dispose} has run. */
  readonly disposed: boolean;
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
  /** Frees what the member holds. Idempotent. */
  dispose(): Promise<void>;
  /** Running totals of a remote member's requests (absent for local members). */
  readonly stats?: MemberNetworkStats;
}
